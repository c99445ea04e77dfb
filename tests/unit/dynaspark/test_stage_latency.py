"""The profile says which part of each stage cores do not shorten, and where the last stage ended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynaspark.event_log import event_log_conf, read_completed_stages
from dynaspark.observation import ProgressObservation, StageObservation
from dynaspark.profiler import ProfileRecorder


def _stage(**kw: object) -> StageObservation:
    base: dict[str, object] = {"stage_id": 0, "name": "map", "status": "COMPLETE", "num_tasks": 8}
    base.update(kw)
    base.setdefault("completed_tasks", base["num_tasks"])
    return StageObservation(**base)  # type: ignore[arg-type]


def _record(recorder: ProfileRecorder, t: float, *stages: StageObservation) -> None:
    recorder.record(t, ProgressObservation(stages=stages, executor_ids=("0", "1")), 2.0)


def test_latency_is_the_stage_time_its_busiest_executor_ran_no_task() -> None:
    recorder = ProfileRecorder(start_s=0.0, nominal_cores=2.0, task_slots=2, executor_slots=1)
    # 10 s stage; executor 0 ran tasks for 7 s of it, executor 1 (its data elsewhere) for 2 s.
    _record(recorder, 1.0, _stage(status="ACTIVE", completed_tasks=0, submission_time_s=1.0))
    done = _stage(
        submission_time_s=1.0, completion_time_s=11.0, task_seconds=9.0, task_seconds_by_executor={"0": 7.0, "1": 2.0}
    )
    _record(recorder, 11.0, done)
    profile = recorder.profile(11.0)
    assert profile is not None
    assert profile.stages[0].latency_s == pytest.approx(3.0)
    assert profile.stages[0].scalable_s == pytest.approx(7.0)
    # Without the breakdown per executor, all slots count: 10 - 9 / 2.
    recorder2 = ProfileRecorder(start_s=0.0, nominal_cores=2.0, task_slots=2, executor_slots=1)
    _record(recorder2, 11.0, _stage(submission_time_s=1.0, completion_time_s=11.0, task_seconds=9.0))
    assert recorder2.profile(11.0).stages[0].latency_s == pytest.approx(5.5)  # type: ignore[union-attr]


def test_a_completed_stage_without_a_breakdown_keeps_the_busiest_executor_s_share_seen_while_it_ran() -> None:
    # In a cluster the sample that sees a stage complete has its total task time only (Spark's
    # stage list); the detail read while it ran said executor 0 ran 5/6 of it (its data is there).
    recorder = ProfileRecorder(start_s=0.0, nominal_cores=2.0, task_slots=2, executor_slots=1)
    _record(
        recorder,
        6.0,
        _stage(
            status="ACTIVE",
            completed_tasks=3,
            submission_time_s=1.0,
            task_seconds=6.0,
            task_seconds_by_executor={"0": 5.0, "1": 1.0},
        ),
    )
    _record(recorder, 11.0, _stage(submission_time_s=1.0, completion_time_s=11.0, task_seconds=12.0))
    profile = recorder.profile(11.0)
    assert profile is not None
    # Executor 0 ran 12 × 5/6 = 10 s of tasks in the 10 s stage: nothing of it is latency,
    # where all slots together (12 / 2 = 6 s busy) would have made 4 s of it latency.
    assert profile.stages[0].latency_s == pytest.approx(0.0)
    assert profile.stages[0].scalable_s == pytest.approx(10.0)


def test_a_last_stage_still_running_when_the_driver_left_is_extrapolated_and_the_rest_is_tail() -> None:
    recorder = ProfileRecorder(start_s=0.0, nominal_cores=2.0, task_slots=2, executor_slots=1)
    # Last seen at 12 s with 4 of 8 tasks done in 2 s; the driver stopped at 20 s.
    _record(recorder, 12.0, _stage(status="ACTIVE", completed_tasks=4, submission_time_s=10.0, task_seconds=3.0))
    profile = recorder.profile(20.0)
    assert profile is not None
    assert profile.stages[0].duration_s == pytest.approx(4.0)
    assert profile.tail_s == pytest.approx(6.0)
    # 6 s of task time over two slots fill 3 of its 4 s.
    assert profile.stages[0].latency_s == pytest.approx(1.0)


def test_the_event_log_gives_the_final_word_on_every_stage(tmp_path: Path) -> None:
    def task_end(stage: int, executor: str, run_ms: int) -> dict[str, object]:
        return {
            "Event": "SparkListenerTaskEnd",
            "Stage ID": stage,
            "Stage Attempt ID": 0,
            "Task Info": {"Executor ID": executor},
            "Task Metrics": {"Executor Run Time": run_ms},
        }

    def completed(stage: int, attempt: int, sub: int, done: int, failed: bool = False) -> dict[str, object]:
        info: dict[str, object] = {
            "Stage ID": stage,
            "Stage Attempt ID": attempt,
            "Stage Name": f"s{stage}",
            "Number of Tasks": 2,
            "Submission Time": sub,
            "Completion Time": done,
            "Accumulables": [{"Name": "internal.metrics.executorRunTime", "Value": 1500}],
        }
        if failed:
            info["Failure Reason"] = "fetch failed"
        return {"Event": "SparkListenerStageCompleted", "Stage Info": info}

    events = [
        {"Event": "SparkListenerApplicationStart", "Timestamp": 1000},
        task_end(0, "0", 1000),
        task_end(0, "1", 500),
        completed(0, 0, 2000, 3500),
        completed(1, 0, 3600, 3900, failed=True),
        completed(1, 1, 4000, 4800),
    ]
    folder = tmp_path / "events"
    folder.mkdir()
    text = "\n".join(json.dumps(e) for e in events) + "\n{not json, a log cut short"
    (folder / "app-1").write_text(text, encoding="utf-8")
    stages = read_completed_stages(folder)
    assert [(s.stage_id, s.status) for s in stages] == [(0, "COMPLETE"), (1, "COMPLETE")]
    assert stages[0].submission_time_s == pytest.approx(2.0)
    assert stages[0].completion_time_s == pytest.approx(3.5)
    assert stages[0].task_seconds == pytest.approx(1.5)
    assert stages[0].task_seconds_by_executor == {"0": pytest.approx(1.0), "1": pytest.approx(0.5)}
    assert stages[1].completion_time_s == pytest.approx(4.8)
    assert read_completed_stages(tmp_path / "missing") == ()
    conf = event_log_conf(folder)
    assert conf["spark.eventLog.dir"].startswith("file://")
    assert conf["spark.eventLog.compress"] == "false"


def test_the_recorder_takes_the_event_log_over_what_it_sampled() -> None:
    recorder = ProfileRecorder(start_s=0.0, nominal_cores=2.0, task_slots=2, executor_slots=1)
    _record(recorder, 12.0, _stage(status="ACTIVE", completed_tasks=0, submission_time_s=10.0))
    recorder.complete([_stage(submission_time_s=10.0, completion_time_s=11.5, task_seconds=2.0)])
    profile = recorder.profile(14.0)
    assert profile is not None
    assert profile.stages[0].duration_s == pytest.approx(1.5)
    assert profile.tail_s == pytest.approx(2.5)
