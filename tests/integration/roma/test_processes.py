"""Real model servers, router and load generator on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import numpy as np
import pytest

from mlscale.cgroups import CpuCgroup, cgroup_unavailable_reason
from roma.api import ADMIN_TOKEN_FILE_ENV
from roma.loadgen import run_load
from roma.traces import parse_trace

pytestmark = pytest.mark.integration
SMALL = ["--name", "small", "--builder", "examples.roma.models:small_cnn", "--threads", "1"]


def _get(url: str) -> tuple[int, dict[str, object]]:
    with urlopen(url, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def _post(
    url: str, body: object, method: str = "POST", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    data = None if method == "GET" else json.dumps(body).encode()
    req = Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except HTTPError as err:  # urllib raises on 4xx; the body is the answer
        return err.code, json.loads(err.read())


def test_server_speaks_kserve_v2_and_tfserving(spawn: Callable[[list[str]], tuple[int, int]]) -> None:
    port, _ = spawn(["roma.server", *SMALL])
    base = f"http://127.0.0.1:{port}"
    assert _get(f"{base}/v2/health/ready")[0] == 200
    _, meta = _get(f"{base}/v2/models/small")
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 28, 28, 1]}]
    image = np.random.default_rng(0).random((2, 28, 28, 1)).round(3)
    status, v2 = _post(
        f"{base}/v2/models/small/infer",
        {
            "id": "r1",
            "inputs": [{"name": "image", "shape": [2, 28, 28, 1], "datatype": "FP32", "data": image.ravel().tolist()}],
        },
    )
    assert status == 200
    assert v2["id"] == "r1"
    out = v2["outputs"][0]  # type: ignore[index]
    assert out["shape"] == [2, 10]
    assert sum(out["data"][:10]) == pytest.approx(1.0, abs=1e-4)  # softmax row
    status, v1 = _post(f"{base}/v1/models/small:predict", {"instances": image.tolist()})
    assert status == 200
    assert np.allclose(np.array(v1["predictions"]).ravel(), out["data"], atol=1e-5)
    status, err = _post(
        f"{base}/v2/models/small/infer", {"inputs": [{"shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    )
    assert status == 400
    assert "does not match" in str(err["error"])
    with urlopen(f"{base}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert 'roma_server_requests_total{outcome="ok",protocol="v2"} 1.0' in metrics
    assert float(next(ln for ln in metrics.splitlines() if ln.startswith("process_cpu_seconds_total ")).split()[1]) > 0


async def test_router_measures_and_sends_to_gpu_replica(
    spawn: Callable[[list[str]], tuple[int, int]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cpu, _ = spawn(["roma.server", *SMALL])
    gpu, _ = spawn(["roma.server", *SMALL, "--accelerator"])
    token = tmp_path / "token"  # as the operator mounts it from the service's Secret
    monkeypatch.setenv(ADMIN_TOKEN_FILE_ENV, str(token))
    router, _ = spawn(["roma.router", "--model", "small:200:95", "--window-s", "30"])
    base = f"http://127.0.0.1:{router}"
    replicas = {
        "replicas": [
            {"name": "c0", "url": f"http://127.0.0.1:{cpu}", "model": "small"},
            {"name": "g0", "url": f"http://127.0.0.1:{gpu}", "model": "small", "accelerator": True},
        ]
    }
    # Its port is the one every client of the service reaches: the replica set is the operator's.
    # Before the Secret is mounted nothing is let through, not even an empty token.
    assert _post(f"{base}/admin/replicas", replicas, method="PUT", headers={"Authorization": "Bearer "})[0] == 401
    token.write_text("s3cret\n")
    for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": "Bearer s3cret\u00ff"}):
        status, answer = _post(f"{base}/admin/replicas", replicas, method="PUT", headers=headers)
        assert status == 401
        assert "admin token" in str(answer["error"])
    assert _post(f"{base}/admin/replicas", {}, method="GET")[0] == 401
    status, _ = _post(f"{base}/admin/replicas", replicas, method="PUT", headers={"Authorization": "Bearer s3cret"})
    assert status == 200
    # A token the operator replaces is the one asked for next, without a restart.
    token.write_text("n3w")
    assert _post(f"{base}/admin/replicas", {}, method="GET", headers={"Authorization": "Bearer s3cret"})[0] == 401
    assert _post(f"{base}/admin/replicas", {}, method="GET", headers={"Authorization": "Bearer n3w"})[0] == 200
    result = await run_load(base, "small", parse_trace("const:40"), 5.0)
    summary = result.summary(200.0)
    assert summary["answered"] >= 150
    assert summary["errors"] == 0
    _, stats = _get(f"{base}/stats")
    model = stats["models"]["small"]  # type: ignore[index]
    assert model["requests_total"] == summary["answered"]
    assert 0.0 < model["gpu_share"] < 1.0  # both devices served
    assert set(model["replicas"]) == {"c0", "g0"}
    assert model["latency_ms"] is not None
    assert model["latency_ms"] < 1000


async def test_loadgen_refuses_remote_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await run_load("http://example.com:80", "m", parse_trace("const:1"), 1.0)


@pytest.mark.slow
@pytest.mark.skipif(cgroup_unavailable_reason() is not None, reason=str(cgroup_unavailable_reason()))
async def test_cgroup_quota_slows_a_replica(spawn: Callable[[list[str]], tuple[int, int]]) -> None:
    port, pid = spawn(["roma.server", *SMALL])
    group = CpuCgroup.create(f"roma-test-{pid}")
    try:
        group.add_process(pid)
        p95 = {}
        for cores in (1.0, 0.1):
            group.set_cores(cores)
            res = await run_load(f"http://127.0.0.1:{port}", "small", parse_trace("const:30"), 6.0)
            p95[cores] = res.summary(None)["latency_ms_p95"]
        assert p95[0.1] > 2 * p95[1.0]
    finally:
        group.destroy()
