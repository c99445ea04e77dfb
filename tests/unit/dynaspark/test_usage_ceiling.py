"""The usage ceiling: an executor that did not use its cores is not given more than it uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from dynaspark.law import DeadlineControlLaw, LawConfig, LawState
from dynaspark.loop import run_control_loop
from dynaspark.observation import ExecutorCpu, ProgressObservation
from dynaspark.profile import ApplicationProfile
from dynaspark.profiler import ProfileRecorder
from dynaspark.regulator import RegulatorGains
from dynaspark.simulation import SimStage, SimulatedSparkApp, profile_at_cores, run_closed_loop

GAINS = RegulatorGains(gain=2.0, integral_time_s=12.0, cores_min=0.1, cores_max=1.0)

# Tasks that wait on I/O: one uses at most 0.3 core, more cores do not make it faster.
WAITING = [
    SimStage(0, 0, tasks=20, task_core_s=0.15, idle_before_s=2.0, task_demand_cores=0.3),
    SimStage(1, 0, tasks=30, task_core_s=0.1, idle_before_s=0.5, task_demand_cores=0.25),
]
# CPU-bound stages: every task uses all the cores it gets.
BUSY = [
    SimStage(0, 0, tasks=20, task_core_s=0.5, idle_before_s=3.0),
    SimStage(1, 0, tasks=40, task_core_s=0.4, idle_before_s=0.2),
    SimStage(2, 1, tasks=30, task_core_s=0.6, idle_before_s=1.0),
]
# An I/O-bound job, then a CPU-bound one.
WAITING_THEN_BUSY = [WAITING[0], SimStage(1, 1, tasks=40, task_core_s=0.4, idle_before_s=0.5)]


def _completion_at_max(stages: list[SimStage]) -> float:
    app = SimulatedSparkApp(stages, seed=0)
    while not app.finished:
        app.advance({"0": 1.0, "1": 1.0}, 1.0)
    return app.t_s


def _run(stages: list[SimStage], slack: float, seed: int, *, metered: bool) -> tuple[SimulatedSparkApp, float]:
    deadline_s = _completion_at_max(stages) * (1 + slack)
    law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile_at_cores(stages, 1.0))
    app = SimulatedSparkApp(stages, seed=seed)
    run_closed_loop(app, law, law.initial_state(app.t_s), max_s=10 * deadline_s, metered=metered)
    return app, deadline_s


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_executors_waiting_on_io_are_given_less_and_finish_as_soon(seed: int) -> None:
    without, deadline_s = _run(WAITING, 0.2, seed, metered=False)
    capped, _ = _run(WAITING, 0.2, seed, metered=True)
    assert capped.t_s <= deadline_s
    assert capped.t_s == pytest.approx(without.t_s, abs=1.0)  # no slower: the cores cut were idle
    assert capped.used_core_seconds == pytest.approx(without.used_core_seconds, rel=0.02)
    assert capped.core_seconds <= 0.72 * without.core_seconds  # measured: 0.61-0.68
    # What was allocated and not used shrank by half or more (measured: 54-61 %; 25-29 % when the
    # headroom applied ahead of the set point too; what is left: the headroom behind it, the
    # first period of each stage, the driver's time before and between the stages).
    assert capped.core_seconds - capped.used_core_seconds <= 0.5 * (without.core_seconds - without.used_core_seconds)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("slack", [0.2, 0.4])
def test_cpu_bound_executors_are_never_capped(seed: int, slack: float) -> None:
    without, deadline_s = _run(BUSY, slack, seed, metered=False)
    capped, _ = _run(BUSY, slack, seed, metered=True)
    assert capped.t_s <= deadline_s
    assert capped.t_s == pytest.approx(without.t_s, abs=1e-6)
    assert capped.core_seconds == pytest.approx(without.core_seconds, rel=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("slack", [0.2, 0.4])
def test_a_cpu_bound_job_after_an_io_bound_one_still_meets_its_deadline(seed: int, slack: float) -> None:
    capped, deadline_s = _run(WAITING_THEN_BUSY, slack, seed, metered=True)
    assert 0.85 * deadline_s <= capped.t_s <= deadline_s


def _mid_stage() -> tuple[DeadlineControlLaw, LawState, ProgressObservation]:
    """A law a few periods into a CPU-bound stage, and the plant's observation then."""
    deadline_s = _completion_at_max(BUSY) * 1.4
    law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile_at_cores(BUSY, 1.0))
    app = SimulatedSparkApp(BUSY, seed=1)
    state, _ = run_closed_loop(app, law, law.initial_state(app.t_s), stop_after_steps=8, metered=False)
    assert state.plan is not None
    assert all(c > GAINS.cores_min for c in state.applied_cores.values())
    return law, state, app.observe()


def test_an_unthrottled_executor_is_capped_at_what_it_used_plus_headroom() -> None:
    law, state, obs = _mid_stage()
    _, free = law.step(state, obs, obs_time(state))
    cpu = {"0": ExecutorCpu(0.2, 0.0), "1": ExecutorCpu(0.2, 0.6)}
    _, decision = law.step(state, replace(obs, cpu=cpu), obs_time(state))
    # Behind its set point: 0.2 used, +25 % and +0.1 core, rounded up to the quantum.
    assert decision.executor_progress["0"] < decision.set_point
    assert decision.cores["0"] == pytest.approx(0.35)
    assert decision.usage_ceilings == {"0": pytest.approx(0.35)}
    assert free.cores["0"] > 0.35
    # The throttled one wanted more than it had: the regulator's output stands.
    assert decision.cores["1"] == free.cores["1"]


def test_an_executor_ahead_of_its_set_point_is_capped_at_what_it_used_without_headroom() -> None:
    # The same executor at an earlier moment of the stage, when its set point is below what it
    # has done: its next bursts should run out of quota and slow it, not find headroom.
    law, state, obs = _mid_stage()
    assert state.plan is not None
    early = state.plan.start_s + 0.5 * state.plan.duration_s
    _, free = law.step(state, obs, early)
    cpu = {"0": ExecutorCpu(0.23, 0.0), "1": ExecutorCpu(0.2, 0.6)}
    _, decision = law.step(state, replace(obs, cpu=cpu), early)
    assert decision.set_point is not None
    assert decision.executor_progress["0"] > decision.set_point
    # 0.23 rounded up to the quantum; with headroom it would be 0.4, the regulator's own 0.5.
    assert free.cores["0"] == pytest.approx(0.5)
    assert decision.cores["0"] == pytest.approx(0.25)
    assert decision.usage_ceilings == {"0": pytest.approx(0.25)}
    # Throttled, the ahead one is not capped at its use: it grows as a throttled one does.
    _, throttled = law.step(state, replace(obs, cpu={"0": ExecutorCpu(0.23, 0.6)}), early)
    assert throttled.cores["0"] > 0.25


@pytest.mark.parametrize(
    "cpu",
    [ExecutorCpu(0.2, None), ExecutorCpu(0.2, 0.05)],
    ids=["throttling-unknown", "throttled-once-in-twenty"],
)
def test_no_ceiling_without_evidence_that_the_executor_had_enough(cpu: ExecutorCpu) -> None:
    law, state, obs = _mid_stage()
    _, free = law.step(state, obs, obs_time(state))
    _, decision = law.step(state, replace(obs, cpu={"0": cpu, "1": cpu}), obs_time(state))
    assert decision.cores == free.cores
    assert decision.usage_ceilings == {}


def test_no_ceiling_from_a_period_at_cores_min_or_when_disabled() -> None:
    law, state, obs = _mid_stage()
    cpu = {"0": ExecutorCpu(0.05, 0.0), "1": ExecutorCpu(0.05, 0.0)}
    idle_before = replace(state, applied_cores={"0": GAINS.cores_min, "1": GAINS.cores_min})
    _, decision = law.step(idle_before, replace(obs, cpu=cpu), obs_time(state))
    assert decision.usage_ceilings == {}
    off = DeadlineControlLaw(replace(law.config, usage_ceiling=False), law.profile)
    _, decision = off.step(state, replace(obs, cpu=cpu), obs_time(state))
    assert decision.usage_ceilings == {}


def test_a_throttled_executor_grows_by_steps_until_the_regulator_s_output_applies() -> None:
    law, state, obs = _mid_stage()
    now = obs_time(state)
    capped_state, capped = law.step(state, replace(obs, cpu={"0": ExecutorCpu(0.1, 0.0)}), now)
    assert capped.cores["0"] == pytest.approx(0.25)
    # The regulator kept its own output (a ceiling is not saturation: no back-calculation).
    assert capped_state.regulators["0"].cores > 0.5
    later = now + law.config.period_s
    # Throttled at 0.25: it wants more, not how much more; twice what it held.
    grown_state, grown = law.step(capped_state, replace(obs, cpu={"0": ExecutorCpu(0.25, 1.0)}), later)
    assert grown.cores["0"] == pytest.approx(0.5)
    assert grown.usage_ceilings == {"0": pytest.approx(0.5)}
    # Throttled at 0.5 too: twice that is above the regulator's output, which applies again.
    _, reference = law.step(grown_state, obs, later + law.config.period_s)
    _, resumed_regulator = law.step(
        grown_state, replace(obs, cpu={"0": ExecutorCpu(0.5, 1.0)}), later + law.config.period_s
    )
    assert resumed_regulator.cores["0"] == reference.cores["0"] > 0.5
    assert resumed_regulator.usage_ceilings == {}
    # And the state with a ceiling in it still serialises and resumes to the same decision.
    resumed = LawState.from_dict(capped_state.to_dict())
    assert law.step(resumed, obs, later)[1].cores == law.step(capped_state, obs, later)[1].cores


def obs_time(state: LawState) -> float:
    """The next period's time after ``state``'s last step."""
    assert state.last_step_s is not None
    return state.last_step_s + 1.0


def test_a_cap_at_cores_min_holds_until_the_executor_is_throttled() -> None:
    # Tasks that wait on a fetch use almost nothing: the cap comes out at coresMin. The next
    # period finds the executor at coresMin by its own cap, not idle: the cap stands.
    law, state, obs = _mid_stage()
    now = obs_time(state)
    waiting = replace(obs, cpu={"0": ExecutorCpu(0.0, 0.0)})
    given = []
    for _ in range(5):
        state, decision = law.step(state, waiting, now)
        given.append(decision.cores["0"])
        now += law.config.period_s
    assert given == [pytest.approx(GAINS.cores_min)] * 5
    # The state says so across a restart, and each throttled period doubles it from there.
    resumed = LawState.from_dict(state.to_dict())
    assert resumed.usage_capped == ("0",)
    grown = []
    for _ in range(4):
        resumed, decision = law.step(resumed, replace(obs, cpu={"0": ExecutorCpu(decision.cores["0"], 1.0)}), now)
        grown.append(decision.cores["0"])
        now += law.config.period_s
    assert grown == [pytest.approx(c) for c in (0.2, 0.4, 0.8, 1.0)]


class _Plant:
    """The simulated plant as the local loop sees it: sensor, actuator and cgroup meter."""

    def __init__(self, app: SimulatedSparkApp, *, metered: bool) -> None:
        self.app, self.metered, self.cores = app, metered, {}

    def read(self) -> ProgressObservation:
        return self.app.observe()

    def apply(self, cores: Mapping[str, float]) -> Mapping[str, float]:
        self.cores = dict(cores)
        return dict(cores)

    def usage(self) -> Mapping[str, ExecutorCpu]:
        return dict(self.app.last_cpu) if self.metered else {}


def _recorded(stages: list[SimStage], seed: int, *, metered: bool) -> ApplicationProfile:
    deadline_s = _completion_at_max(stages) * 1.2
    law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile_at_cores(stages, 1.0))
    app = SimulatedSparkApp(stages, seed=seed)
    plant = _Plant(app, metered=metered)
    recorder = ProfileRecorder(start_s=app.t_s, nominal_cores=2.0)
    run_control_loop(
        law,
        law.initial_state(app.t_s),
        plant,
        plant,
        finished=lambda: app.finished,
        clock=lambda: app.t_s,
        sleep=lambda dt: app.advance(plant.cores, dt),
        recorder=recorder,
        meter=plant,
    )
    profile = recorder.profile(app.t_s)
    assert profile is not None
    return profile


@pytest.mark.parametrize("seed", [1, 2])
def test_the_profile_does_not_take_a_cap_for_a_speed_up(seed: int) -> None:
    # A capped executor was not short of cores: the recorded stage is as long at coresMax as
    # a run without caps records it, not shorter (the next run would plan too little time).
    capped = _recorded(WAITING, seed, metered=True)
    free = _recorded(WAITING, seed, metered=False)
    for with_cap, without in zip(capped.stages, free.stages, strict=True):
        assert with_cap.duration_s >= 0.9 * without.duration_s


def test_an_executor_held_to_a_step_counts_with_the_cores_it_had() -> None:
    # Capped at what it used, an executor was not short of cores: the stage's pace counts it
    # with its regulator's output. Held to twice its cores while out of quota, it was short of
    # them: the pace counts what it had, or a later run's profile would take it for slower work.
    law, state, obs = _mid_stage()
    now = obs_time(state)
    capped_state, capped = law.step(state, replace(obs, cpu={"0": ExecutorCpu(0.1, 0.0)}), now)
    assert capped_state.usage_capped == ("0",)
    assert capped_state.paced_cores(capped.cores) > sum(capped.cores.values())
    grown_state, grown = law.step(
        capped_state, replace(obs, cpu={"0": ExecutorCpu(0.25, 1.0)}), now + law.config.period_s
    )
    assert grown.usage_ceilings == {"0": pytest.approx(0.5)}
    assert grown_state.usage_capped == ()
    assert grown_state.paced_cores(grown.cores) == pytest.approx(sum(grown.cores.values()))
