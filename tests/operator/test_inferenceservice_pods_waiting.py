"""An InferenceService whose pods cannot run says which and why.

Pods its ReplicaSet may not create (a Pod Security refusal shows only in the Deployment's
conditions), a GPU replica no node can take, a router that keeps crashing while nothing
answers on its port: ``PodsWaiting=True`` naming the Deployment or pod, the reason, the
message and the spec field to fix, with a Warning Event; ``False`` with a Normal Event once
they run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controllers.pods_waiting import deployment_problem
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator
from tests.operator.inferenceservice_helpers import (
    BASE,
    DEPLOYMENTS,
    PODS,
    FakeRouter,
    condition,
    condition_is,
    create_replica_pods,
    events,
    fake_router,
    service,
    service_path,
    status_of,
    wait_for_events,
)

pytestmark = pytest.mark.operator

GPU = {"count": 1, "resourceName": "nvidia.com/gpu", "alpha": 0.25}
FORBIDDEN = (
    'pods "cnn-cpu-7c9d5-x2m4q" is forbidden: violates PodSecurity "restricted:latest": '
    "allowPrivilegeEscalation != false"
)
REPLICA_FAILURE = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": FORBIDDEN}
NO_GPU = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


@pytest.fixture
async def router(kubeconfig: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeRouter]:
    async for fake in fake_router(monkeypatch):
        yield fake


def reason_is(reason: str) -> Any:
    def check(obj: dict[str, Any] | None) -> bool:
        held = condition(obj, "PodsWaiting")
        return held is not None and held["reason"] == reason

    return check


async def test_pods_that_cannot_run_are_named_with_their_reason_and_fix(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    await cluster.create(f"{BASE}/inferenceservices", service(gpu=GPU))
    await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "True"))

    # The ReplicaSet may not create the CPU replicas: no pod exists, only the Deployment says why.
    await cluster.patch(f"{DEPLOYMENTS}/cnn-cpu/status", {"status": {"conditions": [REPLICA_FAILURE]}})
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "PodsWaiting", "True"))
    held = condition(obj, "PodsWaiting")
    assert held is not None
    assert held["reason"] == "FailedCreate"
    assert "The CPU replica Deployment cnn-cpu is held up" in held["message"]
    assert 'violates PodSecurity "restricted:latest"' in held["message"]
    assert "spec.template" in held["message"]
    assert [e["type"] for e in await wait_for_events(cluster, "PodsWaiting")] == ["Warning"]

    # Fixed: the CPU replica runs; the GPU replica finds no node with a free GPU.
    await cluster.patch(f"{DEPLOYMENTS}/cnn-cpu/status", {"status": {"conditions": None}})
    await create_replica_pods(cluster, "cnn-cpu", 1)
    (gpu_pod,) = await create_replica_pods(cluster, "cnn-gpu", 1, first=5, ready=False)
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": NO_GPU}
    await cluster.patch(f"{PODS}/{gpu_pod}/status", {"status": {"phase": "Pending", "conditions": [unschedulable]}})
    obj = await cluster.wait_for(service_path(), reason_is("Unschedulable"))
    held = condition(obj, "PodsWaiting")
    assert held is not None
    assert held["status"] == "True"
    assert "The GPU replica pod cnn-gpu-5 is held up" in held["message"]
    assert "Insufficient nvidia.com/gpu" in held["message"]
    assert "spec.gpu.template" in held["message"]
    # The CPU replica serves meanwhile.
    obj = await cluster.wait_for(service_path(), lambda o: status_of(o).get("phase") == "Running")
    assert condition_is(obj, "PodsWaiting", "True")
    # Held up by something else now: a second Warning Event says so.
    await cluster.wait_for_events("cnn", "PodsWaiting")
    for _ in range(100):
        if len(events(cluster, "PodsWaiting")) == 2:
            break
        await asyncio.sleep(0.05)  # kopf posts Events in the background
    assert [e["type"] for e in events(cluster, "PodsWaiting")] == ["Warning", "Warning"]
    assert "cnn-gpu-5" in str(events(cluster, "PodsWaiting")[-1]["message"])

    # Ten minutes on, the GPU Deployment's progress deadline passes: its pod still says more.
    stalled = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}
    await cluster.patch(f"{DEPLOYMENTS}/cnn-gpu/status", {"status": {"conditions": [stalled]}})
    reads = router.stats_reads
    for _ in range(200):  # a few periods
        if router.stats_reads >= reads + 3:
            break
        await asyncio.sleep(0.05)
    assert (condition(await cluster.get(service_path()), "PodsWaiting") or {}).get("reason") == "Unschedulable"

    # The GPU node frees up: nothing is held up (the Deployment progresses again).
    progressing = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
    await cluster.patch(f"{DEPLOYMENTS}/cnn-gpu/status", {"status": {"conditions": [progressing]}})
    ready = [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]
    await cluster.patch(f"{PODS}/{gpu_pod}/status", {"status": {"phase": "Running", "conditions": ready}})
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "PodsWaiting", "False"))
    cleared = condition(obj, "PodsWaiting")
    assert cleared is not None
    assert cleared["reason"] == "PodsRunning"
    assert {e["type"] for e in await wait_for_events(cluster, "PodsRunning")} == {"Normal"}


async def test_a_crashing_router_is_named_though_nothing_answers(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    await router.stop()  # the router's port answers nothing: the period cannot register replicas
    await cluster.create(f"{BASE}/inferenceservices", service())
    await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "True"))
    deployment = await cluster.get(f"{DEPLOYMENTS}/cnn-router")
    assert deployment is not None
    template = deployment["spec"]["template"]
    crashing = {
        "name": "router",
        "ready": False,
        "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "message": "unrecognized arguments: --alpha"}},
    }
    await cluster.create(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "cnn-router-0", "namespace": NAMESPACE, "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
            "status": {"phase": "Running", "containerStatuses": [crashing]},
        },
    )
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "PodsWaiting", "True"))
    held = condition(obj, "PodsWaiting")
    assert held is not None
    assert held["reason"] == "CrashLoopBackOff"
    assert "The router pod cnn-router-0 is held up" in held["message"]
    assert "last ended with exit code 2 (Error): unrecognized arguments: --alpha" in held["message"]
    assert "spec.routerTemplate" in held["message"]


def test_a_deployment_is_held_up_by_refused_pods_or_a_passed_progress_deadline() -> None:
    assert deployment_problem({"status": {"conditions": [REPLICA_FAILURE]}}) == ("FailedCreate", FORBIDDEN)
    stalled = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "cnn-cpu-7c9d5" has timed out progressing.',
    }
    assert deployment_problem({"status": {"conditions": [stalled]}}) == (
        "ProgressDeadlineExceeded",
        'ReplicaSet "cnn-cpu-7c9d5" has timed out progressing.',
    )
    progressing = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
    cleared = {**REPLICA_FAILURE, "status": "False"}
    assert deployment_problem({"status": {"conditions": [progressing, cleared]}}) is None
    assert deployment_problem(None) is None
