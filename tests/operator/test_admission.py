"""Admission: every kind is validated once on create/update; the verdict lands in its status."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from controllers import admission, deadlinejob_loop, federatedtraining_loop, inferenceservice_loop
from mlscale.api import ADMITTED
from mlscale.kinds import KINDS
from tests.operator.harness import NAMESPACE, Cluster, RunningOperator

pytestmark = pytest.mark.operator

BASE = f"/apis/mlscale.dev/v1alpha1/namespaces/{NAMESPACE}"

VALID: dict[str, dict[str, Any]] = {
    "deadlinejobs": {
        "apiVersion": "mlscale.dev/v1alpha1",
        "kind": "DeadlineJob",
        "metadata": {"name": "pagerank", "namespace": NAMESPACE, "generation": 1},
        "spec": {
            "deadline": "5m",
            "application": {"mainApplicationFile": "local:///app/pagerank.py"},
            "executors": {"instances": 2, "coresMin": "200m", "coresMax": "1"},
        },
    },
    "federatedtrainings": {
        "apiVersion": "mlscale.dev/v1alpha1",
        "kind": "FederatedTraining",
        "metadata": {"name": "digits", "namespace": NAMESPACE, "generation": 1},
        "spec": {
            "model": {"builder": "examples.hyperfl.models:digits_mlp"},
            "target": {"metric": "accuracy", "value": 0.9},
            "data": {"clients": 10},
            "rounds": {"max": 30, "clientsPerRound": 5},
        },
    },
    "inferenceservices": {
        "apiVersion": "mlscale.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "cnn", "namespace": NAMESPACE, "generation": 1},
        "spec": {
            "model": {"name": "cnn", "builder": "examples.roma.models:small_cnn"},
            "slo": {"latencyMs": 100, "percentile": 95},
            "replicas": {"min": 1, "max": 3},
        },
    },
}

# One invalid spec per kind, and the field path its message must name.
INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "deadlinejobs": ({"executors": {"instances": 2, "coresMin": "2", "coresMax": "1"}}, "spec.executors"),
    "federatedtrainings": ({"target": {"metric": "accuracy", "value": 1.5}}, "spec.target"),
    "inferenceservices": ({"slo": {"latencyMs": 100, "percentile": 100}}, "spec.slo.percentile"),
}


def accepted(obj: dict[str, Any] | None) -> str | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == "Accepted":
            return str(cond["status"])
    return None


@pytest.mark.parametrize("plural", sorted(VALID))
async def test_valid_resource_is_accepted_and_pending(plural: str, operator: RunningOperator, cluster: Cluster) -> None:
    body = VALID[plural]
    await cluster.create(f"{BASE}/{plural}", body)
    path = f"{BASE}/{plural}/{body['metadata']['name']}"
    obj = await cluster.wait_for(path, lambda o: accepted(o) == "True")
    assert obj is not None
    assert obj["status"]["phase"] == "Pending"
    assert obj["status"]["observedGeneration"] == 1
    assert "mlscale.dev/finalizer" in obj["metadata"]["finalizers"]
    assert await cluster.wait_for_events(body["metadata"]["name"], "Accepted")


@pytest.mark.parametrize("plural", sorted(INVALID))
async def test_invalid_resource_is_refused_with_field_path(
    plural: str, operator: RunningOperator, cluster: Cluster
) -> None:
    body = copy.deepcopy(VALID[plural])
    change, field = INVALID[plural]
    body["spec"].update(change)
    await cluster.create(f"{BASE}/{plural}", body)
    path = f"{BASE}/{plural}/{body['metadata']['name']}"
    obj = await cluster.wait_for(path, lambda o: accepted(o) == "False")
    assert obj is not None
    condition = next(c for c in obj["status"]["conditions"] if c["type"] == "Accepted")
    assert condition["reason"] == "InvalidSpec"
    assert field in condition["message"]
    warnings = [
        e for e in await cluster.wait_for_events(body["metadata"]["name"], "InvalidSpec") if e.get("type") == "Warning"
    ]
    assert any(field in e.get("message", "") for e in warnings)


async def test_fixing_the_spec_flips_accepted(operator: RunningOperator, cluster: Cluster) -> None:
    body = copy.deepcopy(VALID["deadlinejobs"])
    body["spec"]["deadline"] = "soon"
    await cluster.create(f"{BASE}/deadlinejobs", body)
    path = f"{BASE}/deadlinejobs/pagerank"
    obj = await cluster.wait_for(path, lambda o: accepted(o) == "False")
    assert obj is not None
    assert "spec.deadline" in next(c["message"] for c in obj["status"]["conditions"] if c["type"] == "Accepted")
    await cluster.patch(path, {"metadata": {"generation": 2}, "spec": {"deadline": "10m"}})
    obj = await cluster.wait_for(path, lambda o: accepted(o) == "True")
    assert obj is not None
    assert obj["status"]["observedGeneration"] == 2


async def test_unknown_field_is_refused(operator: RunningOperator, cluster: Cluster) -> None:
    body = copy.deepcopy(VALID["inferenceservices"])
    body["spec"]["replicaCount"] = 3
    await cluster.create(f"{BASE}/inferenceservices", body)
    obj = await cluster.wait_for(f"{BASE}/inferenceservices/cnn", lambda o: accepted(o) == "False")
    assert obj is not None
    message = next(c["message"] for c in obj["status"]["conditions"] if c["type"] == "Accepted")
    assert "spec.replicaCount: unknown field" in message


async def test_delete_runs_cleanup_through_the_finalizer(operator: RunningOperator, cluster: Cluster) -> None:
    body = VALID["deadlinejobs"]
    await cluster.create(f"{BASE}/deadlinejobs", body)
    path = f"{BASE}/deadlinejobs/pagerank"
    await cluster.wait_for(path, lambda o: accepted(o) == "True")
    await cluster.delete(path)
    await cluster.wait_for(path, lambda o: o is None)


EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = {path.name: yaml.safe_load(path.read_text()) for path in sorted(EXAMPLES_DIR.glob("*.yaml"))}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_every_example_is_accepted_by_the_operator(
    name: str, operator: RunningOperator, cluster: Cluster
) -> None:
    body = copy.deepcopy(EXAMPLES[name])
    body["metadata"]["namespace"] = NAMESPACE
    plural = KINDS[body["kind"]].plural
    await cluster.create(f"{BASE}/{plural}", body)
    obj = await cluster.wait_for(f"{BASE}/{plural}/{body['metadata']['name']}", lambda o: accepted(o) is not None)
    assert accepted(obj) == "True", obj


def _stored(kind_file: str, spec_changes: dict[str, Any], *, accepted_generation: int | None) -> dict[str, Any]:
    """A stored resource of generation 3 from an example, accepted at ``accepted_generation``."""
    obj: dict[str, Any] = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / kind_file).read_text())
    obj["metadata"].update(namespace=NAMESPACE, generation=3)
    obj["spec"].update(spec_changes)
    conditions = []
    if accepted_generation is not None:
        conditions.append(
            {"type": "Accepted", "status": "True", "reason": "Valid", "observedGeneration": accepted_generation}
        )
    obj["status"] = {"phase": "Running", "conditions": conditions}
    return obj


def test_a_running_resource_accepted_before_a_check_was_added_stays_controlled() -> None:
    # driver.memory 512Mi was accepted by an earlier release; refusing it now would leave the
    # job Running forever, its executors at their last size.
    job = _stored("deadlinejob-pagerank.yaml", {"driver": {"memory": "512Mi"}}, accepted_generation=3)
    assert admission.validation_context(job) == ADMITTED
    assert deadlinejob_loop.validated(job) is not None
    # An edit (generation 4, not yet admitted) is checked in full.
    edited = {**job, "metadata": {**job["metadata"], "generation": 4}}
    assert admission.validation_context(edited) is None
    # Without a generation on either side nothing says which spec was accepted.
    unnumbered = {**job, "metadata": {k: v for k, v in job["metadata"].items() if k != "generation"}}
    unnumbered["status"] = {"conditions": [{"type": "Accepted", "status": "True", "reason": "Valid"}]}
    assert admission.validation_context(unnumbered) is None
    assert deadlinejob_loop.validated(edited) is None

    svc = _stored("inferenceservice-small-cnn.yaml", {"batching": {"maxDelayMs": 500}}, accepted_generation=None)
    assert inferenceservice_loop.validated(svc) is None
    assert inferenceservice_loop.validated(svc, served=True) is not None  # what its replicas were made from

    alpha = {"data": {"clients": 10, "partition": {"type": "iid", "alpha": 0.3}}}
    training = _stored("federatedtraining-digits-iid.yaml", alpha, accepted_generation=3)
    assert federatedtraining_loop.validated(training) is not None
