"""The DeadlineJob control loop in a cluster: one kopf daemon per job, one period per sampling interval.

A state machine keyed on ``status.phase``:

* ``Pending``: the children exist; waiting for the driver pod to run.
* ``Running``: every period, read progress from the driver's REST API through its Service,
  run the law (:func:`dynaspark.loop.control_period`) with the state kept in
  ``status.controlState``, resize the executor pods in place, write the status.
* ``Succeeded`` / ``DeadlineMissed`` / ``Failed``: set once the driver pod has ended; the
  stage profile the run observed is stored for later runs of the same application.

Everything the loop needs to resume lives in the status, so a restarted operator picks up
each job where the previous one left it (the set point included).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from typing import Any

import aiohttp
import kopf

from controllers import admission
from controllers.conditions import announce, is_true
from controllers.daemons import sleep_unless_stopped
from controllers.deadlinejob_service import INFO, TERMINAL_PHASES
from controllers.deadlinejob_status import (
    PROFILE_MISSING,
    RESIZE_UNSUPPORTED,
    at_epoch,
    decision_conditions,
    epoch_of,
    paced_cores_before,
    period_status,
    pods_waiting,
    resize_lag_conditions,
)
from controllers.executor_cpu import PodCpuMeter
from controllers.executor_pods import (
    ExecutorPod,
    PodCoresActuator,
    available_cores,
    executor_cpu_usage,
    executor_pods,
)
from controllers.kube import (
    KubeApi,
    KubeError,
    NotFoundError,
    container_terminated,
    core_path,
    group_path,
    patch_status,
    scoped_api,
)
from controllers.pods_waiting import HeldUpPods, PodState, pod_state
from controllers.sparkpods import driver_pod_name, driver_service_name, meter_port
from controllers.stage_profiles import load_profile, profile_configmap_name, save_profile
from dynaspark.api import DRIVER_CONTAINER, DeadlineJob
from dynaspark.law import DeadlineControlLaw, LawState, law_config
from dynaspark.loop import control_period
from dynaspark.observation import ExecutorCpu
from dynaspark.profile import ApplicationProfile
from dynaspark.profiler import ProfileRecorder
from dynaspark.spark_rest import SparkRestSensor
from mlscale import API_GROUP_VERSION
from mlscale.api import Condition, conditions_of, dump_conditions, utcnow

log = logging.getLogger(__name__)


DEFAULT_UI_URL = "http://{service}.{namespace}.svc:4040"
IDLE_PERIOD_S = 1.0
"""How often a job that cannot run yet (not accepted, no image) is looked at again."""
USAGE_RETRY_S = 60.0
"""How long the loop goes without asking for the executors' CPU usage after the metrics API failed."""


def driver_ui_url(job_name: str, namespace: str) -> str:
    """Where the driver's REST API answers: ``MLSCALE_SPARK_UI_URL`` with ``{service}`` and ``{namespace}``."""
    template = os.environ.get("MLSCALE_SPARK_UI_URL") or DEFAULT_UI_URL
    return template.format(service=driver_service_name(job_name), namespace=namespace)


def validated(obj: dict[str, Any]) -> DeadlineJob | None:
    """The job as a model, or ``None`` when its spec is invalid (admission says why)."""
    return admission.stored_resource(DeadlineJob, obj)


async def run_daemon(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped) -> None:
    """Run the job's loop until it ends, is deleted, or the operator stops.

    Args:
        body: The DeadlineJob (for Events; each period reads the object afresh).
        memo: The operator's shared state (client, status store).
        stopped: Set by kopf when the daemon must stop.
    """
    async with scoped_api(memo) as api, aiohttp.ClientSession() as http:
        await _loop(JobRun(api, body, memo, http), stopped)


async def _loop(run: JobRun, stopped: kopf.DaemonStopped) -> None:
    while not stopped:
        began_s = time.monotonic()
        try:
            obj = await run.api.get(run.path)
            if obj is None or obj.get("metadata", {}).get("deletionTimestamp"):
                return
            period_s, done = await run.period(obj)
        except (TimeoutError, KubeError, aiohttp.ClientError) as exc:
            log.warning("control period of %s/%s failed, retrying: %s", run.namespace, run.name, exc)
            period_s, done = IDLE_PERIOD_S, False
        if done:
            return
        await sleep_unless_stopped(stopped, began_s + period_s)


class JobRun:
    """One job's loop: what it keeps between periods, all of it recoverable from the status.

    Args:
        api: The Kubernetes client.
        body: The DeadlineJob as kopf holds it (Events are posted about it).
        memo: The operator's shared state (the status store).
        http: The client session the executors' CPU meters are read with.

    Attributes:
        sensor: The driver's REST API (it remembers the application id).
        state: The law's state, loaded from ``status.controlState`` on the first period.
        profile: The stage profile planned with, if there is one.
        recorder: Records this run's stage profile; ``None`` when the loop joined a run that
            had already started (after an operator restart), whose early stages it did not see.
        usage_retry_s: When the executors' CPU usage may be asked for again, after the resource
            metrics API failed (a cluster without metrics-server has none).
        meter: Reads the CPU meter in each executor pod (``None`` when the meter is off).
        timed_period_s: The control period the meter's resize timings were read at.
    """

    def __init__(self, api: KubeApi, body: kopf.Body, memo: kopf.Memo, http: aiohttp.ClientSession) -> None:
        self.api = api
        self.http = http
        self.body = body
        self.memo = memo
        self.name = str(body.metadata.name)
        self.namespace = str(body.metadata.namespace)
        self.path = group_path(API_GROUP_VERSION, INFO.plural, self.namespace, self.name)
        self.sensor = SparkRestSensor(driver_ui_url(self.name, self.namespace))
        self.state: LawState | None = None
        self.profile: ApplicationProfile | None = None
        self.recorder: ProfileRecorder | None = None
        self.usage_retry_s = 0.0
        port = meter_port()
        self.meter = None if port is None else PodCpuMeter(port)
        self.timed_period_s: float | None = None
        self.held = HeldUpPods(api, self.namespace, f"{self.namespace}/{self.name}")

    async def period(self, obj: dict[str, Any]) -> tuple[float, bool]:
        """One step of the state machine.

        Returns:
            The time until the next period and whether the job has ended.
        """
        status = dict(obj.get("status") or {})
        phase = str(status.get("phase") or "Pending")
        if phase in TERMINAL_PHASES:
            return 0.0, True
        job = validated(obj)
        conditions = conditions_of(status)
        if job is None or not is_true(conditions, "Accepted") or not is_true(conditions, "Submitted"):
            return IDLE_PERIOD_S, False
        period_s = job.spec.control.period_seconds
        driver = await self.api.get(core_path("pods", self.namespace, driver_pod_name(self.name)))
        driver_phase = ((driver or {}).get("status") or {}).get("phase")
        if driver is None or driver_phase in ("Succeeded", "Failed") or driver_terminated(driver) is not None:
            await self.finish(job, status, driver)
            return 0.0, True
        update: dict[str, Any] = {}
        if phase == "Pending":
            if driver_phase != "Running":
                waiting = await self.held.held_up({driver_pod_name(self.name): pod_state(driver, "driver")})
                held = pods_waiting(
                    self.body, conditions, waiting, role="driver", now=utcnow(), generation=job.metadata.generation
                )
                if held != conditions:
                    await self.write_status({"conditions": dump_conditions(held)}, phase, read=conditions)
                return period_s, False
            update["phase"] = phase = "Running"
            kopf.info(self.body, reason="Running", message=f"driver pod {driver_pod_name(self.name)} is running")
            log.info("%s/%s is running", self.namespace, self.name)
        update.update(await self.control(job, status, conditions))
        await self.write_status(update, phase, read=conditions)
        return period_s, False

    async def control(self, job: DeadlineJob, status: dict[str, Any], conditions: list[Condition]) -> dict[str, Any]:
        """Read progress, run the law, resize the executors; return the status update."""
        generation = job.metadata.generation
        now = utcnow()
        now_s = time.time()
        if self.state is None:
            conditions = await self.start(job, status, conditions, now=now)
        assert self.state is not None
        pods = await executor_pods(self.api, self.namespace, self.name)
        capacity = await available_cores(self.api, pods)
        law = DeadlineControlLaw(law_config(job, capacity), self.profile)
        actuator = PodCoresActuator(
            self.api,
            self.namespace,
            pods,
            asyncio.get_running_loop(),
            resize=not is_true(conditions, RESIZE_UNSUPPORTED),
        )
        previous = self.state
        # What each executor used over the period that ends now, and whether it ran out of quota:
        # the law caps an executor that was not throttled near what it used.
        cpu: dict[str, ExecutorCpu] = {}
        meter = self.meter if job.spec.executors.cpu_meter else None
        if meter is not None:
            if self.timed_period_s != job.spec.control.period_seconds:
                # Resizes are timed in readings a period apart: a new period starts afresh.
                meter.forget_resizes()
                self.timed_period_s = job.spec.control.period_seconds
            timeout_s = min(1.0, max(0.2, job.spec.control.period_seconds / 2))
            cpu = await meter.usage(self.http, pods, time.monotonic(), timeout_s=timeout_s)
        state, decision, obs, applied = await asyncio.to_thread(
            control_period, law, previous, self.sensor, actuator, now_s, cpu=cpu
        )
        self.state = state
        if meter is not None:
            meter.expect(actuator.resized, time.monotonic())
        allocated_before = float(status.get("allocatedCores") or 0.0)
        if self.recorder is not None:
            self.recorder.record(now_s, obs, paced_cores_before(previous, status))
        core_seconds = float(status.get("coreSeconds") or 0.0)
        if previous.last_step_s is not None:
            core_seconds += allocated_before * max(0.0, now_s - previous.last_step_s)
        if actuator.unsupported is not None:
            message = (
                f"The cluster refused to resize executor pods in place ({actuator.unsupported}); continuing "
                "without vertical control: each executor keeps the cores it started with. In-place resize "
                "needs Kubernetes 1.33 or later (pods/resize)."
            )
            conditions = announce(
                self.body,
                conditions,
                RESIZE_UNSUPPORTED,
                "True",
                reason="ResizeRefused",
                message=message,
                now=now,
                generation=generation,
            )
        conditions = decision_conditions(self.body, conditions, decision, capacity, now=now, generation=generation)
        states = {p.pod: PodState("executor", p.problem, p.creating, p.uid) for p in pods.values()}
        waiting = await self.held.held_up(states)
        conditions = pods_waiting(self.body, conditions, waiting, role="executor", now=now, generation=generation)
        if meter is not None and not is_true(conditions, RESIZE_UNSUPPORTED):
            # Where the cluster cannot resize in place, there is no resize to time.
            conditions = resize_lag_conditions(
                self.body,
                conditions,
                meter.resize_delays(),
                period_s=job.spec.control.period_seconds,
                now=now,
                generation=generation,
            )
        log.info(
            "%s/%s stage=%s sp=%s progress=%s cores=%s requested=%s resized=%s capacity=%s at_risk=%s",
            self.namespace,
            self.name,
            decision.stage_id,
            decision.set_point,
            decision.stage_progress,
            dict(applied),
            decision.requested_cores,
            actuator.resized,
            capacity,
            decision.at_risk,
        )
        # The meters' figures over this period; metrics-server's window for an executor without one.
        used = {e: c.used_cores for e, c in cpu.items()}
        if set(pods) - set(used):
            used = {**await self.cpu_usage(pods, now_s), **used}
        return {
            **period_status(
                decision,
                obs,
                applied,
                core_seconds,
                used,
                throttled={e: c.throttled_share for e, c in cpu.items() if c.throttled_share is not None},
                enforced=meter.quota_cores if meter is not None else None,
            ),
            "resizeLatencySeconds": None
            if meter is None or meter.resize_latency_s is None
            else round(meter.resize_latency_s, 2),
            "controlState": state.to_dict(),
            "conditions": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in conditions],
        }

    async def cpu_usage(self, pods: dict[str, ExecutorPod], now_s: float) -> dict[str, float]:
        """The CPU each executor used, from the resource metrics API; empty while it cannot be read."""
        if now_s < self.usage_retry_s or not pods:
            return {}
        try:
            return await executor_cpu_usage(self.api, self.namespace, self.name, pods)
        except (KubeError, aiohttp.ClientError) as exc:
            self.usage_retry_s = now_s + USAGE_RETRY_S
            why = (
                "the cluster serves no metrics.k8s.io (install metrics-server)"
                if isinstance(exc, NotFoundError)
                else exc
            )
            log.info(
                "%s/%s: executors' CPU usage not reported (%s); asking again in %.0f s",
                self.namespace,
                self.name,
                why,
                USAGE_RETRY_S,
            )
            return {}

    async def start(
        self, job: DeadlineJob, status: dict[str, Any], conditions: list[Condition], *, now: dt.datetime
    ) -> list[Condition]:
        """Load the law's state (resuming from ``status.controlState``) and the stage profile."""
        start_s = epoch_of(str(status["startTime"])) if status.get("startTime") else time.time()
        saved = status.get("controlState")
        ex = job.spec.executors
        if saved:
            self.state = LawState.from_dict(saved)
            log.info("%s/%s: resuming its control from the status", self.namespace, self.name)
        else:
            self.state = LawState(start_s=start_s)
            source = f"{job.spec.application.main_application_file} {job.spec.application.arguments}"
            self.recorder = ProfileRecorder(
                start_s,
                ex.instances * ex.cores_max,
                source=source,
                task_slots=ex.instances * ex.task_slots,
                executor_slots=ex.task_slots,
            )
        profile_name = str(status.get("profile") or profile_configmap_name(job))
        self.profile = await load_profile(self.api, self.namespace, profile_name)
        generation = job.metadata.generation
        if self.profile is None:
            message = (
                "No stage profile for this application yet: planning on task counts; a successful run "
                f"records one in ConfigMap {profile_name}."
            )
            return announce(
                self.body,
                conditions,
                PROFILE_MISSING,
                "True",
                reason="NoProfile",
                message=message,
                now=now,
                generation=generation,
            )
        message = f"Planning with the stage profile in ConfigMap {profile_name}."
        return announce(
            self.body,
            conditions,
            PROFILE_MISSING,
            "False",
            reason="ProfileFound",
            message=message,
            now=now,
            generation=generation,
        )

    async def finish(self, job: DeadlineJob, status: dict[str, Any], driver: dict[str, Any] | None) -> None:
        """Record how the application ended; store the stage profile it showed."""
        end_s = driver_end_s(driver) or time.time()
        start_s = epoch_of(str(status["startTime"])) if status.get("startTime") else end_s
        deadline_s = (
            epoch_of(str(status["deadlineTime"])) if status.get("deadlineTime") else start_s + job.spec.deadline
        )
        last_step_s = self.state.last_step_s if self.state is not None else None
        if last_step_s is None and status.get("controlState"):
            last_step_s = LawState.from_dict(status["controlState"]).last_step_s
        core_seconds = float(status.get("coreSeconds") or 0.0)
        if last_step_s is not None:
            core_seconds += float(status.get("allocatedCores") or 0.0) * max(0.0, end_s - last_step_s)
        phase, message = outcome(driver, self.name, end_s - start_s, deadline_s - end_s, core_seconds)
        update: dict[str, Any] = {
            "phase": phase,
            "completionTime": at_epoch(end_s),
            "allocatedCores": 0.0,
            "executors": [],
            "usedCores": None,
            "predictedCompletionTime": None,
            "slackSeconds": round(deadline_s - end_s, 1),
            "coreSeconds": round(core_seconds, 2),
        }
        if phase == "Succeeded":
            update["progress"] = 1.0
            kopf.info(self.body, reason=phase, message=message)
        else:
            kopf.warn(self.body, reason=phase, message=message)
        log.info("%s/%s %s: %s", self.namespace, self.name, phase, message)
        if phase != "Failed" and (self.profile is None or self.profile.outdated) and self.recorder is not None:
            profile = self.recorder.profile(end_s)
            profile_name = str(status.get("profile") or profile_configmap_name(job))
            if profile is not None:
                await save_profile(self.api, self.namespace, profile_name, profile)
                update["profile"] = profile_name
                kopf.info(
                    self.body,
                    reason="ProfileRecorded",
                    message=f"stage profile of {len(profile.stages)} stages stored in ConfigMap {profile_name}",
                )
        await self.write_status(update, phase)

    async def write_status(self, update: dict[str, Any], phase: str, *, read: list[Condition] | None = None) -> None:
        """Patch the job's status and tell the metrics.

        Args:
            update: The status fields to write.
            phase: The phase after it.
            read: The conditions the period started from, when ``update`` has conditions made
                from them: only those it changed are written (:func:`controllers.kube.patch_status`).
        """
        await patch_status(self.api, self.path, update, read=None if read is None else dump_conditions(read))
        store = self.memo.get("status_store")
        if store is not None:
            store.update(INFO.kind, self.namespace, self.name, {**update, "phase": phase})


def outcome(
    driver: dict[str, Any] | None, name: str, elapsed_s: float, slack_s: float, core_seconds: float
) -> tuple[str, str]:
    """The final phase and the message of its Event."""
    if driver is None:
        return "Failed", f"the driver pod {driver_pod_name(name)} is gone"
    terminated = driver_terminated(driver)
    # spark-submit's exit decides; the pod's phase only where it has none (an eviction): a plain
    # sidecar that failed first makes the pod Failed whatever the application did.
    if terminated is not None:
        failed = terminated.get("exitCode") != 0
    else:
        failed = ((driver.get("status") or {}).get("phase")) == "Failed"
    if failed:
        return "Failed", f"the application failed ({driver_exit(driver)})"
    phase = "Succeeded" if slack_s >= 0 else "DeadlineMissed"
    verb = "before" if phase == "Succeeded" else "after"
    return phase, f"finished in {elapsed_s:.0f} s, {abs(slack_s):.0f} s {verb} the deadline; {core_seconds:.0f} core-s"


def driver_terminated(driver: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``driver`` container's terminated state, once spark-submit has exited.

    The application ends with that container: a sidecar the driver template adds may keep the
    pod running after it.
    """
    return container_terminated(driver, DRIVER_CONTAINER)


def driver_end_s(driver: dict[str, Any] | None) -> float | None:
    """When the driver container terminated, if the pod says so."""
    finished = (driver_terminated(driver) or {}).get("finishedAt")
    return epoch_of(str(finished)) if finished else None


def driver_exit(driver: dict[str, Any]) -> str:
    """The driver container's exit, in words."""
    terminated = driver_terminated(driver)
    if terminated is not None:
        return f"exit code {terminated.get('exitCode')}, {terminated.get('reason', 'no reason given')}"
    return f"pod phase Failed: {(driver.get('status') or {}).get('message', 'no message')}"


__all__ = ["JobRun", "driver_ui_url", "run_daemon"]
