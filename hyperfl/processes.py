"""Child processes in their own process group, reaped with everything they started.

TFF's C++ ``worker_binary`` outlives the Python process that started it and keeps inherited
file descriptors open; TensorFlow workers may hang in native code. Each such process runs as
the leader of a new session, and reaping signals the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any


def child_env(python_path: Sequence[str] = (), extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a Python child: this interpreter's import path first, TensorFlow's chatter off."""
    env = dict(os.environ)
    paths = [*python_path, *(p for p in sys.path if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def start_group(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: int | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new process group."""
    return subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        start_new_session=True,
    )


def reap_group(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> int | None:
    """Stop ``process`` and every process in its group: SIGTERM, then SIGKILL after ``grace_s``.

    Returns:
        The leader's exit status (``None`` if it could not be collected).
    """
    pgid = process.pid  # the leader of a new session: its pid is the group id
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    # Whatever ignored SIGTERM, or outlived its leader (TFF's worker_binary), goes now.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    status: int | None
    try:
        status = process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        status = process.poll()
    # SIGKILL is delivered asynchronously: wait (bounded) until no member runs any more.
    deadline = time.monotonic() + grace_s
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies excluded)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            return True
    return False
