"""The Spark configuration a local DeadlineJob run submits with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dynaspark.api import DeadlineJob
from dynaspark.submit import submit_conf


def _job(spark_conf: dict[str, str] | None = None, cores_max: str = "1500m") -> DeadlineJob:
    document: dict[str, Any] = {
        "apiVersion": "mlscale.dev/v1alpha1",
        "kind": "DeadlineJob",
        "metadata": {"name": "j"},
        "spec": {
            "deadline": "60s",
            "application": {"mainApplicationFile": "app.py", "sparkConf": spark_conf or {}},
            "executors": {"instances": 3, "coresMax": cores_max},
        },
    }
    return DeadlineJob.model_validate(document)


def test_slots_are_cores_max_rounded_up_and_the_event_log_goes_where_asked(tmp_path: Path) -> None:
    conf = submit_conf(_job(), 4050, event_log=tmp_path / "events")
    assert conf["spark.executor.cores"] == "2"
    assert conf["spark.cores.max"] == "6"
    assert conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.eventLog.dir"] == (tmp_path / "events").resolve().as_uri()
    assert conf["spark.eventLog.compress"] == "false"
    assert "spark.eventLog.enabled" not in submit_conf(_job(), 4050)


def test_an_event_log_the_user_configured_is_left_alone(tmp_path: Path) -> None:
    mine = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": "s3a://logs/"}
    conf = submit_conf(_job(mine), 4050, event_log=tmp_path)
    assert conf["spark.eventLog.dir"] == "s3a://logs/"
    assert "spark.eventLog.compress" not in conf


def test_executor_jvms_compile_with_c1_and_see_as_many_processors_as_a_pod_limited_to_cores_max_would() -> None:
    conf = submit_conf(_job({"spark.executor.extraJavaOptions": "-Dmine=1"}), 4050)
    assert conf["spark.executor.extraJavaOptions"] == "-Dmine=1 -XX:TieredStopAtLevel=1 -XX:ActiveProcessorCount=2"
    options = submit_conf(_job(cores_max="1"), 4050)["spark.executor.extraJavaOptions"]
    assert options == "-XX:TieredStopAtLevel=1 -XX:ActiveProcessorCount=1"
    # A count and a compilation mode the user chose stand.
    options = "-XX:ActiveProcessorCount=4 -XX:TieredStopAtLevel=4"
    theirs = {"spark.executor.extraJavaOptions": options}
    assert submit_conf(_job(theirs), 4050)["spark.executor.extraJavaOptions"] == options


def test_the_local_driver_compiles_with_c1_unless_the_job_chose_a_compilation_mode() -> None:
    conf = submit_conf(_job({"spark.driver.extraJavaOptions": "-Dmine=1"}), 4050)
    assert conf["spark.driver.extraJavaOptions"] == "-Dmine=1 -XX:TieredStopAtLevel=1"
    theirs = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=4"}
    assert submit_conf(_job(theirs), 4050)["spark.driver.extraJavaOptions"] == "-XX:TieredStopAtLevel=4"
    # The executors' rule is separate: C2 for the driver does not give the executors C2.
    assert "TieredStopAtLevel=1" in submit_conf(_job(theirs), 4050)["spark.executor.extraJavaOptions"]
