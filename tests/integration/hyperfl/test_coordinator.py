"""The coordinator as it runs in a pod: workers over HTTP, /status for the operator, resumable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controllers.flpods import RESOURCE_ENV, coordinator_pod
from hyperfl.api import FederatedTraining
from hyperfl.processes import group_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
RESOURCE = {
    "apiVersion": "mlscale.dev/v1alpha1",
    "kind": "FederatedTraining",
    "metadata": {"name": "digits", "namespace": "default"},
    "spec": {
        "model": {"builder": "examples.hyperfl.models:digits_mlp"},
        "target": {"value": 0.8},
        "data": {"clients": 2},
        "rounds": {"max": 8, "clientsPerRound": 2},
        "training": {"learningRate": 0.1, "batchSize": 16},
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_decade() -> int:
    """A port prefix P such that ports P0 and P1 are free (the coordinator's template appends the index)."""
    for _ in range(200):
        prefix = free_port() // 10
        if prefix * 10 + 1 > 65535:
            continue
        try:
            for index in (0, 1):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", prefix * 10 + index))
        except OSError:
            continue
        return prefix
    raise RuntimeError("no two consecutive free ports")


def operators_document(resource: dict[str, Any]) -> str:
    """The resource as the operator hands it to the coordinator pod (its environment), defaults filled in."""
    job = FederatedTraining.model_validate(
        {**resource, "spec": {**resource["spec"], "image": "registry.example/hyperfl:1", "deadline": "10m"}}
    )
    (container,) = coordinator_pod(job, "default")["spec"]["containers"]
    return str(next(e["value"] for e in container["env"] if e["name"] == RESOURCE_ENV))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert not group_alive(proc.pid), "a TFF worker_binary outlived its process"


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def test_coordinator_reaches_target_with_http_workers_and_publishes_status(
    processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MLSCALE_FL_RESOURCE": operators_document(RESOURCE),
    }
    prefix = free_decade()
    for index in (0, 1):
        args = ["-m", "hyperfl.worker", "--builder", "examples.hyperfl.models:digits_mlp", "--clients", "2"]
        args += ["--port", f"{prefix}{index}"]
        processes.append(spawn(args, env, tmp_path / f"worker{index}.log"))
    port = free_port()
    checkpoints = tmp_path / "ckpt"
    args = ["-m", "hyperfl.coordinator", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    args += ["--checkpoint-dir", str(checkpoints), "--linger-s", "3"]
    args += ["--worker-url-template", f"http://127.0.0.1:{prefix}{{index}}"]
    coordinator = spawn(args, env, tmp_path / "coordinator.log")
    processes.append(coordinator)
    seen: list[dict[str, object]] = []
    deadline = time.monotonic() + 240
    while coordinator.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as response:
                seen.append(json.loads(response.read()))
        except OSError:
            pass
        time.sleep(0.5)
    assert coordinator.returncode == 0, (tmp_path / "coordinator.log").read_text()[-3000:]
    final = seen[-1]
    assert final["phase"] == "TargetReached"
    assert isinstance(final["accuracy"], float)
    assert final["accuracy"] >= 0.8
    assert any(s.get("round", 0) >= 1 for s in seen)
    assert sorted(checkpoints.rglob("*.npz")), "no checkpoint written"
    assert sorted(checkpoints.rglob("status.json")), "no status.json for a restarted coordinator"
