"""On a real cluster: the CRDs install, and the running operator accepts every example.

Run with the operator installed (``helm install mlscale charts/mlscale``) and KUBECONFIG set.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "mlscale-e2e"


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=120, check=check)


def kubectl_apply(namespace: str, doc: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``kubectl apply`` of one document given as text."""
    command = ["kubectl", "apply", "-n", namespace, *args, "-f", "-"]
    return subprocess.run(command, input=doc, capture_output=True, text=True, timeout=60, check=check)


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    kubectl("apply", "-k", str(ROOT / "crds"))
    kubectl("create", "namespace", NAMESPACE, check=False)
    yield NAMESPACE
    kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


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
