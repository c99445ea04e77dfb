"""The Helm chart, rendered and linted by the real helm, validated against Kubernetes schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dockerfile import kopf_run_options
from tests.deploy.manifests import ChartRenderer, Manifests, ToolRunner, without_keep_policy
from tests.deploy.podsecurity import pod_security_violations

pytestmark = pytest.mark.deploy

PLURALS = ("deadlinejobs", "federatedtrainings", "inferenceservices")
CRUD = ("get", "list", "watch", "create", "patch", "delete")

# What the operator needs and nothing more: (apiGroup, resource, verb).
CLUSTER_SCOPED_NEEDS = {
    *(("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")),
    *(("", "namespaces", v) for v in ("get", "list", "watch")),
    ("", "nodes", "get"),
    ("", "nodes", "list"),
    ("", "pods", "list"),
}
NAMESPACED_NEEDS = {
    *(("mlscale.dev", p, v) for p in PLURALS for v in ("get", "list", "watch", "patch")),
    *(("mlscale.dev", f"{p}/status", v) for p in PLURALS for v in ("get", "patch")),
    *(("mlscale.dev", f"{p}/finalizers", "update") for p in PLURALS),
    *(("", r, v) for r in ("pods", "services", "configmaps", "persistentvolumeclaims") for v in CRUD),
    *(("", r, "deletecollection") for r in ("pods", "services", "configmaps", "persistentvolumeclaims")),
    ("", "pods/resize", "get"),
    ("", "pods/resize", "patch"),
    ("metrics.k8s.io", "pods", "get"),
    ("metrics.k8s.io", "pods", "list"),
    *(("", "serviceaccounts", v) for v in ("get", "list", "create", "delete")),
    *(("", "secrets", v) for v in ("get", "create", "delete")),
    *(("rbac.authorization.k8s.io", r, v) for r in ("roles", "rolebindings") for v in ("get", "create", "delete")),
    ("rbac.authorization.k8s.io", "rolebindings", "patch"),
    *(("apps", "deployments", v) for v in CRUD),
    ("apps", "deployments/scale", "get"),
    ("apps", "deployments/scale", "patch"),
    ("", "events", "create"),
    ("", "events", "patch"),
    ("", "events", "list"),
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
}
PEERING_VERBS = ("get", "list", "watch", "patch")

# Value sets a user would plausibly install with; each must render valid, restricted manifests.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "service-monitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "no-crds": {"crds": {"install": False}},
    "namespaces-with-peering": {"watch": {"namespaces": ["team-a", "team-b"]}, "peering": {"enabled": True}},
    "cluster-peering": {"peering": {"enabled": True, "priority": 50}},
    "customised": {
        "image": {"repository": "registry.example.com/mlscale", "tag": "dev", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "registry"}],
        "metrics": {"port": 9090},
        "health": {"port": 9091},
        "log": {"level": "debug", "format": "plain"},
        "extraEnv": [{"name": "MLSCALE_EXTRA", "value": "1"}],
        "extraArgs": ["--log-refkey=mlscale"],
        "podAnnotations": {"example.com/team": "ml"},
        "podLabels": {"team": "ml"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "serviceAccount": {"annotations": {"example.com/role": "mlscale"}},
    },
}


def test_helm_lint_passes_in_strict_mode(helm: Path, tool: ToolRunner) -> None:
    result = tool(helm, "lint", "--strict", "charts/mlscale")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values_name", ["namespaces-with-peering", "customised"])
def test_helm_lint_passes_with_non_default_values(
    helm: Path, tool: ToolRunner, values_name: str, tmp_path: Path
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(VALUE_SETS[values_name]))
    result = tool(helm, "lint", "--strict", "charts/mlscale", "--values", values_file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_rendered_objects_are_valid_kubernetes_objects(chart: ChartRenderer, values_name: str) -> None:
    rendered = chart.render(VALUE_SETS[values_name])
    problems, uncovered = rendered.validate()
    assert problems == []
    # The ServiceMonitor's schema belongs to the Prometheus Operator; it is checked by hand below.
    assert uncovered <= {"monitoring.coreos.com/v1/ServiceMonitor"}


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_operator_pod_meets_the_restricted_pod_security_standard(chart: ChartRenderer, values_name: str) -> None:
    pod_specs = chart.render(VALUE_SETS[values_name]).pod_specs()
    assert list(pod_specs) == ["mlscale-operator"]
    assert pod_security_violations(pod_specs["mlscale-operator"]) == []


def test_security_check_reports_a_weakened_pod(chart_defaults: Manifests) -> None:
    pod = chart_defaults.pod_specs()["mlscale-operator"]
    container = pod["containers"][0]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    container["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    pod["securityContext"]["runAsNonRoot"] = False
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    problems = pod_security_violations(pod)
    assert any("allowPrivilegeEscalation" in p for p in problems)
    assert any("drop ALL" in p for p in problems)
    assert any("SYS_ADMIN" in p for p in problems)
    assert any("runAsNonRoot" in p for p in problems)
    assert any("volume host" in p for p in problems)


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_rbac_lists_every_verb_and_resource_without_wildcards(chart: ChartRenderer, values_name: str) -> None:
    rules = chart.render(VALUE_SETS[values_name]).rbac_rules()
    assert rules
    for role, rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), f"{role} has '*' in {field}: {rule}"
            assert not any("*" in item for item in rule.get(field, [])), f"{role} has a wildcard in {field}"
        assert "nonResourceURLs" not in rule, f"{role} grants non-resource URLs: {rule}"


def _rights(role: dict[str, Any]) -> set[tuple[str, str]]:
    return {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}


def test_users_of_the_built_in_roles_may_use_mlscale_resources(chart: ChartRenderer, chart_defaults: Manifests) -> None:
    roles = {r["metadata"]["name"]: r for r in chart_defaults.of_kind("ClusterRole")}
    edit, view = roles["mlscale-operator-edit"], roles["mlscale-operator-view"]
    assert {k for k, v in edit["metadata"]["labels"].items() if v == "true" and "aggregate-to" in k} == {
        "rbac.authorization.k8s.io/aggregate-to-admin",
        "rbac.authorization.k8s.io/aggregate-to-edit",
    }
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    for plural in PLURALS:
        assert {(plural, v) for v in ("create", "update", "patch", "delete", "list", "watch")} <= _rights(edit)
        assert {v for r, v in _rights(view) if r == plural} == {"get", "list", "watch"}
        assert (f"{plural}/status", "get") in _rights(view)
        # Status is the operator's to write.
        assert (f"{plural}/status", "patch") not in _rights(edit)
    # Nothing beyond mlscale's own resources.
    assert {g for role in (edit, view) for rule in role["rules"] for g in rule["apiGroups"]} == {"mlscale.dev"}
    names = {r["metadata"]["name"] for r in chart.render({"userRoles": {"aggregate": False}}).of_kind("ClusterRole")}
    assert names == {"mlscale-operator"}


def test_watching_every_namespace_grants_exactly_what_the_operator_needs(chart_defaults: Manifests) -> None:
    granted = chart_defaults.permissions("mlscale-operator")
    assert granted == {("cluster", *need) for need in CLUSTER_SCOPED_NEEDS | NAMESPACED_NEEDS}
    assert ("cluster", "", "pods/resize", "patch") in granted


def test_watching_a_namespace_list_grants_namespaced_rights_only_there(chart: ChartRenderer) -> None:
    rendered = chart.render(VALUE_SETS["namespaces-with-peering"])
    granted = rendered.permissions("mlscale-operator")
    expected = {("cluster", *need) for need in CLUSTER_SCOPED_NEEDS}
    for namespace in ("team-a", "team-b"):
        expected |= {(namespace, *need) for need in NAMESPACED_NEEDS}
        expected |= {(namespace, "kopf.dev", "kopfpeerings", verb) for verb in PEERING_VERBS}
    assert granted == expected

    options = kopf_run_options(rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert options["clusterwide"] is False
    assert set(options["namespaces"]) == {"team-a", "team-b"}
    peerings = rendered.of_kind("KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert all(p["metadata"]["name"] == options["peering_name"] for p in peerings)


def test_cluster_peering_adds_its_rights_object_and_priority(chart: ChartRenderer) -> None:
    rendered = chart.render(VALUE_SETS["cluster-peering"])
    granted = rendered.permissions("mlscale-operator")
    assert {("cluster", "kopf.dev", "clusterkopfpeerings", verb) for verb in PEERING_VERBS} <= granted
    peering = rendered.one("ClusterKopfPeering")
    # Created after its CRD exists: a hook runs once the release's other objects are applied.
    assert "post-install" in peering["metadata"]["annotations"]["helm.sh/hook"]
    options = kopf_run_options(rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert options["standalone"] is None
    assert (options["peering_name"], options["priority"]) == (peering["metadata"]["name"], 50)
    env = {
        e["name"]: e.get("value")
        for e in rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MLSCALE_PEERING"] == peering["metadata"]["name"]


def test_default_operator_runs_standalone_cluster_wide_serving_the_probed_ports(chart_defaults: Manifests) -> None:
    container = chart_defaults.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    options = kopf_run_options(container)
    assert options["modules"] == ("controllers",)
    assert options["clusterwide"] is True
    assert options["standalone"] is True
    # The operator serves /healthz itself (controllers/startup.py); kopf's own server would
    # compete for the port.
    assert options["liveness_endpoint"] is None
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["MLSCALE_METRICS_PORT"], env["MLSCALE_HEALTH_PORT"]) == ("8080", "8081")
    assert "MLSCALE_PEERING" not in env
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_changed_ports_reach_the_probes_the_operator_and_the_service(chart: ChartRenderer) -> None:
    rendered = chart.render(VALUE_SETS["customised"])
    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    options = kopf_run_options(container)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9090, "health": 9091}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["MLSCALE_METRICS_PORT"], env["MLSCALE_HEALTH_PORT"]) == ("9090", "9091")
    assert env["MLSCALE_EXTRA"] == "1"
    assert rendered.one("Service")["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert options["verbose"] is True
    assert options["log_refkey"] == "mlscale"
    assert container["image"] == "registry.example.com/mlscale:dev"


def test_image_tag_defaults_to_the_chart_app_version(chart_defaults: Manifests, repo_root: Path) -> None:
    app_version = yaml.safe_load((repo_root / "charts/mlscale/Chart.yaml").read_text())["appVersion"]
    container = chart_defaults.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/mlscale/mlscale-operator:{app_version}"


def test_service_monitor_is_rendered_only_when_enabled_and_scrapes_the_metrics_service(
    chart: ChartRenderer, chart_defaults: Manifests
) -> None:
    assert chart_defaults.of_kind("ServiceMonitor") == []
    rendered = chart.render(VALUE_SETS["service-monitor"])
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("metrics", "/metrics")]
    assert monitor["spec"]["endpoints"][0]["port"] in service_ports
    assert set(monitor["spec"]) <= {"namespaceSelector", "selector", "endpoints"}
    assert set(monitor["spec"]["endpoints"][0]) <= {"port", "path", "interval", "scrapeTimeout"}


def test_metrics_service_selects_the_operator_pod(chart_defaults: Manifests) -> None:
    service = chart_defaults.one("Service")
    pod_labels = chart_defaults.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_crds_are_rendered_only_when_crds_install_is_true(chart: ChartRenderer, chart_defaults: Manifests) -> None:
    mlscale_crds = [
        c for c in chart_defaults.of_kind("CustomResourceDefinition") if c["spec"]["group"] == "mlscale.dev"
    ]
    assert sorted(c["spec"]["names"]["plural"] for c in mlscale_crds) == sorted(PLURALS)
    assert chart.render(VALUE_SETS["no-crds"]).of_kind("CustomResourceDefinition") == []
    with_peering = chart.render({"crds": {"install": False}, "peering": {"enabled": True}})
    assert with_peering.of_kind("CustomResourceDefinition") == []
    peering_crds = chart.render({"peering": {"enabled": True}}).of_kind("CustomResourceDefinition")
    assert {c["spec"]["group"] for c in peering_crds} == {"mlscale.dev", "kopf.dev"}


def test_chart_crds_equal_the_generated_crds(chart_defaults: Manifests, generated_crds: list[dict[str, Any]]) -> None:
    in_chart = {
        c["metadata"]["name"]: without_keep_policy(c) for c in chart_defaults.of_kind("CustomResourceDefinition")
    }
    generated = {c["metadata"]["name"]: c for c in generated_crds}
    assert in_chart == generated, "charts/mlscale/templates/crds/ differs from crds/: run `make crds`"


def test_uninstalling_keeps_the_crds_unless_told_otherwise(chart: ChartRenderer, chart_defaults: Manifests) -> None:
    # Helm removes the operator before the CRDs; resources whose finalizer only the operator
    # removes would hold a deleted CRD in Terminating, so by default Helm leaves them.
    for crd in chart_defaults.of_kind("CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for crd in chart.render({"crds": {"keep": False}}).of_kind("CustomResourceDefinition"):
        assert "annotations" not in crd["metadata"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 2}, "/replicaCount"),
        ({"log": {"level": "loud"}}, "'debug', 'info', 'warning'"),
        ({"watch": {"namespaces": ["Not_A_Namespace"]}}, "/watch/namespaces/0"),
        ({"serviceMonitr": {"enabled": True}}, "'serviceMonitr' not allowed"),
        ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
    ],
    ids=["two-replicas", "unknown-log-level", "bad-namespace", "misspelt-value", "missing-account-name"],
)
def test_invalid_values_are_refused_with_the_value_named(
    chart: ChartRenderer, values: dict[str, Any], message: str
) -> None:
    assert message in chart.failure(values)


def test_install_notes_tell_how_to_check_the_operator_and_read_metrics(helm: Path, tool: ToolRunner) -> None:
    result = tool(helm, "install", "mlscale", "charts/mlscale", "--namespace", "mlscale-system", "--dry-run=client")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "rollout status deployment/mlscale-operator" in notes
    assert "port-forward service/mlscale-operator-metrics 8080" in notes
    assert "watches every namespace" in notes
