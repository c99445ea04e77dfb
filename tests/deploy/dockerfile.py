"""Reading the Dockerfile, and the operator's command line as `kopf run` parses it."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
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


def context_copies(instructions: Sequence[tuple[str, str]]) -> list[str]:
    """Sources of every COPY from the build context (not from another stage)."""
    sources: list[str] = []
    for keyword, arguments in instructions:
        if keyword != "COPY":
            continue
        words = shlex.split(arguments)
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[:-1] if not w.startswith("--")]
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
