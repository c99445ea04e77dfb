"""A failing handler retries with backoff, records an Event each time, and loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import kmock
import pytest

from tests.operator.harness import NAMESPACE, Cluster, Emulator, RunningOperator, register_crds
from tests.operator.test_admission import VALID

pytestmark = pytest.mark.operator

BASE = f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"


@attrs.frozen
class UnavailableError(kmock.KubernetesError):
    """What an overloaded API server answers."""

    status: int = 503
    reason: str = "ServiceUnavailable"
    message: str = "the server is currently unable to handle the request"


class FlakyEmulator(Emulator):
    """Refuses the first two Service creations, as a briefly overloaded API server would."""

    refusals_left: int = 2

    async def serve(self, request: Any) -> Any:
        is_service_create = request.action == kmock.action.CREATE and request.url.path.endswith("/services")
        if is_service_create and type(self).refusals_left > 0:
            type(self).refusals_left -= 1
            raise UnavailableError()
        return await super().serve(request)


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[kmock.KubernetesEmulator]:
    monkeypatch.setenv("MLSCALE_RETRY_BASE_SECONDS", "0.2")
    FlakyEmulator.refusals_left = 2
    async with FlakyEmulator() as handler, kmock.Server(handler):
        handler.resources.load_bundled()
        register_crds(handler)
        yield handler


async def test_failed_child_creation_is_retried_with_events(operator: RunningOperator, cluster: Cluster) -> None:
    body = dict(VALID["inferenceservices"])
    body["spec"] = {**body["spec"], "image": "registry.example/mlscale-serving:0.1"}
    await cluster.create(f"{BASE}/inferenceservices", body)
    services = await cluster.wait_for(SERVICES, lambda o: len((o or {}).get("items", [])) >= 2, timeout_s=20)
    assert services is not None
    assert FlakyEmulator.refusals_left == 0
    failures = [e for e in cluster.events("cnn") if "retry" in e.get("message", "")]
    assert len(failures) >= 2, [(e.get("type"), e.get("message")) for e in cluster.events("cnn")]
    assert all(e["type"] == "Warning" for e in failures)
    assert all(e["reason"] == "RetryingAfterError" for e in failures)
    assert "503" in failures[0]["message"]
    assert "retry 1 in 0.2 s" in failures[0]["message"]
