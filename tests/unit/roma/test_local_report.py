"""The report and last line of `mlscale run` for an InferenceService speak of the SLO's own percentile."""

from __future__ import annotations

from pathlib import Path

from roma.api import InferenceService
from roma.loadgen import LoadResult
from roma.local import _report, summary_line


def _svc(percentile: float) -> InferenceService:
    return InferenceService.model_validate(
        {
            "apiVersion": "mlscale.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "cnn"},
            "spec": {
                "model": {"name": "cnn", "builder": "examples.roma.models:small_cnn"},
                "slo": {"latencyMs": 990, "percentile": percentile},
            },
        }
    )


def _result() -> LoadResult:
    # Latencies of 1, 2, ..., 1000 ms: p95 is 950 ms, p99.9 is 999 ms (nearest rank).
    return LoadResult(sent=1000, latencies_s=[(i / 100, i / 1000) for i in range(1, 1001)], duration_s=10.0)


def _run_report(percentile: float) -> dict[str, object]:
    samples = [{"t": 1.0, "cores": [0.5, 0.5], "replicas": 2}]
    return _report(
        _svc(percentile),
        trace="const:100",
        duration_s=10.0,
        period_s=1.0,
        result=_result(),
        samples=samples,
        contended_periods=0,
    )


def test_a_p99_9_slo_is_reported_at_p99_9_and_judged_by_its_violations() -> None:
    report = _run_report(99.9)
    assert report["latency_ms_p95"] == 950.0
    assert report["latency_ms_slo_percentile"] == 999.0
    # 10 of 1000 answers over 990 ms: 1 % slow, more than the 0.1 % a p99.9 SLO allows.
    line = summary_line("cnn", report, Path("r/report.json"))
    assert line.startswith("cnn: 1000 requests, p99.9 999.0 ms vs SLO 990 ms, violations 0.010 (≤ 0.00 NOT held)")


def test_a_p95_slo_reads_as_before() -> None:
    report = _run_report(95)
    line = summary_line("cnn", report, Path("r/report.json"))
    assert line.startswith("cnn: 1000 requests, p95 950.0 ms vs SLO 990 ms, violations 0.010 (≤ 0.05 held)")
    assert line.endswith("1 core-s, peak 1.0 cores → r/report.json")
