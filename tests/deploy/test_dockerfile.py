"""The operator image's Dockerfile and .dockerignore, read (no container engine here to build them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.dockerfile import (
    context_copies,
    dockerignore_excludes,
    kopf_run_options,
    read_dockerignore,
    stages,
)

pytestmark = pytest.mark.deploy

PACKAGES = ("mlscale", "controllers", "dynaspark", "hyperfl", "roma")
Instructions = list[tuple[str, str]]
HEAVY_REQUIREMENTS = ("tensorflow", "tensorflow-federated", "pyspark", "keras", "jax", "jaxlib", "torch")


@pytest.fixture(scope="module")
def dockerignore(repo_root: Path) -> list[str]:
    return read_dockerignore((repo_root / ".dockerignore").read_text())


def test_image_is_built_in_stages_and_runs_from_a_fresh_base(dockerfile: Instructions) -> None:
    all_stages = stages(dockerfile)
    assert len(all_stages) >= 2
    names = [from_args.split(" AS ")[-1].strip() for from_args, _ in all_stages if " AS " in from_args.upper()]
    assert "builder" in [n.lower() for n in names]
    final_from, final_instructions = all_stages[-1]
    assert not final_from.lower().startswith("builder")
    assert any(k == "COPY" and "--from=builder" in a for k, a in final_instructions)
    # Nothing is installed in the runtime stage: the compilers and pip caches stay in the builder.
    assert not any(k == "RUN" and "pip install" in a for k, a in final_instructions)


def test_image_runs_as_the_non_root_user_the_deploy_paths_expect(dockerfile: Instructions, repo_root: Path) -> None:
    final_instructions = stages(dockerfile)[-1][1]
    users = [a for k, a in final_instructions if k == "USER"]
    assert users, "the runtime stage sets no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER must be numeric so that the kubelet can verify runAsNonRoot"
    assert int(uid) == 65532
    values = yaml.safe_load((repo_root / "charts/mlscale/values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    base = yaml.safe_load((repo_root / "operator/deployment.yaml").read_text())
    assert base["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_image_installs_the_operator_requirements_only(dockerfile: Instructions) -> None:
    text = " ".join(a for _, a in dockerfile)
    assert "engines.txt" not in text
    assert "dev.txt" not in text
    installs = [a for k, a in dockerfile if k == "RUN" and "pip install" in a]
    assert installs
    for command in installs:
        for install in re.findall(r"pip install ([^&;|]*)", command):
            words = install.split()
            allowed = words in (
                ["--requirement", "requirements/operator.txt"],
                ["-r", "requirements/operator.txt"],
            ) or words == ["--no-deps", "."]
            assert allowed, f"unexpected install in the image: pip install {install}"


def test_operator_requirements_hold_no_tensorflow_or_spark(repo_root: Path) -> None:
    lines = (repo_root / "requirements/operator.txt").read_text().splitlines()
    names = {
        re.split(r"[\s<>=~!\[;]", line.strip(), maxsplit=1)[0].lower()
        for line in lines
        if line.strip() and not line.startswith("#")
    }
    assert {"kopf", "kubernetes", "pydantic", "prometheus-client"} <= names
    assert names.isdisjoint(HEAVY_REQUIREMENTS)


def test_image_copies_the_project_packages_from_the_context(dockerfile: Instructions, repo_root: Path) -> None:
    sources = context_copies(dockerfile)
    assert {s.rstrip("/") for s in sources} >= {*PACKAGES, "requirements/operator.txt", "pyproject.toml"}
    missing = [s for s in sources if not (repo_root / s).exists()]
    assert missing == [], f"the Dockerfile copies paths the repository lacks: {missing}"


def test_dockerignore_keeps_what_the_build_copies_and_leaves_out_the_rest(
    dockerfile: Instructions, dockerignore: list[str]
) -> None:
    needed = ["requirements/operator.txt", "pyproject.toml", "README.md"]
    needed += [f"{package}/{name}" for package in PACKAGES for name in ("__init__.py", "api.py")]
    needed += [s.rstrip("/") + ("/__init__.py" if s.endswith("/") else "") for s in context_copies(dockerfile)]
    assert [p for p in needed if dockerignore_excludes(dockerignore, p)] == []
    left_out = [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/deploy/conftest.py",
        "requirements/engines.txt",
        "requirements/dev.txt",
        "bench/results/run.json",
        "examples/README.md",
        "charts/mlscale/Chart.yaml",
        "mlscale/__pycache__/api.cpython-311.pyc",
        "roma/sub/__pycache__/x.pyc",
        "crds/x.yaml",
    ]
    assert [p for p in left_out if not dockerignore_excludes(dockerignore, p)] == []


def test_dockerignore_matcher_follows_docker_rules() -> None:
    patterns = ["*", "!pkg/", "**/__pycache__", "docs/*.md"]
    assert dockerignore_excludes(patterns, "top.txt")
    assert not dockerignore_excludes(patterns, "pkg/a/b.py")
    assert dockerignore_excludes(patterns, "pkg/a/__pycache__/b.pyc")
    assert dockerignore_excludes(["docs/*.md"], "docs/a.md")
    assert not dockerignore_excludes(["docs/*.md"], "docs/sub/a.md")


def test_image_starts_kopf_with_the_options_operator_deployment_gives(
    dockerfile: Instructions, repo_root: Path
) -> None:
    final_instructions = stages(dockerfile)[-1][1]
    entrypoint = json.loads([a for k, a in final_instructions if k == "ENTRYPOINT"][-1])
    cmd = json.loads([a for k, a in final_instructions if k == "CMD"][-1])
    assert entrypoint == ["kopf", "run", "--module=controllers"]
    base = yaml.safe_load((repo_root / "operator/deployment.yaml").read_text())
    container = base["spec"]["template"]["spec"]["containers"][0]
    assert cmd == container["args"]
    options = kopf_run_options({"args": cmd})
    assert (options["modules"], options["clusterwide"]) == (("controllers",), True)
    exposed = {int(port) for k, a in final_instructions if k == "EXPOSE" for port in a.split()}
    assert exposed == {p["containerPort"] for p in container["ports"]}
