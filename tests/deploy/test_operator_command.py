"""The operator container's command line and environment, as the chart renders them, run for real.

The image's ENTRYPOINT plus the chart's args and env start the real operator here (on loopback,
with no cluster to log in to): its /healthz and /metrics must answer on the ports the probes and
the metrics Service use. This is the contract between the deploy paths and controllers/.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pytest

from tests.deploy.manifests import ChartRenderer

Instructions = list[tuple[str, str]]
OperatorStarter = Callable[[Mapping[str, Any], Sequence[str]], "subprocess.Popen[bytes]"]

pytestmark = [pytest.mark.deploy, pytest.mark.integration]

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
FIELD_VALUES = {"metadata.name": "mlscale-operator-test", "metadata.namespace": "mlscale-system"}


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held open together so that they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def http_get(url: str) -> tuple[int, str, str] | None:
    """(status, content type, body) of a GET, or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def container_env(container: Mapping[str, Any], home: Path) -> dict[str, str]:
    """The process environment the container would get, resolved for this machine."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(home / "no-kubeconfig"),  # no cluster: login fails and is retried
        "MLSCALE_BIND_ADDRESS": "127.0.0.1",  # loopback only on this machine
    }
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = FIELD_VALUES[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


@pytest.fixture
def start_operator(repo_root: Path, tmp_path: Path) -> Iterator[OperatorStarter]:
    """Start `python -m kopf run ...` in its own process group; stop and reap it after the test."""
    started: list[tuple[subprocess.Popen[bytes], TextIO]] = []

    def start(container: Mapping[str, Any], entrypoint: Sequence[str]) -> subprocess.Popen[bytes]:
        assert entrypoint[0] == "kopf"
        env = container_env(container, tmp_path)
        env["PYTHONPATH"] = str(repo_root)  # the image installs the packages; here they are in the tree
        log = (tmp_path / "operator.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "kopf", *entrypoint[1:], *container["args"]],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_S)
        log.close()


def test_operator_started_as_the_chart_starts_it_serves_health_and_metrics(
    chart: ChartRenderer, dockerfile: Instructions, start_operator: OperatorStarter, tmp_path: Path
) -> None:
    metrics_port, health_port = free_ports(2)
    rendered = chart.render({"metrics": {"port": metrics_port}, "health": {"port": health_port}})
    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    entrypoint = json.loads([a for k, a in dockerfile if k == "ENTRYPOINT"][-1])
    process = start_operator(container, entrypoint)

    deadline = time.monotonic() + START_TIMEOUT_S
    health = None
    while health is None and process.poll() is None and time.monotonic() < deadline:
        health = http_get(f"http://127.0.0.1:{health_port}/healthz")
        if health is None:
            time.sleep(0.2)
    log = (tmp_path / "operator.log").read_text()
    assert process.poll() is None, f"the operator exited with {process.returncode}:\n{log}"
    assert health is not None, f"no /healthz on port {health_port} within {START_TIMEOUT_S} s:\n{log}"
    assert health[0] == 200

    metrics = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert metrics is not None, f"no /metrics on port {metrics_port}:\n{log}"
    status, content_type, _ = metrics
    assert status == 200
    assert content_type.startswith("text/plain")
