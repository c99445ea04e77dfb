"""The REST sensor against a real Spark driver: per-executor progress without the finished tasks."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from dynaspark.observation import StageObservation
from dynaspark.spark_rest import STAGE_DETAIL_QUERY, SparkRestSensor

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17+"),
]

TASKS = 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def running_stage() -> Iterator[str]:
    """A local driver whose one stage of short tasks is still running; yields its UI address."""
    from pyspark.sql import SparkSession

    port = _free_port()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("rest-sensor")
        .config("spark.ui.port", str(port))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    sc = spark.sparkContext
    # Each task sleeps 50 ms: 400 tasks on 2 slots run for about 10 s.
    job = threading.Thread(
        target=lambda: sc.parallelize(range(TASKS), TASKS).map(lambda x: time.sleep(0.05) or x).count(),
        daemon=True,
    )
    job.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        job.join(timeout=60)
        spark.stop()


def _active(url: str, at_least: int) -> StageObservation:
    """The active stage once it has finished at least ``at_least`` tasks (bounded wait)."""
    sensor = SparkRestSensor(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stages = [s for s in sensor.read().stages if s.status == "ACTIVE"]
        if stages and stages[0].completed_tasks >= at_least:
            return stages[0]
        time.sleep(0.2)
    raise AssertionError(f"no active stage with {at_least} finished tasks within 60 s")


def _get(url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{url}/api/v1{path}", timeout=5) as resp:
        return json.loads(resp.read())


def test_the_sensor_counts_each_executor_s_finished_tasks_on_a_real_driver(running_stage: str) -> None:
    stage = _active(running_stage, at_least=40)
    assert stage.num_tasks == TASKS
    # Local mode runs the tasks in the driver's own executor. Both counts come from one answer,
    # but the driver refreshes the stage and its per-executor summary separately, each at most
    # every spark.ui.liveUpdate.period (100 ms): on a busy machine they differ by a few tasks of
    # the 40 this stage finishes per second, never by a whole second's worth.
    assert set(stage.completed_tasks_by_executor) == {"driver"}
    assert stage.completed_tasks_by_executor["driver"] >= 30
    assert abs(stage.completed_tasks_by_executor["driver"] - stage.completed_tasks) <= 12
    assert stage.completed_tasks < TASKS


def test_the_driver_lists_only_the_running_tasks_to_the_sensor(running_stage: str) -> None:
    stage = _active(running_stage, at_least=80)
    app = _get(running_stage, "/applications")[0]["id"]
    detail = _get(running_stage, f"/applications/{app}/stages/{stage.stage_id}/0?{STAGE_DETAIL_QUERY}")
    everything = _get(running_stage, f"/applications/{app}/stages/{stage.stage_id}/0?details=true")
    # Two slots: only the running tasks are listed, where the unfiltered answer has every
    # finished one too; the per-executor summary the sensor reads is in both. The driver's
    # store records a task's end a moment after its slot runs the next one, so a read can find
    # a third (or fourth) task still RUNNING: a handful, never the 80 finished ones.
    assert all(task["status"] == "RUNNING" for task in detail["tasks"].values())
    assert len(detail["tasks"]) <= 4
    assert len(everything["tasks"]) >= 80
    assert set(detail["executorSummary"]) == {"driver"}


def test_the_sensor_reads_how_long_the_running_tasks_have_run_on_a_real_driver(running_stage: str) -> None:
    sensor = SparkRestSensor(running_stage)
    _active(running_stage, at_least=40)
    seen: list[float] = []
    means: list[float] = []
    for _ in range(20):  # bounded: 20 reads, 0.1 s apart
        stages = [s for s in sensor.read().stages if s.status == "ACTIVE"]
        if stages:
            stage = stages[0]
            assert set(stage.running_task_seconds_by_executor) <= {"driver"}
            seen.extend(stage.running_task_seconds_by_executor.get("driver", ()))
            done = stage.completed_tasks_by_executor.get("driver", 0)
            if done:
                means.append(stage.task_seconds_by_executor["driver"] / done)
        time.sleep(0.1)
    # Two slots run 50 ms tasks back to back: most reads find one or two of them running, each
    # launched a moment ago; the finished ones ran 50 ms and more each.
    assert len(seen) >= 10
    assert all(0.0 <= t < 5.0 for t in seen)
    assert means
    assert all(0.05 <= m < 5.0 for m in means)
