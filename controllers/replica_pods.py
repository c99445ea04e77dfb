"""An InferenceService's model-server pods: finding them, their nodes' cores, resizing and scaling them.

:class:`PodReplicaActuator` is the cluster adapter of :class:`roma.ports.ReplicaActuator`: the
replica count is the CPU Deployment's ``spec.replicas`` (set through ``/scale``), each replica's
cores are its pod's CPU, changed in place (``pods/{name}/resize``). A cluster that refuses
in-place resize leaves every pod at the cores it started with; the count still follows the law.
The CPU each replica used (its server's ``process_cpu_seconds_total``, read from the pod's
``/metrics``) gives the law the cost of a request, from which it sizes the next period's load.

:func:`node_share` gives the contention arbiter its view: the cores the nodes of the service's
replicas can give to InferenceService replicas, and what the replicas of the other
InferenceServices on those nodes hold now.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from controllers.kube import (
    COMPONENT_LABEL,
    KubeApi,
    KubeError,
    NotFoundError,
    ResizeUnsupportedError,
    container_cpu,
    group_path,
    is_live,
    list_pods_on_node,
    node_allocatable_cpu,
    pod_cpu,
    resize_pod_cpu,
    scale_deployment,
)
from controllers.servingpods import (
    CPU_REPLICA,
    GPU_REPLICA,
    SERVER_PORT,
)
from mlscale import API_GROUP_VERSION
from roma.api import KIND, PLURAL, SERVER_CONTAINER

log = logging.getLogger(__name__)

SERVICE_LABEL = f"mlscale.dev/{KIND.lower()}"
_ENDED = ("Succeeded", "Failed")
CPU_METRIC = "process_cpu_seconds_total"
DEFAULT_METRICS_URL = f"http://{{ip}}:{SERVER_PORT}/metrics"
METRICS_TIMEOUT_S = 2.0
"""Longest wait for one replica's metrics in a period."""


@dataclass(frozen=True)
class ReplicaPod:
    """One model-server pod as the API server stores it.

    Attributes:
        name: The pod's name.
        cores: Its server container's CPU (request, else limit), if it has one.
        accelerator: Whether it is a GPU replica.
        node: The node it is scheduled on, if it is.
        ip: Its pod IP, once it has one.
        ready: Whether its ``Ready`` condition is true.
    """

    name: str
    cores: float | None
    accelerator: bool
    node: str | None
    ip: str | None
    ready: bool


def replica_pod(pod: Mapping[str, Any]) -> ReplicaPod | None:
    """The replica a pod runs, or ``None`` when it is no live model server."""
    meta = pod.get("metadata") or {}
    component = (meta.get("labels") or {}).get(COMPONENT_LABEL)
    if component not in (CPU_REPLICA, GPU_REPLICA) or not is_live(pod):
        return None
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    containers = spec.get("containers") or [{}]
    container = next((c for c in containers if c.get("name") == SERVER_CONTAINER), containers[0])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ReplicaPod(
        name=str(meta["name"]),
        cores=container_cpu(container),
        accelerator=component == GPU_REPLICA,
        node=spec.get("nodeName"),
        ip=status.get("podIP"),
        ready=ready,
    )


def replica_pods(pods: Sequence[Mapping[str, Any]]) -> list[ReplicaPod]:
    """The live model-server pods (CPU and GPU) among these, sorted by name."""
    found = (replica_pod(p) for p in pods)
    return sorted((r for r in found if r is not None), key=lambda r: r.name)


def registrations(pods: Sequence[ReplicaPod], model: str, slots: int) -> list[dict[str, Any]]:
    """The router's replica set: every ready pod with an IP, CPU and GPU."""
    return [
        {
            "name": p.name,
            "url": f"http://{p.ip}:{SERVER_PORT}",
            "models": [model],
            "accelerator": p.accelerator,
            "slots": slots,
        }
        for p in pods
        if p.ready and p.ip
    ]


@dataclass(frozen=True)
class NodeShare:
    """What the contention arbiter needs to know about the nodes of a service's CPU replicas.

    Attributes:
        capacity_cores: Cores those nodes can give to InferenceService CPU replicas: allocatable
            minus what every other pod there requests (``None`` when unknown).
        others: Per other InferenceService (``namespace/name``) with CPU replicas there, the
            cores each of those replicas holds now.
        nodes: The nodes considered.
    """

    capacity_cores: float | None
    others: dict[str, list[float]]
    nodes: tuple[str, ...]


async def node_share(api: KubeApi, namespace: str, name: str, pods: Sequence[ReplicaPod]) -> NodeShare:
    """The capacity and the neighbours of the service's CPU replicas on their nodes.

    Unknown (no capacity) when a CPU replica is not scheduled yet or a node cannot be read:
    then the law's request is applied as it is.
    """
    cpu = [p for p in pods if not p.accelerator]
    if not cpu or any(p.node is None for p in cpu):
        return NodeShare(None, {}, ())
    nodes = tuple(sorted({p.node for p in cpu if p.node is not None}))
    ours = f"{namespace}/{name}"
    capacity = 0.0
    others: dict[str, list[float]] = {}
    for node in nodes:
        allocatable = await node_allocatable_cpu(api, node)
        if allocatable is None:
            return NodeShare(None, {}, nodes)
        try:
            neighbours = await list_pods_on_node(api, node)
        except KubeError as exc:
            log.debug("cannot list the pods on node %s: %s", node, exc)
            return NodeShare(None, {}, nodes)
        fixed = 0.0
        for pod in neighbours:
            if not is_live(pod):
                continue
            meta = pod.get("metadata") or {}
            labels = meta.get("labels") or {}
            owner = labels.get(SERVICE_LABEL)
            if owner is not None and labels.get(COMPONENT_LABEL) == CPU_REPLICA:
                key = f"{meta.get('namespace', '')}/{owner}"
                if key != ours:
                    others.setdefault(key, []).append(pod_cpu(pod))
                else:
                    fixed += pod_cpu(pod, besides=SERVER_CONTAINER)  # a template's sidecars: not ours to share
                continue
            fixed += pod_cpu(pod)  # routers, GPU replicas, other workloads: not arbitrated
        capacity += max(0.0, allocatable - fixed)
    return NodeShare(capacity, others, nodes)


async def neighbour_requests(api: KubeApi, share: NodeShare) -> dict[str, list[float]]:
    """What the other services on the nodes ask for, replica by replica.

    Each service publishes the cores its law requested before arbitration in
    ``status.controlState.requestedCores``; arbitrating everyone's requests (not what each
    was granted) lets the shares add up to the capacity from whichever side it is computed.
    A service that published nothing is taken at the cores its pods hold now.
    """
    asked: dict[str, list[float]] = {}
    for key, held in share.others.items():
        namespace, _, name = key.partition("/")
        obj = await api.get(group_path(API_GROUP_VERSION, PLURAL, namespace, name))
        state = (((obj or {}).get("status") or {}).get("controlState")) or {}
        requested = [float(c) for c in state.get("requestedCores") or [] if isinstance(c, int | float)]
        asked[key] = [sum(requested) / len(requested)] * len(held) if requested else list(held)
    return asked


def replica_metrics_url(pod: ReplicaPod) -> str | None:
    """Where a replica's metrics are: ``MLSCALE_REPLICA_METRICS_URL`` (``{ip}``, ``{pod}``) filled in."""
    if not pod.ip:
        return None
    template = os.environ.get("MLSCALE_REPLICA_METRICS_URL") or DEFAULT_METRICS_URL
    return template.format(ip=pod.ip, pod=pod.name)


def cpu_seconds(metrics_text: str) -> float | None:
    """The process CPU seconds in a Prometheus text exposition, if it has them."""
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name == CPU_METRIC:
            try:
                return float(value.split()[0])
            except (IndexError, ValueError):
                return None
    return None


@dataclass
class CpuMeter:
    """Turns successive CPU-seconds counters of the replicas into utilisation of their cores.

    Attributes:
        readings: Per pod, the last (monotonic time, CPU seconds) read.
    """

    readings: dict[str, tuple[float, float]] = field(default_factory=dict)

    def utilisation(self, pod: str, now_s: float, cpu_s: float, cores: float) -> float | None:
        """CPU used per allocated core since the pod's previous reading (None on the first, or a restart)."""
        previous = self.readings.get(pod)
        self.readings[pod] = (now_s, cpu_s)
        if previous is None or cores <= 0:
            return None
        then_s, then_cpu_s = previous
        if now_s <= then_s or cpu_s < then_cpu_s:
            return None
        return (cpu_s - then_cpu_s) / ((now_s - then_s) * cores)

    def keep(self, pods: Sequence[str]) -> None:
        """Forget the pods that are gone."""
        for name in set(self.readings) - set(pods):
            del self.readings[name]


class PodReplicaActuator:
    """Replica count through the CPU Deployment, cores through in-place pod resize.

    Args:
        api: The Kubernetes client.
        namespace: The service's namespace.
        deployment: The CPU Deployment's name.
        deployment_replicas: Its ``spec.replicas`` now.
        pods: The live CPU replica pods, in the law's order (by name).
        resize: ``False`` once the cluster has refused a resize: pods keep their cores.
        http: Session to read the replicas' metrics with (``None``: CPU not measured).
        meter: The CPU readings of earlier periods (kept by the caller between periods).
    """

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        deployment: str,
        deployment_replicas: int | None,
        pods: Sequence[ReplicaPod],
        *,
        resize: bool = True,
        http: aiohttp.ClientSession | None = None,
        meter: CpuMeter | None = None,
    ) -> None:
        self.api = api
        self.http = http
        self.meter = meter
        self.namespace = namespace
        self.deployment = deployment
        self.deployment_replicas = deployment_replicas
        self.pods = {p.name: p for p in pods if not p.accelerator}
        self.resize = resize
        self.unsupported: str | None = None
        """Why the cluster refused a resize, once it did in this period."""
        self.applied: dict[str, float] = {p.name: p.cores for p in self.pods.values() if p.cores is not None}
        """Cores each CPU replica pod has after this period."""
        self.scaled: tuple[int | None, int] | None = None
        """The Deployment's replicas before and after, when this period changed them."""

    async def replicas(self) -> list[str]:
        """Names of the live CPU replica pods, by name."""
        return sorted(self.pods)

    async def set_replicas(self, count: int) -> list[str]:
        """Scale the CPU Deployment to ``count``; return the pods (up to ``count``) to give cores to.

        New pods appear when the Deployment controller makes them (a later period resizes them);
        on a scale-in it picks the pods to stop, and the survivors are resized next period.
        """
        if self.deployment_replicas != count:
            await scale_deployment(self.api, self.namespace, self.deployment, count)
            self.scaled = (self.deployment_replicas, count)
            self.deployment_replicas = count
        return sorted(self.pods)[:count]

    async def set_cores(self, cores: dict[str, float]) -> None:
        """Resize each named pod whose CPU differs from its cores (request = limit)."""
        for name, wanted in sorted(cores.items()):
            pod = self.pods.get(name)
            if pod is None:
                continue
            current = pod.cores if pod.cores is not None else wanted
            if not self.resize or abs(current - wanted) < 1e-6:
                continue
            try:
                await resize_pod_cpu(self.api, self.namespace, name, SERVER_CONTAINER, wanted)
            except ResizeUnsupportedError as exc:
                self.unsupported = f"{exc.status} {exc.reason}: {exc.message}"
                self.resize = False
                continue
            except NotFoundError:
                self.applied.pop(name, None)
                continue  # the pod went away between listing and resizing
            self.applied[name] = wanted

    async def cpu_utilisation(self) -> dict[str, float]:
        """Per ready CPU replica, CPU used per allocated core since the previous period."""
        if self.http is None or self.meter is None:
            return {}
        self.meter.keep(list(self.pods))
        out: dict[str, float] = {}
        for name, pod in sorted(self.pods.items()):
            url = replica_metrics_url(pod)
            if not pod.ready or pod.cores is None or url is None:
                continue
            try:
                timeout = aiohttp.ClientTimeout(total=METRICS_TIMEOUT_S)
                async with self.http.get(url, timeout=timeout) as resp:
                    resp.raise_for_status()
                    text = await resp.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("no metrics from replica %s at %s: %s", name, url, exc)
                continue
            used = cpu_seconds(text)
            if used is None:
                continue
            utilisation = self.meter.utilisation(name, time.monotonic(), used, pod.cores)
            if utilisation is not None:
                out[name] = utilisation
        return out
