"""The InferenceService loop in a cluster: cores follow the latency, then the replica count; resume; contention.

The router is a fake on 127.0.0.1 whose latency each test sets; the replica pods are created
by the test from the Deployment's template (the emulator runs no Deployment controller), and
every in-place resize the operator sends is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest

from tests.operator.harness import NAMESPACE, Cluster, RunningOperator, start_operator
from tests.operator.inferenceservice_helpers import (
    BASE,
    DEPLOYMENTS,
    PODS,
    SLO_MS,
    FakeReplicaMetrics,
    FakeRouter,
    RecordingEmulator,
    condition,
    condition_is,
    create_node,
    create_replica_pods,
    events,
    fake_router,
    items,
    recording_emulator,
    server_cpu,
    service,
    service_path,
    status_of,
    wait_for_events,
)

pytestmark = pytest.mark.operator

FAST = 20.0
"""Latency well inside the SLO (ms)."""
SLOW = 300.0
"""Latency three times the SLO (ms)."""


@pytest.fixture
async def emulator() -> AsyncIterator[kmock.KubernetesEmulator]:
    async for handler in recording_emulator():
        yield handler


@pytest.fixture
async def router(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeRouter]:
    async for fake in fake_router(monkeypatch):
        yield fake


async def start_serving(cluster: Cluster, name: str = "cnn", *, node: str | None = None, **spec: Any) -> None:
    """Create the service and, once its Deployment exists, its first replica pod."""
    await cluster.create(f"{BASE}/inferenceservices", service(name, **spec))
    await cluster.wait_for(service_path(name), lambda o: condition_is(o, "Submitted", "True"))
    await create_replica_pods(cluster, f"{name}-cpu", 1, node=node)


async def pod_cores(cluster: Cluster, pod: str) -> float | None:
    return server_cpu(await cluster.get(f"{PODS}/{pod}"))


def cores_at_most(limit: float) -> Any:
    return lambda pod: (server_cpu(pod) or 99.0) <= limit + 1e-9


def replicas_are(count: int) -> Any:
    return lambda obj: obj is not None and obj["spec"]["replicas"] == count


async def test_slow_service_gets_cores_then_a_replica(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    router.serve(FAST)
    await start_serving(cluster)
    # Fast: the law releases cores, a resize at a time.
    await cluster.wait_for(f"{PODS}/cnn-cpu-0", cores_at_most(1.0))
    released = [cores for pod, cores in RecordingEmulator.resizes if pod == "cnn-cpu-0"]
    assert released == sorted(released, reverse=True)
    assert min(released) >= 0.2
    obj = await cluster.get(service_path())
    assert condition_is(obj, "SloMet", "True")
    low = await pod_cores(cluster, "cnn-cpu-0")
    assert low is not None

    # Slow: the cores come back first ...
    count = len(RecordingEmulator.resizes)
    router.serve(SLOW, requests=200, violations=150)
    await cluster.wait_for(f"{PODS}/cnn-cpu-0", lambda p: server_cpu(p) == 2.0)
    raised = [cores for _, cores in RecordingEmulator.resizes[count:]]
    assert raised[0] > low
    assert raised == sorted(raised)
    # ... then, at coresMax and still slow, a second replica.
    await cluster.wait_for(f"{DEPLOYMENTS}/cnn-cpu", replicas_are(2))
    obj = await cluster.wait_for(service_path(), lambda o: status_of(o).get("replicas") == 2)
    status = status_of(obj)
    assert status["phase"] == "Running"
    assert status["latencyMs"] == SLOW
    assert status["requestsPerSecond"] == 50.0
    assert status["cores"] == 2.0
    assert status["allocations"] == [{"name": "cnn-cpu-0", "cores": 2.0, "accelerator": False}]
    assert len(status["controlState"]["law"]["regulators"]) == 2
    assert condition_is(obj, "SloMet", "False")
    assert f"{SLO_MS:g} ms" in str((condition(obj, "SloMet") or {}).get("message"))
    (scaled,) = await wait_for_events(cluster, "ScaledOut")
    assert "1 -> 2" in scaled["message"]

    # The violation ratio is that of the requests since the last period; the metrics follow the status.
    router.serve(SLOW, requests=100, violations=25)
    obj = await cluster.wait_for(service_path(), lambda o: status_of(o).get("sloViolationRatio") == 0.25)
    url = f"http://127.0.0.1:{operator.memo['metrics_port']}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    labels = f'{{name="cnn",namespace="{NAMESPACE}"}}'
    assert f"mlscale_inferenceservice_latency_ms{labels} {SLOW}" in text
    assert f"mlscale_inferenceservice_replicas{labels} 2.0" in text
    assert f"mlscale_inferenceservice_requests_per_second{labels} 50.0" in text
    assert 'mlscale_resources{kind="InferenceService",phase="Running"} 1.0' in text


async def test_fast_service_gives_back_a_replica_and_cores(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    router.serve(SLOW)
    await start_serving(cluster)
    await cluster.wait_for(f"{DEPLOYMENTS}/cnn-cpu", replicas_are(2))
    await create_replica_pods(cluster, "cnn-cpu", 1, first=1)
    router.serve(FAST)
    # Both replicas release cores, then, low for scaleDownWindowSeconds, one replica goes.
    await cluster.wait_for(f"{PODS}/cnn-cpu-1", cores_at_most(1.2))
    await cluster.wait_for(f"{DEPLOYMENTS}/cnn-cpu", replicas_are(1), timeout_s=15)
    (scaled,) = await wait_for_events(cluster, "ScaledIn")
    assert "2 -> 1" in scaled["message"]
    obj = await cluster.wait_for(service_path(), lambda o: status_of(o).get("replicas") == 1)
    assert condition_is(obj, "SloMet", "True")
    assert len(status_of(obj)["controlState"]["law"]["regulators"]) == 1
    # The survivor is given what both held, then the law goes on releasing.
    assert [pod for pod, _ in RecordingEmulator.resizes].count("cnn-cpu-0") >= 2


async def test_the_cpu_a_request_costs_floors_the_cores_and_a_rate_step_adds_a_replica(
    router: FakeRouter, kubeconfig: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replica uses 0.7 core for 50 req/s: 0.014 core-s a request, so 50 req/s needs
    # 1.0 core at the law's 70 % utilisation, however fast the latency looks.
    metrics = FakeReplicaMetrics(cores_used=0.7)
    monkeypatch.setenv("MLSCALE_REPLICA_METRICS_URL", await metrics.start())
    op = await start_operator()
    try:
        router.serve(FAST)
        await start_serving(cluster)
        obj = await cluster.wait_for(service_path(), lambda o: learned_cost(o) is not None)
        assert "cnn-cpu-0" in metrics.reads
        assert learned_cost(obj) == pytest.approx(0.014, rel=0.25)
        await cluster.wait_for(f"{PODS}/cnn-cpu-0", cores_at_most(1.2))
        # Fast as it is, the service keeps the cores its load needs (the latency alone
        # releases them down to coresMin, 0.2, as the tests above show).
        await router_periods(router, 20)
        assert min(cores for _, cores in RecordingEmulator.resizes) >= 0.95
        # Three times the rate needs 3 cores, more than one replica's coresMax of 2: a second
        # replica comes while the latency is still fast.
        router.requests_per_second = 150.0
        await cluster.wait_for(f"{DEPLOYMENTS}/cnn-cpu", replicas_are(2))
        assert router.latency_ms == FAST
    finally:
        await op.stop()
        await metrics.stop()


def learned_cost(obj: dict[str, Any] | None) -> float | None:
    """The CPU seconds a request costs, as the law in the status has learned them."""
    law = (status_of(obj).get("controlState") or {}).get("law") or {}
    cost = (law.get("demand") or {}).get("cost_core_s")
    return None if cost is None else float(cost)


async def router_periods(router: FakeRouter, periods: int) -> None:
    """Wait until the operator has read the router ``periods`` more times."""
    target = router.stats_reads + periods
    for _ in range(200):
        if router.stats_reads >= target:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the operator stopped reading the router")


async def test_restart_resumes_the_law_from_the_status(router: FakeRouter, kubeconfig: Path, cluster: Cluster) -> None:
    router.serve(FAST)
    first = await start_operator()
    try:
        await start_serving(cluster)
        await cluster.wait_for(f"{PODS}/cnn-cpu-0", cores_at_most(1.2))
    finally:
        await first.stop()
    held = await pod_cores(cluster, "cnn-cpu-0")
    assert held is not None
    saved = status_of(await cluster.get(service_path()))["controlState"]["law"]
    assert saved["regulators"][0]["cores"] == pytest.approx(held)
    count = len(RecordingEmulator.resizes)
    second = await start_operator()
    try:
        await cluster.wait_for(f"{PODS}/cnn-cpu-0", cores_at_most(held - 0.3))
    finally:
        await second.stop()
    # Resumed where it was: no period started the replica over at coresMax.
    after = [cores for _, cores in RecordingEmulator.resizes[count:]]
    assert after
    assert max(after) < held
    assert len(events(cluster, "Running")) == 1
    assert len(items(await cluster.get(DEPLOYMENTS))) == 2


async def test_services_sharing_a_node_are_cut_in_proportion(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    router.serve(SLOW)
    await create_node(cluster, "node-1", "3")
    fixed = {"replicas": {"min": 1, "max": 1}}
    await start_serving(cluster, "cnn", node="node-1", **fixed)
    await start_serving(cluster, "resnet", node="node-1", **fixed)
    # Both ask coresMax (2) on a node with 3 cores: each gets about half of it.
    for name in ("cnn", "resnet"):
        obj = await cluster.wait_for(service_path(name), lambda o: condition_is(o, "Contended", "True"))
        assert "scaled" in str((condition(obj, "Contended") or {}).get("message"))
        assert [e["type"] for e in await wait_for_events(cluster, "Contended", name)][:1] == ["Warning"]

    # Settled: each holds about half of the node. Both laws keep pushing up from the cut they
    # were given, so a period may find one asking a step less than coresMax (1.9 against 2 gives
    # 1.46 and 1.54): the shares follow the requests, never above what was asked.
    def near_half(pod: dict[str, Any] | None) -> bool:
        cpu = server_cpu(pod)
        return cpu is not None and abs(cpu - 1.5) <= 0.1

    await cluster.wait_for(f"{PODS}/cnn-cpu-0", near_half)
    await cluster.wait_for(f"{PODS}/resnet-cpu-0", near_half)
    # Together they fit the node. Each loop cuts by the other's last request, so for a period one
    # may hold a step more (1.67 beside 1.5 was read once, under load): settled, they fit.
    held: list[float] = []
    for _ in range(100):
        held = [server_cpu(await cluster.get(f"{PODS}/{name}-cpu-0")) or 0.0 for name in ("cnn", "resnet")]
        if sum(held) <= 3.0 + 0.05:
            break
        await asyncio.sleep(0.1)
    assert sum(held) <= 3.0 + 0.05, held
    for name in ("cnn", "resnet"):
        status = status_of(await cluster.get(service_path(name)))
        (asked,) = status["controlState"]["requestedCores"]  # what the law asked before the cut
        assert asked > 1.5
        assert 1.4 <= status["cores"] <= min(asked, 1.6)
