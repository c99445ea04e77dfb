"""Turning the driver's REST answers into observations."""

from __future__ import annotations

import datetime as dt

import pytest

from dynaspark.spark_rest import latest_attempts, parse_spark_time, stage_from_rest


def test_spark_timestamps_are_seconds_since_the_epoch_in_utc() -> None:
    expected = dt.datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=dt.UTC).timestamp()
    assert parse_spark_time("2024-05-01T10:00:00.123GMT") == pytest.approx(expected)
    assert parse_spark_time(None) is None
    assert parse_spark_time("not a time") is None


def test_a_stage_entry_becomes_an_observation() -> None:
    stage = stage_from_rest(
        {
            "stageId": 4,
            "attemptId": 0,
            "status": "ACTIVE",
            "numTasks": 16,
            "numCompleteTasks": 6,
            "name": "reduceByKey at app.py:40",
            "inputRecords": 100,
            "shuffleReadRecords": 20,
            "submissionTime": "2024-05-01T10:00:00.000GMT",
            "executorRunTime": 7250,
        },
        {"0": 4, "1": 2},
        {"0": 5.0, "1": 2.25},
    )
    assert stage.stage_id == 4
    assert stage.status == "ACTIVE"
    assert stage.fraction_done == pytest.approx(6 / 16)
    assert stage.completed_tasks_by_executor == {"0": 4, "1": 2}
    assert stage.input_records == 120
    assert stage.completion_time_s is None
    assert stage.task_seconds == pytest.approx(7.25)
    assert stage.task_seconds_by_executor == {"0": 5.0, "1": 2.25}


def test_an_unknown_status_is_read_as_pending() -> None:
    assert stage_from_rest({"stageId": 1, "status": "SOMETHING"}).status == "PENDING"


def test_only_the_latest_attempt_of_a_retried_stage_counts() -> None:
    stages = [
        {"stageId": 2, "attemptId": 0, "status": "FAILED"},
        {"stageId": 1, "attemptId": 0, "status": "COMPLETE"},
        {"stageId": 2, "attemptId": 1, "status": "ACTIVE"},
    ]
    latest = latest_attempts(stages)
    assert [(s["stageId"], s["status"]) for s in latest] == [(1, "COMPLETE"), (2, "ACTIVE")]
