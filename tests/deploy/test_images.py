"""The application images under images/, read (no container engine here to build them).

A DeadlineJob's driver and executors run ``spec.application.image`` (images/spark.Dockerfile); a
FederatedTraining's coordinator and clients and an InferenceService's model servers and router
run ``spec.image`` (images/engines.Dockerfile). The operator gives those pods their commands
(controllers/sparkpods.py, flpods.py, servingpods.py): these tests build the commands from the
repository's examples with the operator's own builders, and check that every program, path and
module they name is in the image the Dockerfile builds.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import json
import os
import posixpath
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from controllers import flpods, servingpods, sparkpods
from dynaspark.api import DRIVER_CONTAINER, EXECUTOR_CONTAINER, DeadlineJob
from hyperfl.api import FederatedTraining
from roma.api import InferenceService
from tests.deploy.dockerfile import (
    Stage,
    build_args,
    context_copies,
    context_files,
    copied_files,
    dockerfile_instructions,
    dockerignore_excludes,
    read_dockerignore,
    stage_env,
    stage_user,
    stage_workdir,
    stages,
    substitute,
)
from tests.deploy.paths import REPO_ROOT

pytestmark = pytest.mark.deploy

NAMESPACE = "apps"
SPARK_IMAGE_REF = "registry.example/mlscale-spark:test"
ENGINES_IMAGE_REF = "registry.example/mlscale-engines:test"
PROJECT_PACKAGES = ("mlscale", "controllers", "dynaspark", "hyperfl", "roma", "examples")
OFFICIAL_SPARK_REPOSITORIES = ("apache/spark", "spark", "docker.io/apache/spark", "docker.io/library/spark")
SPARK_UID = 185
"""The official Spark images' ``spark`` user, owner of /opt/spark/work-dir (the driver's working directory)."""
SPARK_PYTHON_MODULES = {"pyspark", "py4j"}
"""What ``spark-submit`` puts on a Python application's path from the Spark distribution in the image."""
MAKEFILE_ONLY_REQUIREMENTS = {"requirements/dev.txt"}
"""Installed by the Makefile for tests and lint, which no pod runs."""
NOT_IN_ANY_CONTEXT = [
    ".venv/bin/python",
    ".git/HEAD",
    "Dockerfile",
    "tests/deploy/conftest.py",
    "bench/results/run.json",
    "reports/kmeans/report.json",
    "charts/mlscale/Chart.yaml",
    "operator/deployment.yaml",
    "crds/x.yaml",
    "requirements/dev.txt",
    "mlscale/__pycache__/api.cpython-311.pyc",
    "examples/roma/__pycache__/models.cpython-311.pyc",
]


@dataclass(frozen=True)
class Image:
    """One Dockerfile under images/ with its own ignore file, read."""

    dockerfile: Path
    instructions: list[tuple[str, str]]
    ignore: list[str]

    @classmethod
    def read(cls, name: str) -> Image:
        dockerfile = REPO_ROOT / "images" / name
        # BuildKit reads <Dockerfile>.dockerignore next to the Dockerfile given with -f, in place
        # of the context's .dockerignore (which keeps the operator's files only).
        ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
        assert ignore_file.is_file(), f"{ignore_file.relative_to(REPO_ROOT)} is missing"
        return cls(
            dockerfile, dockerfile_instructions(dockerfile.read_text()), read_dockerignore(ignore_file.read_text())
        )

    @property
    def args(self) -> dict[str, str]:
        return build_args(self.instructions)

    @property
    def stages(self) -> list[Stage]:
        return stages(self.instructions)

    def base(self, index: int = -1) -> str:
        """The image a stage starts FROM, the build's ARG defaults substituted."""
        from_args = self.stages[index][0]
        return substitute(re.split(r"\s+AS\s+", from_args, flags=re.IGNORECASE)[0].strip(), self.args)

    def stage(self, index: int = -1) -> list[tuple[str, str]]:
        return self.stages[index][1]

    def named_stage(self, name: str) -> list[tuple[str, str]]:
        for from_args, instructions in self.stages:
            if from_args.lower().endswith(f" as {name}"):
                return instructions
        raise AssertionError(f"{self.dockerfile.name} has no stage named {name}")

    def runs(self, instructions: Sequence[tuple[str, str]]) -> list[str]:
        return [substitute(a, self.args) for k, a in instructions if k == "RUN"]

    def files(self, instructions: Sequence[tuple[str, str]]) -> dict[str, Path]:
        return copied_files(instructions, REPO_ROOT, self.ignore)


@pytest.fixture(scope="module")
def spark_image() -> Image:
    return Image.read("spark.Dockerfile")


@pytest.fixture(scope="module")
def engines_image() -> Image:
    return Image.read("engines.Dockerfile")


@pytest.fixture(autouse=True)
def _operator_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands as the operator builds them with its default settings."""
    for name in ("MLSCALE_SPARK_SUBMIT", "MLSCALE_SPARK_ENTRYPOINT", "MLSCALE_EXECUTOR_CPU_METER_PORT"):
        monkeypatch.delenv(name, raising=False)


# --- the repository's examples, as the operator builds their pods -------------------------------


def examples_of(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == kind:
                document["metadata"]["namespace"] = NAMESPACE
                found.append((path, document))
    assert found, f"examples/ holds no {kind}"
    return found


DEADLINE_JOBS = examples_of("DeadlineJob")
FEDERATED_TRAININGS = examples_of("FederatedTraining")
INFERENCE_SERVICES = examples_of("InferenceService")


def deadline_job(body: dict[str, Any]) -> DeadlineJob:
    body = {**body, "spec": {**body["spec"], "application": {**body["spec"]["application"], "image": SPARK_IMAGE_REF}}}
    return DeadlineJob.model_validate(body)


def engine_pods() -> list[tuple[str, dict[str, Any]]]:
    """Every container the operator starts from the FederatedTraining and InferenceService examples."""
    pods: list[tuple[str, dict[str, Any]]] = []
    for path, body in FEDERATED_TRAININGS:
        training = FederatedTraining.model_validate({**body, "spec": {**body["spec"], "image": ENGINES_IMAGE_REF}})
        for _, child in flpods.children(training, NAMESPACE):
            if child["kind"] == "Pod":
                pods += [(f"{path.stem}/{child['metadata']['name']}", c) for c in child["spec"]["containers"]]
    for path, body in INFERENCE_SERVICES:
        service = InferenceService.model_validate({**body, "spec": {**body["spec"], "image": ENGINES_IMAGE_REF}})
        for _, _, child in servingpods.children(service):
            if child["kind"] == "Deployment":
                containers = child["spec"]["template"]["spec"]["containers"]
                pods += [(f"{path.stem}/{child['metadata']['name']}", c) for c in containers]
    # One of each command is enough: ten clients of a training run the same one.
    unique: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, container in pods:
        assert container["image"] == ENGINES_IMAGE_REF
        unique.setdefault(shlex.join(container["command"][:3] + builder_of(container)), (name, container))
    return list(unique.values())


def builder_of(container: Mapping[str, Any]) -> list[str]:
    """The ``module:function`` builders a container imports its model with, if any: a model server's or
    a worker's ``--builder``, the coordinator's ``spec.model.builder`` in the resource it is given
    (its trainer process imports it from the coordinator's working directory)."""
    command = container["command"]
    builders = [command[i + 1] for i, word in enumerate(command[:-1]) if word == "--builder"]
    for item in container.get("env") or []:
        if item["name"] == flpods.RESOURCE_ENV:
            builder = json.loads(item["value"])["spec"]["model"].get("builder")
            builders += [builder] if builder else []
    return builders


def python_module(command: Sequence[str]) -> str:
    """The module a ``python -m MODULE ...`` command runs."""
    assert len(command) > 2, f"not a `python -m MODULE` command: {command}"
    assert command[1] == "-m", f"not a `python -m MODULE` command: {command}"
    return command[2]


ENGINE_PODS = engine_pods()


# --- reading Python sources ----------------------------------------------------------------------


def module_file(module: str, root: Path = REPO_ROOT) -> Path | None:
    """The repository file of a module (a package's __init__.py, a namespace package's folder)."""
    path = root.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return path if path.is_dir() else None


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module a source imports, at any depth (lazy imports in functions included), made absolute."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts[: len(parts) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return found


def import_closure(modules: Sequence[str]) -> tuple[set[str], set[str]]:
    """The project modules that running ``modules`` imports (they, their parents, what those import,
    transitively) and the top-level names of the other, non-standard-library modules they import."""
    project: set[str] = set()
    others: set[str] = set()
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module in project:
            continue
        file = module_file(module)
        if file is None:
            continue
        project.add(module)
        parts = module.split(".")
        pending += [".".join(parts[:n]) for n in range(1, len(parts))]
        if file.is_dir():
            continue
        for name in imported_modules(file.read_text(), module, file.name == "__init__.py"):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                pending.append(name)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                others.add(top)
    return project, others


def distribution_of(import_name: str) -> str:
    """The distribution (normalized name) that provides a top-level import name in this environment."""
    names = importlib.metadata.packages_distributions().get(import_name) or [import_name]
    return canonical(names[0])


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins(path: Path) -> dict[str, str]:
    """The requirement names of a requirements file (canonical) and their specifiers."""
    pins = {}
    for raw in path.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", raw.split("#", 1)[0].strip())
        if match:
            pins[canonical(match[1])] = match[2].strip()
    return pins


# --- pip installs, in the Makefile and in a Dockerfile -------------------------------------------


@dataclass(frozen=True)
class PipInstall:
    """One ``pip install``: its requirement files, its other requirements, and whether it takes dependencies."""

    files: tuple[str, ...]
    requirements: tuple[str, ...]
    no_deps: bool


def pip_install(words: Sequence[str], file_sources: Mapping[str, str] | None = None) -> PipInstall | None:
    """A ``pip install`` from its words, requirement files renamed by ``file_sources``; None: pip's own upgrade."""
    files: list[str] = []
    requirements: list[str] = []
    no_deps = False
    words = list(words)
    while words:
        word = words.pop(0)
        if word in ("-r", "--requirement"):
            file = words.pop(0)
            files.append((file_sources or {}).get(file, file))
        elif word.startswith("--requirement="):
            files.append(word.partition("=")[2])
        elif word == "--no-deps":
            no_deps = True
        elif word in ("-e", "--editable"):
            requirements.append(words.pop(0))
        elif word.startswith("-"):
            continue  # -q, -U, --upgrade, --no-build-isolation: how, not what
        else:
            requirements.append(word)
    if requirements == ["pip"] and not files:
        return None
    return PipInstall(tuple(files), tuple(requirements), no_deps)


def makefile_installs() -> list[PipInstall]:
    """The Makefile's ``pip install`` steps that set up the venv, in order, ``$(VARIABLES)`` substituted."""
    text = (REPO_ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^([A-Z_]+)\s*:?=\s*(.*?)\s*$", text, flags=re.MULTILINE))
    installs = []
    for line in re.findall(r"^\t\$\(BIN\)/pip install (.*)$", text, flags=re.MULTILINE):
        command = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line)
        install = pip_install(shlex.split(command))
        if install is not None:
            installs.append(install)
    assert installs, "the Makefile has no `$(BIN)/pip install` lines: this test reads them"
    return installs


def filtered_requirements(runs: Sequence[str]) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Requirement files a Dockerfile writes with ``grep -v '^NAME==' SOURCE > COPY``: copy -> source,
    and the names each source loses."""
    sources: dict[str, str] = {}
    dropped: dict[str, set[str]] = {}
    for run in runs:
        for name, source, copy in re.findall(r"grep -v '\^([A-Za-z0-9_.\-]+)==' (\S+) > (\S+)", run):
            sources[copy] = source
            dropped.setdefault(source, set()).add(canonical(name))
    return sources, dropped


def dockerfile_installs(image: Image, instructions: Sequence[tuple[str, str]]) -> list[PipInstall]:
    runs = image.runs(instructions)
    sources, _ = filtered_requirements(runs)
    installs = []
    for run in runs:
        for command in re.findall(r"pip install ([^&;|]*)", run):
            install = pip_install(shlex.split(command), sources)
            if install is not None:
                installs.append(install)
    return installs


def as_image_installs(make: Sequence[PipInstall]) -> list[PipInstall]:
    """The Makefile's installs without the test tools (`-e .` counts as `.`; editable installs are refused apart)."""
    converted = []
    for install in make:
        files = tuple(f for f in install.files if f not in MAKEFILE_ONLY_REQUIREMENTS)
        if files or install.requirements:
            converted.append(PipInstall(files, install.requirements, install.no_deps))
    return converted


# --- the Spark image -----------------------------------------------------------------------------


def test_spark_base_image_is_the_official_spark_of_the_pinned_pyspark(spark_image: Image) -> None:
    pinned = requirement_pins(REPO_ROOT / "requirements/engines.txt")["pyspark"]
    assert pinned.startswith("=="), f"pyspark must be pinned to one version in requirements/engines.txt: {pinned}"
    version = pinned.removeprefix("==")
    assert len(spark_image.stages) == 1
    repository, _, tag = spark_image.base().rpartition(":")
    assert repository in OFFICIAL_SPARK_REPOSITORIES, f"{spark_image.base()} is not an official Apache Spark image"
    assert tag.split("-")[0] == version, f"the image has Spark {tag.split('-')[0]}, the project pins pyspark {version}"
    assert "python3" in tag.split("-"), f"{tag}: use a -python3 variant (the executors' CPU meter needs python3)"


def test_spark_image_build_checks_what_the_pods_run(spark_image: Image) -> None:
    job = deadline_job(DEADLINE_JOBS[0][1])
    driver = sparkpods.driver_pod(job, NAMESPACE)["spec"]["containers"][0]
    assert driver["name"] == DRIVER_CONTAINER
    spark_submit = driver["command"][0]
    assert spark_submit == sparkpods.spark_submit_path()
    executor = sparkpods.executor_pod_template(job)["spec"]["containers"][0]
    assert executor["name"] == EXECUTOR_CONTAINER
    script = executor["command"][2]
    entrypoint = sparkpods.spark_entrypoint_path()
    assert f"exec {entrypoint}" in script
    assert "python3 -I" in script
    checks = "\n".join(spark_image.runs(spark_image.stage()))
    # The build fails, with a message, on a base image that lacks one of them.
    assert f"test -x {spark_submit}" in checks
    assert f"test -x {entrypoint}" in checks
    version = requirement_pins(REPO_ROOT / "requirements/engines.txt")["pyspark"].removeprefix("==")
    assert f"^Spark {version} " in checks, "the build must check the Spark version in /opt/spark/RELEASE"
    assert "/opt/spark/RELEASE" in checks
    assert "python3 -c" in checks
    requires_python = importlib.metadata.metadata("pyspark")["Requires-Python"]
    oldest = re.fullmatch(r">=\s*(\d+)\.(\d+)", requires_python or "")
    assert oldest, f"pyspark's Requires-Python is {requires_python!r}: update the check in images/spark.Dockerfile"
    assert f"sys.version_info >= ({oldest[1]}, {oldest[2]})" in checks, (
        f"pyspark {version} requires Python {requires_python}: the build must check the image's python3"
    )


@pytest.mark.parametrize(("path", "body"), DEADLINE_JOBS, ids=[p.stem for p, _ in DEADLINE_JOBS])
def test_example_applications_are_where_spark_submit_reads_them(
    spark_image: Image, path: Path, body: dict[str, Any]
) -> None:
    from dynaspark.local import resolve_application

    job = deadline_job(body)
    driver = sparkpods.driver_pod(job, NAMESPACE)["spec"]["containers"][0]
    application = sparkpods.application_path(job.spec.application.main_application_file)
    assert application in driver["command"], "spark-submit is not given the application as the image reads it"
    # In client mode spark-submit reads a relative application in the driver container's working
    # directory: the pod's workingDir, else the image's WORKDIR.
    workdir = driver.get("workingDir") or stage_workdir(spark_image.stage())
    in_image = posixpath.normpath(posixpath.join(workdir, application))
    files = spark_image.files(spark_image.stage())
    assert in_image in files, f"{path.name} runs {in_image}, which images/spark.Dockerfile does not copy"
    assert files[in_image] == resolve_application(job, path), "the image holds another file than the YAML names"


def test_spark_applications_import_only_what_the_image_holds(spark_image: Image) -> None:
    files = spark_image.files(spark_image.stage())
    applications = {image_path: file for image_path, file in files.items() if image_path.endswith(".py")}
    assert applications
    problems = []
    for image_path, file in applications.items():
        # Python puts the application's own folder first on its path.
        beside = {Path(p).stem for p in files if posixpath.dirname(p) == posixpath.dirname(image_path)}
        for name in imported_modules(file.read_text(), Path(image_path).stem):
            top = name.split(".")[0]
            if top and top != "__future__" and top not in sys.stdlib_module_names | SPARK_PYTHON_MODULES | beside:
                problems.append(f"{image_path} imports {name}, which is not in the image")
    assert problems == []


def test_executor_cpu_meter_needs_only_the_standard_library() -> None:
    """The meter runs as ``python3 -I`` from a ConfigMap: the image's python3 alone, no site packages."""
    job = deadline_job(DEADLINE_JOBS[0][1])
    script = sparkpods.executor_pod_template(job)["spec"]["containers"][0]["command"][2]
    assert f"python3 -I {sparkpods.METER_DIR}/{sparkpods.METER_KEY}" in script
    source = sparkpods.template_configmap(job)["data"][sparkpods.METER_KEY]
    outside = sorted(
        name
        for name in imported_modules(source, "cpu_meter")
        if name.split(".")[0] not in sys.stdlib_module_names and name != "__future__"
    )
    assert outside == [], "the CPU meter must import the standard library only: no Spark image has the rest"


def test_spark_image_runs_as_the_spark_user(spark_image: Image) -> None:
    user = stage_user(spark_image.stage())
    assert user is not None, "set USER: the Spark image's user must be numeric for runAsNonRoot"
    uid = user.split(":")[0]
    assert uid.isdigit(), f"USER {user}: give the numeric id, which the kubelet can check for runAsNonRoot"
    assert int(uid) == SPARK_UID, f"USER {user}: the Spark image's files and work-dir belong to {SPARK_UID}"


# --- the engines image ---------------------------------------------------------------------------


def test_engines_image_has_the_python_the_project_requires(engines_image: Image) -> None:
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    bases = {engines_image.base(i) for i in range(len(engines_image.stages))}
    # The runtime stage runs the builder's venv, whose python links to the base image's.
    assert len(bases) == 1, f"the builder and the runtime stage start from different images: {bases}"
    base = bases.pop()
    match = re.fullmatch(r"(?:docker\.io/(?:library/)?)?python:(\d+\.\d+)[\w.\-]*", base)
    assert match, f"{base} is not an official Python image"
    assert Version(match[1]) in SpecifierSet(requires), f"{base} has Python {match[1]}; pyproject needs {requires}"


def test_engines_image_installs_as_the_makefile_does(engines_image: Image) -> None:
    builder = engines_image.named_stage("builder")
    image = dockerfile_installs(engines_image, builder)
    make = as_image_installs(makefile_installs())
    assert image == make
    # The Makefile installs the project editable, from the checkout; the runtime stage has none.
    editable = [run for run in engines_image.runs(builder) if re.search(r"pip install [^&;|]*(-e|--editable)\s", run)]
    assert editable == [], "install the project with `pip install --no-deps .`, not editable"
    assert not any(k == "RUN" and "pip install" in a for k, a in engines_image.stage()), (
        "install in the builder: the runtime stage takes the venv from it"
    )
    files = engines_image.files(builder)
    for install in image:
        for file in install.files:
            assert f"{stage_workdir(builder)}/{file}" in files, f"the builder installs {file} without copying it"


def test_engines_image_installs_every_package_its_pods_import(engines_image: Image) -> None:
    builder = engines_image.named_stage("builder")
    installs = dockerfile_installs(engines_image, builder)
    _, dropped = filtered_requirements(engines_image.runs(builder))
    installed = set()
    for install in installs:
        for file in install.files:
            installed |= set(requirement_pins(REPO_ROOT / file)) - dropped.get(file, set())
        installed |= {canonical(re.split(r"[<>=~!\[]", r)[0]) for r in install.requirements if r != "."}
    modules = [python_module(c["command"]) for _, c in ENGINE_PODS]
    modules += [b.partition(":")[0] for _, c in ENGINE_PODS for b in builder_of(c)]
    _, imported = import_closure(modules)
    needed = {distribution_of(name) for name in imported}
    assert needed - installed == set(), "the pods import packages the image does not install"
    left_out = set().union(*dropped.values()) if dropped else set()
    assert left_out & needed == set(), "the image leaves out requirements its pods import"


@pytest.mark.parametrize(("name", "container"), ENGINE_PODS, ids=[n for n, _ in ENGINE_PODS])
def test_engines_pod_finds_python_and_its_modules(engines_image: Image, name: str, container: dict[str, Any]) -> None:
    command = container["command"]
    builder, runtime = engines_image.named_stage("builder"), engines_image.stage()
    # `python` is the venv's: first on the runtime's PATH, copied from the builder to the same path.
    venv = next(
        shlex.split(run)[-1] for run in engines_image.runs(builder) if re.match(r"python3? -m venv ", run)
    ).rstrip("/")
    assert command[0] == "python"
    assert stage_env(runtime)["PATH"].split(":")[0] == f"{venv}/bin", "the venv's python must come first on PATH"
    assert any(k == "COPY" and shlex.split(a) == ["--from=builder", venv, venv] for k, a in runtime)
    # The module and every project package it imports, transitively, are installed in the venv.
    module = python_module(command)
    modules, _ = import_closure([module])
    assert module in modules, f"{module} is not in the repository"
    packages = {m.split(".")[0] for m in modules}
    include = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    files = engines_image.files(builder)
    src = stage_workdir(builder)
    for package in sorted(packages):
        assert any(fnmatch.fnmatch(package, p) for p in include["include"]), f"pyproject does not package {package}"
        assert f"{src}/{package}/__init__.py" in files, f"{name} imports {package}, which the builder does not copy"
    order = [shlex.split(a) for k, a in builder if k in ("COPY", "RUN")]
    installed_at = next(i for i, words in enumerate(order) if "--no-deps ." in shlex.join(words))
    copied_at = max(i for i, words in enumerate(order) if words[0].rstrip("/") in packages)
    assert copied_at < installed_at, "`pip install --no-deps .` must come after the packages are copied"


@pytest.mark.parametrize(
    ("name", "container"),
    [(n, c) for n, c in ENGINE_PODS if builder_of(c)],
    ids=[n for n, c in ENGINE_PODS if builder_of(c)],
)
def test_engines_builders_import_from_the_working_directory(
    engines_image: Image, name: str, container: dict[str, Any]
) -> None:
    """``--builder examples.x.models:fn`` is imported from the working directory (put on sys.path)."""
    runtime = engines_image.stage()
    workdir = container.get("workingDir") or stage_workdir(runtime)
    files = engines_image.files(runtime)
    for builder in builder_of(container):
        module, _, function = builder.partition(":")
        in_image = posixpath.join(workdir, *module.split(".")) + ".py"
        assert in_image in files, f"{name} imports {builder}: the image has no {in_image}"
        source = files[in_image]
        assert source == module_file(module)
        defined = {n.name for n in ast.parse(source.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"{in_image} defines no {function}"


def test_engines_image_runs_as_a_non_root_user(engines_image: Image) -> None:
    user = stage_user(engines_image.stage())
    assert user is not None, "the runtime stage sets no USER: the pods would run as root"
    uid = user.split(":")[0]
    assert uid.isdigit(), f"USER {user}: give the numeric id, which the kubelet can check for runAsNonRoot"
    assert int(uid) != 0


# --- both images: the build context --------------------------------------------------------------


def repository_files(root: Path) -> Iterator[str]:
    """The repository's files, as context paths (the venv and git's folder are left out: too many)."""
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [s for s in subfolders if not (folder == str(root) and s in (".venv", ".git"))]
        for name in names:
            yield Path(folder, name).relative_to(root).as_posix()


@pytest.mark.parametrize("name", ["spark.Dockerfile", "engines.Dockerfile"])
def test_image_context_holds_what_the_image_copies_and_nothing_else(name: str) -> None:
    image = Image.read(name)
    copies = context_copies(image.instructions)
    assert copies
    for source in copies:
        kept = context_files(REPO_ROOT, image.ignore, source)
        assert kept, f"{name} copies {source}, which its .dockerignore leaves out (or the repository lacks)"
        everything = context_files(REPO_ROOT, ["**/__pycache__", "**/*.py[cod]"], source)
        assert kept == everything, f"{name}'s .dockerignore leaves out part of {source}"
    used = {
        file.relative_to(REPO_ROOT).as_posix()
        for i in range(len(image.stages))
        for file in image.files(image.stage(i)).values()
    }
    in_context = {path for path in repository_files(REPO_ROOT) if not dockerignore_excludes(image.ignore, path)}
    assert in_context - used == set(), f"{name}'s context holds files no COPY takes"
    assert [p for p in NOT_IN_ANY_CONTEXT if not dockerignore_excludes(image.ignore, p)] == []
