"""LatencyWindow: percentiles over a sliding window of response times."""

from __future__ import annotations

import pytest

from roma.latency import LatencyWindow, percentile


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 50) == 50.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 95) is None


@pytest.mark.parametrize(("count", "pct"), [(1000, 99.9), (100, 99.0), (1000, 95.5), (10000, 99.99), (7, 100 / 7 * 3)])
def test_percentile_at_an_exact_rank_takes_that_sample_not_the_next(count: int, pct: float) -> None:
    # 99.9 % of 1000 samples is the 999th: floating point makes it 999.0000000000001.
    values = [float(v) for v in range(1, count + 1)]
    assert percentile(values, pct) == round(pct * count / 100)


def test_window_forgets_old_samples() -> None:
    win = LatencyWindow(window_s=4.0)
    for i in range(10):
        win.add(float(i), 1.0)  # slow requests early
    for i in range(10, 20):
        win.add(float(i), 0.01)  # fast requests later
    assert win.percentile_s(19.0, 95) == pytest.approx(0.01)
    assert win.count(19.0) == 5
    assert win.percentile_s(100.0, 95) is None


def test_violation_ratio_counts_requests_over_slo() -> None:
    win = LatencyWindow(window_s=10.0)
    for i, lat in enumerate([0.05, 0.05, 0.2, 0.05]):
        win.add(float(i), lat)
    assert win.violation_ratio(4.0, 0.1) == pytest.approx(0.25)


def test_round_trip_keeps_samples() -> None:
    win = LatencyWindow(window_s=5.0)
    win.add(1.0, 0.3)
    win.add(2.0, 0.1)
    again = LatencyWindow.from_dict(win.to_dict())
    assert again.percentile_s(2.0, 95) == pytest.approx(0.3)


def test_rejects_non_positive_window() -> None:
    with pytest.raises(ValueError, match="window_s"):
        LatencyWindow(window_s=0)
