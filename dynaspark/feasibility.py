"""Feasibility: the earliest the application can finish, i.e. with every executor at coresMax.

Two estimates, pure functions over plain numbers:

* with a profile, the profiled durations (normalised to the profile's nominal cores) scaled
  to the cores available, except their latency, plus the profiled idle time: neither is
  shortened by cores; the running stage's remaining share read along its progress curve;
* without one, the core-seconds the running stage has used so far extrapolated to its end
  and to the stages Spark has announced (later jobs are unknown, so this errs early).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from dynaspark.profile import ApplicationProfile

MIN_FRACTION_FOR_EXTRAPOLATION = 0.25
"""Below this fraction done, a stage's own rate says too little to extrapolate from."""


def completion_at_cores_from_profile(
    profile: ApplicationProfile,
    *,
    now_s: float,
    current_stage_id: int | None,
    current_fraction_done: float,
    completed_stage_ids: Collection[int],
    total_cores: float,
    idle_elapsed_s: float = 0.0,
    current_elapsed_s: float = 0.0,
    current_tasks: int = 0,
) -> float:
    """Predict when the application ends if it runs on ``total_cores`` from now on.

    Args:
        profile: The stage profile.
        now_s: Now (seconds).
        current_stage_id: The stage running now, or ``None`` between stages.
        current_fraction_done: Fraction of the running stage done, in [0, 1].
        completed_stage_ids: Stages already completed or skipped.
        total_cores: Cores of all executors together.
        idle_elapsed_s: Between stages, how long the driver has already worked alone (taken
            off the next stage's profiled idle time).
        current_elapsed_s: How long the running stage has run, in seconds at ``total_cores``
            (the core-seconds it was given over ``total_cores``).
        current_tasks: Its tasks (the resolution of ``current_fraction_done``).

    Returns:
        The predicted completion time (seconds).
    """
    scale = profile.nominal_cores / max(total_cores, 1e-6)
    remaining_s = profile.tail_s
    next_stage = True
    for stage in profile.stages:
        if stage.stage_id in completed_stage_ids:
            continue
        if stage.stage_id == current_stage_id:
            # Where it is along its profiled pace: its tasks done, and how long it has run.
            at_cores_s = stage.duration_at_s(scale)
            elapsed = current_elapsed_s / at_cores_s if at_cores_s > 0 else 1.0
            done = stage.time_fraction_done(
                current_fraction_done, tasks=current_tasks or stage.tasks, elapsed_fraction=elapsed
            )
            remaining_s += at_cores_s * (1.0 - done)
        elif current_stage_id is None or stage.stage_id > current_stage_id:
            idle_s = stage.idle_before_s
            if current_stage_id is None and next_stage:
                idle_s = max(0.0, idle_s - idle_elapsed_s)
                next_stage = False
            remaining_s += stage.duration_at_s(scale) + idle_s
    return now_s + remaining_s


def completion_at_cores_from_rate(
    *,
    now_s: float,
    stage_core_seconds: float,
    stage_completed_tasks: int,
    stage_tasks: int,
    announced_tasks_after: Sequence[int],
    total_cores: float,
) -> float | None:
    """Predict when the announced stages end on ``total_cores``, from the running stage's cost.

    Args:
        now_s: Now (seconds).
        stage_core_seconds: Cores × seconds allocated to the running stage so far.
        stage_completed_tasks: Its tasks done.
        stage_tasks: Its tasks.
        announced_tasks_after: Task counts of the stages announced after it.
        total_cores: Cores of all executors together.

    Returns:
        The predicted completion time (seconds), or ``None`` while too little of the stage is
        done to say.
    """
    if (
        stage_tasks <= 0
        or stage_completed_tasks <= 0
        or stage_completed_tasks / stage_tasks < MIN_FRACTION_FOR_EXTRAPOLATION
    ):
        return None
    core_seconds_per_task = stage_core_seconds / stage_completed_tasks
    remaining_tasks = (stage_tasks - stage_completed_tasks) + sum(announced_tasks_after)
    return now_s + remaining_tasks * core_seconds_per_task / max(total_cores, 1e-6)
