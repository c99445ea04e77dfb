"""InferenceService in a cluster: children on accept, replicas registered with the router, refusal, delete.

The operator runs for real against the emulator; the router is a fake on 127.0.0.1 that serves
the same ``/stats`` JSON as the real one and records the replica sets the operator registers.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from controllers.kube import adopt, merge_patch_to, pod_cpu
from controllers.servingpods import admin_token_of, children, service_labels
from roma.api import InferenceService
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator
from tests.operator.inferenceservice_helpers import (
    BASE,
    COMPONENT,
    DEPLOYMENTS,
    MODEL,
    PODS,
    SERVICES,
    FakeRouter,
    condition,
    condition_is,
    create_replica_pods,
    fake_router,
    items,
    service,
    service_path,
    status_of,
    wait_for_events,
)

pytestmark = pytest.mark.operator

GPU = {"count": 1, "resourceName": "nvidia.com/gpu", "alpha": 0.25}
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"


@pytest.fixture
async def router(kubeconfig: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeRouter]:
    async for fake in fake_router(monkeypatch):
        yield fake


def by_component(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["labels"][COMPONENT]: o for o in objects}


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


async def start(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    created = await cluster.create(f"{BASE}/inferenceservices", body)
    await cluster.wait_for(service_path(body["metadata"]["name"]), lambda o: condition_is(o, "Submitted", "True"))
    return created


async def test_accept_creates_replicas_router_and_services(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    created = await start(cluster, service(gpu=GPU))
    uid = created["metadata"]["uid"]
    deployments = by_component(items(await cluster.get(DEPLOYMENTS)))
    services = {s["metadata"]["name"]: s for s in items(await cluster.get(SERVICES))}
    assert sorted(deployments) == ["cpu-replica", "gpu-replica", "router"]
    assert sorted(services) == ["cnn", "cnn-replicas"]
    for child in [*deployments.values(), *services.values()]:
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("InferenceService", "cnn", uid)
        assert owner["controller"] is True
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlscale"

    cpu = deployments["cpu-replica"]
    assert cpu["metadata"]["name"] == "cnn-cpu"
    assert cpu["spec"]["replicas"] == 1  # replicas.min
    assert cpu["spec"]["selector"]["matchLabels"].items() <= cpu["spec"]["template"]["metadata"]["labels"].items()
    (server,) = cpu["spec"]["template"]["spec"]["containers"]
    assert server["image"] == "registry.example/mlscale-roma:0.1"
    # Every replica starts at coresMax, request = limit, and its cores can move without a restart.
    quantities = {"cpu": "2", "memory": "1024Mi"}
    assert server["resources"] == {"requests": quantities, "limits": quantities}
    assert {"resourceName": "cpu", "restartPolicy": "NotRequired"} in server["resizePolicy"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    command = server["command"]
    assert command[:3] == ["python", "-m", "roma.server"]
    assert (flag(command, "--name"), flag(command, "--builder")) == (MODEL, "examples.roma.models:small_cnn")
    assert (flag(command, "--max-batch-size"), float(flag(command, "--max-delay-ms"))) == ("16", 4.0)
    assert flag(command, "--host") == "0.0.0.0"
    assert "--accelerator" not in command

    gpu = deployments["gpu-replica"]
    assert gpu["spec"]["replicas"] == 1
    (gpu_server,) = gpu["spec"]["template"]["spec"]["containers"]
    assert gpu_server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--accelerator" in gpu_server["command"]

    router_deployment = deployments["router"]
    (router_container,) = router_deployment["spec"]["template"]["spec"]["containers"]
    router_command = router_container["command"]
    assert router_command[:3] == ["python", "-m", "roma.router"]
    assert flag(router_command, "--model") == f"{MODEL}:100:95"
    assert float(flag(router_command, "--alpha")) == 0.25
    # The router's admin API asks for a token the operator made and keeps in an owned Secret.
    secret = await cluster.get(f"{SECRETS}/cnn-router-admin")
    assert secret is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == uid
    assert len(admin_token_of(secret) or "") >= 32
    # The router reads it from the mounted Secret at each admin request (a replaced token reaches it).
    token_file = {e["name"]: e for e in router_container["env"]}["MLSCALE_ROUTER_ADMIN_TOKEN_FILE"]["value"]
    (mount,) = [m for m in router_container["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")]
    volumes = {v["name"]: v for v in router_deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["secret"]["secretName"] == "cnn-router-admin"
    assert token_file.rsplit("/", 1)[1] == "token"

    # The front Service reaches the router only; the headless one every model server, CPU and GPU.
    front, headless = services["cnn"], services["cnn-replicas"]
    router_labels = router_deployment["spec"]["template"]["metadata"]["labels"]
    cpu_labels = cpu["spec"]["template"]["metadata"]["labels"]
    gpu_labels = gpu["spec"]["template"]["metadata"]["labels"]
    assert front["spec"]["selector"].items() <= router_labels.items()
    assert not front["spec"]["selector"].items() <= cpu_labels.items()
    assert headless["spec"]["clusterIP"] == "None"
    for labels in (cpu_labels, gpu_labels):
        assert headless["spec"]["selector"].items() <= labels.items()
    assert not headless["spec"]["selector"].items() <= router_labels.items()
    assert [e["type"] for e in await wait_for_events(cluster, "Submitted")][:1] == ["Normal"]


async def test_ready_replicas_are_registered_with_the_router(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    router.gpu_share = 0.3
    await start(cluster, service(gpu=GPU))
    await create_replica_pods(cluster, "cnn-cpu", 1)
    await create_replica_pods(cluster, "cnn-gpu", 1, first=5)
    await create_replica_pods(cluster, "cnn-cpu", 1, first=1, ready=False)  # still loading its model
    await cluster.wait_for(service_path(), lambda o: status_of(o).get("phase") == "Running")
    # Registered each period: wait for one that saw every pod.
    await cluster.wait_for(service_path(), lambda o: len(status_of(o).get("allocations") or []) == 3)
    registered = {r["name"]: r for r in router.registered[-1]}
    assert sorted(registered) == ["cnn-cpu-0", "cnn-gpu-5"]
    token = admin_token_of(await cluster.get(f"{SECRETS}/cnn-router-admin") or {})
    assert token
    assert set(router.authorizations) == {f"Bearer {token}"}

    # A Secret deleted, or replaced by one the operator did not write, is made again next period.
    await cluster.delete(f"{SECRETS}/cnn-router-admin")
    new_token = admin_token_of(await cluster.wait_for(f"{SECRETS}/cnn-router-admin", lambda o: o is not None) or {})
    assert new_token not in (None, token)
    registrations = len(router.registered)
    await cluster.wait_for(service_path(), lambda o: len(router.registered) > registrations + 1)
    assert router.authorizations[-1] == f"Bearer {new_token}"
    await cluster.delete(f"{SECRETS}/cnn-router-admin")
    await cluster.create(
        SECRETS,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cnn-router-admin"}, "data": {"token": "c2hvcnQ="}},
    )  # "short", and not owned by the service
    replaced = await cluster.wait_for(
        f"{SECRETS}/cnn-router-admin", lambda o: o is not None and (o["metadata"].get("ownerReferences") or [])
    )
    assert len(admin_token_of(replaced or {}) or "") >= 32
    assert registered["cnn-cpu-0"]["url"] == "http://10.0.0.10:8080"
    assert registered["cnn-cpu-0"]["models"] == [MODEL]
    assert (registered["cnn-cpu-0"]["accelerator"], registered["cnn-gpu-5"]["accelerator"]) == (False, True)
    status = status_of(await cluster.get(service_path()))
    by_name = {a["name"]: a for a in status["allocations"]}
    assert by_name["cnn-gpu-5"]["accelerator"] is True
    assert status["gpuShare"] == 0.3
    assert len(await wait_for_events(cluster, "Running")) == 1


async def test_missing_image_is_refused_without_children(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    body = service()
    del body["spec"]["image"]
    await cluster.create(f"{BASE}/inferenceservices", body)
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "Submitted", "False"))
    cond = condition(obj, "Submitted")
    assert cond is not None
    assert cond["reason"] == "ImageMissing"
    assert "spec.image" in cond["message"]
    assert condition_is(obj, "Accepted", "True")
    assert status_of(obj)["phase"] == "Pending"
    assert {e["type"] for e in await wait_for_events(cluster, "ImageMissing")} == {"Warning"}
    assert items(await cluster.get(DEPLOYMENTS)) == []
    assert items(await cluster.get(SERVICES)) == []


async def test_invalid_spec_is_refused(router: FakeRouter, operator: RunningOperator, cluster: Cluster) -> None:
    body = copy.deepcopy(service())
    body["spec"]["cpu"] = {"coresMin": "3", "coresMax": "2"}
    await cluster.create(f"{BASE}/inferenceservices", body)
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "Accepted", "False"))
    assert "coresMin" in str((condition(obj, "Accepted") or {}).get("message"))
    assert items(await cluster.get(DEPLOYMENTS)) == []


async def test_delete_removes_every_child(router: FakeRouter, operator: RunningOperator, cluster: Cluster) -> None:
    await start(cluster, service(gpu=GPU))
    await create_replica_pods(cluster, "cnn-cpu", 1)
    await create_replica_pods(cluster, "cnn-gpu", 1, first=5)
    await cluster.wait_for(service_path(), lambda o: status_of(o).get("phase") == "Running")
    assert len(items(await cluster.get(DEPLOYMENTS))) == 3
    await cluster.delete(service_path())
    await cluster.wait_for(service_path(), lambda o: o is None)
    assert items(await cluster.get(DEPLOYMENTS)) == []
    assert items(await cluster.get(SERVICES)) == []
    assert items(await cluster.get(PODS)) == []
    assert await cluster.get(f"{SECRETS}/cnn-router-admin") is None
    assert ("InferenceService", NAMESPACE, "cnn") not in operator.memo["status_store"].statuses


async def test_spec_change_updates_templates_but_not_the_replica_count(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster, service(gpu=GPU))
    await cluster.patch(f"{DEPLOYMENTS}/cnn-cpu/scale", {"spec": {"replicas": 2}})  # as the law would
    new_image = "registry.example/mlscale-roma:0.2"
    await cluster.patch(
        service_path(),
        {"metadata": {"generation": 2}, "spec": {"image": new_image, "gpu": {"count": 0}}},
    )
    await cluster.wait_for(f"{DEPLOYMENTS}/cnn-gpu", lambda o: o is None)
    cpu = await cluster.wait_for(
        f"{DEPLOYMENTS}/cnn-cpu", lambda o: (o or {})["spec"]["template"]["spec"]["containers"][0]["image"] == new_image
    )
    assert (cpu or {})["spec"]["replicas"] == 2
    router_deployment = await cluster.get(f"{DEPLOYMENTS}/cnn-router")
    assert (router_deployment or {})["spec"]["template"]["spec"]["containers"][0]["image"] == new_image


@pytest.mark.parametrize("gpu_count", [0, 2])
def test_children_are_valid_kubernetes_objects(gpu_count: int) -> None:
    body = service(gpu={**GPU, "count": gpu_count})
    body["metadata"]["uid"] = "0b0f6c4e-0000-4000-8000-000000000001"
    svc = InferenceService.model_validate(body)
    objects = [adopt(child, body, service_labels("cnn")) for _, _, child in children(svc)]
    assert sum(o["kind"] == "Deployment" for o in objects) == (3 if gpu_count else 2)
    for obj in objects:
        # In-place resize (resizePolicy, pods/resize) needs Kubernetes 1.33.
        kubernetes_validate.validate(obj, "1.33", strict=True)


GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SPOT = {"key": "spot", "operator": "Exists", "effect": "NoSchedule"}


def templated(**spec: Any) -> dict[str, Any]:
    """A service with templates for every replica (a toleration, a model cache), the GPU ones and the router."""
    body = service(gpu=GPU, **spec)
    body["spec"]["template"] = {
        "metadata": {"labels": {"team": "vision"}},
        "spec": {
            "nodeSelector": {"pool": "serving"},
            "tolerations": [SPOT],
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "model-cache"}}],
            "containers": [{"name": "server", "volumeMounts": [{"name": "models", "mountPath": "/models"}]}],
        },
    }
    body["spec"]["gpu"] = {**GPU, "template": {"spec": {"nodeSelector": {"pool": "gpu"}, "tolerations": [GPU_TAINT]}}}
    body["spec"]["routerTemplate"] = {"spec": {"imagePullSecrets": [{"name": "registry"}]}}
    return body


async def test_templates_reach_the_replicas_the_gpu_replicas_and_the_router(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster, templated())
    deployments = by_component(items(await cluster.get(DEPLOYMENTS)))
    cpu = deployments["cpu-replica"]["spec"]["template"]
    assert cpu["spec"]["nodeSelector"] == {"pool": "serving"}
    assert cpu["spec"]["tolerations"] == [SPOT]
    assert cpu["metadata"]["labels"]["team"] == "vision"
    (server,) = cpu["spec"]["containers"]
    assert server["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]
    assert server["resizePolicy"][0] == {"resourceName": "cpu", "restartPolicy": "NotRequired"}
    # The GPU replicas take spec.template, then spec.gpu.template's fields over it.
    gpu = deployments["gpu-replica"]["spec"]["template"]
    assert gpu["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert gpu["spec"]["tolerations"] == [GPU_TAINT]
    assert [v["name"] for v in gpu["spec"]["volumes"]] == ["models"]
    router_pod = deployments["router"]["spec"]["template"]
    assert router_pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert "nodeSelector" not in router_pod["spec"]


async def test_a_template_update_removes_what_the_spec_dropped_and_keeps_what_others_added(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    await start(cluster, templated())
    # Another hand on the Deployment: `kubectl rollout restart` stamps the pod template.
    stamp = {"kubectl.kubernetes.io/restartedAt": "2026-12-07T10:00:00Z"}
    await cluster.patch(f"{DEPLOYMENTS}/cnn-cpu", {"spec": {"template": {"metadata": {"annotations": stamp}}}})
    spec = copy.deepcopy(templated()["spec"])
    spec["template"]["spec"]["nodeSelector"] = None  # a merge patch removes a field with null
    spec["template"]["spec"]["tolerations"] = []
    await cluster.patch(service_path(), {"metadata": {"generation": 2}, "spec": spec})

    def updated(o: dict[str, Any] | None) -> bool:
        return not (o or {})["spec"]["template"]["spec"].get("nodeSelector")  # gone, or left empty

    cpu = await cluster.wait_for(f"{DEPLOYMENTS}/cnn-cpu", updated)
    template = (cpu or {})["spec"]["template"]
    assert template["spec"]["tolerations"] == []
    assert template["metadata"]["annotations"] == stamp
    assert template["metadata"]["labels"]["team"] == "vision"


async def test_replica_template_that_sets_what_the_operator_decides_is_refused(
    router: FakeRouter, operator: RunningOperator, cluster: Cluster
) -> None:
    body = service()
    body["spec"]["template"] = {
        "spec": {"containers": [{"name": "server", "resources": {"limits": {"cpu": "4"}}, "readinessProbe": {}}]}
    }
    body["spec"]["routerTemplate"] = {"metadata": {"labels": {"mlscale.dev/role": "mine"}}}
    await cluster.create(f"{BASE}/inferenceservices", body)
    obj = await cluster.wait_for(service_path(), lambda o: condition_is(o, "Accepted", "False"))
    message = (condition(obj, "Accepted") or {})["message"]
    assert "spec.template: spec.containers[server].resources: a replica's CPU comes from spec.cpu" in message
    assert "spec.containers[server].readinessProbe: the router takes a replica once it answers" in message
    assert "spec.routerTemplate: metadata.labels.mlscale.dev/role" in message
    assert items(await cluster.get(DEPLOYMENTS)) == []


def test_templated_children_are_valid_kubernetes_objects() -> None:
    body = templated()
    body["metadata"]["uid"] = "0b0f6c4e-0000-4000-8000-000000000003"
    svc = InferenceService.model_validate(body)
    for _, _, child in children(svc):
        kubernetes_validate.validate(adopt(child, body, service_labels("cnn")), "1.33", strict=True)


def test_merge_patch_to_nulls_only_what_was_applied() -> None:
    applied = {"spec": {"nodeSelector": {"pool": "a"}, "tolerations": [1], "keep": {"x": 1, "y": 2}}}
    wanted = {"spec": {"tolerations": [], "keep": {"x": 1}}}
    assert merge_patch_to(applied, wanted) == {
        "spec": {"nodeSelector": {"pool": None}, "tolerations": [], "keep": {"y": None, "x": 1}}
    }
    assert merge_patch_to({}, wanted) == wanted  # nothing known applied: nothing removed
    # A map dropped whole: only the keys the operator put there go.
    dropped = merge_patch_to({"metadata": {"annotations": {"ours": "1"}}}, {"metadata": {}})
    assert dropped == {"metadata": {"annotations": {"ours": None}}}


def test_a_gpu_template_that_clashes_with_the_replica_template_is_refused() -> None:
    body = service(gpu=GPU)
    body["spec"]["template"] = {"spec": {"containers": [{"name": "log-shipper", "image": "x"}]}}
    body["spec"]["gpu"] = {**GPU, "template": {"spec": {"initContainers": [{"name": "log-shipper", "image": "y"}]}}}
    with pytest.raises(ValidationError) as caught:
        InferenceService.model_validate(body)
    assert "spec.gpu.template over spec.template: spec.containers[log-shipper]: more than one container" in str(
        caught.value
    )


def test_sidecars_of_our_replicas_are_not_shared_out() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "server", "resources": {"requests": {"cpu": "1500m"}}},
                {"name": "log-shipper", "resources": {"requests": {"cpu": "100m"}}},
            ],
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                {"name": "fetch", "resources": {"requests": {"cpu": "4"}}},  # done before the others start
            ],
        }
    }
    assert pod_cpu(pod) == pytest.approx(1.8)
    assert pod_cpu(pod, besides="server") == pytest.approx(0.3)
