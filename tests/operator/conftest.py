"""Fixtures: the kmock Kubernetes emulator with our CRDs, a kubeconfig for it, a running operator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import kmock
import pytest
import yaml

from tests.operator.harness import (
    NAMESPACE,
    OPERATOR_TOKEN,
    Cluster,
    Emulator,
    RunningOperator,
    register_crds,
    start_operator,
)
from tests.operator.spark_driver_fake import FakeSparkDriver


@pytest.fixture(autouse=True)
def operator_rbac() -> Iterator[None]:
    """Fail a test in which the operator made a request its ClusterRole does not grant."""
    Emulator.forbidden.clear()
    yield
    assert not Emulator.forbidden, "the operator's RBAC does not grant:\n" + "\n".join(sorted(set(Emulator.forbidden)))


@pytest.fixture
async def emulator() -> AsyncIterator[kmock.KubernetesEmulator]:
    async with Emulator() as handler, kmock.Server(handler):
        handler.resources.load_bundled()
        register_crds(handler)
        yield handler


@pytest.fixture
def kubeconfig(emulator: kmock.KubernetesEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(emulator.url).rstrip("/")}}],
        "users": [{"name": "tester", "user": {"token": OPERATOR_TOKEN}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester", "namespace": NAMESPACE}}],
        "current-context": "kmock",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("MLSCALE_METRICS_PORT", "0")
    monkeypatch.setenv("MLSCALE_HEALTH_PORT", "0")
    monkeypatch.setenv("MLSCALE_BIND_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("MLSCALE_WATCH_SERVER_TIMEOUT", "30")
    return path


@pytest.fixture
async def operator(kubeconfig: Path) -> AsyncIterator[RunningOperator]:
    running = await start_operator()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def cluster(emulator: kmock.KubernetesEmulator) -> AsyncIterator[Cluster]:
    # No keep-alive: a kept connection stalls once an operator stops (its watch streams end).
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield Cluster(emulator, http)


@pytest.fixture
async def driver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSparkDriver]:
    """A fake Spark driver's REST API, where the operator's DeadlineJob loop reads progress."""
    fake = FakeSparkDriver()
    monkeypatch.setenv("MLSCALE_SPARK_UI_URL", await fake.start())
    try:
        yield fake
    finally:
        await fake.stop()
