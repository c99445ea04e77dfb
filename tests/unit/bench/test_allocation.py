"""bench/allocation.py: where a run's allocation above use goes, from its report's samples."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.scripts import load_script


@pytest.fixture(scope="module")
def allocation() -> ModuleType:
    return load_script("bench/allocation.py", "bench_allocation")


def _sample(
    t: float,
    cores: dict[str, float],
    used: dict[str, float] | None = None,
    throttled: dict[str, float] | None = None,
    caps: dict[str, float] | None = None,
) -> dict:
    return {
        "t": t,
        "cores": cores,
        "used_cores": used or {},
        "throttled_share": throttled or {},
        "usage_ceilings": caps or {},
    }


# One executor, one second per period. Each sample's cores hold until the next sample, whose
# reading (used cores, throttled share) measures that period.
RUN = [
    _sample(0, {"0": 1.0}),  # held 1.0: no reading of it
    _sample(1, {"0": 1.0}),  # held 1.0, used 0.4: no reading before
    _sample(2, {"0": 0.6}, {"0": 0.4}, {"0": 0.0}, {"0": 0.6}),  # capped at 0.6, used 0.4
    _sample(3, {"0": 0.6}, {"0": 0.4}, {"0": 0.0}, {"0": 0.6}),  # capped at 0.6, used it all, throttled
    _sample(4, {"0": 1.0}, {"0": 0.6}, {"0": 0.3}),  # the cap lifted: 1.0, used 0.5
    _sample(5, {"0": 0.5}, {"0": 0.5}, {"0": 0.0}),  # 0.5, used 0.45, throttled: bursts
    _sample(6, {"0": 0.1}, {"0": 0.45}, {"0": 0.5}),  # idle at coresMin, used 0.02
    _sample(7, {"0": 0.1}, {"0": 0.02}, {"0": 0.0}),
]


def test_each_period_s_idle_cores_land_in_the_class_that_explains_them(allocation: ModuleType) -> None:
    split = allocation.classify(RUN, cores_min=0.1)
    assert split["unmetered"] == pytest.approx(1.0)
    assert split["other"] == pytest.approx(0.6)
    assert split["usage cap"] == pytest.approx(0.2)
    assert split["cap lifted"] == pytest.approx(0.5)
    assert split["throttled"] == pytest.approx(0.05)
    assert split["at coresMin"] == pytest.approx(0.08)
    assert split["allocated"] == pytest.approx(4.8)
    assert split["used"] == pytest.approx(0.4 + 0.4 + 0.6 + 0.5 + 0.45 + 0.02)


def test_a_throttled_executor_raised_by_its_regulator_is_not_a_lifted_cap(allocation: ModuleType) -> None:
    run = [
        _sample(0, {"0": 0.4}, {"0": 0.4}, {"0": 0.6}),
        _sample(1, {"0": 0.9}, {"0": 0.4}, {"0": 0.6}),  # throttled at 0.4, uncapped: raised to 0.9
        _sample(2, {"0": 0.9}, {"0": 0.6}, {"0": 0.0}),
    ]
    split = allocation.classify(run, cores_min=0.1)
    assert split["regulator raise"] == pytest.approx(0.3)
    assert "cap lifted" not in split


def test_each_workload_s_row_adds_up_to_what_was_allocated_and_not_used(allocation: ModuleType, tmp_path: Path) -> None:
    for name, cpu in (("pagerank-r0-20-mlscale", 3.0), ("pagerank-r0-40-mlscale", 2.5)):
        (tmp_path / name).mkdir()
        report = {
            "mode": "control",
            "samples": RUN,
            "core_seconds": 5.0,
            "cpu_seconds": cpu,
            "executors": {"cores_min": 0.1},
        }
        (tmp_path / name / "report.json").write_text(json.dumps(report))
    (tmp_path / "pagerank-r0-max").mkdir()
    (tmp_path / "pagerank-r0-max" / "report.json").write_text(json.dumps({"mode": "static", "samples": RUN}))
    rows = allocation.analyse(tmp_path.glob("*/report.json"))
    assert list(rows) == ["pagerank"]
    row = rows["pagerank"]
    assert row["runs"] == 2
    assert row["core_seconds"] - row["cpu_seconds"] == pytest.approx(sum(row["idle_core_seconds"].values()), abs=0.02)
    assert allocation.table({"workloads": rows}).splitlines()[2].startswith("| pagerank | 2 | 0.243 | 5.0 | 2.8 |")


def test_without_a_folder_it_reads_the_runs_the_last_deadlinejob_bench_kept(
    allocation: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    (runs / "kmeans-r0-20-mlscale").mkdir(parents=True)
    report = {
        "mode": "control",
        "samples": RUN,
        "core_seconds": 5.0,
        "cpu_seconds": 2.0,
        "executors": {"cores_min": 0.1},
    }
    (runs / "kmeans-r0-20-mlscale" / "report.json").write_text(json.dumps(report))
    out = tmp_path / "results"
    out.mkdir()
    (out / "deadlinejob.json").write_text(json.dumps({"reports": str(runs), "runs": []}))
    assert allocation.main(["--out", str(out)]) == 0
    written = json.loads((out / "deadlinejob_allocation.json").read_text())
    assert list(written["workloads"]) == ["kmeans"]
    assert (out / "deadlinejob_allocation.png").stat().st_size > 0
    assert "| kmeans | 1 | 0.243 | 5.0 | 2.0 |" in capsys.readouterr().out


def test_cores_moved_adds_up_every_change_per_executor_and_second(allocation: ModuleType) -> None:
    # Over the 7 s of RUN one executor moved 0.4 + 0.4 + 0.5 + 0.4 = 1.7 cores.
    assert allocation.moved_per_second(RUN) == pytest.approx(1.7 / 7)
    steady = [_sample(t, {"0": 0.5, "1": 0.5}) for t in range(5)]
    assert allocation.moved_per_second(steady) == 0.0
    # Two executors swinging in opposite directions, 0.2 <-> 0.9 each second: 0.7 per second each.
    swing = [_sample(t, {"0": 0.2 if t % 2 else 0.9, "1": 0.9 if t % 2 else 0.2}) for t in range(5)]
    assert allocation.moved_per_second(swing) == pytest.approx(0.7)
    assert allocation.moved_per_second([_sample(0, {}), _sample(1, {"0": 1.0})]) == 0.0
