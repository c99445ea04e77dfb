"""``mlscale run`` of an InferenceService end to end: router, replicas in cgroups, load, loop, report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from mlscale.cgroups import cgroup_unavailable_reason
from mlscale.local import LocalRunOptions
from roma.api import InferenceService
from roma.local import run_local

REPO = Path(__file__).resolve().parents[3]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(cgroup_unavailable_reason() is not None, reason=str(cgroup_unavailable_reason())),
]


def _service(name: str) -> InferenceService:
    data = yaml.safe_load((REPO / "examples" / f"inferenceservice-{name}.yaml").read_text())
    return InferenceService.model_validate(data)


async def test_small_cnn_step_load_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    svc = _service("small-cnn")
    code = await asyncio.to_thread(
        run_local, svc, LocalRunOptions(report_dir=tmp_path, load="step:10:60@10", duration_s=25.0, quiet=True)
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert (tmp_path / "report.png").stat().st_size > 10_000
    for key in (
        "kind",
        "name",
        "requests",
        "slo_ms",
        "latency_ms_p50",
        "latency_ms_p95",
        "latency_ms_p99",
        "slo_violation_ratio",
        "core_seconds",
        "peak_cores",
        "samples",
    ):
        assert key in report
    assert report["kind"] == "InferenceService"
    assert report["requests"] > 700  # ~10 rps for 10 s then ~60 rps for 15 s
    assert report["errors"] == 0
    assert code == (0 if report["slo_violation_ratio"] <= report["slo_violation_threshold"] else 1)
    samples = report["samples"]
    assert len(samples) >= 10
    assert {"t", "rps", "latency_ms", "cores", "replicas"} <= set(samples[0])
    # The law releases the cores a small model does not need at this load.
    assert min(sum(s["cores"]) for s in samples) < svc.spec.cpu.cores_max
    assert report["core_seconds"] < 25.0 * svc.spec.cpu.cores_max


async def test_refuses_without_cgroups_unless_uncontrolled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import roma.local

    monkeypatch.setattr(roma.local, "cgroup_unavailable_reason", lambda: "cgroups are read-only here")
    code = await asyncio.to_thread(
        run_local,
        _service("small-cnn"),
        LocalRunOptions(report_dir=tmp_path, load="const:5", duration_s=2.0, quiet=True),
    )
    assert code == 2
    assert not (tmp_path / "report.json").exists()
