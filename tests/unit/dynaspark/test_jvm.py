"""Executor JVM options: C1-only compilation and the processor count, unless the job says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynaspark.jvm import executor_java_options, local_driver_java_options
from dynaspark.standalone import SparkStandalone

KEY = "spark.executor.extraJavaOptions"


def test_executors_stop_at_c1_after_the_jobs_own_options() -> None:
    assert executor_java_options({}) == "-XX:TieredStopAtLevel=1"
    assert executor_java_options({KEY: " -Da=1  -Xss4m "}) == "-Da=1 -Xss4m -XX:TieredStopAtLevel=1"
    with_processors = executor_java_options({KEY: "-Da=1"}, processors=3)
    assert with_processors == "-Da=1 -XX:TieredStopAtLevel=1 -XX:ActiveProcessorCount=3"


@pytest.mark.parametrize(
    "theirs", ["-XX:TieredStopAtLevel=4", "-XX:-TieredCompilation", "-XX:CompilationMode=high-only"]
)
def test_a_compilation_mode_the_job_chose_stands(theirs: str) -> None:
    assert executor_java_options({KEY: theirs}) == theirs
    assert executor_java_options({KEY: theirs}, processors=2) == f"{theirs} -XX:ActiveProcessorCount=2"


def test_a_choice_in_the_default_java_options_stands_too() -> None:
    # Spark puts defaultJavaOptions first on the command line: appending C1 after them would win.
    executor_defaults = {"spark.executor.defaultJavaOptions": "-XX:TieredStopAtLevel=4 -XX:ActiveProcessorCount=4"}
    assert executor_java_options({**executor_defaults, KEY: "-Da=1"}, processors=1) == "-Da=1"
    driver_defaults = {"spark.driver.defaultJavaOptions": "-XX:-TieredCompilation"}
    assert local_driver_java_options(driver_defaults) == ""
    # Another role's defaults say nothing of this one's.
    assert executor_java_options(driver_defaults) == "-XX:TieredStopAtLevel=1"


def test_a_processor_count_the_job_chose_stands() -> None:
    options = executor_java_options({KEY: "-XX:ActiveProcessorCount=8"}, processors=2)
    assert options == "-XX:ActiveProcessorCount=8 -XX:TieredStopAtLevel=1"


def test_the_local_driver_stops_at_c1_unless_its_own_options_say_how_to_compile() -> None:
    driver = "spark.driver.extraJavaOptions"
    assert local_driver_java_options({}) == "-XX:TieredStopAtLevel=1"
    assert local_driver_java_options({driver: "-Da=1"}) == "-Da=1 -XX:TieredStopAtLevel=1"
    assert local_driver_java_options({driver: "-XX:-TieredCompilation"}) == "-XX:-TieredCompilation"
    # The executors' options say nothing of the driver's, and no processor count is imposed on it.
    assert local_driver_java_options({KEY: "-XX:TieredStopAtLevel=4"}) == "-XX:TieredStopAtLevel=1"


def test_the_standalone_daemons_compile_with_c1_unless_spark_daemon_java_opts_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARK_DAEMON_JAVA_OPTS", raising=False)
    assert SparkStandalone(tmp_path, 2, 1024).env["SPARK_DAEMON_JAVA_OPTS"] == "-XX:TieredStopAtLevel=1"
    monkeypatch.setenv("SPARK_DAEMON_JAVA_OPTS", "-Dx=1")
    assert SparkStandalone(tmp_path, 2, 1024).env["SPARK_DAEMON_JAVA_OPTS"] == "-Dx=1 -XX:TieredStopAtLevel=1"
    monkeypatch.setenv("SPARK_DAEMON_JAVA_OPTS", "-XX:TieredStopAtLevel=4")
    assert SparkStandalone(tmp_path, 2, 1024).env["SPARK_DAEMON_JAVA_OPTS"] == "-XX:TieredStopAtLevel=4"
