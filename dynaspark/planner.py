"""Per-stage deadlines: how much of the time left each stage may use.

The application deadline is ``D_app = start + alpha·deadline``; ``alpha < 1`` keeps a margin
for what the law cannot see (the last tasks, the driver's exit). When a stage starts — that
is, when the previous one completes — its deadline is recomputed from the time left:

``w = beta·w1 + (1 − beta)·w2``, ``d_stage = L + (D_app − now − fixed − L) / (w + 1)``

with ``w1`` the number of stages after it and ``w2`` the profiled duration of the stages
after it over this stage's profiled duration. No amount of executor cores shortens ``fixed``:
the profiled time during which no stage runs (driver work between jobs, the tail) and the
latency of the stages after it (the time their task slots ran none of their tasks), nor this
stage's own latency ``L``. So only what scales with the cores is stretched: ``w1`` counts
each later stage by the share of its duration that scales, and ``w2`` compares those shares
(with no latency profiled, this is the plan above with ``L = 0``). A short stage whose time is
mostly round trips is then not given time it could not use.
Without a profile the weights come from task counts of the stages Spark has announced, and
only a fraction of the time left is planned, because later jobs are not announced yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dynaspark.profile import ApplicationProfile

MIN_STAGE_DEADLINE_S = 1.0
"""No stage is planned shorter than this: below it the law can only run at coresMax anyway."""


@dataclass(frozen=True)
class StagePlan:
    """The deadline given to one stage.

    Attributes:
        stage_id: The stage planned.
        start_s: When the plan was made (the stage's start, seconds).
        duration_s: ``d_stage``: the time the stage may take.
        weight: ``w``, the weight of the work after this stage relative to it.
        on_profile: ``True`` when the plan used the stage profile, ``False`` for tasks only.
    """

    stage_id: int
    start_s: float
    duration_s: float
    weight: float
    on_profile: bool

    @property
    def deadline_at_s(self) -> float:
        """When the stage should be done (seconds)."""
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class StageDeadlinePlanner:
    """Computes the application deadline and per-stage deadlines.

    Attributes:
        alpha: Fraction of the deadline the plan aims at (``D_app = start + alpha·deadline``).
        beta: Weight of the stage count against the profiled durations in ``w``.
        profile: The stage profile, or ``None`` to plan on task counts.
        unprofiled_horizon: Without a profile, the fraction of the time left given to the
            stages Spark has announced (the rest is kept for jobs not announced yet).
    """

    alpha: float = 0.95
    beta: float = 0.33
    profile: ApplicationProfile | None = None
    unprofiled_horizon: float = 0.5

    def __post_init__(self) -> None:
        """Check the constants."""
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if not 0.0 < self.unprofiled_horizon <= 1.0:
            raise ValueError(f"unprofiled_horizon must be in (0, 1], got {self.unprofiled_horizon}")

    def application_deadline_s(self, start_s: float, deadline_s: float) -> float:
        """Return ``D_app = start + alpha·deadline`` (seconds)."""
        return start_s + self.alpha * deadline_s

    def plan_stage(
        self,
        stage_id: int,
        stage_tasks: int,
        announced_tasks_after: Sequence[int],
        now_s: float,
        app_deadline_s: float,
    ) -> StagePlan:
        """Give a stage that starts now its deadline.

        Args:
            stage_id: The stage starting.
            stage_tasks: Its number of tasks.
            announced_tasks_after: Task counts of the stages Spark has announced after it
                (used only when the profile lacks this stage).
            now_s: Now (seconds).
            app_deadline_s: ``D_app`` (seconds).

        Returns:
            The stage's plan.
        """
        profiled = self.profile.stage(stage_id) if self.profile is not None else None
        latency_s = 0.0
        if self.profile is not None and profiled is not None:
            after = self.profile.stages_after(stage_id)
            w1 = sum(s.scalable_fraction for s in after)
            w2 = sum(s.scalable_s for s in after) / max(profiled.scalable_s, 0.05)
            fixed_s = sum(s.idle_before_s + s.latency_s for s in after) + self.profile.tail_s
            latency_s = profiled.latency_s
            available_s = app_deadline_s - now_s - fixed_s - latency_s
            on_profile = True
        else:
            w1 = float(len(announced_tasks_after))
            w2 = sum(announced_tasks_after) / max(stage_tasks, 1)
            available_s = (app_deadline_s - now_s) * self.unprofiled_horizon
            on_profile = False
        weight = self.beta * w1 + (1.0 - self.beta) * w2
        duration_s = max(MIN_STAGE_DEADLINE_S, latency_s + max(0.0, available_s) / (weight + 1.0))
        return StagePlan(stage_id=stage_id, start_s=now_s, duration_s=duration_s, weight=weight, on_profile=on_profile)
