"""A DeadlineJob's executor pods: finding them, their nodes' cores, the CPU they used, resizing them.

:class:`PodCoresActuator` is the Kubernetes adapter of :class:`dynaspark.ports.CoresActuator`:
it gives each executor its cores by resizing its pod (``pods/{name}/resize``). The port is
synchronous (the same loop step runs locally), so the actuator runs in a worker thread and
hands each API call to the operator's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from controllers.kube import (
    KubeApi,
    KubeError,
    NotFoundError,
    ResizeUnsupportedError,
    container_cpu,
    core_path,
    is_being_created,
    list_pods_on_node,
    node_allocatable_cpu,
    pod_cpu,
    pod_problem,
    resize_pod_cpu,
)
from controllers.sparkpods import SPARK_EXEC_ID_LABEL, executor_labels
from dynaspark.api import EXECUTOR_CONTAINER
from mlscale.units import QuantityError, parse_cpu_usage

log = logging.getLogger(__name__)

T = TypeVar("T")
_ENDED = ("Succeeded", "Failed")
_CALL_TIMEOUT_S = 30.0
METRICS_API = "/apis/metrics.k8s.io/v1beta1"
"""The resource metrics API (served by metrics-server), where the kubelet's CPU measurements are read."""


@dataclass(frozen=True)
class ExecutorPod:
    """One executor's pod as the API server stores it.

    Attributes:
        executor_id: Spark's executor id (the pod's ``spark-exec-id`` label).
        pod: The pod's name.
        container: The container that runs the executor.
        node: The node it is scheduled on, if it is.
        cores: Its container's CPU request now, if it has one.
        ip: The pod's IP address, once it has one.
        running: Whether the pod is running (its containers have started).
        problem: Why it cannot run, if something holds it up (:func:`controllers.kube.pod_problem`).
        creating: Whether its containers are still being created.
        uid: The pod's uid.
    """

    executor_id: str
    pod: str
    container: str
    node: str | None
    cores: float | None
    ip: str | None = None
    running: bool = True
    problem: tuple[str, str] | None = None
    creating: bool = False
    uid: str = ""


def executor_pod(pod: Mapping[str, Any]) -> ExecutorPod | None:
    """The executor of a pod, or ``None`` when the pod has ended, is going, or names no executor."""
    meta = pod.get("metadata") or {}
    executor_id = (meta.get("labels") or {}).get(SPARK_EXEC_ID_LABEL)
    if executor_id is None or meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in _ENDED:
        return None
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    container = next((c for c in containers if c.get("name") == EXECUTOR_CONTAINER), containers[0])
    return ExecutorPod(
        executor_id=str(executor_id),
        pod=str(meta["name"]),
        container=str(container.get("name", EXECUTOR_CONTAINER)),
        node=(pod.get("spec") or {}).get("nodeName"),
        cores=container_cpu(container),
        ip=(pod.get("status") or {}).get("podIP"),
        running=(pod.get("status") or {}).get("phase") == "Running",
        problem=pod_problem(pod),
        creating=is_being_created(pod),
        uid=str(meta.get("uid") or ""),
    )


async def executor_pods(api: KubeApi, namespace: str, job_name: str) -> dict[str, ExecutorPod]:
    """The job's live executor pods, by Spark executor id."""
    pods = await api.list(core_path("pods", namespace), executor_labels(job_name))
    found = (executor_pod(p) for p in pods)
    return {e.executor_id: e for e in found if e is not None}


async def available_cores(api: KubeApi, pods: Mapping[str, ExecutorPod]) -> float | None:
    """Cores the executors' nodes can give them: allocatable minus what every other pod there requests.

    Returns:
        The sum over the executors' nodes, or ``None`` when it is unknown (an executor not
        scheduled yet, a node or its pods that cannot be read).
    """
    if not pods or any(p.node is None for p in pods.values()):
        return None
    ours = {p.pod for p in pods.values()}
    total = 0.0
    for node in sorted({p.node for p in pods.values() if p.node is not None}):
        allocatable = await node_allocatable_cpu(api, node)
        if allocatable is None:
            return None
        try:
            neighbours = await list_pods_on_node(api, node)
        except KubeError as exc:
            log.debug("cannot list the pods on node %s: %s", node, exc)
            return None
        live = [p for p in neighbours if (p.get("status") or {}).get("phase") not in _ENDED]
        # Other pods' requests, and our executors' sidecars (a template's): the executor containers share the rest.
        used = sum(
            pod_cpu(p) if (p.get("metadata") or {}).get("name") not in ours else pod_cpu(p, besides=EXECUTOR_CONTAINER)
            for p in live
        )
        total += max(0.0, allocatable - used)
    return total


async def executor_cpu_usage(
    api: KubeApi, namespace: str, job_name: str, pods: Mapping[str, ExecutorPod]
) -> dict[str, float]:
    """The CPU each executor used, in cores, as the resource metrics API last measured it.

    metrics-server averages the kubelet's measurements over its window (10 s or more), so the
    figure trails the control period; executors it has not measured yet are left out.

    Raises:
        KubeError: when the cluster serves no resource metrics API (``NotFoundError``) or
            refuses to answer.
    """
    items = await api.list(f"{METRICS_API}/namespaces/{namespace}/pods", executor_labels(job_name))
    executor_of = {p.pod: e for e, p in pods.items()}
    used: dict[str, float] = {}
    for item in items:
        executor = executor_of.get(str((item.get("metadata") or {}).get("name")))
        usages: list[str | int | float] = [
            cpu for c in item.get("containers") or [] if (cpu := (c.get("usage") or {}).get("cpu")) is not None
        ]
        if executor is None or not usages:
            continue
        try:
            used[executor] = math.fsum(parse_cpu_usage(u) for u in usages)
        except QuantityError as exc:
            log.debug("unreadable CPU usage of pod %s: %s", item.get("metadata"), exc)
    return used


class PodCoresActuator:
    """Gives each executor its cores by resizing its pod in place.

    Args:
        api: The Kubernetes client.
        namespace: The job's namespace.
        pods: The executor pods, by executor id.
        loop: The operator's event loop (the actuator itself runs in a worker thread).
        resize: ``False`` when the cluster refused resizing before: then nothing is resized
            and each executor keeps the cores its pod has.
    """

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        pods: Mapping[str, ExecutorPod],
        loop: asyncio.AbstractEventLoop,
        *,
        resize: bool = True,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.pods = dict(pods)
        self.loop = loop
        self.resize = resize
        self.unsupported: str | None = None
        """Why the cluster refused a resize, once it did."""
        self.resized: dict[str, float] = {}
        """The executors resized in this period and their new cores."""

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=_CALL_TIMEOUT_S)

    def apply(self, cores: Mapping[str, float]) -> Mapping[str, float]:
        """Resize each executor's pod to its cores; return what each executor has now."""
        applied: dict[str, float] = {}
        for executor_id, wanted in sorted(cores.items()):
            pod = self.pods.get(executor_id)
            if pod is None:
                continue  # Spark reports the executor before its pod is listed: next period
            current = pod.cores if pod.cores is not None else wanted
            if not self.resize or abs(current - wanted) < 1e-6:
                applied[executor_id] = current
                continue
            try:
                self._call(resize_pod_cpu(self.api, self.namespace, pod.pod, pod.container, wanted))
            except ResizeUnsupportedError as exc:
                self.unsupported = exc.message
                self.resize = False
                applied[executor_id] = current
                continue
            except NotFoundError:
                continue  # the pod went away between listing and resizing
            applied[executor_id] = wanted
            self.resized[executor_id] = wanted
        return applied
