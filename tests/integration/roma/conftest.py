"""Fixtures that start real roma processes on 127.0.0.1 and always reap them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

#: looptime's plugin asks the event-loop policy for a loop around every *sync* test, which
#: creates one that nobody closes; pytest-asyncio later replaces it for an async test and it
#: is garbage-collected there, failing that innocent test with a ResourceWarning. Ignore
#: exactly those warnings in this package's tests (see the report to the lead).
LEAKED_LOOP_WARNINGS = (
    "ignore:unclosed event loop:ResourceWarning",
    "ignore:unclosed <socket.socket fd=:ResourceWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply :data:`LEAKED_LOOP_WARNINGS` to the tests of this folder."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            for spec in LEAKED_LOOP_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"LISTENING"):
        proc.kill()
        proc.wait()
        pytest.fail(f"{args[0]} did not start: {log.read_text()[-2000:]}")
    return proc, int(line.split()[1])


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    """``spawn(["roma.server", ...]) -> (port, pid)``; every process is terminated at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str]) -> tuple[int, int]:
        proc, port = _start(args, tmp_path / f"{args[0]}-{len(procs)}.log")
        procs.append(proc)
        return port, proc.pid

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
