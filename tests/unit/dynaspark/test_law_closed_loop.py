"""The whole law against the simulated Spark plant: what a user of a DeadlineJob would notice."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dynaspark.law import DeadlineControlLaw, LawConfig, LawState
from dynaspark.profile import ApplicationProfile
from dynaspark.regulator import RegulatorGains
from dynaspark.simulation import LoopSample, SimStage, SimulatedSparkApp, profile_at_cores, run_closed_loop

GAINS = RegulatorGains(gain=2.0, integral_time_s=12.0, cores_min=0.1, cores_max=1.0)

# Two jobs: start-up, a map stage and a shuffle stage, driver work, two more stages.
MIXED = [
    SimStage(0, 0, tasks=20, task_core_s=0.5, idle_before_s=3.0),
    SimStage(1, 0, tasks=40, task_core_s=0.4, idle_before_s=0.2),
    SimStage(2, 1, tasks=30, task_core_s=0.6, idle_before_s=1.0),
    SimStage(3, 1, tasks=10, task_core_s=0.3, idle_before_s=0.2),
]
# Many small tasks in three stages.
FINE = [
    SimStage(0, 0, tasks=100, task_core_s=0.15, idle_before_s=3.0),
    SimStage(1, 0, tasks=100, task_core_s=0.2, idle_before_s=0.2),
    SimStage(2, 1, tasks=50, task_core_s=0.1, idle_before_s=0.5),
]
# An iterative application: one short job per iteration.
ITERATIVE = [SimStage(0, 0, 16, 0.5, 4.0)] + [SimStage(i, i, 16, 0.4, 0.5) for i in range(1, 10)]


def _completion_at_max(stages: list[SimStage]) -> float:
    app = SimulatedSparkApp(stages, seed=0)
    while not app.finished:
        app.advance({"0": 1.0, "1": 1.0}, 1.0)
    return app.t_s


def _run(
    stages: list[SimStage],
    deadline_s: float,
    profile: ApplicationProfile | None,
    *,
    seed: int,
    work_scale: float = 1.0,
    capacity_cores: float | None = None,
) -> tuple[SimulatedSparkApp, list[LoopSample], LawState]:
    law = DeadlineControlLaw(
        LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS, capacity_cores=capacity_cores), profile
    )
    app = SimulatedSparkApp(stages, seed=seed, work_scale=work_scale)
    state, samples = run_closed_loop(app, law, law.initial_state(app.t_s), max_s=10 * deadline_s)
    return app, samples, state


def _big_reversals(series: list[float], swing: float) -> int:
    """Direction changes of the allocation whose swing is at least ``swing`` cores."""
    reversals, direction, extreme = 0, 0, series[0]
    for value in series[1:]:
        if direction >= 0 and value <= extreme - swing:
            reversals += direction == 1
            direction, extreme = -1, value
        elif direction <= 0 and value >= extreme + swing:
            reversals += direction == -1
            direction, extreme = 1, value
        elif direction == 1:
            extreme = max(extreme, value)
        elif direction == -1:
            extreme = min(extreme, value)
    return reversals


@pytest.mark.parametrize("stages", [MIXED, FINE, ITERATIVE], ids=["mixed", "fine", "iterative"])
@pytest.mark.parametrize("slack", [0.2, 0.4])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_deadline_met_close_to_the_deadline(stages: list[SimStage], slack: float, seed: int) -> None:
    deadline_s = _completion_at_max(stages) * (1 + slack)
    profile = profile_at_cores(stages, 1.0)
    app, _, _ = _run(stages, deadline_s, profile, seed=seed)
    assert app.finished
    # The plant is advanced in whole periods, so completion is known to within one period.
    assert 0.9 * deadline_s <= app.t_s <= deadline_s + 1.0
    # ... and it used fewer cores than static coresMax over the same time.
    assert app.core_seconds < 0.95 * 2 * 1.0 * app.t_s


@pytest.mark.parametrize("stages", [MIXED, FINE], ids=["mixed", "fine"])
def test_deadline_met_when_the_run_is_slower_than_its_profile(stages: list[SimStage]) -> None:
    deadline_s = _completion_at_max(stages) * 1.4
    app, _, _ = _run(stages, deadline_s, profile_at_cores(stages, 1.0), seed=4, work_scale=1.15)
    assert app.t_s <= deadline_s + 1.0


@pytest.mark.parametrize("stages", [MIXED, FINE], ids=["mixed", "fine"])
def test_allocation_does_not_oscillate(stages: list[SimStage]) -> None:
    deadline_s = _completion_at_max(stages) * 1.4
    _, samples, _ = _run(stages, deadline_s, profile_at_cores(stages, 1.0), seed=5)
    for executor in ("0", "1"):
        series = [s.cores[executor] for s in samples]
        # At most a few swings of a third of the range per stage, not one per period.
        assert _big_reversals(series, 0.3) <= 2 * len(stages), series


def test_resuming_from_serialised_state_gives_the_same_trajectory() -> None:
    deadline_s = _completion_at_max(MIXED) * 1.3
    profile = profile_at_cores(MIXED, 1.0)
    law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile)

    straight_app = SimulatedSparkApp(MIXED, seed=7)
    _, straight = run_closed_loop(straight_app, law, law.initial_state(0.0))

    app = SimulatedSparkApp(MIXED, seed=7)
    state, first = run_closed_loop(app, law, law.initial_state(0.0), stop_after_steps=17)
    stored = json.loads(json.dumps(state.to_dict()))  # what a status round trip does to it
    fresh_law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile)
    _, rest = run_closed_loop(app, fresh_law, LawState.from_dict(stored))

    assert first[-1].stage_id is not None  # the cut falls inside a stage
    assert [s.cores for s in first + rest] == [s.cores for s in straight]


def test_infeasible_deadline_runs_at_cores_max_and_says_by_how_much() -> None:
    at_max_s = _completion_at_max(MIXED)
    profile = profile_at_cores(MIXED, 1.0)
    law = DeadlineControlLaw(LawConfig(deadline_s=0.7 * at_max_s, instances=2, gains=GAINS), profile)
    app = SimulatedSparkApp(MIXED, seed=1)
    state = law.initial_state(0.0)
    decisions = []
    while not app.finished:
        state, decision = law.step(state, app.observe(), app.t_s)
        decisions.append(decision)
        app.advance(decision.cores, 1.0)
    assert decisions[0].at_risk
    assert decisions[0].predicted_miss_s == pytest.approx(0.3 * at_max_s, rel=0.2)
    running = [d for d in decisions if d.stage_id is not None]
    assert all(d.cores == {"0": 1.0, "1": 1.0} for d in running)
    # The job still completes, as fast as it can.
    assert app.t_s <= at_max_s + 2.0


def test_contended_requests_are_scaled_to_the_capacity_and_reported() -> None:
    deadline_s = _completion_at_max(MIXED) * 1.05
    _, samples, _ = _run(MIXED, deadline_s, profile_at_cores(MIXED, 1.0), seed=1, capacity_cores=1.2)
    totals = [sum(s.cores.values()) for s in samples]
    assert max(totals) <= 1.2 + 1e-9
    law = DeadlineControlLaw(LawConfig(deadline_s=10.0, instances=2, gains=GAINS, capacity_cores=1.2))
    cores, contended = law._share({"0": 1.0, "1": 0.6})
    assert contended
    assert sum(cores.values()) <= 1.2 + 1e-9
    assert cores["0"] > cores["1"]


def test_without_profile_the_stages_are_planned_on_tasks_and_the_run_records_a_profile() -> None:
    deadline_s = _completion_at_max(FINE) * 1.4
    law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), None)
    app = SimulatedSparkApp(FINE, seed=2)
    state = law.initial_state(0.0)
    on_profile = set()
    while not app.finished:
        state, decision = law.step(state, app.observe(), app.t_s)
        if decision.planned_on_profile is not None:
            on_profile.add(decision.planned_on_profile)
        app.advance(decision.cores, 1.0)
    assert on_profile == {False}
    assert app.t_s <= deadline_s


def test_idle_executors_drop_to_cores_min_between_stages() -> None:
    stages = [SimStage(0, 0, 10, 0.5, 0.0), SimStage(1, 1, 10, 0.5, idle_before_s=6.0)]
    deadline_s = _completion_at_max(stages) * 1.3
    _, samples, _ = _run(stages, deadline_s, profile_at_cores(stages, 1.0), seed=1)
    idle = [s for s in samples if s.stage_id is None and s.t_s > 1.0]
    assert len(idle) >= 4
    assert any(s.cores == {"0": 0.1, "1": 0.1} for s in idle)


# A CPU-bound stage, then a short stage whose tasks are mostly round trips (0.8 s each before
# 0.05 core-s of work): cores barely shorten it, so the time planned for it beyond that is lost.
LATENCY_BOUND_LAST = [
    SimStage(0, 0, tasks=24, task_core_s=1.0, idle_before_s=3.0),
    SimStage(1, 0, tasks=16, task_core_s=0.05, idle_before_s=0.1, task_latency_s=0.8),
]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_latency_bound_last_stage_is_not_given_time_it_cannot_use(seed: int) -> None:
    deadline_s = _completion_at_max(LATENCY_BOUND_LAST) * 1.4
    profile = profile_at_cores(LATENCY_BOUND_LAST, 1.0)
    last = profile.stages[-1]
    assert last.latency_s > 0.6 * last.duration_s
    app, _, _ = _run(LATENCY_BOUND_LAST, deadline_s, profile, seed=seed)
    assert 0.9 * deadline_s <= app.t_s <= deadline_s + 1.0
    # Planned as if all of it stretched and its tasks ended at an even pace (the profile of
    # format 1), the job ends before 0.9 of its deadline.
    flat = ApplicationProfile(
        nominal_cores=profile.nominal_cores,
        stages=tuple(replace(s, latency_s=0.0, progress_curve=()) for s in profile.stages),
        tail_s=profile.tail_s,
    )
    flat_app, _, _ = _run(LATENCY_BOUND_LAST, deadline_s, flat, seed=seed)
    assert flat_app.t_s < 0.9 * deadline_s


# A stage whose first task on each executor also starts its Python worker (2.5 core-s more than
# the others), then a short one: nothing ends in the first stage's first seconds.
WARM_UP_FIRST = [
    SimStage(0, 0, tasks=16, task_core_s=0.6, idle_before_s=3.0, warmup_core_s=2.5),
    SimStage(1, 0, tasks=16, task_core_s=0.05, idle_before_s=0.1, task_latency_s=0.3),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stage_whose_first_tasks_warm_up_is_tracked_along_its_profiled_curve(seed: int) -> None:
    deadline_s = _completion_at_max(WARM_UP_FIRST) * 1.4
    profile = profile_at_cores(WARM_UP_FIRST, 1.0)
    assert profile.stages[0].progress_curve[:3] == (0.0, 0.0, 0.0)

    def worst_error(p: ApplicationProfile) -> tuple[float, float]:
        app, samples, _ = _run(WARM_UP_FIRST, deadline_s, p, seed=seed)
        assert 0.9 * deadline_s <= app.t_s <= deadline_s
        first = [s for s in samples if s.stage_id == 0 and s.set_point is not None and s.stage_progress is not None]
        error = max(abs(s.set_point - s.stage_progress) for s in first)  # type: ignore[operator]
        return error, max(max(s.cores.values()) for s in first)

    curved_error, curved_peak = worst_error(profile)
    even = ApplicationProfile(
        nominal_cores=profile.nominal_cores,
        stages=tuple(replace(s, progress_curve=()) for s in profile.stages),
        tail_s=profile.tail_s,
    )
    even_error, even_peak = worst_error(even)
    # Along the curve, progress stays close to the set point and the warm-up asks for no burst.
    assert curved_error < 0.15
    assert even_error > 2 * curved_error
    assert curved_peak < even_peak


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("slack", [0.1, 0.2])
def test_a_warm_up_that_goes_as_profiled_raises_no_deadline_at_risk(seed: int, slack: float) -> None:
    # Its first tasks end late, as the profile's curve says they do: the earliest completion
    # counts the warm-up run so far instead of taking the stage to be at its start.
    deadline_s = _completion_at_max(WARM_UP_FIRST) * (1 + slack)
    law = DeadlineControlLaw(
        LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile_at_cores(WARM_UP_FIRST, 1.0)
    )
    app = SimulatedSparkApp(WARM_UP_FIRST, seed=seed)
    state, risky = law.initial_state(app.t_s), []
    while not app.finished:
        state, decision = law.step(state, app.observe(), app.t_s)
        risky.append(decision.at_risk)
        app.advance(decision.cores, 1.0)
    assert not any(risky)
    assert 0.9 * deadline_s <= app.t_s <= deadline_s
