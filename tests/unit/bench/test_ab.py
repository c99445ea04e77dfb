"""bench/ab.py: mlscale's runs of two variants side by side, charged net of quota refills."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.scripts import load_script


@pytest.fixture(scope="module")
def ab() -> ModuleType:
    return load_script("bench/ab.py", "bench_ab")


def _sample(t: float, cores: dict[str, float], used: dict[str, float] | None = None) -> dict:
    return {"t": t, "cores": cores, "used_cores": used or {}}


def test_a_period_is_charged_what_the_executor_used_when_that_was_more_than_its_quota(ab: ModuleType) -> None:
    samples = [
        _sample(0, {"0": 1.0, "1": 0.5}),
        _sample(1, {"0": 0.2, "1": 0.5}, {"0": 0.7, "1": 0.5}),  # under quota: charged the quota
        _sample(2, {"0": 0.2, "1": 0.5}, {"0": 0.35, "1": 0.3}),  # 0 used more than its 0.2
    ]
    # 1.5 + (0.35 + 0.5) + the last period to the end (1.5 s, no reading: at the quota) 0.7 × 1.5
    assert ab.charged_core_seconds(samples, end_s=3.5) == pytest.approx(1.5 + 0.85 + 1.05)


def _folder(root: Path, name: str, static_cs: float, runs: list[tuple[str, float, float, list[dict]]]) -> Path:
    """A bench/deadlinejob.py output: its JSON and, elsewhere, the runs' reports."""
    out, reports = root / name, root / f"{name}-reports"
    out.mkdir()
    rows = []
    for workload, slack, ratio, samples in runs:
        label = f"{workload}-r0-{int(100 * slack)}-mlscale"
        (reports / label).mkdir(parents=True)
        report = {"core_seconds": 4.0, "completion_s": 4.0, "cpu_seconds": 3.0, "quota_writes": 3, "samples": samples}
        (reports / label / "report.json").write_text(json.dumps(report))
        rows.append(
            {"workload": workload, "slack": slack, "policy": "static-max", "repeat": 0, "core_seconds": static_cs}
        )
        rows.append(
            {
                "workload": workload,
                "slack": slack,
                "policy": "mlscale",
                "repeat": 0,
                "completion_ratio": ratio,
                "deadline_met": ratio <= 1.0,
            }
        )
    (out / "deadlinejob.json").write_text(json.dumps({"reports": str(reports), "runs": rows}))
    return out


def test_variants_are_compared_against_one_static_denominator_pooled_over_every_folder(
    ab: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    within = [_sample(t, {"0": 1.0}, {"0": 0.75} if t else None) for t in range(4)]
    over = [_sample(t, {"0": 1.0}, {"0": 1.25} if t else None) for t in range(4)]
    a = _folder(tmp_path, "a", 6.0, [("pagerank", 0.2, 0.95, within), ("pagerank", 0.4, 0.85, within)])
    b = _folder(tmp_path, "b", 10.0, [("pagerank", 0.2, 0.93, over), ("pagerank", 0.4, 1.02, over)])
    out = tmp_path / "out"
    assert ab.main([f"A={a}", f"B={b}", "--out", str(out)]) == 0
    result = json.loads((out / "ab.json").read_text())
    assert result["static_max_core_seconds"] == {"pagerank": 8.0}  # median of 6, 6, 10, 10
    a_row, b_row = result["variants"]["A"]["pagerank"], result["variants"]["B"]["pagerank"]
    assert a_row["allocated"] == b_row["allocated"] == pytest.approx(0.5)
    assert a_row["charged"] == pytest.approx(0.5)  # used less than its quota: charged the quota
    assert b_row["charged"] == pytest.approx((3 * 1.25 + 1.0) / 8.0, abs=1e-3)  # used more: charged that
    assert (a_row["met"], a_row["in_band"]) == (2, 1)
    assert (b_row["met"], b_row["in_band"]) == (1, 1)
    assert (out / "ab.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| pagerank | A | 2 | 0.50× | 0.50× | 0.38× | 2/2 | 1/2 | 3 |" in printed
    assert ab.main(["--out", str(out), "--table"]) == 0
    assert capsys.readouterr().out.strip() == printed.strip()


def test_a_variant_without_folders_is_refused_with_the_form_to_write(ab: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        ab.main(["A", "--out", str(tmp_path)])
