"""The InferenceService control loop in a cluster: one kopf daemon per service, one period per sampling interval.

Every ``control.periodSeconds``, once the service is accepted and its children exist:

1. recreate any child that vanished; list the service's pods and Deployments, and write
   ``PodsWaiting`` at once when what holds them up changed (:mod:`controllers.pods_waiting`);
2. register the ready ones with the router (``PUT /admin/replicas``, the complete set), so the
   router follows scale steps, restarts and unready pods within a period;
3. while no CPU replica is ready, stop there (phase ``Pending``): the law is not run on the
   silence of a service still loading its model;
4. run :func:`roma.loop.control_period` — the same function ``mlscale run`` uses — with the
   router as sensor (``GET /stats``), the law resumed from ``status.controlState``, the pods as
   actuator (in-place resize, CPU Deployment ``/scale``) and the contention arbiter fed with
   the capacity of the replicas' nodes and the other InferenceServices' replicas there;
5. write the status (figures, conditions ``SloMet`` / ``Contended`` / ``ResizeUnsupported``,
   the law's state), post Events on scale steps, and update the metrics.

A cluster that refuses in-place resize gets ``ResizeUnsupported=True`` once; from then on the
pods keep their cores and the law's allocation drives the replica count alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import kopf

from controllers import admission
from controllers.conditions import announce, is_true
from controllers.daemons import sleep_unless_stopped
from controllers.inferenceservice_service import INFO, apply_children, router_admin_token, served_spec
from controllers.inferenceservice_status import (
    CONTENDED,
    RESIZE_UNSUPPORTED,
    ROLES,
    PeriodFigures,
    measured_fields,
    parse_time,
    pods_waiting,
    resume_law,
    scale_message,
    slo_condition,
)
from controllers.kube import (
    COMPONENT_LABEL,
    KubeApi,
    KubeError,
    core_path,
    group_path,
    owner_document,
    patch_status,
    scoped_api,
)
from controllers.pods_waiting import Held, HeldUpPods, deployment_problem, pod_states
from controllers.refusals import REJECTED
from controllers.replica_pods import (
    CpuMeter,
    PodReplicaActuator,
    neighbour_requests,
    node_share,
    registrations,
    replica_pods,
)
from controllers.router_client import READ_TIMEOUT_S, RouterClient, RouterUnavailableError, router_url
from controllers.servingpods import cpu_deployment_name, service_labels
from mlscale import API_GROUP_VERSION
from mlscale.api import (
    SUBMITTED,
    conditions_of,
    dump_conditions,
    find_condition,
    rfc3339,
    utcnow,
)
from roma.api import InferenceService
from roma.law import ServiceAllocationLaw
from roma.loop import control_period
from roma.policies import MlscalePolicy

log = logging.getLogger(__name__)

IDLE_PERIOD_S = 1.0
"""How often a service that cannot run yet (not accepted, no image) is looked at again."""
"""How soon a waiting loop notices that kopf asked it to stop."""


def validated(obj: dict[str, Any], *, served: bool = False) -> InferenceService | None:
    """The service as a model, or ``None`` when its spec is invalid (admission says why).

    ``served``: the spec is the one its children were made from, admitted then whatever was
    checked since.
    """
    return admission.stored_resource(InferenceService, obj, served=served)


async def run_daemon(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped) -> None:
    """Run the service's loop until it is deleted or the operator stops.

    Args:
        body: The InferenceService (for Events; each period reads the object afresh).
        memo: The operator's shared state (client, status store).
        stopped: Set by kopf when the daemon must stop.
    """
    timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT_S)
    connector = aiohttp.TCPConnector(force_close=True)
    async with scoped_api(memo) as api, aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        run = ServiceRun(api, http, body, memo)
        while not stopped:
            began_s = time.monotonic()
            try:
                obj = await api.get(run.path)
                if obj is None or obj.get("metadata", {}).get("deletionTimestamp"):
                    return
                period_s = await run.period(obj)
            except (TimeoutError, KubeError, aiohttp.ClientError, RouterUnavailableError) as exc:
                log.warning("control period of %s/%s failed, retrying: %s", run.namespace, run.name, exc)
                period_s = IDLE_PERIOD_S if run.law is None else run.period_s
            await sleep_unless_stopped(stopped, began_s + period_s)


class ServiceRun:
    """One service's loop; the law it keeps between periods is recoverable from the status.

    Args:
        api: The Kubernetes client.
        http: The session that speaks to the router.
        body: The InferenceService as kopf holds it (Events are posted about it).
        memo: The operator's shared state (the status store).
    """

    def __init__(self, api: KubeApi, http: aiohttp.ClientSession, body: kopf.Body, memo: kopf.Memo) -> None:
        self.api = api
        self.http = http
        self.body = body
        self.memo = memo
        self.name = str(body.metadata.name)
        self.namespace = str(body.metadata.namespace)
        self.path = group_path(API_GROUP_VERSION, INFO.plural, self.namespace, self.name)
        self.law: ServiceAllocationLaw | None = None
        """The allocation law, loaded from ``status.controlState`` on the first period."""
        self.configured: str | None = None
        """The spec the law was configured from (JSON): an applied change of it reconfigures the law."""
        self.period_s = IDLE_PERIOD_S
        self.cpu_meter = CpuMeter()
        """The replicas' CPU counters read in earlier periods."""
        self.held = HeldUpPods(api, self.namespace, f"{self.namespace}/{self.name}")
        """Which of its pods cannot run, from their status and the kubelet's Events."""

    async def period(self, obj: dict[str, Any]) -> float:
        """One period; returns the time until the next one."""
        svc = validated(obj)
        status = dict(obj.get("status") or {})
        conditions = conditions_of(status)
        read = dump_conditions(conditions)
        submitted = find_condition(conditions, SUBMITTED)
        if submitted is None or (submitted.status != "True" and submitted.reason != REJECTED):
            return IDLE_PERIOD_S  # not started: admission and the create handler say why
        accepted = svc is not None and is_true(conditions, "Accepted")
        deployments = await self.deployments()
        cpu = deployments.get(cpu_deployment_name(self.name))
        raw = served_spec(cpu)
        served = None if raw is None else validated({**obj, "spec": raw}, served=True)
        if served is not None:
            # The spec the handler applied last, not one it may be about to refuse, nor an edit that
            # admission refused (an invalid value): the replicas keep being served meanwhile.
            svc = served
        elif (
            svc is not None
            and accepted
            and submitted.status == "True"
            and submitted.observed_generation
            in (
                None,
                svc.metadata.generation,
            )
        ):
            raw = dict(obj.get("spec") or {})
        elif svc is None or not accepted or cpu is None:
            return IDLE_PERIOD_S  # nothing runs yet, or nothing to serve by
        else:
            raw = None  # children made by an operator that kept no spec on them: serve, recreate nothing
        spec = svc.spec
        self.period_s = spec.control.period_seconds
        if raw is not None:
            made = await apply_children(self.api, owner_document(obj), svc, self.namespace, served=raw)
            if made:
                log.warning("recreated missing children of %s/%s: %s", self.namespace, self.name, ", ".join(made))
                deployments = await self.deployments()
        children = await self.api.list(core_path("pods", self.namespace), service_labels(self.name))
        now = utcnow()
        waiting = await self.held_up(children, deployments.values())
        held = pods_waiting(self.body, conditions, waiting, now=now, generation=svc.metadata.generation)
        if dump_conditions(held) != dump_conditions(conditions):
            # Said at once: the router may not answer, nor any replica be ready, while pods cannot run.
            await patch_status(self.api, self.path, {"conditions": dump_conditions(held)}, read=read)
            read, conditions = dump_conditions(held), held
        pods = replica_pods(children)
        start = parse_time(str(status["startTime"])) if status.get("startTime") else now
        token = await router_admin_token(self.api, owner_document(obj), self.name, self.namespace)
        url = router_url(self.name, self.namespace)
        router = RouterClient(self.http, url, spec.model.name, start.timestamp(), admin_token=token)
        try:
            await router.register(registrations(pods, spec.model.name, slots=max(2, spec.batching.max_batch_size)))
        except RouterUnavailableError as exc:
            # The router serves with the replicas it has (a token replaced a moment ago reaches it
            # when the kubelet updates its mount); the period still reads it and sizes them.
            log.warning("%s/%s: %s", self.namespace, self.name, exc)
        if not any(p.ready and not p.accelerator for p in pods):
            return self.period_s
        configured = spec.model_dump_json()
        if self.law is None or self.configured != configured:
            saved = (status.get("controlState") or {}).get("law") if self.law is None else self.law.to_dict()
            self.law = resume_law(spec, saved)
            self.configured = configured
        share = await node_share(self.api, self.namespace, self.name, pods)
        deployment = deployments.get(cpu_deployment_name(self.name))
        actuator = PodReplicaActuator(
            self.api,
            self.namespace,
            cpu_deployment_name(self.name),
            ((deployment or {}).get("spec") or {}).get("replicas"),
            pods,
            resize=not is_true(conditions, RESIZE_UNSUPPORTED),
            http=self.http,
            meter=self.cpu_meter,
        )
        before = self.law.allocation.replicas
        outcome = await control_period(
            router,
            actuator,
            MlscalePolicy(self.law),
            f"{self.namespace}/{self.name}",
            capacity_cores=share.capacity_cores,
            floor_cores=spec.cpu.cores_min,
            other_services=await neighbour_requests(self.api, share),
        )
        after = self.law.allocation.replicas
        obs = outcome.observation
        state = dict(status.get("controlState") or {})
        figures = PeriodFigures(
            obs, after, pods, actuator.applied, state.get("requestsTotal"), state.get("violationsTotal")
        )
        update = measured_fields(figures)
        update["controlState"] = {
            "law": self.law.to_dict(),
            "requestsTotal": obs.requests,
            "violationsTotal": obs.violations,
            "requestedCores": [round(c, 3) for c in outcome.requested.cores],
        }
        generation = svc.metadata.generation
        conditions = slo_condition(conditions, svc, obs.effective_latency_s(), now=now)
        if share.capacity_cores is not None:
            conditions = announce(
                self.body,
                conditions,
                CONTENDED,
                "True" if outcome.contended else "False",
                reason="CoresShared" if outcome.contended else "CoresAvailable",
                message=f"Nodes {', '.join(share.nodes)}: {outcome.contention_message}.",
                now=now,
                generation=generation,
            )
        if actuator.unsupported is not None:
            message = (
                f"The cluster refused to resize replica pods in place ({actuator.unsupported}); continuing with "
                "horizontal scaling only: each replica keeps the cores it started with. In-place resize needs "
                "Kubernetes 1.33 or later (pods/resize)."
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
        update["conditions"] = dump_conditions(conditions)
        if not status.get("startTime"):
            update["startTime"] = rfc3339(start)
        phase = "Running"
        if status.get("phase") != phase:
            update["phase"] = phase
            ready = sum(1 for p in pods if p.ready)
            kopf.info(
                self.body, reason="Running", message=f"serving: {ready} ready replicas registered with the router"
            )
        if after != before:
            reason, message = scale_message(svc, before, after, obs.effective_latency_s())
            kopf.info(self.body, reason=reason, message=message)
            log.info("%s/%s %s: %s", self.namespace, self.name, reason, message)
        await patch_status(self.api, self.path, update, read=read)
        store = self.memo.get("status_store")
        if store is not None:
            store.update(INFO.kind, self.namespace, self.name, {**update, "phase": phase})
        return self.period_s

    async def deployments(self) -> dict[str, dict[str, Any]]:
        """The service's Deployments, by name."""
        listed = await self.api.list(group_path("apps/v1", "deployments", self.namespace), service_labels(self.name))
        return {str(d["metadata"]["name"]): d for d in listed}

    async def held_up(
        self, pods: Sequence[Mapping[str, Any]], deployments: Iterable[Mapping[str, Any]]
    ) -> dict[str, Held]:
        """The service's pods that cannot run and its Deployments that cannot have theirs, by name."""
        waiting = await self.held.held_up(pod_states(pods, ROLES))
        for deployment in deployments:
            meta = deployment.get("metadata") or {}
            role = ROLES.get(str((meta.get("labels") or {}).get(COMPONENT_LABEL)))
            problem = deployment_problem(deployment)
            if problem is not None and problem[0] == "ProgressDeadlineExceeded":
                # Its held pods say why better than the Deployment's timeout does.
                problem = None if any(held.role == role for held in waiting.values()) else problem
            if role is not None and problem is not None:
                waiting[str(meta["name"])] = Held(role, str(meta["name"]), *problem, deployment=True)
        return waiting


__all__ = ["ServiceRun", "run_daemon", "validated"]
