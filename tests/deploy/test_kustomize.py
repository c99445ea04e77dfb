"""The kustomize base operator/, rendered by the real `kubectl kustomize`."""

from __future__ import annotations

import difflib
from typing import Any

import pytest
import yaml

from tests.deploy.dockerfile import kopf_run_options
from tests.deploy.manifests import Manifests, without_keep_policy
from tests.deploy.podsecurity import pod_security_violations

pytestmark = pytest.mark.deploy

# Labels only Helm sets; everything else must be the same in both deploy paths.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without Helm's bookkeeping labels, at every level where labels appear."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: strip_labels(value) if key == "labels" else strip(value) for key, value in node.items()}
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    def strip_labels(labels: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in labels.items() if k not in HELM_ONLY_LABELS}

    return {key: strip(value) for key, value in obj.items()}


def by_identity(objects: Manifests) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Objects keyed by (kind, namespace, name)."""
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): comparable(o) for o in objects}


def test_base_renders_valid_kubernetes_objects(kustomize_base: Manifests) -> None:
    problems, uncovered = kustomize_base.validate()
    assert problems == []
    assert uncovered == set()


def test_base_holds_the_chart_default_objects_and_its_namespace(
    kustomize_base: Manifests, chart_defaults: Manifests
) -> None:
    base = by_identity(kustomize_base)
    namespace = base.pop(("Namespace", "", "mlscale-system"))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # The chart's CRDs carry Helm's keep policy, which means nothing to kubectl.
    chart = {
        identity: without_keep_policy(obj) if identity[0] == "CustomResourceDefinition" else obj
        for identity, obj in by_identity(chart_defaults).items()
    }
    assert sorted(base) == sorted(chart)
    for identity, obj in chart.items():
        if base[identity] != obj:
            diff = difflib.unified_diff(
                yaml.safe_dump(obj).splitlines(),
                yaml.safe_dump(base[identity]).splitlines(),
                "chart",
                "operator/",
                lineterm="",
            )
            pytest.fail(f"operator/ and the chart differ in {identity}:\n" + "\n".join(diff))


def test_namespaced_objects_live_in_mlscale_system(kustomize_base: Manifests) -> None:
    namespaced = [o for o in kustomize_base if o["kind"] in {"ServiceAccount", "Service", "Deployment"}]
    assert len(namespaced) == 3
    assert {o["metadata"]["namespace"] for o in namespaced} == {"mlscale-system"}


def test_base_brings_the_three_mlscale_crds(kustomize_base: Manifests) -> None:
    crds = kustomize_base.of_kind("CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "deadlinejobs.mlscale.dev",
        "federatedtrainings.mlscale.dev",
        "inferenceservices.mlscale.dev",
    ]


def test_base_operator_pod_meets_the_restricted_pod_security_standard(kustomize_base: Manifests) -> None:
    pod_specs = kustomize_base.pod_specs()
    assert list(pod_specs) == ["mlscale-operator"]
    assert pod_security_violations(pod_specs["mlscale-operator"]) == []


def test_base_rbac_has_no_wildcards_and_allows_in_place_resize(kustomize_base: Manifests) -> None:
    for role, rule in kustomize_base.rbac_rules():
        for field in ("apiGroups", "resources", "verbs"):
            assert not any("*" in item for item in rule.get(field, [])), f"{role} has a wildcard in {field}"
    granted = kustomize_base.permissions("mlscale-operator")
    assert ("cluster", "", "pods/resize", "patch") in granted
    assert not any(verb in {"escalate", "bind", "impersonate"} for *_, verb in granted)


def test_base_operator_command_line_is_a_valid_kopf_run(kustomize_base: Manifests) -> None:
    container = kustomize_base.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    options = kopf_run_options(container)
    assert options["modules"] == ("controllers",)
    assert (options["clusterwide"], options["standalone"]) == (True, True)
    assert options["liveness_endpoint"] is None  # the operator serves /healthz itself
