"""Each executor's progress through its share of a stage, between its tasks' completions too."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

import pytest

from dynaspark.law import DeadlineControlLaw, LawConfig
from dynaspark.observation import StageObservation
from dynaspark.progress_share import executor_progress
from dynaspark.regulator import RegulatorGains
from dynaspark.simulation import SimStage, SimulatedSparkApp, profile_at_cores, run_closed_loop
from dynaspark.spark_rest import SparkRestSensor, running_task_seconds

EXECUTORS = ("0", "1")


def _stage(
    done: Mapping[str, int], running_s: Mapping[str, tuple[float, ...]], *, tasks: int = 16, task_s: float = 2.0
) -> StageObservation:
    """A stage whose finished tasks each ran ``task_s``; ``running_s``: how long the running ones have."""
    return StageObservation(
        stage_id=0,
        name="map",
        status="ACTIVE",
        num_tasks=tasks,
        completed_tasks=sum(done.values()),
        completed_tasks_by_executor=dict(done),
        task_seconds=task_s * sum(done.values()),
        task_seconds_by_executor={e: task_s * n for e, n in done.items()},
        running_task_seconds_by_executor=dict(running_s),
    )


def test_without_running_tasks_reported_progress_counts_finished_tasks() -> None:
    y = executor_progress([_stage({"0": 4, "1": 4}, {})], EXECUTORS)
    # 8 of 16 left, 4 each: 4 / (4 + 4).
    assert y == {"0": pytest.approx(0.5), "1": pytest.approx(0.5)}


def test_a_task_half_way_through_counts_as_the_finished_tasks_alone() -> None:
    staircase = executor_progress([_stage({"0": 4, "1": 4}, {})], EXECUTORS)
    y = executor_progress([_stage({"0": 4, "1": 4}, {"0": (1.0,), "1": (1.0,)})], EXECUTORS)
    assert y == pytest.approx(staircase)


def test_progress_rises_while_a_task_runs_and_does_not_jump_when_it_ends() -> None:
    ys = [executor_progress([_stage({"0": 4, "1": 4}, {"0": (t,), "1": (1.0,)})], EXECUTORS)["0"] for t in (0, 1, 2)]
    assert ys[0] < ys[1] < ys[2]
    # Its task at the mean run time counts for 4.5 done, and 8 - 0.5 left split in two.
    assert ys[2] == pytest.approx(4.5 / (4.5 + 3.75))
    # The task ends there and the next one starts: 5 done less half of the one just begun.
    after = executor_progress([_stage({"0": 5, "1": 4}, {"0": (0.0,), "1": (1.0,)})], EXECUTORS)["0"]
    assert after == pytest.approx(ys[2])
    # Counted in finished tasks alone, it would have been flat at 4/8, then stepped to 5/8.5.


def test_a_task_running_past_the_mean_counts_for_half_a_task_at_most() -> None:
    long_run = executor_progress([_stage({"0": 4, "1": 4}, {"0": (30.0,), "1": (1.0,)})], EXECUTORS)["0"]
    assert long_run == pytest.approx(4.5 / (4.5 + 3.75))


def test_before_any_task_ends_there_is_no_run_time_to_compare_with() -> None:
    y = executor_progress([_stage({}, {"0": (5.0,), "1": (5.0,)})], EXECUTORS)
    assert y == {"0": 0.0, "1": 0.0}


def test_an_executor_yet_to_finish_a_task_is_compared_with_the_others() -> None:
    y = executor_progress([_stage({"0": 2}, {"0": (1.0,), "1": (4.0,)})], EXECUTORS)
    # Executor 1's task has run twice the 2 s mean of executor 0's: half a task, of 14 - 0.5 left.
    assert y["1"] == pytest.approx(0.5 / (0.5 + 6.75))


def test_progress_reaches_one_only_when_the_stage_ends() -> None:
    # The last two tasks, both on executor 0 (two slots), both past the mean.
    y = executor_progress([_stage({"0": 8, "1": 6}, {"0": (9.0, 9.0)})], EXECUTORS, idle={"1"})
    assert y["0"] == pytest.approx(9.0 / 10.0)
    assert y["1"] == 1.0


def test_the_rest_sensor_reads_how_long_each_running_task_has_run() -> None:
    detail = {
        "stageId": 0,
        "status": "ACTIVE",
        "numTasks": 4,
        "numCompleteTasks": 1,
        "executorSummary": {"0": {"succeededTasks": 1, "taskTime": 2000}, "1": {"succeededTasks": 0, "taskTime": 0}},
        "tasks": {
            "1": {"taskId": 1, "executorId": "0", "status": "RUNNING", "launchTime": "2024-05-01T10:00:09.000GMT"},
            "2": {"taskId": 2, "executorId": "1", "status": "RUNNING", "launchTime": "2024-05-01T10:00:07.500GMT"},
            "3": {"taskId": 3, "executorId": "1", "status": "SUCCESS", "launchTime": "2024-05-01T10:00:00.000GMT"},
        },
    }
    answers = {
        "/applications": [{"id": "app-1", "attempts": [{"startTime": "2024-05-01T10:00:00.000GMT"}]}],
        "/applications/app-1/stages": [{"stageId": 0, "attemptId": 0, "status": "ACTIVE", "numTasks": 4}],
        "/applications/app-1/stages/0/0?details=true&taskStatus=RUNNING": detail,
        "/applications/app-1/executors": [{"id": "0", "activeTasks": 1}, {"id": "1", "activeTasks": 1}],
    }
    now_s = 1714557610.0  # 2024-05-01T10:00:10Z
    sensor = SparkRestSensor("http://127.0.0.1:1", clock=lambda: now_s)
    sensor._get = answers.__getitem__  # type: ignore[method-assign]
    (stage,) = sensor.read().stages
    assert stage.running_task_seconds_by_executor == {"0": (1.0,), "1": (2.5,)}
    # A launch time ahead of this clock (a driver's clock running fast) counts as just launched.
    assert running_task_seconds(detail["tasks"], now_s - 5.0) == {"0": (0.0,), "1": (0.0,)}


GAINS = RegulatorGains(gain=2.0, integral_time_s=12.0, cores_min=0.1, cores_max=1.0)
# Long tasks, eight per executor in each stage: counted in finished tasks, progress is a
# staircase of eight steps per stage.
LONG_TASKS = [
    SimStage(0, 0, tasks=16, task_core_s=2.0, idle_before_s=3.0),
    SimStage(1, 1, tasks=16, task_core_s=1.5, idle_before_s=1.0),
]


def _swing(*, reports_running_tasks: bool, seed: int, slack: float) -> tuple[float, float]:
    """Cores moved per executor (summed over the periods) and completion over the deadline."""
    at_max = SimulatedSparkApp(LONG_TASKS, seed=0)
    while not at_max.finished:
        at_max.advance(dict.fromkeys(EXECUTORS, 1.0), 1.0)
    deadline_s = at_max.t_s * (1 + slack)
    law = DeadlineControlLaw(
        LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS), profile_at_cores(LONG_TASKS, 1.0)
    )
    app = SimulatedSparkApp(LONG_TASKS, seed=seed, reports_running_tasks=reports_running_tasks)
    _, samples = run_closed_loop(app, law, law.initial_state(app.t_s), max_s=10 * deadline_s)
    moved = 0.0
    for e in EXECUTORS:
        series = [s.cores[e] for s in samples if e in s.cores]
        moved += sum(abs(b - a) for a, b in pairwise(series))
    return moved / len(EXECUTORS), app.t_s / deadline_s


@pytest.mark.parametrize("slack", [0.2, 0.4])
def test_counting_running_tasks_steadies_the_cores_of_a_stage_of_long_tasks(slack: float) -> None:
    staircase = [_swing(reports_running_tasks=False, seed=s, slack=slack) for s in (1, 2, 3)]
    ramp = [_swing(reports_running_tasks=True, seed=s, slack=slack) for s in (1, 2, 3)]
    # Measured: 5.3-6.2 cores moved per executor and run counted in finished tasks, 3.3-3.8
    # with the running tasks; the deadline is met as closely either way (0.95-0.98 of it).
    assert sum(m for m, _ in ramp) < 0.75 * sum(m for m, _ in staircase), (staircase, ramp)
    for _, ratio in ramp:
        assert 0.9 <= ratio <= 1.0 + 1.0 / 30
