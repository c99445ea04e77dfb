"""A DeadlineJob whose pods cannot run says which and why, while its deadline runs.

The driver pod unschedulable, an executor's image that cannot be pulled: ``PodsWaiting=True``
with the pod, the kubelet's or scheduler's reason and message, and a Warning Event; ``False``
(and a Normal Event) once they run.
"""

from __future__ import annotations

import asyncio

import pytest

from controllers.kube import is_being_created, pod_problem
from tests.operator.deadlinejob_helpers import (
    BASE,
    PODS,
    condition,
    condition_is,
    create_executor_pods,
    job,
    job_path,
    set_driver_phase,
)
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator
from tests.operator.spark_driver_fake import FakeSparkDriver

pytestmark = pytest.mark.operator

UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/3 nodes are available: 3 Insufficient cpu.",
}
PULL_BACKOFF = {
    "name": "executor",
    "ready": False,
    "state": {
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": 'Back-off pulling image "registry.example/pagerank:1.0"',
        }
    },
}


async def test_pods_that_cannot_run_are_named_with_their_reason(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    await cluster.create(f"{BASE}/deadlinejobs", job())
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))

    # The scheduler finds no node for the driver.
    await cluster.patch(
        f"{PODS}/pagerank-driver/status", {"status": {"phase": "Pending", "conditions": [UNSCHEDULABLE]}}
    )
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "PodsWaiting", "True"))
    waiting = condition(obj, "PodsWaiting")
    assert waiting is not None
    assert waiting["reason"] == "Unschedulable"
    assert "driver pod pagerank-driver is held up" in waiting["message"]
    assert "3 Insufficient cpu" in waiting["message"]
    assert (obj or {})["status"]["phase"] == "Pending"
    warnings = await cluster.wait_for_events("pagerank", "PodsWaiting")
    assert {e["type"] for e in warnings} == {"Warning"}

    # The driver runs and asks for executors; one of them cannot pull its image.
    await create_executor_pods(cluster)
    await cluster.patch(
        f"{PODS}/pagerank-exec-2/status", {"status": {"phase": "Pending", "containerStatuses": [PULL_BACKOFF]}}
    )
    driver.start_stage(0, 100)
    driver.complete_tasks(0, {"1": 30})
    await set_driver_phase(cluster, "Running")

    def executor_held(o: dict[str, object] | None) -> bool:
        held = condition(o, "PodsWaiting")
        return held is not None and held["reason"] == "ImagePullBackOff"

    obj = await cluster.wait_for(job_path(), executor_held)
    waiting = condition(obj, "PodsWaiting")
    assert waiting is not None
    assert waiting["status"] == "True"
    assert "executor pod pagerank-exec-2 is held up" in waiting["message"]
    assert 'Back-off pulling image "registry.example/pagerank:1.0"' in waiting["message"]
    assert (obj or {})["status"]["phase"] == "Running"
    # Held up by something else now: a Warning Event says so too.
    executor_warnings: list[dict[str, object]] = []
    for _ in range(100):  # kopf posts Events in the background
        executor_warnings = [e for e in cluster.events("pagerank") if "pagerank-exec-2" in str(e.get("message"))]
        if executor_warnings:
            break
        await asyncio.sleep(0.05)
    assert [e["type"] for e in executor_warnings] == ["Warning"]

    # The image is pulled: nothing holds the job up any more.
    running = {**PULL_BACKOFF, "ready": True, "state": {"running": {"startedAt": "2026-12-07T10:00:00Z"}}}
    await cluster.patch(
        f"{PODS}/pagerank-exec-2/status", {"status": {"phase": "Running", "containerStatuses": [running]}}
    )
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "PodsWaiting", "False"))
    cleared = condition(obj, "PodsWaiting")
    assert cleared is not None
    assert cleared["reason"] == "PodsRunning"
    normal = await cluster.wait_for_events("pagerank", "PodsRunning")
    assert {e["type"] for e in normal} == {"Normal"}


def _pod(phase: str, **status: object) -> dict[str, object]:
    return {"status": {"phase": phase, **status}}


def test_pod_problem_names_what_holds_a_pod_and_nothing_else() -> None:
    assert pod_problem(_pod("Pending", conditions=[UNSCHEDULABLE])) == (
        "Unschedulable",
        "0/3 nodes are available: 3 Insufficient cpu.",
    )
    missing_secret = {
        "name": "driver",
        "state": {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3-credentials" not found'}},
    }
    assert pod_problem(_pod("Pending", containerStatuses=[missing_secret])) == (
        "CreateContainerConfigError",
        'container driver: secret "s3-credentials" not found',
    )
    crashing_init = {"name": "fetch-data", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    assert pod_problem(_pod("Pending", initContainerStatuses=[crashing_init])) == (
        "CrashLoopBackOff",
        "container fetch-data: no message",
    )
    # Being created, scheduled and pulling, or ended: nothing holds it up.
    creating = {"name": "driver", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert pod_problem(_pod("Pending", containerStatuses=[creating])) is None
    scheduled = {"type": "PodScheduled", "status": "True"}
    assert pod_problem(_pod("Pending", conditions=[scheduled])) is None
    assert pod_problem(_pod("Failed", containerStatuses=[missing_secret])) is None


def _event(pod: str, reason: str, type_: str, message: str, at: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod}.{reason.lower()}", "namespace": NAMESPACE},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": NAMESPACE},
        "reason": reason,
        "type": type_,
        "message": message,
        "lastTimestamp": at,
    }


async def test_a_volume_that_cannot_be_mounted_is_named_from_the_kubelets_events(
    operator: RunningOperator, cluster: Cluster
) -> None:
    await cluster.create(f"{BASE}/deadlinejobs", job())
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    events = f"/api/v1/namespaces/{NAMESPACE}/events"
    missing = 'MountVolume.SetUp failed for volume "creds" : secret "s3-credentails" not found'
    await cluster.create(events, _event("pagerank-driver", "FailedMount", "Warning", missing, "2026-12-07T10:00:05Z"))
    await cluster.create(events, _event("pagerank-driver", "Scheduled", "Normal", "assigned", "2026-12-07T10:00:01Z"))
    await cluster.create(
        events, _event("other-pod", "FailedAttachVolume", "Warning", "not ours", "2026-12-07T10:00:09Z")
    )
    # Scheduled; its container stays ContainerCreating, which is all the pod itself says.
    creating = {"name": "driver", "state": {"waiting": {"reason": "ContainerCreating"}}}
    status = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [creating],
    }
    await cluster.patch(f"{PODS}/pagerank-driver/status", {"status": status})
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "PodsWaiting", "True"))
    waiting = condition(obj, "PodsWaiting")
    assert waiting is not None
    assert waiting["reason"] == "FailedMount"
    assert "driver pod pagerank-driver is held up" in waiting["message"]
    assert 'secret "s3-credentails" not found' in waiting["message"]
    assert "not ours" not in waiting["message"]


def test_containers_being_created_are_where_a_failed_mount_leaves_them() -> None:
    creating = {"name": "driver", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert is_being_created(_pod("Pending", containerStatuses=[creating]))
    initialising = {"name": "driver", "state": {"waiting": {"reason": "PodInitializing"}}}
    assert is_being_created(_pod("Pending", containerStatuses=[initialising]))
    assert not is_being_created(_pod("Pending"))  # not scheduled yet: nothing is mounted
    pulling = {"name": "driver", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    assert not is_being_created(_pod("Pending", containerStatuses=[pulling]))
