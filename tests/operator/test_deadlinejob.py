"""DeadlineJob children: what the operator creates on accept, refuses without an image, removes on delete."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.operator.deadlinejob_helpers import PODS, condition, condition_is, create_executor_pods, job, job_path
from tests.operator.harness import NAMESPACE, ROOT, Cluster, RunningOperator

pytestmark = pytest.mark.operator

CORE = f"/api/v1/namespaces/{NAMESPACE}"
RBAC = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}"


def conf_of(command: list[str]) -> dict[str, str]:
    """The ``--conf key=value`` pairs of a spark-submit command."""
    pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    return dict(p.split("=", 1) for p in pairs)


def owned_by(obj: dict[str, Any] | None, uid: str) -> bool:
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return any(r["uid"] == uid and r["kind"] == "DeadlineJob" and r.get("controller") for r in refs)


async def test_accepted_job_gets_its_children(operator: RunningOperator, cluster: Cluster) -> None:
    created = await cluster.create(f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}/deadlinejobs", job())
    uid = created["metadata"]["uid"]
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    assert obj is not None
    status = obj["status"]
    assert status["phase"] == "Pending"
    assert status["driverPod"] == "pagerank-driver"
    assert status["deadlineTime"] > status["startTime"]
    assert status["profile"].startswith("mlscale-profile-pagerank-")

    pod = await cluster.get(f"{PODS}/pagerank-driver")
    service = await cluster.get(f"{CORE}/services/pagerank-driver")
    template = await cluster.get(f"{CORE}/configmaps/pagerank-executor-template")
    account = await cluster.get(f"{CORE}/serviceaccounts/pagerank-spark")
    role = await cluster.get(f"{RBAC}/roles/pagerank-spark")
    binding = await cluster.get(f"{RBAC}/rolebindings/pagerank-spark")
    for child in (pod, service, template, account, role, binding):
        assert owned_by(child, uid), child
        assert child is not None
        assert child["metadata"]["labels"]["mlscale.dev/deadlinejob"] == "pagerank"
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlscale"

    assert pod is not None
    container = pod["spec"]["containers"][0]
    command = container["command"]
    assert container["image"] == "registry.example/pagerank:1.0"
    assert command[1:5] == ["--master", "k8s://https://kubernetes.default.svc", "--deploy-mode", "client"]
    assert command[-3:] == ["/opt/app/pagerank.py", "--pages", "1000"]
    conf = conf_of(command)
    assert conf["spark.driver.host"] == "pagerank-driver.default.svc"
    assert conf["spark.executor.cores"] == "2"  # ceil(coresMax = 1.5) task slots
    assert conf["spark.executor.instances"] == "2"
    assert conf["spark.executor.memory"] == "1024m"
    assert conf["spark.kubernetes.executor.request.cores"] == "1500m"
    assert conf["spark.sql.shuffle.partitions"] == "8"
    # C1 only; the pod's CPU limit sets the processors the JVM sees.
    assert conf["spark.executor.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"
    assert conf["spark.kubernetes.container.image"] == "registry.example/pagerank:1.0"
    assert conf["spark.kubernetes.executor.label.mlscale.dev/deadlinejob"] == "pagerank"
    template_path = conf["spark.kubernetes.executor.podTemplateFile"]
    mount = container["volumeMounts"][0]
    assert template_path.startswith(mount["mountPath"] + "/")
    volume = pod["spec"]["volumes"][0]
    assert volume["name"] == mount["name"]
    assert volume["configMap"]["name"] == "pagerank-executor-template"
    assert pod["spec"]["serviceAccountName"] == "pagerank-spark"
    assert pod["spec"]["restartPolicy"] == "Never"

    assert template is not None
    executor_template = yaml.safe_load(template["data"][template_path.rsplit("/", 1)[1]])
    executor = executor_template["spec"]["containers"][0]
    assert executor["resizePolicy"] == [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]
    assert executor_template["metadata"]["labels"]["mlscale.dev/deadlinejob"] == "pagerank"
    assert executor_template["metadata"]["labels"]["app.kubernetes.io/component"] == "executor"
    # Each executor starts the CPU meter, kept in the same ConfigMap, before the image's entrypoint.
    assert executor["command"][:2] == ["/bin/sh", "-c"]
    assert 'exec /opt/entrypoint.sh "$@"' in executor["command"][2]
    (meter_volume,) = executor_template["spec"]["volumes"]
    assert meter_volume["configMap"]["name"] == "pagerank-executor-template"
    (item,) = meter_volume["configMap"]["items"]
    assert template["data"][item["key"]] == (ROOT / "mlscale" / "cpu_meter.py").read_text()
    (meter_mount,) = executor["volumeMounts"]
    assert meter_mount["name"] == meter_volume["name"]
    assert f"{meter_mount['mountPath']}/{item['path']} --port 4049" in executor["command"][2]

    assert service is not None
    assert service["spec"]["clusterIP"] == "None"
    assert sorted(p["port"] for p in service["spec"]["ports"]) == [4040, 7078, 7079]
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
    assert role is not None
    assert binding is not None
    assert {"pods", "services", "configmaps"} <= set(role["rules"][0]["resources"])
    assert {"create", "delete", "list", "watch"} <= set(role["rules"][0]["verbs"])
    assert binding["subjects"][0]["name"] == "pagerank-spark"
    assert await cluster.wait_for_events("pagerank", "Submitted")


async def test_job_without_image_is_not_submitted(operator: RunningOperator, cluster: Cluster) -> None:
    body = job()
    del body["spec"]["application"]["image"]
    await cluster.create(f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}/deadlinejobs", body)
    obj = await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "False"))
    submitted = condition(obj, "Submitted")
    assert submitted is not None
    assert submitted["reason"] == "ImageMissing"
    assert "spec.application.image" in submitted["message"]
    assert condition_is(obj, "Accepted", "True")  # valid for `mlscale run`; only a cluster needs an image
    assert await cluster.get(f"{PODS}/pagerank-driver") is None
    assert {e.get("type") for e in await cluster.wait_for_events("pagerank", "ImageMissing")} == {"Warning"}


async def test_delete_removes_the_application(operator: RunningOperator, cluster: Cluster) -> None:
    await cluster.create(f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}/deadlinejobs", job())
    await cluster.wait_for(job_path(), lambda o: condition_is(o, "Submitted", "True"))
    await create_executor_pods(cluster)
    # A stage profile belongs to the application, not to this run: it must survive.
    await cluster.create(
        f"{CORE}/configmaps",
        {
            "metadata": {
                "name": "mlscale-profile-pagerank-0123456789abcdef",
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "mlscale"},
            },
            "data": {"profile.json": "{}"},
        },
    )
    await cluster.delete(job_path())
    await cluster.wait_for(job_path(), lambda o: o is None)
    for path in (
        f"{PODS}/pagerank-driver",
        f"{PODS}/pagerank-exec-1",
        f"{PODS}/pagerank-exec-2",
        f"{CORE}/services/pagerank-driver",
        f"{CORE}/configmaps/pagerank-executor-template",
        f"{CORE}/serviceaccounts/pagerank-spark",
        f"{RBAC}/roles/pagerank-spark",
        f"{RBAC}/rolebindings/pagerank-spark",
    ):
        assert await cluster.get(path) is None, path
    assert await cluster.get(f"{CORE}/configmaps/mlscale-profile-pagerank-0123456789abcdef") is not None
    assert ("DeadlineJob", NAMESPACE, "pagerank") not in operator.memo["status_store"].statuses
