"""Load trace specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from roma.traces import TraceError, parse_trace


@pytest.mark.parametrize(
    ("spec", "t_s", "rps"),
    [
        ("const:20", 5.0, 20.0),
        ("step:10:40@30", 29.9, 10.0),
        ("step:10:40@30s", 30.0, 40.0),
        ("ramp:0:50@10", 5.0, 25.0),
        ("ramp:0:50@10", 50.0, 50.0),
        ("sin:20:10:60", 15.0, 30.0),
        ("spike:10:60@20+5", 22.0, 60.0),
        ("spike:10:60@20+5", 25.0, 10.0),
        ("sin:5:10:60", 45.0, 0.0),  # clipped at zero
    ],
)
def test_rates(spec: str, t_s: float, rps: float) -> None:
    assert parse_trace(spec).rate_rps(t_s) == pytest.approx(rps)


def test_csv_holds_each_rate(tmp_path: Path) -> None:
    path = tmp_path / "load.csv"
    path.write_text("t_seconds,rps\n0,5\n10,20\n20,8\n")
    trace = parse_trace(str(path))
    assert [trace.rate_rps(t) for t in (0, 9, 10, 25)] == [5, 5, 20, 8]
    assert trace.peak_rps(30) == 20


@pytest.mark.parametrize("spec", ["bogus", "step:10@3", "sin:1:2:0", "const:x", "csv:/nonexistent.csv"])
def test_bad_specs_name_the_forms(spec: str) -> None:
    with pytest.raises(TraceError, match=r"step|PERIOD|number|no such"):
        parse_trace(spec)


def test_expected_requests() -> None:
    assert parse_trace("step:10:30@5").expected_requests(10) == pytest.approx(200, rel=0.01)
