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
    result = subprocess.run(
        ["kubectl", "apply", "-n", namespace, "--validate=strict", "-f", "-"],
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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
