"""Finding Spark executor JVMs and their children through ``/proc``.

An executor is a JVM running ``CoarseGrainedExecutorBackend --executor-id N --app-id A``;
for a PySpark application its Python workers are its descendants. The cgroup actuator puts
the JVM and every descendant into the executor's cgroup.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EXECUTOR_MAIN = "CoarseGrainedExecutorBackend"


@dataclass(frozen=True)
class ExecutorProcess:
    """One executor JVM.

    Attributes:
        pid: Its process id.
        executor_id: Spark's executor id (``--executor-id``).
        app_id: Spark's application id (``--app-id``).
        cmdline: Its command line, arguments joined by spaces.
        cwd: Its working folder (the worker's ``work/<app>/<executor>``).
    """

    pid: int
    executor_id: str
    app_id: str
    cmdline: str
    cwd: str


def _read_cmdline(pid: int, proc: Path) -> list[str]:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _option(args: list[str], name: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return args[args.index(name) + 1]
    return None


def _pids(proc: Path) -> Iterable[int]:
    for entry in proc.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def executor_processes(app_id: str | None = None, proc: Path = Path("/proc")) -> list[ExecutorProcess]:
    """Return the executor JVMs running now, optionally only those of one application.

    Args:
        app_id: Spark application id to keep, or ``None`` for all.
        proc: The proc filesystem (a fake one in tests).

    Returns:
        The executors found, by pid.
    """
    found = []
    for pid in _pids(proc):
        args = _read_cmdline(pid, proc)
        if not any(arg.endswith(EXECUTOR_MAIN) for arg in args):
            continue
        executor_id = _option(args, "--executor-id")
        app = _option(args, "--app-id") or ""
        if executor_id is None or (app_id is not None and app != app_id):
            continue
        try:
            cwd = os.readlink(proc / str(pid) / "cwd")
        except OSError:
            cwd = ""
        found.append(ExecutorProcess(pid=pid, executor_id=executor_id, app_id=app, cmdline=" ".join(args), cwd=cwd))
    return sorted(found, key=lambda p: p.pid)


def parent_map(proc: Path = Path("/proc")) -> dict[int, int]:
    """Return ``{pid: parent pid}`` for every process now."""
    parents = {}
    for pid in _pids(proc):
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            continue
        # The command name in field 2 may hold spaces or parentheses; the fields after the last ')' do not.
        fields = stat.rsplit(")", 1)[-1].split()
        with contextlib.suppress(IndexError, ValueError):
            parents[pid] = int(fields[1])
    return parents


def descendants(pid: int, parents: dict[int, int]) -> list[int]:
    """Return every descendant of ``pid`` in a ``parent_map``."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    result, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        result.append(current)
        todo.extend(children.get(current, []))
    return sorted(result)
