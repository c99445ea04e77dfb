"""One DeadlineJob on this machine: standalone cluster, spark-submit, the control loop, the result.

:func:`run_deadline_job` is shared by ``mlscale run`` (through :mod:`dynaspark.local`) and by
the benchmark, which also runs the baselines (static cores, Spark dynamic allocation) through
the same path so that every figure is measured the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from dynaspark.api import DeadlineJob
from dynaspark.cgroup_actuator import CgroupCoresActuator
from dynaspark.event_log import EVENT_LOG_FOLDER, read_completed_stages
from dynaspark.law import DeadlineControlLaw, Decision, law_config
from dynaspark.loop import ControlSample, run_control_loop
from dynaspark.ports import CoresActuator
from dynaspark.profile import ApplicationProfile
from dynaspark.profile_cache import load_cached_profile
from dynaspark.profiler import ProfileRecorder
from dynaspark.spark_rest import SparkRestSensor
from dynaspark.standalone import SparkStandalone, free_port
from dynaspark.submit import submit_command, submit_conf

Mode = Literal["control", "static", "dynamic"]


@dataclass(frozen=True)
class RunSettings:
    """How to run the job.

    Attributes:
        mode: ``control`` (the law sets cores), ``static`` (fixed cores per executor) or
            ``dynamic`` (Spark dynamic allocation of executors, fixed cores each).
        static_cores: Cores per executor in ``static``/``dynamic`` mode (default coresMax).
        uncontrolled: Limit nothing (where cgroups cannot be written).
        use_profile_cache: Plan with the cached profile and store a first one there.
        capacity_cores: Cores the executors share (default: this machine's CPUs).
    """

    mode: Mode = "control"
    static_cores: float | None = None
    uncontrolled: bool = False
    use_profile_cache: bool = True
    capacity_cores: float | None = None


@dataclass
class RunResult:
    """What a run measured.

    Attributes:
        phase: ``Succeeded``, ``DeadlineMissed`` or ``Failed``.
        deadline_s: The deadline (seconds from the start).
        completion_s: When the application ended (seconds from the start).
        exit_code: spark-submit's exit status.
        core_seconds: Cores × seconds allocated to the executors.
        max_core_seconds: instances × coresMax × completion_s.
        cpu_seconds: CPU seconds the executors really used (cgroup accounting; ``None`` without).
        samples: One per period.
        profile_used: The profile planned with, if any.
        profile_written: The profile this run recorded, if any.
        profile_cached: Where the profile was stored for later runs, if it was.
        quotas: Each executor's last quota read back from the kernel (cores).
        quota_writes: How many times a quota was written.
        messages: Conditions worth telling the user (at risk, contended, no profile).
        application_id: Spark's application id.
        cgroup_paths: The cgroups the executors ran in (removed at the end).
    """

    phase: str
    deadline_s: float
    completion_s: float
    exit_code: int
    core_seconds: float
    max_core_seconds: float
    cpu_seconds: float | None
    samples: list[ControlSample]
    profile_used: str | None = None
    profile_written: str | None = None
    profile_cached: str | None = None
    quotas: dict[str, float | None] = field(default_factory=dict)
    quota_writes: int = 0
    messages: list[str] = field(default_factory=list)
    application_id: str | None = None
    cgroup_paths: list[str] = field(default_factory=list)

    @property
    def deadline_met(self) -> bool:
        """Whether the application succeeded within its deadline."""
        return self.phase == "Succeeded"


class UnlimitedActuator:
    """Limits nothing: every executor effectively has its coresMax (uncontrolled runs)."""

    def __init__(self, cores_max: float) -> None:
        self.cores_max = cores_max

    def apply(self, cores: Mapping[str, float]) -> Mapping[str, float]:
        """Return coresMax for every executor asked about."""
        return {e: self.cores_max for e in cores}


class FixedCoresActuator:
    """Applies the same cores to every executor, whatever the law asks (the static baselines)."""

    def __init__(self, inner: CoresActuator, cores: float) -> None:
        self.inner = inner
        self.cores = cores

    def apply(self, cores: Mapping[str, float]) -> Mapping[str, float]:
        """Apply the fixed cores to every executor in ``cores``."""
        return self.inner.apply({e: self.cores for e in cores})


def core_seconds_of(samples: list[ControlSample], end_s: float) -> float:
    """Integrate the applied cores over time (each sample holds until the next, the last until the end)."""
    total = 0.0
    for i, sample in enumerate(samples):
        until = samples[i + 1].t_s if i + 1 < len(samples) else end_s
        total += sum(sample.cores.values()) * max(0.0, until - sample.t_s)
    return total


def _wait_or_sleep(process: subprocess.Popen[bytes], delay_s: float) -> None:
    """Sleep up to ``delay_s``, returning as soon as the process ends."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=delay_s)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """End spark-submit and the driver it started (their own process group)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def law_for_mode(
    job: DeadlineJob, capacity: float | None, profile: ApplicationProfile | None, mode: Mode
) -> DeadlineControlLaw:
    """The law a run steps: the job's own under control, else one that only predicts and reports.

    A static or dynamic-allocation run has no profile and no usage ceiling: its cores are
    fixed, and a cap it never applied would show in its samples.
    """
    controlled = mode == "control"
    config = replace(law_config(job, capacity), usage_ceiling=controlled)
    return DeadlineControlLaw(config, profile if controlled else None)


def run_deadline_job(
    job: DeadlineJob,
    app_file: Path,
    report_dir: Path,
    settings: RunSettings,
    on_sample: Callable[[ControlSample, Decision], None] | None = None,
) -> RunResult:
    """Run the job on a private standalone cluster and measure it.

    Args:
        job: The DeadlineJob.
        app_file: The application file (resolved).
        report_dir: Where the run's profile and Spark's logs are written.
        settings: Mode and options.
        on_sample: Called after every period.

    Returns:
        What the run measured.

    Raises:
        mlscale.cgroups.CgroupUnavailableError: when cgroups cannot be written and the run
            is not ``uncontrolled``.
    """
    spec = job.spec
    ex = spec.executors
    capacity = settings.capacity_cores if settings.capacity_cores is not None else float(os.cpu_count() or 1)
    profile: ApplicationProfile | None = None
    cached_path: Path | None = None
    if settings.use_profile_cache:
        profile, cached_path = load_cached_profile(app_file, spec.application.arguments)
    law = law_for_mode(job, capacity, profile, settings.mode)
    report_dir.mkdir(parents=True, exist_ok=True)
    slots = ex.task_slots
    memory_mb = max(512, ex.memory // 2**20)
    work_dir = Path(tempfile.mkdtemp(prefix="mlscale-spark-"))
    fixed = settings.static_cores if settings.static_cores is not None else ex.cores_max

    # The daemons' pids, logs and work folders go, however the run ends (Ctrl-C included); spark.log stays.
    try:
        with SparkStandalone(
            work_dir, worker_cores=slots * ex.instances, worker_memory_mb=memory_mb * ex.instances + 256
        ) as cluster:
            ui_port = free_port()
            events = work_dir / EVENT_LOG_FOLDER
            events.mkdir()
            conf = submit_conf(job, ui_port, dynamic_allocation=settings.mode == "dynamic", event_log=events)
            command = submit_command(job, app_file, cluster.master_url, conf)
            sensor = SparkRestSensor(f"http://127.0.0.1:{ui_port}")
            actuator: CoresActuator
            cgroups: CgroupCoresActuator | None = None
            if settings.uncontrolled:
                actuator = UnlimitedActuator(ex.cores_max)
            else:
                cgroups = CgroupCoresActuator(
                    lambda: sensor.application_id, f"{job.metadata.name}-{uuid.uuid4().hex[:6]}"
                )
                actuator = cgroups
            if settings.mode != "control" and not settings.uncontrolled:
                actuator = FixedCoresActuator(actuator, fixed)
            log_path = report_dir / "spark.log"
            start_s = time.time()
            with log_path.open("wb") as log_file:
                process = subprocess.Popen(
                    command,
                    env=cluster.env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=app_file.parent,
                    start_new_session=True,
                )
            try:
                recorder = ProfileRecorder(
                    start_s,
                    ex.instances * ex.cores_max,
                    source=f"{app_file.name} {spec.application.arguments}",
                    task_slots=ex.instances * slots,
                    executor_slots=slots,
                )
                _, samples = run_control_loop(
                    law,
                    law.initial_state(start_s),
                    sensor,
                    actuator,
                    finished=lambda: process.poll() is not None,
                    clock=time.time,
                    sleep=lambda d: _wait_or_sleep(process, d),
                    recorder=recorder,
                    on_sample=on_sample,
                    max_s=max(3 * spec.deadline, spec.deadline + 600.0),
                    meter=cgroups,
                )
                end_s = time.time()
                exit_code = process.poll()
                if exit_code is None:
                    _kill_group(process)
                    exit_code = -1
                recorder.complete(read_completed_stages(events))
            finally:
                _kill_group(process)
                quotas = cgroups.quotas() if cgroups is not None else {}
                cpu_seconds = cgroups.usage_seconds() if cgroups is not None else None
                quota_writes = cgroups.quota_writes if cgroups is not None else 0
                cgroup_paths = [str(g.path) for g in cgroups.groups.values()] if cgroups is not None else []
                if cgroups is not None:
                    cgroups.close()

    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    completion_s = end_s - start_s
    result = RunResult(
        phase="Failed" if exit_code != 0 else ("Succeeded" if completion_s <= spec.deadline else "DeadlineMissed"),
        deadline_s=spec.deadline,
        completion_s=completion_s,
        exit_code=exit_code,
        core_seconds=core_seconds_of(samples, completion_s),
        max_core_seconds=ex.instances * ex.cores_max * completion_s,
        cpu_seconds=cpu_seconds,
        samples=samples,
        profile_used=str(cached_path) if profile is not None and settings.mode == "control" else None,
        quotas=quotas,
        quota_writes=quota_writes,
        application_id=sensor.application_id,
        cgroup_paths=cgroup_paths,
    )
    recorded = recorder.profile(end_s)
    if recorded is not None and exit_code == 0:
        result.profile_written = str(recorded.save(report_dir / "profile.json"))
        if settings.use_profile_cache and (profile is None or profile.outdated) and cached_path is not None:
            result.profile_cached = str(recorded.save(cached_path))
    result.messages = [*run_messages(result, profile, settings), *cluster_only_messages(job)]
    return result


def cluster_only_messages(job: DeadlineJob) -> list[str]:
    """Name the pod templates the job sets: they shape pods in a cluster, and a local run has none."""
    fields = [
        f"spec.{part}.template"
        for part, template in (("driver", job.spec.driver.template), ("executors", job.spec.executors.template))
        if template is not None
    ]
    if not fields:
        return []
    return [f"ClusterOnly: {' and '.join(fields)} shape the pods in a cluster; this run on one machine ignored them"]


def run_messages(result: RunResult, profile: ApplicationProfile | None, settings: RunSettings) -> list[str]:
    """The conditions a user should hear about."""
    messages = []
    if result.application_id is None and not settings.uncontrolled:
        messages.append(
            "Unobserved: the driver's REST API never answered, so no executor was controlled or measured "
            "(spark.log says where the Spark UI started)"
        )
    if settings.mode == "control" and profile is None:
        messages.append("ProfileMissing: no stage profile yet, stages were planned on task counts")
    if any(s.at_risk for s in result.samples):
        worst = max((s.predicted_completion_s or 0.0) - result.deadline_s for s in result.samples if s.at_risk)
        messages.append(f"DeadlineAtRisk: even at coresMax the deadline was predicted to be missed by {worst:.1f} s")
    if any(s.contended for s in result.samples):
        messages.append("Contended: the executors asked for more cores than the machine has; shares were scaled down")
    if settings.uncontrolled:
        messages.append("Uncontrolled: no cgroup limits were applied")
    return messages


def report_of(job: DeadlineJob, result: RunResult, settings: RunSettings) -> dict[str, Any]:
    """The report.json content."""
    ex = job.spec.executors
    return {
        "kind": job.kind,
        "name": job.metadata.name,
        "phase": result.phase,
        "mode": settings.mode,
        "uncontrolled": settings.uncontrolled,
        "deadline_s": result.deadline_s,
        "completion_s": round(result.completion_s, 3),
        "deadline_met": result.deadline_met,
        "completion_ratio": round(result.completion_s / result.deadline_s, 4),
        "core_seconds": round(result.core_seconds, 2),
        "max_core_seconds": round(result.max_core_seconds, 2),
        "core_seconds_ratio": round(result.core_seconds / result.max_core_seconds, 4)
        if result.max_core_seconds > 0
        else math.nan,
        "cpu_seconds": None if result.cpu_seconds is None else round(result.cpu_seconds, 2),
        "executors": {"instances": ex.instances, "cores_min": ex.cores_min, "cores_max": ex.cores_max},
        "exit_code": result.exit_code,
        "application_id": result.application_id,
        "cgroup_paths": result.cgroup_paths,
        "profile_used": result.profile_used,
        "profile_written": result.profile_written,
        "profile_cached": result.profile_cached,
        "cgroup_quotas": result.quotas,
        "quota_writes": result.quota_writes,
        "conditions": result.messages,
        "samples": [s.to_dict() for s in result.samples],
    }
