"""A cluster without in-place pod resize: the InferenceService goes on with horizontal scaling only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import kmock
import pytest

from tests.operator.harness import Cluster, Emulator, RunningOperator, register_crds
from tests.operator.inferenceservice_helpers import (
    BASE,
    DEPLOYMENTS,
    PODS,
    FakeRouter,
    condition,
    condition_is,
    create_replica_pods,
    fake_router,
    server_cpu,
    service,
    service_path,
    status_of,
    wait_for_events,
)

pytestmark = pytest.mark.operator


@attrs.frozen
class ResizeNotAllowedError(kmock.KubernetesError):
    """What an API server without ``pods/resize`` (Kubernetes < 1.33) answers."""

    status: int = 405
    reason: str = "MethodNotAllowed"
    message: str = "the server does not allow this method on the requested resource"


class NoResizeEmulator(Emulator):
    """Refuses every ``pods/{name}/resize`` before storing anything, as such a server would."""

    refused: ClassVar[list[str]] = []

    async def serve(self, request: Any) -> Any:
        if request.subresource == "resize":
            type(self).refused.append(str(request.name))
            raise ResizeNotAllowedError()
        return await super().serve(request)


@pytest.fixture
async def emulator() -> AsyncIterator[kmock.KubernetesEmulator]:
    NoResizeEmulator.refused = []
    async with NoResizeEmulator() as handler, kmock.Server(handler):
        handler.resources.load_bundled()
        register_crds(handler)
        yield handler


@pytest.fixture
async def router(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeRouter]:
    async for fake in fake_router(monkeypatch):
        yield fake


async def test_refused_resize_leaves_scaling_to_the_replica_count(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    router.serve(20.0)  # fast: the law wants fewer cores, and the cluster refuses to resize
    await cluster.create(f"{BASE}/inferenceservices", service())
    await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "True"))
    await create_replica_pods(cluster, "cnn-cpu", 1)
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "ResizeUnsupported", "True"))
    message = str((condition(obj, "ResizeUnsupported") or {}).get("message"))
    assert "405" in message
    assert "horizontal" in message
    (warning,) = await wait_for_events(cluster, "ResizeUnsupported")
    assert warning["type"] == "Warning"

    # Slow: the law's allocation climbs back to coresMax and a replica is added all the same.
    router.serve(300.0, requests=100, violations=90)
    await cluster.wait_for(f"{DEPLOYMENTS}/cnn-cpu", lambda o: o is not None and o["spec"]["replicas"] == 2)
    await wait_for_events(cluster, "ScaledOut")
    # One refusal is enough: no resize was tried again, and the pod kept its cores.
    assert NoResizeEmulator.refused == ["cnn-cpu-0"]
    assert server_cpu(await cluster.get(f"{PODS}/cnn-cpu-0")) == 2.0
    status = status_of(await cluster.get(service_path()))
    assert status["allocations"] == [{"name": "cnn-cpu-0", "cores": 2.0, "accelerator": False}]
    assert status["phase"] == "Running"
