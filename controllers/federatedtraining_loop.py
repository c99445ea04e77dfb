"""The FederatedTraining daemon: one per training, following the coordinator's rounds.

A state machine keyed on ``status.phase``, one period every ``MLSCALE_FL_POLL_SECONDS``:

* ``Pending`` / ``Running``: keep the children there (recreate any that vanished), read the
  coordinator's ``GET /status`` through its Service (``MLSCALE_FL_COORDINATOR_URL``, a template
  with ``{service}`` and ``{namespace}``), copy the new rounds into the status
  (:func:`controllers.federatedtraining_status.follow`), set ``PodsWaiting`` from the pods
  (:mod:`controllers.pods_waiting`), update the metrics, announce phase changes with Events.
* ``TargetReached`` / ``BudgetExhausted`` / ``Failed``: delete the client pods, so no client
  works after the end (also on resume, in case an operator stopped between the two steps).

Everything needed to resume is in the status; a restarted operator copies only rounds it has
not recorded yet.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf
from pydantic import ValidationError

from controllers import admission
from controllers.daemons import sleep_unless_stopped
from controllers.federatedtraining_service import (
    INFO,
    create_children,
    stop_clients,
)
from controllers.federatedtraining_status import (
    ROLES,
    TERMINAL_PHASES,
    StatusStep,
    ended,
    follow,
    with_pods_waiting,
)
from controllers.flpods import coordinator_pod_name, coordinator_service_name, training_labels
from controllers.kube import (
    KubeApi,
    KubeError,
    container_terminated,
    core_path,
    group_path,
    owner_document,
    patch_status,
    scoped_api,
)
from controllers.pods_waiting import HeldUpPods, pod_states
from hyperfl.api import COORDINATOR_CONTAINER, FederatedTraining, FederatedTrainingStatus
from hyperfl.coordinator_status import STATUS_PATH, parse_status_document
from mlscale import API_GROUP_VERSION
from mlscale.api import SUBMITTED, dump_conditions, find_condition, utcnow

DEFAULT_COORDINATOR_URL = "http://{service}.{namespace}.svc:8000"
DEFAULT_POLL_S = 5.0
READ_TIMEOUT_S = 5.0
"""Longest wait for the coordinator's answer in one period."""


def coordinator_url(name: str, namespace: str) -> str:
    """Base URL of the coordinator's status server: ``MLSCALE_FL_COORDINATOR_URL`` filled in."""
    template = os.environ.get("MLSCALE_FL_COORDINATOR_URL") or DEFAULT_COORDINATOR_URL
    return template.format(service=coordinator_service_name(name), namespace=namespace)


def poll_s() -> float:
    """The sampling period (``MLSCALE_FL_POLL_SECONDS``, 5 s by default)."""
    value = os.environ.get("MLSCALE_FL_POLL_SECONDS")
    return DEFAULT_POLL_S if value in (None, "") else max(0.05, float(value))


def validated(obj: dict[str, Any]) -> FederatedTraining | None:
    """The training as a model, or ``None`` when its spec is invalid (admission says why)."""
    return admission.stored_resource(FederatedTraining, obj)


async def run_daemon(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, stopped: kopf.DaemonStopped) -> None:
    """Follow the training until it ends, is deleted, or the operator stops.

    Args:
        body: The FederatedTraining (for Events; each period reads the object afresh).
        memo: The operator's shared state (client, status store).
        logger: The per-object logger.
        stopped: Set by kopf when the daemon must stop.
    """
    name = str(body.metadata.name)
    namespace = str(body.metadata.namespace)
    path = group_path(API_GROUP_VERSION, INFO.plural, namespace, name)
    timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT_S)
    connector = aiohttp.TCPConnector(force_close=True)
    async with scoped_api(memo) as api, aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        follower = TrainingFollower(api, http, body, memo, logger)
        while not stopped:
            began_s = time.monotonic()
            obj = await api.get(path)
            if obj is None or obj.get("metadata", {}).get("deletionTimestamp"):
                return
            try:
                done = await follower.period(obj)
            except (TimeoutError, KubeError, aiohttp.ClientError) as exc:
                logger.warning("period of %s failed, retrying next period: %s", name, exc)
                done = False
            if done:
                return
            await sleep_unless_stopped(stopped, began_s + poll_s())


@dataclass
class TrainingFollower:
    """What one daemon uses every period; it keeps no state of its own (the status has it all).

    Attributes:
        api: The Kubernetes client.
        http: The session that reads the coordinator.
        body: The FederatedTraining as kopf gave it (for Events).
        memo: The operator's shared state (the status store).
        logger: The per-object logger.
    """

    api: KubeApi
    http: aiohttp.ClientSession
    body: kopf.Body
    memo: kopf.Memo
    logger: kopf.Logger
    held_pods: HeldUpPods | None = None

    async def period(self, obj: dict[str, Any]) -> bool:
        """One step of the state machine; ``True`` once the training has ended and its clients are gone."""
        namespace = str(obj["metadata"].get("namespace") or self.body.metadata.namespace)
        name = str(obj["metadata"]["name"])
        try:
            current = FederatedTrainingStatus.model_validate(obj.get("status") or {})
        except ValidationError as exc:
            self.logger.error("status of %s is unreadable, not following it: %s", name, exc)
            return False
        if current.phase in TERMINAL_PHASES:
            removed = await stop_clients(self.api, namespace, name)
            if removed:
                self.logger.info("%s is %s: %d client pods deleted", name, current.phase, removed)
            return True
        job = validated(obj)
        if job is None or not _is_true(current, "Accepted") or not _is_true(current, SUBMITTED):
            return False  # refused, or not started yet: admission and the create handler say why
        step = await self.observe(job, obj, current, namespace, now=utcnow())
        if step.update:
            path = group_path(API_GROUP_VERSION, INFO.plural, namespace, name)
            await patch_status(self.api, path, step.update, read=dump_conditions(current.conditions))
        store = self.memo.get("status_store")
        if store is not None:
            store.update(INFO.kind, namespace, name, {**step.update, "phase": step.phase})
        if step.new_rounds:
            self.logger.info(
                "round=%s accuracy=%s target=%g predicted=%s client_epochs=%s",
                step.update.get("round"), step.update.get("accuracy"), job.spec.target.value,
                step.update.get("predictedRoundsToTarget"), step.update.get("clientEpochs"),
            )  # fmt: skip
        change = step.change
        if change is not None:
            (kopf.warn if change.warning else kopf.info)(self.body, reason=change.phase, message=change.message)
            self.logger.info("%s: phase %s -> %s: %s", name, current.phase, change.phase, change.message)
        if step.phase in TERMINAL_PHASES:
            removed = await stop_clients(self.api, namespace, name)
            self.logger.info("%s is %s: %d client pods deleted", name, step.phase, removed)
            return True
        return False

    async def observe(
        self,
        job: FederatedTraining,
        obj: dict[str, Any],
        current: FederatedTrainingStatus,
        namespace: str,
        *,
        now: dt.datetime,
    ) -> StatusStep:
        """Check the children, read the coordinator, and work out the status update."""
        name = job.metadata.name
        pods = await self.api.list(core_path("pods", namespace), training_labels(name))
        coordinator = next((p for p in pods if p["metadata"]["name"] == coordinator_pod_name(name)), None)
        pod_phase = coordinator_phase(coordinator)
        reported = await read_coordinator(self.http, coordinator_url(name, namespace), self.logger)
        if pod_phase in ("Failed", "Succeeded") and (pod_phase == "Failed" or reported is None):
            step = follow(job, current, reported, now=now)
            if step.phase not in TERMINAL_PHASES:
                what = "failed" if pod_phase == "Failed" else "ended before reporting the end of the run"
                message = f"the coordinator pod {coordinator_pod_name(name)} {what}: {_pod_message(coordinator or {})}"
                step = ended(current, message, now=now)
            return with_pods_waiting(self.body, job, current, step, {}, now=now)  # clears it: the run ended
        existing = {f"pods/{p['metadata']['name']}" for p in pods}
        services = await self.api.list(core_path("services", namespace), training_labels(name))
        existing |= {f"services/{s['metadata']['name']}" for s in services}
        made = await create_children(self.api, owner_document(obj), job, namespace, existing)
        if made:
            self.logger.warning("recreated missing children of %s: %s", name, ", ".join(made))
        if reported is not None and reported.round < current.round:
            self.logger.warning(
                "the coordinator reports round %d, behind the status (%d): waiting for it to catch up",
                reported.round, current.round,
            )  # fmt: skip
        waiting = await self.held(namespace, name).held_up(pod_states(pods, ROLES))
        return with_pods_waiting(self.body, job, current, follow(job, current, reported, now=now), waiting, now=now)

    def held(self, namespace: str, name: str) -> HeldUpPods:
        """What this training's pods that cannot run were found held by (kept between periods)."""
        if self.held_pods is None:
            self.held_pods = HeldUpPods(self.api, namespace, f"{namespace}/{name}")
        return self.held_pods


async def read_coordinator(
    http: aiohttp.ClientSession, url: str, logger: kopf.Logger
) -> FederatedTrainingStatus | None:
    """The coordinator's status, or ``None`` while it cannot be read (starting, restarting, gone)."""
    try:
        async with http.get(url + STATUS_PATH) as response:
            if response.status != 200:
                logger.debug("coordinator at %s answered %d", url, response.status)
                return None
            document = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        logger.debug("coordinator at %s not readable yet: %s", url, exc)
        return None
    try:
        return parse_status_document(document)
    except ValidationError as exc:
        logger.warning("coordinator at %s answered a status the operator cannot read: %s", url, exc)
        return None


def _is_true(status: FederatedTrainingStatus, type_: str) -> bool:
    condition = find_condition(status.conditions, type_)
    return condition is not None and condition.status == "True"


def coordinator_phase(pod: dict[str, Any] | None) -> str | None:
    """The coordinator's phase: its pod's, or ``Succeeded`` once the ``coordinator`` container exited cleanly.

    A sidecar the coordinator template adds may keep the pod running after the rounds ended.
    """
    terminated = container_terminated(pod, COORDINATOR_CONTAINER)
    if terminated is not None and terminated.get("exitCode") == 0:
        return "Succeeded"
    phase = ((pod or {}).get("status") or {}).get("phase")
    return None if phase is None else str(phase)


def _pod_message(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    terminated = container_terminated(pod, COORDINATOR_CONTAINER)
    if terminated:
        return f"exit code {terminated.get('exitCode')}, {terminated.get('reason', 'no reason given')}"
    return str(status.get("message") or status.get("reason") or "no reason given")
