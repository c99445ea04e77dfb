"""Reading the Dockerfile, and the operator's command line as `kopf run` parses it."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from tests.deploy.paths import REPO_ROOT


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """Split a Dockerfile into (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_entrypoint() -> list[str]:
    """The exec-form ENTRYPOINT of the Dockerfile's last stage."""
    entrypoints = [
        json.loads(a) for k, a in dockerfile_instructions((REPO_ROOT / "Dockerfile").read_text()) if k == "ENTRYPOINT"
    ]
    assert entrypoints, "the Dockerfile has no ENTRYPOINT"
    entrypoint = entrypoints[-1]
    assert isinstance(entrypoint, list), "ENTRYPOINT must be in exec form (a JSON list)"
    return [str(part) for part in entrypoint]


def kopf_run_options(container: Mapping[str, Any]) -> dict[str, Any]:
    """Parse the operator container's command line the way `kopf run` will; fail on a bad option.

    The command is the image's ENTRYPOINT (``kopf run ...``) unless the container sets
    ``command``, followed by the container's ``args``.
    """
    from kopf.cli import main as kopf_cli  # imported here: only these tests need kopf's CLI

    command = list(container.get("command") or dockerfile_entrypoint())
    assert command[:2] == ["kopf", "run"], f"the operator must start with `kopf run`, not {command}"
    run = kopf_cli.commands["run"]
    context = run.make_context("run", [*command[2:], *(container.get("args") or [])])
    return dict(context.params)


Stage = tuple[str, list[tuple[str, str]]]


def stages(instructions: Sequence[tuple[str, str]]) -> list[Stage]:
    """Split instructions into stages: (FROM arguments, the stage's instructions)."""
    result: list[Stage] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            result.append((arguments, []))
        elif result:
            result[-1][1].append((keyword, arguments))
    return result


def _from_context(arguments: str) -> tuple[list[str], str] | None:
    """A COPY's sources and destination, or None for one from another stage or image (``--from``)."""
    words = shlex.split(arguments)
    if any(w.startswith("--from") for w in words):
        return None
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], paths[-1]


def context_copies(instructions: Sequence[tuple[str, str]]) -> list[str]:
    """Sources of every COPY from the build context (not from another stage)."""
    sources: list[str] = []
    for keyword, arguments in instructions:
        if keyword == "COPY" and (copy := _from_context(arguments)) is not None:
            sources += copy[0]
    return sources


def read_dockerignore(text: str) -> list[str]:
    """The patterns of a .dockerignore file, in order."""
    stripped = (line.strip() for line in text.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


def dockerignore_excludes(patterns: Sequence[str], path: str) -> bool:
    """Whether a context path is left out by .dockerignore patterns (the last matching one wins).

    Follows Docker's rules: ``*`` and ``?`` stay within one path element, ``**`` spans any
    number of them, a pattern that matches a directory matches everything under it, and ``!``
    re-includes.
    """
    excluded = False
    parts = PurePosixPath(path).parts
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _pattern_regex(str(PurePosixPath(raw[1:] if negate else raw)).strip("/"))
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


# --- Helpers for the application images under images/ (tests/deploy/test_images.py) ----------


def build_args(instructions: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Default values of the global ARGs (those before the first FROM), each substituted in order."""
    values: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            values[name.strip()] = substitute(default.strip().strip("\"'"), values)
    return values


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced by their values, as Docker does (unknown names by nothing)."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda match: variables.get(match.group(1) or match.group(2), ""),
        text,
    )


def stage_env(instructions: Sequence[tuple[str, str]], variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a stage's ENV instructions set, later ones over earlier ones, ``$NAME`` substituted."""
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword != "ENV":
            continue
        known = {**(variables or {}), **env}
        words = shlex.split(arguments)
        if words and "=" not in words[0]:  # the legacy form: ENV NAME value
            env[words[0]] = substitute(" ".join(words[1:]), known)
            continue
        for word in words:
            name, _, value = word.partition("=")
            env[name] = substitute(value, known)
    return env


def stage_workdir(instructions: Sequence[tuple[str, str]], start: str = "/") -> str:
    """The working directory a stage ends in (a relative WORKDIR is relative to the one before)."""
    workdir = start
    for keyword, arguments in instructions:
        if keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, arguments.strip()))
    return workdir


def stage_user(instructions: Sequence[tuple[str, str]]) -> str | None:
    """The USER a stage ends with (``None``: the base image's)."""
    users = [arguments.strip() for keyword, arguments in instructions if keyword == "USER"]
    return users[-1] if users else None


def context_files(root: Path, patterns: Sequence[str], source: str) -> list[tuple[Path, PurePosixPath]]:
    """The files a COPY source takes from the build context: (file, its path under the destination).

    The source may hold ``*``, ``?`` and ``[...]`` wildcards (within one path element); a directory
    gives its contents, not itself. Files the ignore patterns leave out are not in the context.
    """
    found: list[tuple[Path, PurePosixPath]] = []
    pattern = source.strip("/") or "."
    matches = sorted(root.glob(pattern)) if any(c in pattern for c in "*?[") else [root / pattern]
    for match in matches:
        if match.is_file():
            found.append((match, PurePosixPath(match.name)))
        elif match.is_dir():
            found += [
                (f, PurePosixPath(f.relative_to(match).as_posix())) for f in sorted(match.rglob("*")) if f.is_file()
            ]
    return [(f, under) for f, under in found if not dockerignore_excludes(patterns, f.relative_to(root).as_posix())]


def copied_files(
    instructions: Sequence[tuple[str, str]], root: Path, patterns: Sequence[str], workdir: str = "/"
) -> dict[str, Path]:
    """Where the files a stage COPYs from the build context land: image path -> repository file.

    Follows COPY's rules: a relative destination is relative to the WORKDIR of the moment; a
    file goes to ``<destination>/<name>`` when the destination ends with ``/`` or the source is a
    wildcard or there are several sources, to the destination itself otherwise; a directory's
    contents go under the destination. ``COPY --from`` (another stage or image) is left out.
    """
    files: dict[str, Path] = {}
    for keyword, arguments in instructions:
        if keyword == "WORKDIR":
            workdir = stage_workdir([(keyword, arguments)], workdir)
        if keyword not in ("COPY", "ADD") or (copy := _from_context(arguments)) is None:
            continue
        sources, destination = copy
        target = posixpath.normpath(posixpath.join(workdir, destination))
        into = destination.endswith("/") or len(sources) > 1
        for source in sources:
            as_directory = into or any(c in source for c in "*?[") or (root / source.strip("/")).is_dir()
            for file, under in context_files(root, patterns, source):
                files[posixpath.join(target, str(under)) if as_directory else target] = file
    return files
