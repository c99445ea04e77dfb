"""Shared pieces of the DeadlineJob operator tests: the resource, its executor pods, driver states."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from tests.operator.harness import NAMESPACE, Cluster
from tests.operator.spark_driver_fake import FakeSparkDriver

BASE = f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"

JOB: dict[str, Any] = {
    "apiVersion": "mlscale.dev/v1alpha1",
    "kind": "DeadlineJob",
    "metadata": {"name": "pagerank", "namespace": NAMESPACE, "generation": 1},
    "spec": {
        "deadline": "10m",
        "application": {
            "mainApplicationFile": "local:///opt/app/pagerank.py",
            "arguments": ["--pages", "1000"],
            "image": "registry.example/pagerank:1.0",
            "sparkConf": {"spark.sql.shuffle.partitions": "8"},
        },
        "executors": {"instances": 2, "coresMin": "200m", "coresMax": "1500m", "memory": "1Gi"},
        "control": {"periodSeconds": 0.2},
    },
}


def job(name: str = "pagerank", **spec: Any) -> dict[str, Any]:
    """A DeadlineJob named ``name``, with ``spec``'s top-level keys replaced."""
    body = copy.deepcopy(JOB)
    body["metadata"]["name"] = name
    body["spec"].update(spec)
    return body


def job_path(name: str = "pagerank") -> str:
    """API path of a DeadlineJob."""
    return f"{BASE}/deadlinejobs/{name}"


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition of that type in an object's status."""
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return None


def condition_is(obj: dict[str, Any] | None, type_: str, status: str) -> bool:
    """Whether the object's condition of that type has that status."""
    cond = condition(obj, type_)
    return cond is not None and cond["status"] == status


async def create_executor_pods(
    cluster: Cluster,
    job_name: str = "pagerank",
    ids: tuple[str, ...] = ("1", "2"),
    *,
    node: str | None = None,
    ips: dict[str, str] | None = None,
) -> None:
    """Create the executor pods Spark would create from the template, as the driver would (``ips``: pod IPs)."""
    for executor_id in ids:
        spec: dict[str, Any] = {
            "containers": [
                {
                    "name": "executor",
                    "image": "registry.example/pagerank:1.0",
                    "resources": {"requests": {"cpu": "1500m"}, "limits": {"cpu": "1500m"}},
                    "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
                }
            ]
        }
        if node is not None:
            spec["nodeName"] = node
        await cluster.create(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{job_name}-exec-{executor_id}",
                    "namespace": NAMESPACE,
                    "labels": {
                        "app.kubernetes.io/managed-by": "mlscale",
                        "app.kubernetes.io/part-of": "mlscale",
                        "app.kubernetes.io/component": "executor",
                        "mlscale.dev/deadlinejob": job_name,
                        "spark-role": "executor",
                        "spark-exec-id": executor_id,
                    },
                },
                "spec": spec,
                "status": {"phase": "Running", **({"podIP": ips[executor_id]} if ips else {})},
            },
        )


async def set_driver_phase(
    cluster: Cluster, phase: str, job_name: str = "pagerank", *, finished_at: dt.datetime | None = None
) -> None:
    """Set the driver pod's phase as the kubelet would (with the container's end when it ended)."""
    status: dict[str, Any] = {"phase": phase}
    if finished_at is not None:
        exit_code = 0 if phase == "Succeeded" else 1
        status["containerStatuses"] = [
            {
                "name": "driver",
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "finishedAt": finished_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                },
            }
        ]
    await cluster.patch(f"{PODS}/{job_name}-driver/status", {"status": status})


def container_cpu(pod: dict[str, Any] | None) -> str | None:
    """The executor container's CPU request in a stored pod."""
    containers = ((pod or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        if container.get("name") == "executor":
            return str(((container.get("resources") or {}).get("requests") or {}).get("cpu"))
    return None


def status_of(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The status of a stored object (empty when it has none)."""
    return dict((obj or {}).get("status") or {})


def steps_after(seconds: float) -> Callable[[dict[str, Any] | None], bool]:
    """A predicate: the loop has run a period after ``seconds`` (epoch)."""

    def check(obj: dict[str, Any] | None) -> bool:
        state = status_of(obj).get("controlState") or {}
        return float(state.get("lastStepSeconds") or 0.0) > seconds

    return check


async def start_running(cluster: Cluster, driver: FakeSparkDriver, **spec: Any) -> None:
    """Create the job and its executors; the driver pod runs stage 0 (100 tasks, 50 done)."""
    await cluster.create(f"{BASE}/deadlinejobs", job(**spec))
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    await create_executor_pods(cluster)
    driver.start_stage(0, 100)
    driver.complete_tasks(0, {"1": 30, "2": 20})
    await set_driver_phase(cluster, "Running")


def has_regulated(obj: dict[str, Any] | None) -> bool:
    """Whether the loop has regulated a stage of the running job."""
    status = status_of(obj)
    return status.get("phase") == "Running" and status.get("stage") is not None and bool(status.get("executors"))
