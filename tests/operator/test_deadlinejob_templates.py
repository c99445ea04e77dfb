"""DeadlineJob pod templates: what a user adds to the driver and executor pods reaches them.

The template's volumes, env, node selector, tolerations, sidecars, labels and service account
end up in the driver pod and in the executor pod template Spark builds executors from; a
template that sets what the operator decides is refused before anything is created; a pod the
API server refuses is reported (not retried) until the spec changes.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import kmock
import kubernetes_validate
import pytest
import yaml

from controllers.deadlinejob_service import FIXES
from controllers.kube import KubeError
from controllers.refusals import rejection
from controllers.sparkpods import driver_pod, executor_pod_check, executor_pod_memory
from controllers.sparkpods import executor_pod_template as build_executor_pod_template
from dynaspark.api import DeadlineJob
from tests.operator.deadlinejob_helpers import PODS, condition, condition_is, job, job_path
from tests.operator.harness import (
    NAMESPACE,
    Cluster,
    RunningOperator,
    ValidatingEmulator,
    validating_emulator,
)

pytestmark = pytest.mark.operator

CORE = f"/api/v1/namespaces/{NAMESPACE}"
RBAC = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}"
JOBS = f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}/deadlinejobs"

DATA_VOLUME = {"name": "data", "persistentVolumeClaim": {"claimName": "pagerank-input"}}
TOLERATION = {"key": "spark", "operator": "Exists", "effect": "NoSchedule"}


def driver_template(**spec: Any) -> dict[str, Any]:
    """A driver template reading its input from a claim, with S3 credentials from a Secret."""
    return {
        "metadata": {"labels": {"team": "search"}, "annotations": {"cost-center": "42"}},
        "spec": {
            "serviceAccountName": "search-spark",
            "nodeSelector": {"pool": "spark"},
            "tolerations": [TOLERATION],
            "volumes": [DATA_VOLUME],
            "containers": [
                {
                    "name": "driver",
                    "env": [{"name": "AWS_REGION", "value": "eu-west-1"}],
                    "envFrom": [{"secretRef": {"name": "s3-credentials"}}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                },
                {"name": "log-shipper", "image": "registry.example/shipper:2"},
            ],
            **spec,
        },
    }


def executor_template() -> dict[str, Any]:
    """An executor template: the same claim and Secret, a toleration, a label."""
    return {
        "metadata": {"labels": {"team": "search"}},
        "spec": {
            "tolerations": [TOLERATION],
            "volumes": [DATA_VOLUME],
            "containers": [
                {
                    "name": "executor",
                    "envFrom": [{"secretRef": {"name": "s3-credentials"}}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                }
            ],
        },
    }


def with_templates(driver: dict[str, Any] | None, executors: dict[str, Any] | None) -> dict[str, Any]:
    body = job()
    if driver is not None:
        body["spec"]["driver"] = {"cores": "1", "template": driver}
    if executors is not None:
        body["spec"]["executors"] = {**body["spec"]["executors"], "template": executors}
    return body


def executor_pod_template(configmap: dict[str, Any] | None) -> dict[str, Any]:
    assert configmap is not None
    return dict(yaml.safe_load(configmap["data"]["executor-pod.yaml"]))


async def test_templates_reach_the_driver_pod_and_the_executor_template(
    operator: RunningOperator, cluster: Cluster
) -> None:
    await cluster.create(JOBS, with_templates(driver_template(), executor_template()))
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))

    pod = await cluster.get(f"{PODS}/pagerank-driver")
    assert pod is not None
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"pool": "spark"}
    assert spec["tolerations"] == [TOLERATION]
    assert spec["restartPolicy"] == "Never"
    assert [v["name"] for v in spec["volumes"]] == ["executor-template", "data"]
    driver, shipper = spec["containers"]
    assert driver["name"] == "driver"
    assert driver["command"][0].endswith("spark-submit")  # the operator's command, not replaced
    assert driver["resources"]["limits"]["cpu"] == "1"
    assert driver["env"] == [{"name": "AWS_REGION", "value": "eu-west-1"}]
    assert driver["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert [m["mountPath"] for m in driver["volumeMounts"]] == ["/opt/mlscale/executor-template", "/data"]
    assert shipper == {"name": "log-shipper", "image": "registry.example/shipper:2"}
    labels = pod["metadata"]["labels"]
    assert labels["team"] == "search"
    assert labels["mlscale.dev/deadlinejob"] == "pagerank"
    assert pod["metadata"]["annotations"]["cost-center"] == "42"
    assert pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "driver"

    # The driver runs as the template's account: the operator's Role is bound to it, no account of its own.
    assert spec["serviceAccountName"] == "search-spark"
    binding = await cluster.get(f"{RBAC}/rolebindings/pagerank-spark")
    assert binding is not None
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "search-spark", "namespace": NAMESPACE}]
    assert await cluster.get(f"{CORE}/serviceaccounts/pagerank-spark") is None

    executor_pod = executor_pod_template(await cluster.get(f"{CORE}/configmaps/pagerank-executor-template"))
    (executor,) = executor_pod["spec"]["containers"]
    assert executor["resizePolicy"] == [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]
    assert executor["command"][:2] == ["/bin/sh", "-c"]  # the CPU meter still starts first
    assert executor["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert [m["name"] for m in executor["volumeMounts"]] == ["mlscale-cpu-meter", "data"]
    assert [v["name"] for v in executor_pod["spec"]["volumes"]] == ["mlscale-cpu-meter", "data"]
    assert executor_pod["spec"]["tolerations"] == [TOLERATION]
    assert executor_pod["metadata"]["labels"]["team"] == "search"
    assert executor_pod["metadata"]["labels"]["app.kubernetes.io/component"] == "executor"


async def test_template_that_sets_what_the_operator_decides_is_refused(
    operator: RunningOperator, cluster: Cluster
) -> None:
    executors = executor_template()
    executors["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "4"}}
    driver = driver_template(restartPolicy="OnFailure")
    await cluster.create(JOBS, with_templates(driver, executors))
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "Accepted", "False"))
    accepted = condition(obj, "Accepted")
    assert accepted is not None
    message = accepted["message"]
    assert "spec.executors.template: spec.containers[executor].resources" in message
    assert "spec.executors.coresMin/coresMax" in message
    assert "spec.driver.template: spec.restartPolicy" in message
    assert await cluster.get(f"{PODS}/pagerank-driver") is None
    assert await cluster.get(f"{CORE}/configmaps/pagerank-executor-template") is None


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[kmock.KubernetesEmulator]:
    async for handler in validating_emulator(monkeypatch):
        yield handler


async def test_refused_pod_is_reported_until_the_spec_is_fixed(operator: RunningOperator, cluster: Cluster) -> None:
    driver = driver_template(tolerations=[{"key": "spark", "operator": "Sometimes"}])
    del driver["spec"]["serviceAccountName"]
    executors = executor_template()
    await cluster.create(JOBS, with_templates(driver, executors))
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "False"))
    submitted = condition(obj, "Submitted")
    assert submitted is not None
    assert submitted["reason"] == "ChildRejected"
    assert "Pod pagerank-driver" in submitted["message"]
    assert 'Unsupported value: "Sometimes"' in submitted["message"]
    assert {e["type"] for e in await cluster.wait_for_events("pagerank", "ChildRejected")} == {"Warning"}
    assert obj is not None
    assert "startTime" not in obj["status"]
    # Not retried with backoff (retries would come 0.2, 0.4, 0.8 s apart): the same spec would be
    # refused again. (kopf may hand the emulator's creation to the handler twice.)
    await asyncio.sleep(0.5)
    refusals = ValidatingEmulator.pod_refusals
    await asyncio.sleep(1.5)
    assert ValidatingEmulator.pod_refusals == refusals <= 2

    # The user fixes the toleration, drops the executors' claim and names the driver's account:
    # the job starts, and the executor template and the driver's RoleBinding created with the
    # first spec follow the new one (the operator's RBAC lets it patch the binding).
    fixed = copy.deepcopy(obj["spec"])
    fixed["driver"]["template"]["spec"]["tolerations"] = [TOLERATION]
    fixed["driver"]["template"]["spec"]["serviceAccountName"] = "search-spark"
    fixed["executors"]["template"]["spec"] = {"tolerations": [TOLERATION], "volumes": None, "containers": None}
    await cluster.patch(job_path(), {"spec": fixed})
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    pod = await cluster.get(f"{PODS}/pagerank-driver")
    assert pod is not None
    assert pod["spec"]["tolerations"] == [TOLERATION]
    executor_pod = executor_pod_template(await cluster.get(f"{CORE}/configmaps/pagerank-executor-template"))
    assert [v["name"] for v in executor_pod["spec"]["volumes"]] == ["mlscale-cpu-meter"]
    assert executor_pod["spec"]["tolerations"] == [TOLERATION]
    assert pod["spec"]["serviceAccountName"] == "search-spark"
    binding = await cluster.get(f"{RBAC}/rolebindings/pagerank-spark")
    assert binding is not None
    assert [s["name"] for s in binding["subjects"]] == ["search-spark"]
    # Without a template account the first spec had the operator create one for the driver.
    assert await cluster.get(f"{CORE}/serviceaccounts/pagerank-spark") is not None


async def test_pod_security_refusal_names_the_fix_and_an_annotation_retries(
    operator: RunningOperator, cluster: Cluster
) -> None:
    ValidatingEmulator.restricted = True
    await cluster.create(JOBS, with_templates(driver_template(), executor_template()))
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "False"))
    submitted = condition(obj, "Submitted")
    assert submitted is not None
    assert submitted["reason"] == "ChildRejected"
    assert 'violates PodSecurity "restricted:latest"' in submitted["message"]
    assert "seccompProfile type RuntimeDefault" in submitted["message"]  # the fix, in the templates
    assert "annotate the DeadlineJob" in submitted["message"]  # or after relabelling the namespace
    assert "executor pod (a dry run" in submitted["message"]  # refused before anything was created
    assert await cluster.get(f"{PODS}/pagerank-driver") is None
    assert await cluster.get(f"{CORE}/configmaps/pagerank-executor-template") is None
    await asyncio.sleep(0.5)
    refusals = ValidatingEmulator.pod_refusals
    await asyncio.sleep(1.5)
    assert ValidatingEmulator.pod_refusals == refusals <= 2  # not retried with backoff

    # The namespace is relabelled (no spec change): an annotation has the operator try again.
    ValidatingEmulator.restricted = False
    await cluster.patch(job_path(), {"metadata": {"annotations": {"retry": "1"}}})
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    assert await cluster.get(f"{PODS}/pagerank-driver") is not None


def test_only_refusals_a_spec_change_can_fix_wait_for_one() -> None:
    rbac = KubeError(403, "Forbidden", 'pods is forbidden: User "system:serviceaccount:x:y" cannot create "pods"')
    assert rejection(rbac, "Pod pagerank-driver", FIXES) is None  # an administrator may grant it: retried
    assert rejection(KubeError(503, "ServiceUnavailable", "etcd leader changed"), "Pod pagerank-driver", FIXES) is None
    baseline = KubeError(403, "Forbidden", 'violates PodSecurity "baseline:latest": hostPath volumes')
    refused = rejection(baseline, "Pod pagerank-driver", FIXES)
    assert refused is not None
    assert "securityContext" in refused.advice()
    limit_range = KubeError(
        403, "Forbidden", 'pods "x" is forbidden: maximum memory usage per Container is 1Gi, but limit is 1408Mi'
    )
    limited = rejection(limit_range, "executor pod", FIXES)
    assert limited is not None
    assert "spec.executors.memory" in limited.advice()
    full_quota = KubeError(
        403,
        "Forbidden",
        'pods "x" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=9, limited: cpu=10',
    )
    assert rejection(full_quota, "executor pod", FIXES) is None  # frees up as other pods end
    invalid = rejection(
        KubeError(422, "Invalid", "spec.volumes[1].name: Duplicate value"), "Pod pagerank-driver", FIXES
    )
    assert invalid is not None
    assert "PodSecurity" not in invalid.advice()
    assert "Fix what the API server names in spec.driver.template and spec.executors.template" in invalid.advice()


async def test_executors_the_api_would_refuse_stop_the_job_before_the_driver_starts(
    operator: RunningOperator, cluster: Cluster
) -> None:
    executors = executor_template()
    executors["spec"]["tolerations"] = [{"key": "spark", "operator": "Sometimes"}]
    await cluster.create(JOBS, with_templates(None, executors))
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "False"))
    submitted = condition(obj, "Submitted")
    assert submitted is not None
    assert submitted["reason"] == "ChildRejected"
    assert "executor pod (a dry run of the pod Spark will ask for)" in submitted["message"]
    assert 'Unsupported value: "Sometimes"' in submitted["message"]
    # Nothing was created: Spark would have started the driver and failed on every executor.
    assert await cluster.get(f"{PODS}/pagerank-driver") is None
    assert await cluster.get(f"{CORE}/configmaps/pagerank-executor-template") is None
    # The pod admitted in the dry run is the executor as Spark asks for it: the template, the
    # CPU at coresMax and the memory with Spark's overhead (1Gi + 384Mi), never restarted.
    checked = ValidatingEmulator.dry_runs[0]
    assert checked["metadata"]["generateName"] == "pagerank-exec-check-"
    assert checked["metadata"]["labels"]["mlscale.dev/deadlinejob"] == "pagerank"
    assert checked["spec"]["restartPolicy"] == "Never"
    (executor,) = checked["spec"]["containers"]
    resources = {"cpu": "1500m", "memory": "1408Mi"}
    assert executor["resources"] == {"requests": resources, "limits": resources}
    assert executor["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    # Spark's own volumes are there, so a template mount that collides with them is refused too.
    volumes = [v["name"] for v in checked["spec"]["volumes"]]
    assert volumes == ["mlscale-cpu-meter", "data", "spark-conf-volume-exec", "spark-local-dir-1"]
    assert {"name": "spark-conf-volume-exec", "mountPath": "/opt/spark/conf"} in executor["volumeMounts"]

    fixed = copy.deepcopy(obj["spec"])
    fixed["executors"]["template"]["spec"]["tolerations"] = [TOLERATION]
    await cluster.patch(job_path(), {"spec": fixed})
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    assert await cluster.get(f"{PODS}/pagerank-driver") is not None
    assert ValidatingEmulator.dry_runs[-1]["spec"]["tolerations"] == [TOLERATION]  # the fixed spec, checked again


@pytest.mark.parametrize(
    ("memory", "conf", "expected"),
    [
        ("1Gi", {}, "1408Mi"),  # at least 384 MiB of overhead
        ("8Gi", {}, "9011Mi"),  # 10 % of the heap
        ("4Gi", {"spark.executor.memoryOverheadFactor": "0.2"}, "4915Mi"),
        ("4Gi", {"spark.kubernetes.memoryOverheadFactor": "0.4"}, "5734Mi"),
        ("1Gi", {"spark.executor.memoryOverhead": "1g"}, "2048Mi"),  # replaces the derived overhead
        ("1Gi", {"spark.executor.memoryOverhead": "500"}, "1524Mi"),  # MiB without a unit
        ("1Gi", {"spark.executor.minMemoryOverhead": "0"}, "1126Mi"),  # 10 % when the minimum is lifted
        ("1Gi", {"spark.executor.pyspark.memory": "512m"}, "1408Mi"),  # not added in client mode
        ("1Gi", {"spark.memory.offHeap.enabled": "true", "spark.memory.offHeap.size": "512m"}, "1920Mi"),
        ("1Gi", {"spark.memory.offHeap.enabled": "false", "spark.memory.offHeap.size": "512m"}, "1408Mi"),
        ("1Gi", {"spark.memory.offHeap.enabled": "true", "spark.memory.offHeap.size": "1073741824"}, "2432Mi"),
    ],
)
def test_executor_pod_memory_is_what_spark_asks_for(memory: str, conf: dict[str, str], expected: str) -> None:
    body = job()
    body["spec"]["executors"]["memory"] = memory
    body["spec"]["application"]["sparkConf"] = conf
    assert executor_pod_memory(DeadlineJob.model_validate(body)) == expected


@pytest.mark.parametrize(
    ("memory", "app_type", "conf", "expected"),
    [
        ("1Gi", "Python", {}, "640m"),  # 384 MiB of overhead at least
        ("4Gi", "Python", {}, "2925m"),  # the Python driver beside it: 40 % of the heap
        ("8Gi", "Scala", {}, "7447m"),  # a jar's driver: 10 %
        ("8Gi", "Python", {"spark.driver.memoryOverheadFactor": "0.1"}, "7447m"),
        ("4Gi", "Python", {"spark.driver.memoryOverheadFactor": "0.05"}, "3712m"),  # 384 MiB, more than 5 %
        ("4Gi", "Python", {"spark.kubernetes.memoryOverheadFactor": "0.2"}, "3413m"),
        ("4Gi", "Python", {"spark.driver.memoryOverhead": "1g"}, "3072m"),
        ("2Gi", "Python", {"spark.driver.minMemoryOverhead": "1g"}, "1024m"),  # Spark's least overhead, raised
        ("4Gi", "Python", {"spark.driver.memory": "3g"}, "3g"),  # the job's own, as it is
    ],
)
def test_the_driver_jvm_gets_the_heap_its_pod_has_room_for(
    memory: str, app_type: str, conf: dict[str, str], expected: str
) -> None:
    # Without it spark-submit starts the driver with 1g whatever the pod's memory: unused room in
    # a large pod, an OOM kill in a small one.
    body = job()
    body["spec"]["driver"] = {"memory": memory}
    body["spec"]["application"].update(sparkConf=conf, type=app_type)
    if app_type != "Python":
        body["spec"]["application"].update(mainApplicationFile="local:///opt/app.jar", mainClass="app.Main")
    pod = driver_pod(DeadlineJob.model_validate(body), NAMESPACE)
    command = pod["spec"]["containers"][0]["command"]
    assert f"spark.driver.memory={expected}" in command
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == f"{int(memory[:-2]) * 1024}Mi"


def test_the_dry_run_pod_has_spark_volumes_where_spark_adds_them() -> None:
    body = job()
    claim = {"name": "spark-local-dir-1", "persistentVolumeClaim": {"claimName": "scratch"}}
    mount = {"name": "spark-local-dir-1", "mountPath": "/scratch"}
    body["spec"]["executors"]["template"] = {
        "spec": {"volumes": [claim], "containers": [{"name": "executor", "volumeMounts": [mount]}]}
    }
    checked = executor_pod_check(DeadlineJob.model_validate(body))
    # Spark's documented scratch space on a claim: its own local-dir volume, no emptyDir added.
    assert [v["name"] for v in checked["spec"]["volumes"]] == [
        "mlscale-cpu-meter",
        "spark-local-dir-1",
        "spark-conf-volume-exec",
    ]
    body["spec"]["application"]["sparkConf"] = {"spark.kubernetes.executor.disableConfigMap": "true"}
    del body["spec"]["executors"]["template"]
    checked = executor_pod_check(DeadlineJob.model_validate(body))
    assert [v["name"] for v in checked["spec"]["volumes"]] == ["mlscale-cpu-meter", "spark-local-dir-1"]
    (executor,) = checked["spec"]["containers"]
    assert [m["name"] for m in executor["volumeMounts"]] == ["mlscale-cpu-meter", "spark-local-dir-1"]


def test_pods_built_with_templates_are_valid_kubernetes_objects() -> None:
    """The README's templates, and this file's: what reaches the API server passes its schema (1.33)."""
    body = with_templates(driver_template(), executor_template())
    hardened = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for template in (body["spec"]["driver"]["template"], body["spec"]["executors"]["template"]):
        template["spec"]["securityContext"] = hardened
    body["metadata"]["uid"] = "0b0f6c4e-0000-4000-8000-000000000002"
    deadline_job = DeadlineJob.model_validate(body)
    pods = [
        driver_pod(deadline_job, NAMESPACE),
        build_executor_pod_template(deadline_job),
        executor_pod_check(deadline_job),
    ]
    for pod in pods:
        kubernetes_validate.validate(pod, "1.33", strict=True)
