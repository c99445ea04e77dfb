"""On a real cluster: the CRDs install, and the running operator accepts every example.

Run with the operator installed (``helm install mlscale charts/mlscale``) and KUBECONFIG set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.kube import NAMESPACE, ROOT, kubectl, kubectl_apply

pytestmark = pytest.mark.e2e


def test_server_side_schema_refuses_an_unknown_field(namespace: str) -> None:
    bad = (
        '{"apiVersion":"mlscale.dev/v1alpha1","kind":"InferenceService","metadata":{"name":"bad"},'
        '"spec":{"model":{"name":"m","builder":"a:b"},"slo":{"latencyMs":10},"replicaCount":2}}'
    )
    result = kubectl_apply(namespace, bad, "--validate=strict", check=False)
    assert result.returncode != 0
    assert "replicaCount" in result.stderr


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_operator_accepts_every_example(namespace: str, example: Path) -> None:
    applied = kubectl("apply", "-n", namespace, "-f", str(example), "-o", "json")
    obj = json.loads(applied.stdout)
    kind, name = obj["kind"], obj["metadata"]["name"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in got.get("status", {}).get("conditions", [])}
        if conditions.get("Accepted") == "True":
            return
        time.sleep(2)
    pytest.fail(f"{kind}/{name} was not accepted within 60 s")


def _conditions(kind: str, name: str, namespace: str) -> dict[str, dict[str, str]]:
    got = json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
    return {c["type"]: c for c in got.get("status", {}).get("conditions", [])}


def test_pod_templates_survive_the_schema_and_conflicts_are_refused(namespace: str) -> None:
    job = {
        "apiVersion": "mlscale.dev/v1alpha1",
        "kind": "DeadlineJob",
        "metadata": {"name": "templated"},
        "spec": {
            "deadline": "10m",
            "application": {"mainApplicationFile": "local:///opt/app.py"},
            "executors": {
                "instances": 1,
                "template": {
                    "metadata": {"labels": {"team": "ml"}},
                    "spec": {"nodeSelector": {"pool": "spark"}, "containers": [{"name": "executor", "env": []}]},
                },
            },
        },
    }
    applied = kubectl_apply(namespace, json.dumps(job), "-o", "json")
    kept = json.loads(applied.stdout)["spec"]["executors"]["template"]
    assert kept["spec"]["nodeSelector"] == {"pool": "spark"}  # not pruned by the structural schema
    job["metadata"]["name"] = "templated-bad"
    job["spec"]["executors"]["template"]["metadata"]["labels"] = {"spark-role": "mine"}
    kubectl_apply(namespace, json.dumps(job))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        accepted = _conditions("DeadlineJob", "templated-bad", namespace).get("Accepted", {})
        if accepted.get("status") == "False":
            assert "metadata.labels.spark-role" in accepted.get("message", "")
            return
        time.sleep(2)
    pytest.fail("DeadlineJob/templated-bad with a reserved label was not refused within 60 s")


def _wait_for_condition(
    kind: str, name: str, namespace: str, *, type_: str, status: str, timeout_s: float
) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _conditions(kind, name, namespace).get(type_, {})
        if found.get("status") == status:
            return found
        time.sleep(2)
    pytest.fail(f"{kind}/{name} did not get {type_}={status} within {timeout_s:.0f} s")


def _inference_service(name: str, image: str) -> dict[str, object]:
    return {
        "apiVersion": "mlscale.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "small-cnn", "builder": "examples.roma.models:small_cnn"},
            "slo": {"latencyMs": 100},
            "image": image,
        },
    }


def test_a_service_whose_image_cannot_be_pulled_names_its_pods(namespace: str) -> None:
    kubectl_apply(namespace, json.dumps(_inference_service("unpullable", "registry.invalid/mlscale/none:0")))
    held = _wait_for_condition(
        "InferenceService", "unpullable", namespace, type_="PodsWaiting", status="True", timeout_s=180
    )
    assert held["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "unpullable-" in held["message"]  # the pod, by name
    kubectl("delete", "inferenceservice", "unpullable", "-n", namespace, "--wait=false", check=False)


def test_pods_a_restricted_namespace_refuses_are_refused_before_any_is_created() -> None:
    restricted = f"{NAMESPACE}-restricted"
    kubectl("create", "namespace", restricted, check=False)
    kubectl("label", "namespace", restricted, "pod-security.kubernetes.io/enforce=restricted", "--overwrite")
    try:
        kubectl_apply(restricted, json.dumps(_inference_service("root", "registry.example/mlscale-roma:0.1")))
        submitted = _wait_for_condition(
            "InferenceService", "root", restricted, type_="Submitted", status="False", timeout_s=60
        )
        assert submitted["reason"] == "ChildRejected"
        assert "violates PodSecurity" in submitted["message"]
        deployments = json.loads(kubectl("get", "deployments", "-n", restricted, "-o", "json").stdout)
        assert deployments["items"] == []
    finally:
        kubectl("delete", "namespace", restricted, "--wait=false", check=False)
