"""Fixtures for the deploy tests: the real helm and kubectl binaries and what they render.

helm and kubectl come from ``.venv/bin`` (``scripts/install-tools.sh`` puts them there) or PATH;
tests that need one are skipped, with the reason, when it is missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.dockerfile import dockerfile_instructions
from tests.deploy.manifests import (
    ChartRenderer,
    Manifests,
    ToolRunner,
    committed_crds,
    find_tool,
    isolated_env,
    load_documents,
    run_tool,
)
from tests.deploy.paths import OPERATOR_DIR, REPO_ROOT


@pytest.fixture(scope="session")
def helm() -> Path:
    """Path of the helm binary; skips the test when there is none."""
    path = find_tool("helm")
    if path is None:
        pytest.skip("helm not found in .venv/bin or on PATH (install it with scripts/install-tools.sh)")
    return path


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """Path of the kubectl binary; skips the test when there is none."""
    path = find_tool("kubectl")
    if path is None:
        pytest.skip("kubectl not found in .venv/bin or on PATH (install it with scripts/install-tools.sh)")
    return path


@pytest.fixture(scope="session")
def tool(tmp_path_factory: pytest.TempPathFactory) -> ToolRunner:
    """Runner of helm/kubectl in the repository root, isolated from any real cluster."""
    env = isolated_env(tmp_path_factory.mktemp("tool-home"))

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return run_tool(args, env)

    return run


@pytest.fixture(scope="session")
def chart(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> ChartRenderer:
    """Renderer of the Helm chart."""
    return ChartRenderer(helm, tmp_path_factory.mktemp("chart-values"))


@pytest.fixture(scope="session")
def chart_defaults(chart: ChartRenderer) -> Manifests:
    """The chart rendered with its default values (release mlscale, namespace mlscale-system)."""
    return chart.render()


@pytest.fixture(scope="session")
def kustomize_base(kubectl: Path, tool: ToolRunner) -> Manifests:
    """operator/ rendered by `kubectl kustomize`."""
    result = tool(kubectl, "kustomize", OPERATOR_DIR)
    assert result.returncode == 0, (
        f"kubectl kustomize operator/ failed:\n{result.stderr}\n"
        "(operator/ takes the CRDs from ../crds, which needs crds/kustomization.yaml listing them)"
    )
    return Manifests(load_documents(result.stdout))


@pytest.fixture(scope="session")
def generated_crds() -> list[dict[str, Any]]:
    """The CRDs in crds/; skips the test when they have not been generated yet."""
    crds = committed_crds()
    if not crds:
        pytest.skip("crds/ holds no CRDs yet (generate them with `make crds`)")
    return crds


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, as (INSTRUCTION, arguments)."""
    return dockerfile_instructions((REPO_ROOT / "Dockerfile").read_text())
