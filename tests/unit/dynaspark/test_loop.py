"""The loop function against the simulated plant, on a fake clock."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest

from dynaspark.law import DeadlineControlLaw, LawConfig
from dynaspark.loop import ControlSample, control_period, run_control_loop
from dynaspark.observation import ExecutorCpu, ProgressObservation
from dynaspark.profiler import ProfileRecorder
from dynaspark.regulator import RegulatorGains
from dynaspark.simulation import SimStage, SimulatedSparkApp

STAGES = [
    SimStage(0, 0, tasks=20, task_core_s=0.5, idle_before_s=3.0),
    SimStage(1, 0, tasks=40, task_core_s=0.4, idle_before_s=0.2),
    SimStage(2, 1, tasks=30, task_core_s=0.6, idle_before_s=2.0),
]
GAINS = RegulatorGains(gain=2.0, integral_time_s=12.0, cores_min=0.1, cores_max=1.0)


class PlantSensor:
    def __init__(self, app: SimulatedSparkApp) -> None:
        self.app = app

    def read(self) -> ProgressObservation:
        return self.app.observe()


class PlantActuator:
    def __init__(self) -> None:
        self.cores: dict[str, float] = {}

    def apply(self, cores: Mapping[str, float]) -> Mapping[str, float]:
        self.cores = dict(cores)
        return dict(cores)


class PlantMeter:
    """Reports half of each executor's cores as used, over the period before, and the quota
    running out in a tenth of the CFS periods of executor "0" (nothing said of the others)."""

    def __init__(self, actuator: PlantActuator) -> None:
        self.actuator = actuator
        self.calls = 0

    def usage(self) -> Mapping[str, ExecutorCpu]:
        self.calls += 1
        if self.calls == 1:
            return {}  # nothing measured before the first period
        return {e: ExecutorCpu(round(0.5 * c, 3), 0.1 if e == "0" else None) for e, c in self.actuator.cores.items()}


def _run(
    deadline_s: float, recorder: ProfileRecorder | None, law: DeadlineControlLaw, *, metered: bool = False
) -> tuple[SimulatedSparkApp, list[ControlSample]]:
    app = SimulatedSparkApp(STAGES, seed=3)
    actuator = PlantActuator()
    meter = PlantMeter(actuator) if metered else None
    _, samples = run_control_loop(
        law,
        law.initial_state(0.0),
        PlantSensor(app),
        actuator,
        finished=lambda: app.finished,
        clock=lambda: app.t_s,
        sleep=lambda dt: app.advance(actuator.cores, dt),
        recorder=recorder,
        meter=meter,
    )
    return app, samples


def test_first_run_records_a_profile_and_the_second_plans_with_it() -> None:
    deadline_s = 60.0
    recorder = ProfileRecorder(start_s=0.0, nominal_cores=2.0)
    first_law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS))
    app, samples = _run(deadline_s, recorder, first_law)
    assert app.finished
    assert samples[0].t_s == 0.0
    assert all(b.t_s - a.t_s == pytest.approx(1.0) for a, b in itertools.pairwise(samples))
    profile = recorder.profile(app.t_s)
    assert profile is not None
    assert [s.stage_id for s in profile.stages] == [0, 1, 2]
    assert profile.stages[0].idle_before_s == pytest.approx(3.0, abs=0.1)
    assert profile.stages[2].idle_before_s == pytest.approx(2.0, abs=0.1)
    # Durations are normalised to the nominal 2 cores: the whole work is ~44 core-s.
    assert sum(s.duration_s for s in profile.stages) == pytest.approx(44.0 / 2.0, rel=0.25)

    second_law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile)
    state = second_law.initial_state(0.0)
    app2 = SimulatedSparkApp(STAGES, seed=3)
    planned = set()
    while not app2.finished:
        state, decision, _, applied = control_period(second_law, state, PlantSensor(app2), PlantActuator(), app2.t_s)
        if decision.planned_on_profile is not None:
            planned.add(decision.planned_on_profile)
        app2.advance(applied, 1.0)
    assert planned == {True}
    assert 0.9 * deadline_s <= app2.t_s <= deadline_s


def test_samples_serialise_for_the_report() -> None:
    law = DeadlineControlLaw(LawConfig(deadline_s=60.0, instances=2, gains=GAINS))
    _, samples = _run(60.0, None, law)
    row = samples[10].to_dict()
    assert set(row) >= {"t", "set_point", "progress", "cores"}
    assert set(row["cores"]) == {"0", "1"}


def test_the_cpu_each_executor_used_is_reported_next_to_its_cores() -> None:
    law = DeadlineControlLaw(LawConfig(deadline_s=60.0, instances=2, gains=GAINS))
    _, samples = _run(60.0, None, law, metered=True)
    assert samples[0].used_cores == {}
    # Each period reports what was used over the period before, under the cores it had then.
    for before, after in itertools.pairwise(samples):
        assert after.used_cores == {e: round(0.5 * c, 3) for e, c in before.cores.items()}
    row = samples[10].to_dict()
    assert row["used_cores"] == {e: round(0.5 * c, 3) for e, c in samples[9].cores.items()}
    assert row["throttled_share"] == {"0": 0.1}
    # Without a meter nothing is claimed.
    _, blind = _run(60.0, None, DeadlineControlLaw(LawConfig(deadline_s=60.0, instances=2, gains=GAINS)))
    assert all(s.used_cores == {} for s in blind)
