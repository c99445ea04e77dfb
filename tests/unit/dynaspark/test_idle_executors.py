"""Executors with nothing to run get coresMin: before they exist, in a stage's last wave, and
while their tasks wait for the executors holding their data."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from dynaspark.law import DeadlineControlLaw, LawConfig, LawState
from dynaspark.observation import ProgressObservation, StageObservation
from dynaspark.profiler import ProfileRecorder
from dynaspark.regulator import RegulatorGains
from dynaspark.simulation import SimStage, SimulatedSparkApp, profile_at_cores, run_closed_loop
from dynaspark.spark_rest import SparkRestSensor

GAINS = RegulatorGains(gain=2.0, integral_time_s=12.0, cores_min=0.1, cores_max=1.0)
# Three equal tasks on two one-slot executors: the third runs alone (the last wave).
UNEVEN = [SimStage(0, 0, tasks=3, task_core_s=4.0, idle_before_s=1.0)]


@pytest.mark.parametrize("slack", [0.05, 0.5])
def test_in_the_last_wave_the_executor_without_a_task_idles_at_cores_min(slack: float) -> None:
    at_max = SimulatedSparkApp(UNEVEN, noise=0.0)
    while not at_max.finished:
        at_max.advance({"0": 1.0, "1": 1.0}, 1.0)
    deadline_s = at_max.t_s * (1 + slack)
    law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile_at_cores(UNEVEN, 1.0))
    app = SimulatedSparkApp(UNEVEN, noise=0.0)
    _, samples = run_closed_loop(app, law, law.initial_state(0.0))
    assert app.t_s <= deadline_s
    last_wave = [s for s in samples if s.stage_progress is not None and s.stage_progress >= 2 / 3]
    assert last_wave, "the stage never reached its last wave"
    for sample in last_wave:
        assert sorted(sample.cores.values())[0] == GAINS.cores_min
        assert sorted(sample.cores.values())[1] > GAINS.cores_min


def _stage(done: int, by_executor: dict[str, int] | None = None) -> StageObservation:
    return StageObservation(
        stage_id=0,
        name="map",
        status="ACTIVE",
        num_tasks=8,
        completed_tasks=done,
        completed_tasks_by_executor=by_executor or {},
        submission_time_s=0.0,
    )


def test_a_stage_waiting_for_its_executors_is_planned_from_their_arrival() -> None:
    profile = profile_at_cores([SimStage(0, 0, tasks=8, task_core_s=1.0)], 1.0)
    law = DeadlineControlLaw(LawConfig(deadline_s=40.0, instances=2, gains=GAINS), profile)
    state = law.initial_state(0.0)
    for t in range(8):  # submitted at 0, no executor yet
        state, decision = law.step(state, ProgressObservation(stages=(_stage(0),)), float(t))
        assert decision.cores == {}
    arrived = ProgressObservation(stages=(_stage(0),), executor_ids=("0", "1"))
    state, decision = law.step(state, arrived, 8.0)
    assert decision.set_point is not None
    assert decision.set_point <= 0.1
    assert decision.stage_deadline_at_s is not None
    assert decision.stage_deadline_at_s > 8.0 + 4.0
    assert max(decision.cores.values()) < GAINS.cores_max


def test_the_profile_counts_the_wait_for_executors_as_idle_time_not_stage_work() -> None:
    recorder = ProfileRecorder(start_s=0.0, nominal_cores=2.0)
    for t in range(3):
        recorder.record(float(t), ProgressObservation(), 0.0)
    for t in range(3, 8):  # submitted at 3, executors have no cores until 8
        recorder.record(float(t), ProgressObservation(stages=(_stage(0),)), 0.0)
    for t in range(8, 18):
        recorder.record(float(t), ProgressObservation(stages=(_stage(t - 8),), executor_ids=("0", "1")), 2.0)
    done = StageObservation(0, "map", "COMPLETE", 8, 8, submission_time_s=3.0, completion_time_s=18.0)
    recorder.record(18.0, ProgressObservation(stages=(done,)), 2.0)
    profile = recorder.profile(19.0)
    assert profile is not None
    (stage,) = profile.stages
    assert stage.duration_s == pytest.approx(10.0, abs=1.01)
    assert stage.idle_before_s == pytest.approx(8.0, abs=1.01)


def test_the_rest_sensor_reports_running_tasks_per_executor() -> None:
    answers: dict[str, Any] = {
        "/applications": [{"id": "app-1", "attempts": [{"startTime": "2024-05-01T10:00:00.000GMT"}]}],
        "/applications/app-1/stages": [{"stageId": 0, "attemptId": 0, "status": "ACTIVE", "numTasks": 4}],
        "/applications/app-1/stages/0/0?details=true&taskStatus=RUNNING": {
            "stageId": 0,
            "status": "ACTIVE",
            "numTasks": 4,
            "numCompleteTasks": 3,
            "executorSummary": {"0": {"succeededTasks": 2}, "1": {"succeededTasks": 1}},
        },
        "/applications/app-1/executors": [
            {"id": "driver", "activeTasks": 0},
            {"id": "0", "activeTasks": 0},
            {"id": "1", "activeTasks": 1},
        ],
    }
    sensor = SparkRestSensor("http://127.0.0.1:1")
    sensor._get = answers.__getitem__  # type: ignore[method-assign]
    obs = sensor.read()
    assert obs.active_tasks_by_executor == {"0": 0, "1": 1}
    assert obs.idle_executor_ids() == {"0"}


# A middle stage whose data is cached on executor 0: with short tasks, executor 0 launches the
# next one before spark.locality.wait (3 s) expires, so executor 1 gets none of them.
CACHED = [
    SimStage(0, 0, tasks=12, task_core_s=1.0, idle_before_s=1.0),
    SimStage(1, 1, tasks=40, task_core_s=0.3, preferred_executors=("0",)),
    SimStage(2, 2, tasks=12, task_core_s=1.0),
]


def _run_cached(deadline_s: float, *, sees_running_tasks: bool) -> tuple[SimulatedSparkApp, list[dict[str, float]]]:
    law = DeadlineControlLaw(LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile_at_cores(CACHED, 1.0))
    app = SimulatedSparkApp(CACHED, seed=2)
    state = law.initial_state(0.0)
    in_cached_stage = []
    while not app.finished and app.t_s < 10 * deadline_s:
        obs = app.observe()
        if not sees_running_tasks:
            obs = replace(obs, active_tasks_by_executor={})
        state, decision = law.step(state, obs, app.t_s)
        if decision.stage_id == 1:
            in_cached_stage.append(dict(decision.cores))
        app.advance(decision.cores, 1.0)
    return app, in_cached_stage


def test_an_executor_whose_tasks_wait_for_another_s_data_gets_cores_min_and_the_deadline_holds() -> None:
    at_max = SimulatedSparkApp(CACHED, seed=2)
    while not at_max.finished:
        at_max.advance({"0": 1.0, "1": 1.0}, 1.0)
    deadline_s = at_max.t_s * 1.3
    app, cached = _run_cached(deadline_s, sees_running_tasks=True)
    blind_app, blind_cached = _run_cached(deadline_s, sees_running_tasks=False)
    assert app.t_s <= deadline_s
    assert blind_app.t_s <= deadline_s
    # Executor 1 ran nothing in the cached stage: after the two looks that tell it is waiting,
    # it stays at coresMin, while the law blind to running tasks sees it lag and feeds it.
    assert len(cached) >= 6
    assert all(c["1"] == GAINS.cores_min for c in cached[2:])
    assert sum(c["1"] for c in blind_cached) > 3 * sum(c["1"] for c in cached)
    assert app.core_seconds < 0.9 * blind_app.core_seconds


def _obs(done_by_1: int, running: dict[str, int]) -> ProgressObservation:
    stage = StageObservation(
        stage_id=0,
        name="map",
        status="ACTIVE",
        num_tasks=40,
        completed_tasks=1 + done_by_1,
        completed_tasks_by_executor={"0": 1, "1": done_by_1},
        submission_time_s=0.0,
    )
    return ProgressObservation(stages=(stage,), executor_ids=("0", "1"), active_tasks_by_executor=running)


def test_one_look_between_two_tasks_does_not_idle_an_executor() -> None:
    profile = profile_at_cores([SimStage(0, 0, tasks=40, task_core_s=1.0)], 1.0)
    # 40 tasks of 1 core-s in a 30 s deadline: the regulators ask for more than coresMin, and
    # coresMax (20 s) leaves room to idle a waiting executor.
    law = DeadlineControlLaw(LawConfig(deadline_s=30.0, instances=2, gains=GAINS), profile)
    state = law.initial_state(0.0)
    state, start = law.step(state, _obs(0, {"0": 1, "1": 1}), 0.0)
    assert start.cores["1"] > GAINS.cores_min
    # Seen without a task once: it may be between two tasks, its regulator still decides.
    state, first = law.step(state, _obs(0, {"0": 1, "1": 0}), 1.0)
    assert first.cores["1"] > GAINS.cores_min
    # It finished a task since: it was busy, still not waiting.
    state, second = law.step(state, _obs(1, {"0": 1, "1": 0}), 2.0)
    assert second.cores["1"] > GAINS.cores_min
    # Twice without a task and nothing finished in between: waiting, at coresMin.
    state, third = law.step(state, _obs(1, {"0": 1, "1": 0}), 3.0)
    assert third.cores["1"] == GAINS.cores_min
    # The state carries what was seen, so a restarted operator decides the same.
    resumed = LawState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert resumed.taskless == {"1": 1}
    _, again = law.step(resumed, _obs(1, {"0": 1, "1": 0}), 4.0)
    assert again.cores["1"] == GAINS.cores_min
    # A task reaches it: its regulator takes over again at once.
    _, busy = law.step(state, _obs(1, {"0": 1, "1": 1}), 4.0)
    assert busy.cores["1"] > GAINS.cores_min


def test_without_room_before_the_deadline_a_waiting_executor_keeps_its_cores() -> None:
    # 40 tasks of 1 core-s take 20 s at coresMax: a 21.5 s deadline (D_app 20.4 s) leaves no
    # period to lose to a task landing on an executor at coresMin.
    profile = profile_at_cores([SimStage(0, 0, tasks=40, task_core_s=1.0)], 1.0)
    law = DeadlineControlLaw(LawConfig(deadline_s=21.5, instances=2, gains=GAINS), profile)
    state = law.initial_state(0.0)
    state, _ = law.step(state, _obs(0, {"0": 1, "1": 1}), 0.0)
    for t in (1.0, 2.0, 3.0):
        state, decision = law.step(state, _obs(1, {"0": 1, "1": 0}), t)
        assert decision.cores["1"] > GAINS.cores_min
