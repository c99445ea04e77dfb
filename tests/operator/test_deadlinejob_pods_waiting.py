"""A DeadlineJob whose pods cannot run says which and why, while its deadline runs.

The driver pod unschedulable, an executor's image that cannot be pulled: ``PodsWaiting=True``
with the pod, the kubelet's or scheduler's reason and message, and a Warning Event; ``False``
(and a Normal Event) once they run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from controllers.kube import event_time_s, is_being_created, pod_event_problems, pod_problem
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
    # Between two crashes the kubelet shows the container running: still held until it is ready.
    crashed_at = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ended = {"exitCode": 1, "reason": "Error", "message": "OSError: model file not found", "finishedAt": crashed_at}
    restarted = {
        "name": "server",
        "ready": False,
        "restartCount": 3,
        "state": {"running": {"startedAt": "2026-12-07T10:00:00Z"}},
        "lastState": {"terminated": ended},
    }
    assert pod_problem(_pod("Running", containerStatuses=[restarted])) == (
        "CrashLoopBackOff",
        "container server: restarted 3 times, not ready; last ended with exit code 1 (Error): "
        "OSError: model file not found",
    )
    assert pod_problem(_pod("Running", containerStatuses=[{**restarted, "ready": True}])) is None
    # A crash long ago says nothing of a container not ready now (a busy readiness probe, say).
    long_ago = {**restarted, "lastState": {"terminated": {**ended, "finishedAt": "2026-01-01T00:00:00Z"}}}
    assert pod_problem(_pod("Running", containerStatuses=[long_ago])) is None
    # A pull that fails after an earlier run: how that run ended says nothing of it.
    pulling = {**restarted, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}}}
    assert pod_problem(_pod("Running", containerStatuses=[pulling])) == (
        "ImagePullBackOff",
        "container server: Back-off pulling",
    )


def _event(
    uid: str, reason: str, message: str, ago_s: float, *, type_: str = "Warning", count: int = 4
) -> dict[str, object]:
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "count": count,
        "metadata": {"name": f"pagerank-driver.{uid}.{reason.lower()}.{count}.{message[-9:]}", "namespace": NAMESPACE},
        "involvedObject": {"kind": "Pod", "name": "pagerank-driver", "namespace": NAMESPACE, "uid": uid},
        "reason": reason,
        "type": type_,
        "message": message,
        "lastTimestamp": at,
    }


async def test_a_volume_that_cannot_be_mounted_is_named_from_the_kubelets_recent_events(
    operator: RunningOperator, cluster: Cluster
) -> None:
    await cluster.create(f"{BASE}/deadlinejobs", job())
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    pod = await cluster.get(f"{PODS}/pagerank-driver")
    assert pod is not None
    uid = pod["metadata"].get("uid")
    if not uid:  # the emulator assigns none to pods the operator creates; an API server always does
        uid = "5b1c0d2e-driver"
        await cluster.patch(f"{PODS}/pagerank-driver", {"metadata": {"uid": uid}})
    events = f"/api/v1/namespaces/{NAMESPACE}/events"
    missing = 'MountVolume.SetUp failed for volume "creds" : secret "s3-credentails" not found'
    await cluster.create(events, _event(uid, "FailedMount", missing, ago_s=5))
    await cluster.create(events, _event(uid, "Scheduled", "assigned", ago_s=1, type_="Normal"))
    # What is not about this pod now: a pod of the same name before it, a mount that failed long ago.
    await cluster.create(events, _event("earlier-pod", "FailedAttachVolume", "the earlier pod's", ago_s=2))
    await cluster.create(events, _event(uid, "FailedCreatePodSandBox", "long ago", ago_s=600))
    # ... and a transient the kubelet got over: seen once, the latest.
    transient = (
        'MountVolume.SetUp failed for volume "kube-api-access-x7k2p" : '
        'object "default"/"kube-root-ca.crt" not registered'
    )
    await cluster.create(events, _event(uid, "FailedMount", transient, ago_s=1, count=1))
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


def test_an_event_is_as_recent_as_its_latest_repeat() -> None:
    # Written through events.k8s.io/v1: eventTime is the first occurrence, the series the latest.
    event = {"eventTime": "2026-12-07T10:00:00.000000Z", "series": {"lastObservedTime": "2026-12-07T10:05:00.5Z"}}
    assert event_time_s(event) == dt.datetime(2026, 12, 7, 10, 5, 0, 500000, tzinfo=dt.UTC).timestamp()
    ten = dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC).timestamp()
    assert event_time_s({"lastTimestamp": "2026-12-07T10:00:00Z"}) == ten
    assert event_time_s({}) is None


class _EventsApi:
    """Answers an Event LIST with the items given, whatever the selector (as the emulator does)."""

    def __init__(self, items: list[dict[str, object]]) -> None:
        self.items = items

    async def request(self, method: str, path: str) -> dict[str, object]:
        assert method == "GET"
        assert "fieldSelector=type%3DWarning" in path
        return {"items": self.items}


async def test_only_recent_warnings_about_this_very_pod_count() -> None:
    old = _event("uid-1", "FailedMount", "long ago", ago_s=600)
    other = _event("uid-2", "FailedMount", "the earlier pod's", ago_s=1)
    normal = _event("uid-1", "FailedMount", "not a warning", ago_s=1, type_="Normal")
    api: Any = _EventsApi([old, other, normal])
    assert await pod_event_problems(api, NAMESPACE, {"uid-1": "pagerank-driver"}, time.time()) == {}
    api.items.append(_event("uid-1", "FailedMount", "just now", ago_s=3))
    found = await pod_event_problems(api, NAMESPACE, {"uid-1": "pagerank-driver"}, time.time())
    assert found == {"pagerank-driver": ("FailedMount", "just now")}
    # Seen once, it may be a transient; attach failures whose messages differ by a request id add up.
    attach = [_event("uid-3", "FailedAttachVolume", f"request {i}", ago_s=9 - i, count=1) for i in range(2)]
    api.items = [attach[0]]
    assert await pod_event_problems(api, NAMESPACE, {"uid-3": "pagerank-driver"}, time.time()) == {}
    api.items = attach
    found = await pod_event_problems(api, NAMESPACE, {"uid-3": "pagerank-driver"}, time.time())
    assert found == {"pagerank-driver": ("FailedAttachVolume", "request 1")}


def test_containers_being_created_are_where_a_failed_mount_leaves_them() -> None:
    creating = {"name": "driver", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert is_being_created(_pod("Pending", containerStatuses=[creating]))
    initialising = {"name": "driver", "state": {"waiting": {"reason": "PodInitializing"}}}
    assert is_being_created(_pod("Pending", containerStatuses=[initialising]))
    assert not is_being_created(_pod("Pending"))  # not scheduled yet: nothing is mounted
    pulling = {"name": "driver", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    assert not is_being_created(_pod("Pending", containerStatuses=[pulling]))


def test_a_native_sidecar_crashing_in_a_running_pod_holds_nothing_up() -> None:
    crashing = {"name": "log-shipper", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}
    assert pod_problem(_pod("Running", initContainerStatuses=[crashing])) is None
    assert pod_problem(_pod("Pending", initContainerStatuses=[crashing])) is not None  # an init step that fails
