"""Rendered Kubernetes objects: rendering with the real helm and kubectl, queries and validation."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import jsonschema
import kubernetes_validate
import yaml

from mlscale.crdgen import KEEP_POLICY
from tests.deploy.paths import CHART_DIR, CRDS_DIR, REPO_ROOT

# The Kubernetes minor version the manifests are validated against (in-place pod resize is
# served from 1.33 on; kubectl from install-tools.sh is 1.35).
KUBERNETES_VERSION = "1.35"
RELEASE = "mlscale"
NAMESPACE = "mlscale-system"
TOOL_TIMEOUT_S = 120


class ToolRunner(Protocol):
    """Runs a command-line tool (helm, kubectl) and returns its result."""

    def __call__(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in the repository root."""


def find_tool(name: str) -> Path | None:
    """Return the path of a command-line tool: the project's .venv/bin first, then PATH."""
    local = REPO_ROOT / ".venv" / "bin" / name
    if local.is_file():
        return local
    found = shutil.which(name)
    return Path(found) if found else None


def isolated_env(home: Path) -> dict[str, str]:
    """Environment for helm and kubectl: no cluster reachable, caches and config under ``home``."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(home / "no-kubeconfig"),  # never talk to a real cluster from these tests
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_DATA_HOME": str(home / "helm-data"),
    }


def run_tool(args: Sequence[str | Path], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a tool in the repository root and return its result (never raises on failure)."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


def load_documents(text: str) -> list[dict[str, Any]]:
    """Parse a multi-document YAML stream into its non-empty objects."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def crd_schemas(crds: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Map (apiVersion, kind) to the openAPIV3Schema of each served version of the CRDs."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in crds:
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def committed_crds() -> list[dict[str, Any]]:
    """The CRDs generated into crds/ (empty when they have not been generated)."""
    return [
        doc
        for path in sorted(CRDS_DIR.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_documents(path.read_text())
    ]


class Manifests:
    """Rendered Kubernetes objects, with the queries and checks the deploy tests need."""

    def __init__(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self.objects: list[dict[str, Any]] = [copy.deepcopy(dict(obj)) for obj in objects]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.objects)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind."""
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The only object of a kind (and name); fails the test when there is not exactly one."""
        found = [obj for obj in self.of_kind(kind) if name is None or obj["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}: {self.names()}"
        return found[0]

    def names(self) -> list[str]:
        """'Kind/namespace/name' of every object, for messages."""
        return [f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in self.objects]

    def validate(self, extra_crds: Sequence[Mapping[str, Any]] = ()) -> tuple[list[str], set[str]]:
        """Validate every object; return (problems, kinds that no schema covers).

        Built-in kinds are validated by kubernetes-validate in strict mode (unknown fields
        rejected); custom resources against the openAPIV3Schema of their CRD, found among these
        objects or in ``extra_crds``.
        """
        schemas = crd_schemas([*self.of_kind("CustomResourceDefinition"), *extra_crds])
        problems: list[str] = []
        uncovered: set[str] = set()
        for obj in self.objects:
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                problems.append(f"{where}: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                schema = schemas.get((obj["apiVersion"], obj["kind"]))
                if schema is None:
                    uncovered.add(f"{obj['apiVersion']}/{obj['kind']}")
                    continue
                for schema_error in jsonschema.Draft7Validator(schema).iter_errors(obj):
                    path = ".".join(str(p) for p in schema_error.path)
                    problems.append(f"{where}: {path}: {schema_error.message}")
        return problems, uncovered

    def pod_specs(self) -> dict[str, dict[str, Any]]:
        """Pod template spec of every Deployment, by Deployment name (copies: safe to modify)."""
        return {d["metadata"]["name"]: copy.deepcopy(d["spec"]["template"]["spec"]) for d in self.of_kind("Deployment")}

    def rbac_rules(self) -> list[tuple[str, dict[str, Any]]]:
        """Every rule of every Role and ClusterRole, with 'Kind/name' of its role."""
        return [
            (f"{role['kind']}/{role['metadata']['name']}", rule)
            for role in self.of_kind("ClusterRole") + self.of_kind("Role")
            for rule in role.get("rules") or []
        ]

    def permissions(self, service_account: str) -> set[tuple[str, str, str, str]]:
        """What a ServiceAccount may do: (scope, apiGroup, resource, verb) through its bindings.

        Scope is "cluster" for a ClusterRole bound by a ClusterRoleBinding, else the namespace
        of the RoleBinding.
        """
        roles = {
            (r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]): r
            for r in self.of_kind("ClusterRole") + self.of_kind("Role")
        }
        granted: set[tuple[str, str, str, str]] = set()
        for binding in self.of_kind("ClusterRoleBinding") + self.of_kind("RoleBinding"):
            if not any(
                s.get("kind") == "ServiceAccount" and s["name"] == service_account
                for s in binding.get("subjects") or []
            ):
                continue
            namespace = binding["metadata"].get("namespace")
            ref = binding["roleRef"]
            role_namespace = None if ref["kind"] == "ClusterRole" else namespace
            role = roles.get((ref["kind"], role_namespace, ref["name"]))
            assert role is not None, f"{binding['kind']}/{binding['metadata']['name']} refers to missing {ref}"
            scope = "cluster" if binding["kind"] == "ClusterRoleBinding" else str(namespace)
            for rule in role.get("rules") or []:
                for group in rule.get("apiGroups") or []:
                    for resource in rule.get("resources") or []:
                        for verb in rule.get("verbs") or []:
                            granted.add((scope, group, resource, verb))
        return granted


class ChartRenderer:
    """Renders charts/mlscale with the real helm."""

    def __init__(self, helm: Path, work_dir: Path) -> None:
        self.helm = helm
        self.work_dir = work_dir
        self.env = isolated_env(work_dir)
        self._count = 0

    def _template(self, values: Mapping[str, Any] | None, *extra: str) -> subprocess.CompletedProcess[str]:
        args: list[str | Path] = [self.helm, "template", RELEASE, CHART_DIR, "--namespace", NAMESPACE]
        if values:
            self._count += 1
            values_file = self.work_dir / f"values-{self._count}.yaml"
            values_file.write_text(yaml.safe_dump(dict(values)))
            args += ["--values", values_file]
        return run_tool([*args, *extra], self.env)

    def render(self, values: Mapping[str, Any] | None = None) -> Manifests:
        """Render with the given values (merged over values.yaml); fail the test on an error."""
        result = self._template(values)
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return Manifests(load_documents(result.stdout))

    def failure(self, values: Mapping[str, Any]) -> str:
        """Render values that must be refused; return helm's error message."""
        result = self._template(values)
        assert result.returncode != 0, f"helm template accepted {dict(values)}"
        return result.stderr


def without_keep_policy(crd: dict[str, Any]) -> dict[str, Any]:
    """A chart CRD less the keep policy the chart adds to the generated one (asserted present)."""
    crd = copy.deepcopy(crd)
    annotations = crd["metadata"].pop("annotations", {})
    assert annotations == KEEP_POLICY, annotations
    return crd
