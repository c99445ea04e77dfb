"""On a real cluster, with the images built from images/: the examples run to the promises they make.

Needs KUBECONFIG (the operator installed, as for test_cluster.py) and the images of images/,
pushed where the cluster pulls them (or loaded with ``kind load docker-image``):

    MLSCALE_E2E_SPARK_IMAGE=REGISTRY/mlscale-spark:TAG      (images/spark.Dockerfile)
    MLSCALE_E2E_ENGINES_IMAGE=REGISTRY/mlscale-engines:TAG  (images/engines.Dockerfile)

A test whose image is not named is skipped, saying which variable to set. The budgets are the
examples' own plus what a cluster takes to schedule the pods and pull the images.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.kube import ROOT, kubectl, kubectl_apply, status

pytestmark = pytest.mark.e2e


def image(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to the image built from images/ to run the examples in the cluster")
    return value


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    return doc


def wait_for_phase(kind: str, name: str, namespace: str, phases: set[str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = status(kind, name, namespace)
        if last.get("phase") in phases:
            return last
        time.sleep(5)
    pytest.fail(f"{kind}/{name} did not reach {sorted(phases)} in {timeout_s:.0f} s; last status: {last}")


def test_pagerank_meets_its_deadline(namespace: str) -> None:
    job = example("deadlinejob-pagerank")
    job["spec"]["application"]["image"] = image("MLSCALE_E2E_SPARK_IMAGE")
    job["spec"]["deadline"] = "15m"  # the example's minute, and the pods' start in a cluster
    kubectl_apply(namespace, json.dumps(job))
    try:
        final = wait_for_phase("DeadlineJob", "pagerank", namespace, {"Succeeded", "DeadlineMissed", "Failed"}, 900)
        assert final["phase"] == "Succeeded", final.get("conditions")
        assert final["coreSeconds"] > 0
        assert final.get("profile"), "the run recorded no stage profile"
        conditions = {c["type"]: c for c in final.get("conditions", [])}
        if conditions.get("ResizeUnsupported", {}).get("status") != "True":
            assert final.get("resizeLatencySeconds") is not None, "no in-place resize was timed"
    finally:
        kubectl("delete", "deadlinejob", "pagerank", "-n", namespace, "--wait=false", check=False)


def test_federated_digits_reaches_its_target_and_stops(namespace: str) -> None:
    training = example("federatedtraining-digits-iid")
    training["spec"]["image"] = image("MLSCALE_E2E_ENGINES_IMAGE")
    training["spec"]["deadline"] = "20m"
    name = training["metadata"]["name"]
    kubectl_apply(namespace, json.dumps(training))
    try:
        phases = {"TargetReached", "BudgetExhausted", "Failed"}
        final = wait_for_phase("FederatedTraining", name, namespace, phases, 1200)
        assert final["phase"] == "TargetReached", final.get("conditions")
        selector = f"mlscale.dev/federatedtraining={name}"
        deadline = time.monotonic() + 120
        while True:  # the clients stop once the target is reached
            pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)
            running = [p["metadata"]["name"] for p in pods["items"] if p["status"].get("phase") == "Running"]
            if not running:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"pods still running 2 minutes after the target: {running}")
            time.sleep(5)
    finally:
        kubectl("delete", "federatedtraining", name, "-n", namespace, "--wait=false", check=False)


@contextlib.contextmanager
def port_forward(namespace: str, service: str, port: int) -> Iterator[str]:
    """``kubectl port-forward`` to a Service's port; the local URL while it runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    command = ["kubectl", "port-forward", "-n", namespace, f"service/{service}", f"{local}:{port}"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", local), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"kubectl port-forward to service/{service} did not listen in 30 s")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{local}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def http(url: str, body: object, method: str, headers: dict[str, str] | None = None) -> int:
    """The status of one JSON request (an error status too)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_small_cnn_serves_and_only_the_operator_sets_its_replicas(namespace: str) -> None:
    svc = example("inferenceservice-small-cnn")
    svc["spec"]["image"] = image("MLSCALE_E2E_ENGINES_IMAGE")
    name = svc["metadata"]["name"]
    kubectl_apply(namespace, json.dumps(svc))
    try:
        wait_for_phase("InferenceService", name, namespace, {"Running"}, 600)
        deadline = time.monotonic() + 120
        while not status("InferenceService", name, namespace).get("allocations"):
            if time.monotonic() > deadline:
                pytest.fail("no replica was registered with the router within 2 minutes of Running")
            time.sleep(2)
        with port_forward(namespace, name, 8080) as base:
            model = svc["spec"]["model"]["name"]
            request = {"inputs": [{"name": "image", "shape": [1, 28, 28, 1], "datatype": "FP32", "data": [0.5] * 784}]}
            assert http(f"{base}/v2/models/{model}/infer", request, "POST") == 200
            # Through the Service every client reaches, the replica set cannot be changed.
            elsewhere = {"replicas": [{"name": "elsewhere", "url": "http://192.0.2.1:8080", "model": model}]}
            assert http(f"{base}/admin/replicas", elsewhere, "PUT") == 401
            assert http(f"{base}/admin/replicas", elsewhere, "PUT", {"Authorization": "Bearer guess"}) == 401
    finally:
        kubectl("delete", "inferenceservice", name, "-n", namespace, "--wait=false", check=False)
