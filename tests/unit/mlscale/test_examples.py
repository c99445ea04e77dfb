"""Every example resource validates: with its model, with its CRD's schema, and its metadata with Kubernetes'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlscale.resources import load_resources, read_documents
from tests.unit.mlscale.crdschema import ROOT, schema_errors

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_there_are_examples_for_every_kind() -> None:
    kinds = {doc["kind"] for path in EXAMPLES for doc in read_documents(path)}
    assert kinds >= {"DeadlineJob", "FederatedTraining", "InferenceService"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_with_its_model(path: Path) -> None:
    assert load_resources(path)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_with_its_crd_schema(path: Path) -> None:
    for doc in read_documents(path):
        assert schema_errors(doc) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_metadata_is_valid_kubernetes_metadata(path: Path) -> None:
    for doc in read_documents(path):
        probe: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
        kubernetes_validate.validate(probe, "1.33", strict=True)
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(doc, "1.33", strict=True)


def test_crd_schema_catches_what_the_api_server_would() -> None:
    doc = yaml.safe_load(
        """
        apiVersion: mlscale.dev/v1alpha1
        kind: InferenceService
        metadata: {name: x}
        spec:
          model: {name: x, builder: "a:b"}
          slo: {latencyMs: 50, percentile: 120}
          replicaCount: 3
        """
    )
    errors = schema_errors(doc)
    assert any(e.startswith("spec.slo.percentile") for e in errors)
    assert any("replicaCount" in e for e in errors)
