"""Shared pieces of the InferenceService operator tests: the resource, a fake router, replica pods.

The fake router serves the same ``/stats`` JSON as :mod:`roma.router` on 127.0.0.1, with the
latency the test sets, and records the replica sets the operator registers. The emulator has
no Deployment controller: tests create the replica pods from the Deployment's template, as
the ReplicaSet controller would.
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import kmock
import pytest
from aiohttp import web

from mlscale.units import parse_cpu
from tests.operator.harness import NAMESPACE, Cluster, Emulator, register_crds

BASE = f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
LABEL = "mlscale.dev/inferenceservice"
COMPONENT = "app.kubernetes.io/component"
MODEL = "small-cnn"
SLO_MS = 100.0

SERVICE: dict[str, Any] = {
    "apiVersion": "mlscale.dev/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "cnn", "namespace": NAMESPACE, "generation": 1},
    "spec": {
        "model": {"name": MODEL, "builder": "examples.roma.models:small_cnn"},
        "slo": {"latencyMs": SLO_MS, "percentile": 95},
        "replicas": {"min": 1, "max": 2},
        "cpu": {"coresMin": "200m", "coresMax": "2"},
        "memory": "1Gi",
        "batching": {"maxBatchSize": 16, "maxDelayMs": 4},
        "control": {"periodSeconds": 0.2, "scaleDownWindowSeconds": 1},
        "image": "registry.example/mlscale-roma:0.1",
    },
}


def service(name: str = "cnn", **spec: Any) -> dict[str, Any]:
    """An InferenceService named ``name``, with ``spec``'s top-level keys replaced."""
    body = copy.deepcopy(SERVICE)
    body["metadata"]["name"] = name
    body["spec"].update(spec)
    return body


def service_path(name: str = "cnn") -> str:
    """API path of an InferenceService."""
    return f"{BASE}/inferenceservices/{name}"


def status_of(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The status of a stored object (empty when it has none)."""
    return dict((obj or {}).get("status") or {})


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition of that type in an object's status."""
    for cond in status_of(obj).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return None


def condition_is(obj: dict[str, Any] | None, type_: str, status: str) -> bool:
    """Whether the object's condition of that type has that status."""
    cond = condition(obj, type_)
    return cond is not None and cond["status"] == status


def items(listing: dict[str, Any] | None, name: str = "cnn") -> list[dict[str, Any]]:
    """The objects of a listing that belong to the service ``name``."""
    found = (listing or {}).get("items", [])
    return [i for i in found if (i["metadata"].get("labels") or {}).get(LABEL) == name]


def server_cpu(pod: dict[str, Any] | None) -> float | None:
    """The model-server container's CPU request in a stored pod, in cores."""
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        if container.get("name") == "server":
            cpu = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
            return None if cpu is None else parse_cpu(cpu)
    return None


def deployment_replicas(name: str) -> Callable[[dict[str, Any] | None], int | None]:
    """Reads a Deployment's ``spec.replicas`` (for ``wait_for`` predicates)."""

    def read(obj: dict[str, Any] | None) -> int | None:
        return None if obj is None else ((obj.get("spec") or {}).get("replicas"))

    return read


class FakeRouter:
    """The router's ``/stats`` and ``/admin/replicas`` on 127.0.0.1, with figures the test sets."""

    def __init__(self) -> None:
        self.latency_ms: float | None = 20.0
        self.requests_per_second = 50.0
        self.requests_total = 0
        self.violations_total = 0
        self.gpu_share: float | None = None
        self.registered: list[list[dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        """The Authorization header of each registration."""
        self.stats_reads = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    def serve(self, latency_ms: float | None, *, requests: int = 100, violations: int = 0) -> None:
        """Report ``latency_ms`` from now on; ``requests`` more completed, ``violations`` of them late."""
        self.latency_ms = latency_ms
        self.requests_total += requests
        self.violations_total += violations

    async def start(self) -> str:
        """Serve on a free port; return the base URL."""
        app = web.Application()
        app.router.add_get("/stats", self._stats)
        app.router.add_put("/admin/replicas", self._register)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _stats(self, _: web.Request) -> web.Response:
        self.stats_reads += 1
        entry: dict[str, Any] = {
            "slo_ms": SLO_MS,
            "percentile": 95.0,
            "window_s": 0.4,
            "requests_per_second": self.requests_per_second,
            "latency_ms": self.latency_ms,
            "latency_ms_p50": self.latency_ms,
            "latency_ms_p99": self.latency_ms,
            "requests_total": self.requests_total,
            "violations_total": self.violations_total,
            "queue_len": 0,
            "oldest_wait_ms": 0.0,
            "gpu_share": self.gpu_share,
            "replicas": {},
        }
        return web.json_response({"t_s": 1.0, "models": {MODEL: entry}})

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.registered.append(list(body.get("replicas", [])))
        self.authorizations.append(request.headers.get("Authorization"))
        return web.json_response(body)


class FakeReplicaMetrics:
    """Every replica's ``/metrics`` on 127.0.0.1: process CPU seconds growing at ``cores_used``."""

    def __init__(self, cores_used: float) -> None:
        self.cores_used = cores_used
        self.reads: list[str] = []
        self._started_s = time.monotonic()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Serve on a free port; return the URL template for ``MLSCALE_REPLICA_METRICS_URL``."""
        app = web.Application()
        app.router.add_get("/metrics/{pod}", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/metrics/{{pod}}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        self.reads.append(request.match_info["pod"])
        used = self.cores_used * (time.monotonic() - self._started_s)
        return web.Response(text=f"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {used}\n")


class RecordingEmulator(Emulator):
    """Records every in-place resize (pod name, cores) before storing it as the emulator does."""

    resizes: ClassVar[list[tuple[str, float]]] = []

    async def serve(self, request: Any) -> Any:
        if request.subresource == "resize" and isinstance(request.data, dict):
            for container in (request.data.get("spec") or {}).get("containers") or []:
                cpu = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
                if cpu is not None:
                    type(self).resizes.append((str(request.name), parse_cpu(cpu)))
        return await super().serve(request)


async def recording_emulator() -> AsyncIterator[kmock.KubernetesEmulator]:
    """The emulator, recording resizes (use as the body of an ``emulator`` fixture)."""
    RecordingEmulator.resizes = []
    async with RecordingEmulator() as handler, kmock.Server(handler):
        handler.resources.load_bundled()
        register_crds(handler)
        yield handler


async def fake_router(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeRouter]:
    """A fake router the operator reads through ``MLSCALE_ROUTER_URL`` (use as a fixture body)."""
    router = FakeRouter()
    monkeypatch.setenv("MLSCALE_ROUTER_URL", await router.start())
    try:
        yield router
    finally:
        await router.stop()


async def create_replica_pods(
    cluster: Cluster,
    deployment: str,
    count: int,
    *,
    first: int = 0,
    node: str | None = None,
    ready: bool = True,
) -> list[str]:
    """Create ``count`` pods from a Deployment's template, running and (by default) ready."""
    obj = await cluster.get(f"{DEPLOYMENTS}/{deployment}")
    assert obj is not None, f"no Deployment {deployment}"
    template = obj["spec"]["template"]
    names = []
    for index in range(first, first + count):
        name = f"{deployment}-{index}"
        spec = copy.deepcopy(template["spec"])
        if node is not None:
            spec["nodeName"] = node
        conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
        await cluster.create(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(template["metadata"]["labels"])},
                "spec": spec,
                "status": {"phase": "Running", "podIP": f"10.0.0.{10 + index}", "conditions": conditions},
            },
        )
        names.append(name)
    return names


async def create_node(cluster: Cluster, name: str, allocatable_cpu: str) -> None:
    """A node with that much allocatable CPU."""
    await cluster.create(
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": allocatable_cpu, "memory": "16Gi"}},
        },
    )


def events(cluster: Cluster, reason: str, name: str = "cnn") -> list[dict[str, Any]]:
    """Events with that reason about the service ``name``."""
    return [e for e in cluster.events(name) if e.get("reason") == reason]


async def wait_for_events(
    cluster: Cluster, reason: str, name: str = "cnn", timeout_s: float = 5.0
) -> list[dict[str, Any]]:
    """The Events with that reason about ``name`` once there is one (kopf posts them in the background)."""
    return await cluster.wait_for_events(name, reason, timeout_s)
