"""The spark-submit command of a DeadlineJob on the local standalone cluster.

Client mode (the driver runs here), ``spark.executor.cores = ceil(coresMax)`` task slots per
executor, ``instances`` executors (``spark.cores.max`` in standalone mode), the job's own
``sparkConf``, and a driver UI on a port of our choosing so the sensor knows where to look.
Executor JVMs compile with C1 only and see ``ceil(coresMax)`` processors, and the driver JVM
compiles with C1 only (:mod:`dynaspark.jvm` says why), unless ``sparkConf`` says otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from dynaspark.api import DeadlineJob
from dynaspark.event_log import event_log_conf
from dynaspark.jvm import (
    DRIVER_JAVA_OPTIONS,
    EXECUTOR_JAVA_OPTIONS,
    executor_java_options,
    local_driver_java_options,
)
from dynaspark.standalone import spark_home
from mlscale.units import spark_memory


def submit_conf(
    job: DeadlineJob, ui_port: int, *, dynamic_allocation: bool = False, event_log: Path | None = None
) -> dict[str, str]:
    """Return the Spark configuration for the job (``sparkConf`` first, our keys over it).

    Args:
        job: The DeadlineJob.
        ui_port: Port of the driver's UI and REST API.
        dynamic_allocation: Let Spark scale the executor count (the benchmark's baseline).
        event_log: Folder (existing) for the driver's event log, the profile's final word on
            each stage; left alone when ``sparkConf`` configures the event log itself.
    """
    ex = job.spec.executors
    slots = ex.task_slots
    conf = dict(job.spec.application.spark_conf)
    conf.update(
        {
            "spark.app.name": job.metadata.name,
            "spark.executor.cores": str(slots),
            "spark.executor.instances": str(ex.instances),
            "spark.cores.max": str(slots * ex.instances),
            "spark.executor.memory": spark_memory(ex.memory),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.port": str(ui_port),
            "spark.ui.showConsoleProgress": "false",
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
        }
    )
    conf[EXECUTOR_JAVA_OPTIONS] = executor_java_options(job.spec.application.spark_conf, processors=slots)
    driver_options = local_driver_java_options(job.spec.application.spark_conf)
    if driver_options:
        conf[DRIVER_JAVA_OPTIONS] = driver_options
    if dynamic_allocation:
        conf.update(
            {
                "spark.dynamicAllocation.enabled": "true",
                "spark.dynamicAllocation.shuffleTracking.enabled": "true",
                "spark.dynamicAllocation.minExecutors": "1",
                "spark.dynamicAllocation.initialExecutors": "1",
                "spark.dynamicAllocation.maxExecutors": str(ex.instances),
                "spark.dynamicAllocation.executorIdleTimeout": "3s",
                "spark.dynamicAllocation.schedulerBacklogTimeout": "1s",
            }
        )
    else:
        conf["spark.dynamicAllocation.enabled"] = "false"
    if event_log is not None and not any(k.startswith("spark.eventLog.") for k in job.spec.application.spark_conf):
        conf.update(event_log_conf(event_log))
    return conf


def submit_command(job: DeadlineJob, app_file: Path, master_url: str, conf: Mapping[str, str]) -> list[str]:
    """Return the spark-submit command line for the job."""
    command = [str(spark_home() / "bin" / "spark-submit"), "--master", master_url, "--deploy-mode", "client"]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    if job.spec.application.main_class:
        command += ["--class", job.spec.application.main_class]
    return [*command, str(app_file), *job.spec.application.arguments]
