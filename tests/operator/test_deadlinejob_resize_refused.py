"""A cluster without in-place pod resize: the DeadlineJob runs on, without vertical control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import kmock
import pytest

from tests.operator.deadlinejob_helpers import (
    PODS,
    condition,
    condition_is,
    container_cpu,
    job_path,
    start_running,
    status_of,
    steps_after,
)
from tests.operator.harness import Cluster, Emulator, RunningOperator, register_crds
from tests.operator.spark_driver_fake import FakeSparkDriver

pytestmark = pytest.mark.operator


@attrs.frozen
class MethodNotAllowedError(kmock.KubernetesError):
    """What an API server without ``pods/resize`` (Kubernetes < 1.33) answers."""

    status: int = 405
    reason: str = "MethodNotAllowed"
    message: str = "the server does not allow this method on the requested resource"


class NoResizeEmulator(Emulator):
    """Refuses every ``pods/{name}/resize`` before storing anything, as such a server would."""

    resize_requests: int = 0

    async def serve(self, request: Any) -> Any:
        if request.subresource == "resize":
            type(self).resize_requests += 1
            raise MethodNotAllowedError()
        return await super().serve(request)


@pytest.fixture
async def emulator() -> AsyncIterator[kmock.KubernetesEmulator]:
    NoResizeEmulator.resize_requests = 0
    async with NoResizeEmulator() as handler, kmock.Server(handler):
        handler.resources.load_bundled()
        register_crds(handler)
        yield handler


async def test_refused_resize_continues_without_vertical_control(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    await start_running(cluster, driver)
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "ResizeUnsupported", "True"))
    step = float(status_of(obj)["controlState"]["lastStepSeconds"])
    driver.complete_tasks(0, {"1": 10, "2": 10})
    obj = await cluster.wait_for(job_path(), steps_after(step + 0.5))
    status = status_of(obj)
    assert status["phase"] == "Running"
    assert status["progress"] == pytest.approx(0.7)  # progress is still followed
    # One refusal is enough: no further resize is tried, and the executors keep their cores.
    assert NoResizeEmulator.resize_requests == 1
    assert {e["cores"] for e in status["executors"]} == {1.5}
    for executor_id in ("1", "2"):
        assert container_cpu(await cluster.get(f"{PODS}/pagerank-exec-{executor_id}")) == "1500m"
    message = str((condition(obj, "ResizeUnsupported") or {}).get("message"))
    assert "in place" in message
    assert "405" in message or "not allow" in message
    refused = await cluster.wait_for_events("pagerank", "ResizeUnsupported")
    assert [e.get("type") for e in refused] == ["Warning"]
    # No resize to time, so nothing said of how late resizes are.
    assert condition(obj, "ResizeLagging") is None
