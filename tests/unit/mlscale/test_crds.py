"""The CRDs are generated from the models, valid for the API server, and match the chart's copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlscale.crdgen import CHART_CRD_DIR, KEEP_BLOCK, expected_files
from mlscale.kinds import KINDS

ROOT = Path(__file__).resolve().parents[3]
CRD_FILES = sorted(p for p in (ROOT / "crds").glob("*.yaml") if p.name != "kustomization.yaml")


def test_committed_crds_match_the_models() -> None:
    stale = [
        str(p.relative_to(ROOT)) for p, text in expected_files(ROOT).items() if not p.exists() or p.read_text() != text
    ]
    assert not stale, f"regenerate with `make crds`: {stale}"


def test_chart_copy_matches_crds_dir() -> None:
    for path in CRD_FILES:
        chart = (ROOT / CHART_CRD_DIR / path.name).read_text()
        body = chart.split("{{- if .Values.crds.install }}\n", 1)[1].rsplit("{{- end }}", 1)[0]
        # The keep policy, added by the chart only (crds.keep), is the one other difference.
        assert body.count(KEEP_BLOCK) == 1, path.name
        assert yaml.safe_load(body.replace(KEEP_BLOCK, "")) == yaml.safe_load(path.read_text()), path.name


def test_one_crd_per_kind() -> None:
    kinds = {yaml.safe_load(p.read_text())["spec"]["names"]["kind"] for p in CRD_FILES}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_crd_validates_strictly_against_the_kubernetes_api(path: Path) -> None:
    kubernetes_validate.validate(yaml.safe_load(path.read_text()), "1.33", strict=True)


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        nodes.extend(_walk(sub, f"{path}.{name}"))
    if "items" in schema:
        nodes.extend(_walk(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        nodes.extend(_walk(schema["additionalProperties"], f"{path}{{}}"))
    return nodes


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_schema_is_structural_and_documented(path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    for where, node in _walk(root["properties"]["spec"], ".spec") + _walk(root["properties"]["status"], ".status"):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{where} has no type"
        if not where.endswith(("[]", "{}")):
            assert node.get("description"), f"{where} has no description"
        assert "$ref" not in node, where
        assert "title" not in node, where
        if node.get("type") == "object" and "properties" in node:
            assert "additionalProperties" not in node, where
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["categories"] == ["mlscale"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[0] == "Phase"
    assert columns[-1] == "Age"


def test_schema_carries_ranges_enums_and_required_fields() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "mlscale.dev_inferenceservices.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    percentile = spec["properties"]["slo"]["properties"]["percentile"]
    assert (
        percentile["minimum"],
        percentile["exclusiveMinimum"],
        percentile["maximum"],
        percentile["exclusiveMaximum"],
    ) == (0, True, 100, True)
    assert set(spec["required"]) == {"model", "slo"}
    assert spec["properties"]["replicas"]["x-kubernetes-validations"][0]["rule"] == "self.min <= self.max"
    cores = spec["properties"]["cpu"]["properties"]["coresMin"]
    assert cores["x-kubernetes-int-or-string"] is True
    assert "Default: 200m" in cores["description"]
    fl = yaml.safe_load((ROOT / "crds" / "mlscale.dev_federatedtrainings.yaml").read_text())
    partition = fl["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["data"][
        "properties"
    ]["partition"]
    assert partition["properties"]["type"]["enum"] == ["iid", "dirichlet"]


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_control_state_survives_the_api_server(path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["controlState"]["x-kubernetes-preserve-unknown-fields"] is True
