"""The DeadlineJob control loop against the emulator and a fake Spark driver.

The operator reads progress from the fake driver's REST API, runs the law, and resizes the
executor pods the test created; the tests read what the emulator stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import aiohttp
import kmock
import pytest

from controllers.stage_profiles import profile_configmap_name
from dynaspark.api import DeadlineJob, DeadlineJobStatus
from dynaspark.profile import PROFILE_FORMAT_VERSION
from mlscale.units import format_cpu, parse_cpu
from tests.operator.deadlinejob_helpers import (
    BASE,
    PODS,
    condition,
    condition_is,
    container_cpu,
    create_executor_pods,
    has_regulated,
    job,
    job_path,
    set_driver_phase,
    start_running,
    status_of,
    steps_after,
)
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator, start_operator
from tests.operator.spark_driver_fake import FakeSparkDriver

pytestmark = pytest.mark.operator


async def test_running_job_resizes_executors_to_the_laws_cores(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    await start_running(cluster, driver)
    obj = await cluster.wait_for(job_path(), has_regulated)
    # More tasks done after the first period give the law a rate to predict the completion from.
    first_step = float(status_of(obj)["controlState"]["lastStepSeconds"])
    driver.complete_tasks(0, {"1": 15, "2": 15})
    obj = await cluster.wait_for(job_path(), steps_after(first_step + 0.5))
    obj = await cluster.wait_for(job_path(), lambda o: status_of(o).get("slackSeconds") is not None)
    status = status_of(obj)
    applied = status["controlState"]["appliedCores"]
    assert set(applied) == {"1", "2"}
    for executor_id, cores in applied.items():
        pod = await cluster.get(f"{PODS}/pagerank-exec-{executor_id}")
        assert container_cpu(pod) == format_cpu(cores)
        # Far ahead of a 10-minute deadline, the law gives less than coresMax (1.5), at least coresMin.
        assert 0.2 <= cores < 1.5
    # The patches went to the resize subresource.
    resizes = list(cluster.emulator[kmock.method("patch"), kmock.subresource("resize")])
    assert resizes
    assert {r.name for r in resizes} == {"pagerank-exec-1", "pagerank-exec-2"}

    assert status["phase"] == "Running"
    assert status["stage"].startswith("0 map at")
    assert status["progress"] == pytest.approx(0.8)
    assert status["allocatedCores"] == pytest.approx(sum(applied.values()), abs=1e-3)
    assert {e["id"]: e["cores"] for e in status["executors"]} == pytest.approx(applied)
    assert status["coreSeconds"] > 0
    assert status["slackSeconds"] > 0  # 80% done in a second: finishing early is predicted
    assert status["predictedCompletionTime"] < status["deadlineTime"]
    assert condition_is(obj, "DeadlineAtRisk", "False")
    assert condition_is(obj, "Contended", "False")
    assert condition_is(obj, "ProfileMissing", "True")
    DeadlineJobStatus.model_validate(status)  # every field written is one the CRD knows
    # This cluster serves no resource metrics API: no CPU usage is reported, nothing else suffers.
    assert "usedCores" not in status
    assert not any("usedCores" in e for e in status["executors"])
    assert len(await cluster.wait_for_events("pagerank", "Running")) == 1

    metrics_url = f"http://127.0.0.1:{operator.memo['metrics_port']}/metrics"
    async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
        text = await response.text()
    assert f'mlscale_deadlinejob_allocated_cores{{name="pagerank",namespace="{NAMESPACE}"}}' in text
    assert 'mlscale_resources{kind="DeadlineJob",phase="Running"} 1.0' in text


async def test_cpu_the_executors_used_is_read_from_the_resource_metrics_api(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    # metrics-server's API, with what it would have measured of each executor's container.
    cluster.emulator.resources["metrics.k8s.io/v1beta1/pods"] = kmock.ResourceInfo(
        kind="PodMetrics", singular="pod", namespaced=True, verbs={"get", "list", "create"}
    )
    await start_running(cluster, driver)
    usage = {"1": "412000000n", "2": "730m"}
    for executor_id, cpu in usage.items():
        pod = await cluster.get(f"{PODS}/pagerank-exec-{executor_id}")
        labels = (pod or {})["metadata"]["labels"]  # metrics-server copies the pod's labels
        await cluster.create(
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/pods",
            {
                "apiVersion": "metrics.k8s.io/v1beta1",
                "kind": "PodMetrics",
                "metadata": {"name": f"pagerank-exec-{executor_id}", "namespace": NAMESPACE, "labels": labels},
                "window": "15s",
                "containers": [{"name": "executor", "usage": {"cpu": cpu, "memory": "301236Ki"}}],
            },
        )
    obj = await cluster.wait_for(job_path(), lambda o: status_of(o).get("usedCores") is not None)
    status = status_of(obj)
    assert {e["id"]: e.get("usedCores") for e in status["executors"]} == {"1": 0.412, "2": 0.73}
    assert status["usedCores"] == pytest.approx(1.142)
    DeadlineJobStatus.model_validate(status)

    metrics_url = f"http://127.0.0.1:{operator.memo['metrics_port']}/metrics"
    async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
        text = await response.text()
    assert f'mlscale_deadlinejob_used_cores{{name="pagerank",namespace="{NAMESPACE}"}} 1.142' in text

    # When the application ends, the figure goes with the executors.
    driver.complete_stage(0)
    await set_driver_phase(cluster, "Succeeded")
    obj = await cluster.wait_for(job_path(), lambda o: status_of(o).get("phase") == "Succeeded")
    assert "usedCores" not in status_of(obj)


async def test_restarted_operator_resumes_from_the_status(
    kubeconfig: Path, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    first = await start_operator()
    try:
        await start_running(cluster, driver)
        before = await cluster.wait_for(job_path(), has_regulated)
        before = await cluster.wait_for(
            job_path(), steps_after(float(status_of(before)["controlState"]["lastStepSeconds"]) + 0.3)
        )
    finally:
        await first.stop()
    assert before is not None
    saved = status_of(before)
    driver.complete_tasks(0, {"1": 5, "2": 5})

    second = await start_operator()
    try:
        after = await cluster.wait_for(job_path(), steps_after(float(saved["controlState"]["lastStepSeconds"]) + 0.3))
    finally:
        await second.stop()
    resumed = status_of(after)
    # Same stage, same plan: the set point ramps on from where it was, not from zero; and the
    # law's memory of the stage (its cost so far, where its rate is measured from) carries on.
    state, saved_state = resumed["controlState"], saved["controlState"]
    assert state["plan"] == saved_state["plan"]
    assert state["startSeconds"] == saved_state["startSeconds"]
    assert state["rateOrigin"] == saved_state["rateOrigin"]
    assert state["stageCoreSeconds"] > saved_state["stageCoreSeconds"] > 0
    assert resumed["coreSeconds"] > saved["coreSeconds"]
    assert resumed["phase"] == "Running"
    assert [e.get("reason") for e in cluster.events("pagerank")].count("Running") == 1


async def test_infeasible_deadline_is_flagged_and_runs_at_cores_max(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    await start_running(cluster, driver, deadline="4s")
    await cluster.wait_for(job_path(), has_regulated)
    # A slow stretch: 15 tasks in ~1.5 s on ~3 cores leaves the last 35 needing far more than the 4 s.
    await asyncio.sleep(1.5)
    driver.complete_tasks(0, {"1": 8, "2": 7})
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "DeadlineAtRisk", "True"))
    status = status_of(obj)
    message = str((condition(obj, "DeadlineAtRisk") or {}).get("message"))
    assert "after the deadline" in message
    assert status["slackSeconds"] < 0
    obj = await cluster.wait_for(job_path(), lambda o: {e["cores"] for e in status_of(o)["executors"]} == {1.5})
    for executor_id in ("1", "2"):
        assert container_cpu(await cluster.get(f"{PODS}/pagerank-exec-{executor_id}")) == "1500m"
    at_risk = await cluster.wait_for_events("pagerank", "DeadlineAtRisk")
    assert [e.get("type") for e in at_risk] == ["Warning"]


async def test_contended_node_scales_requests_down(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    await cluster.create("/api/v1/nodes", {"metadata": {"name": "node-a"}, "status": {"allocatable": {"cpu": "1"}}})
    await cluster.create(
        PODS,
        {
            "metadata": {"name": "neighbour", "namespace": NAMESPACE},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]},
            "status": {"phase": "Running"},
        },
    )
    await cluster.create(f"{BASE}/deadlinejobs", job())
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    await create_executor_pods(cluster, node="node-a")
    driver.start_stage(0, 100)
    driver.complete_tasks(0, {"1": 1})
    await set_driver_phase(cluster, "Running")
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "Contended", "True"))
    status = status_of(obj)
    # Node capacity 1 core minus the neighbour's 0.5: the executors share 0.5, each at least coresMin.
    assert status["allocatedCores"] <= 0.5 + 1e-6
    for executor_id in ("1", "2"):
        pod = await cluster.get(f"{PODS}/pagerank-exec-{executor_id}")
        assert 0.2 <= parse_cpu(str(container_cpu(pod))) <= 0.3
    assert "scaled down in proportion" in str((condition(obj, "Contended") or {}).get("message"))


@pytest.mark.parametrize(
    ("ending", "expected"),
    [(("Succeeded", False), "Succeeded"), (("Succeeded", True), "DeadlineMissed"), (("Failed", False), "Failed")],
)
async def test_driver_end_sets_the_final_phase(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver, ending: tuple[str, bool], expected: str
) -> None:
    driver_phase, late = ending
    await start_running(cluster, driver, deadline="2s")
    obj = await cluster.wait_for(job_path(), has_regulated)
    deadline = status_of(obj)["deadlineTime"]
    driver.complete_stage(0)
    deadline_at = dt.datetime.fromisoformat(deadline)
    finished = deadline_at + dt.timedelta(seconds=5) if late else deadline_at - dt.timedelta(seconds=1)
    await set_driver_phase(cluster, driver_phase, finished_at=finished)
    obj = await cluster.wait_for(job_path(), lambda o: status_of(o).get("phase") == expected)
    status = status_of(obj)
    assert status["completionTime"] == finished.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status["allocatedCores"] == 0
    assert (status["slackSeconds"] < 0) == late
    events = await cluster.wait_for_events("pagerank", expected)
    assert events[0].get("type") == ("Normal" if expected == "Succeeded" else "Warning")
    assert operator.memo["status_store"].statuses[("DeadlineJob", NAMESPACE, "pagerank")]["phase"] == expected


@pytest.mark.parametrize("ending", [(0, "Running", "Succeeded"), (1, "Running", "Failed"), (0, "Failed", "Succeeded")])
async def test_the_application_ends_with_the_driver_container_whatever_a_sidecar_does(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver, ending: tuple[int, str, str]
) -> None:
    exit_code, pod_phase, expected = ending
    await start_running(cluster, driver)
    await cluster.wait_for(job_path(), has_regulated)
    driver.complete_stage(0)
    finished = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # spark-submit has exited; a log-shipping sidecar of the driver template runs on, and the
    # kubelet lists it first (by name), so the pod stays Running (or the sidecar failed first,
    # and the pod is Failed whatever the application did).
    sidecar = {"name": "aaa-log-shipper", "state": {"running": {"startedAt": "2026-12-07T10:00:00Z"}}}
    ended = {
        "name": "driver",
        "state": {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                 "finishedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ")}},
    }  # fmt: skip
    status = {"phase": pod_phase, "containerStatuses": [sidecar, ended]}
    await cluster.patch(f"{PODS}/pagerank-driver/status", {"status": status})
    obj = await cluster.wait_for(job_path(), lambda o: status_of(o).get("phase") == expected)
    assert status_of(obj)["completionTime"] == finished.strftime("%Y-%m-%dT%H:%M:%SZ")
    events = await cluster.wait_for_events("pagerank", expected)
    assert (exit_code == 0) == ("exit code" not in events[0]["message"])


async def test_first_run_records_the_profile_a_second_run_plans_with(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    await start_running(cluster, driver)
    await cluster.wait_for(job_path(), has_regulated)
    driver.complete_stage(0)
    driver.start_stage(1, 10, name="reduceByKey at pagerank.py:41")
    obj = await cluster.wait_for(job_path(), lambda o: str(status_of(o).get("stage", "")).startswith("1 "))
    driver.complete_stage(1)
    await asyncio.sleep(0.3)
    await set_driver_phase(cluster, "Succeeded")
    obj = await cluster.wait_for(job_path(), lambda o: status_of(o).get("phase") == "Succeeded")
    profile_name = status_of(obj)["profile"]
    configmap = await cluster.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{profile_name}")
    assert configmap is not None
    assert "ownerReferences" not in configmap["metadata"]  # outlives this run
    assert '"reduceByKey at pagerank.py:41"' in configmap["data"]["profile.json"]
    assert await cluster.wait_for_events("pagerank", "ProfileRecorded")

    # The same application again, under another name: it plans with the recorded profile.
    await cluster.create(f"{BASE}/deadlinejobs", job("pagerank-again"))
    await cluster.wait_for(job_path("pagerank-again"), lambda o: condition_is(o, "Submitted", "True"))
    await create_executor_pods(cluster, "pagerank-again")
    await set_driver_phase(cluster, "Running", "pagerank-again")
    again = await cluster.wait_for(job_path("pagerank-again"), lambda o: condition(o, "ProfileMissing") is not None)
    assert status_of(again)["profile"] == profile_name
    found = condition(again, "ProfileMissing")
    assert found is not None
    assert (found["status"], found["reason"]) == ("False", "ProfileFound")


async def test_a_profile_in_the_format_before_latencies_is_planned_with_then_replaced(
    operator: RunningOperator, cluster: Cluster, driver: FakeSparkDriver
) -> None:
    name = profile_configmap_name(DeadlineJob.model_validate(job()))
    old = {
        "formatVersion": 1,
        "nominalCores": 2.0,
        "stages": [{"stageId": 0, "name": "map", "tasks": 10, "durationSeconds": 20.0}],
    }
    await cluster.create(
        f"/api/v1/namespaces/{NAMESPACE}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"profile.json": json.dumps(old)},
        },
    )
    await start_running(cluster, driver)
    obj = await cluster.wait_for(job_path(), lambda o: condition(o, "ProfileMissing") is not None)
    found = condition(obj, "ProfileMissing")
    assert found is not None
    assert found["reason"] == "ProfileFound"
    await cluster.wait_for(job_path(), has_regulated)
    driver.complete_stage(0)
    await asyncio.sleep(0.3)
    await set_driver_phase(cluster, "Succeeded")
    await cluster.wait_for(job_path(), lambda o: status_of(o).get("phase") == "Succeeded")
    await cluster.wait_for_events("pagerank", "ProfileRecorded")
    configmap = await cluster.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}")
    assert configmap is not None
    stored = json.loads(configmap["data"]["profile.json"])
    assert stored["formatVersion"] == PROFILE_FORMAT_VERSION
    assert "latencySeconds" in stored["stages"][0]
    assert "progressCurve" in stored["stages"][0]
