"""A kubelet slower than the control period: what it costs, and ``ResizeLagging``, which says so."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf
import pytest

from controllers import deadlinejob_status
from controllers.deadlinejob_status import RESIZE_LAGGING, resize_lag_conditions
from dynaspark.law import DeadlineControlLaw, LawConfig
from dynaspark.simulation import SimStage, SimulatedSparkApp, profile_at_cores, run_closed_loop
from mlscale.api import Condition, find_condition
from tests.unit.dynaspark.test_usage_ceiling import BUSY, GAINS, WAITING, WAITING_THEN_BUSY

NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
BODY = kopf.Body({"apiVersion": "mlscale.dev/v1alpha1", "kind": "DeadlineJob", "metadata": {"name": "j"}})


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    posted: list[str] = []

    def warn(body: Any, *, reason: str, message: str) -> None:
        posted.append(f"{reason}: {message}")

    monkeypatch.setattr(deadlinejob_status.kopf, "warn", warn)
    monkeypatch.setattr(deadlinejob_status.kopf, "info", lambda body, *, reason, message: None)
    return posted


def judge(lag_s: float, latency_s: float, timed: int, period_s: float) -> list[Condition]:
    return resize_lag_conditions(
        BODY, [], lag_s=lag_s, latency_s=latency_s, timed=timed, period_s=period_s, now=NOW, generation=1
    )


def test_a_kubelet_slower_than_the_period_is_reported(warnings: list[str]) -> None:
    cond = find_condition(judge(0.9, 1.4, 6, 0.5), RESIZE_LAGGING)
    assert cond is not None
    assert (cond.status, cond.reason) == ("True", "SlowerThanPeriod")
    assert "0.9-1.4 s" in cond.message
    assert "spec.control.periodSeconds (0.5 s)" in cond.message
    assert "runs 2 periods or more under cores decided before" in cond.message
    assert warnings == [f"ResizeLagging: {cond.message}"]


def test_a_resize_in_the_first_reading_after_a_request_is_not_a_lag(warnings: list[str]) -> None:
    # Applied before the first reading after the request: at most a period late, at least none.
    cond = find_condition(judge(0.0, 0.5, 20, 0.5), RESIZE_LAGGING)
    assert cond is not None
    assert (cond.status, cond.reason) == ("False", "WithinPeriod")
    assert warnings == []


def test_a_resize_missed_by_the_first_reading_after_it_is_a_period_late(warnings: list[str]) -> None:
    # The first reading, 0.45 s after the request (the loop's own work took the rest of the
    # period), still showed the old quota: the executor ran that period under the old cores.
    cond = find_condition(judge(0.45, 0.95, 8, 0.5), RESIZE_LAGGING)
    assert cond is not None
    assert cond.status == "True"
    assert "runs 1 period or more under cores decided before" in cond.message


def test_a_few_resizes_are_no_pattern(warnings: list[str]) -> None:
    assert judge(3.0, 3.5, 4, 0.5) == []
    assert warnings == []


def _cost(stages: list[SimStage], period_s: float, lag_periods: int) -> tuple[float, int]:
    """Mean core-seconds relative to static coresMax over seeds and slacks, and how many deadlines were met."""
    at_max = SimulatedSparkApp(stages, seed=0)
    while not at_max.finished:
        at_max.advance({"0": 1.0, "1": 1.0}, 1.0)
    costs, met = [], 0
    for seed in (1, 2, 3, 4):
        for slack in (0.2, 0.4):
            deadline_s = at_max.t_s * (1 + slack)
            law = DeadlineControlLaw(
                LawConfig(deadline_s=deadline_s, instances=2, gains=GAINS, period_s=period_s),
                profile_at_cores(stages, 1.0),
            )
            app = SimulatedSparkApp(stages, seed=seed)
            run_closed_loop(
                app,
                law,
                law.initial_state(app.t_s),
                period_s=period_s,
                max_s=10 * deadline_s,
                resize_lag_periods=lag_periods,
            )
            costs.append(app.core_seconds / (2 * at_max.t_s))
            met += app.t_s <= deadline_s
    return sum(costs) / len(costs), met


@pytest.mark.parametrize("stages", [WAITING, BUSY, WAITING_THEN_BUSY], ids=["waiting", "busy", "waiting-then-busy"])
def test_resizes_a_second_late_cost_cores_and_a_period_that_long_does_not_win_them_back(
    stages: list[SimStage],
) -> None:
    instant, instant_met = _cost(stages, 0.5, 0)
    late, late_met = _cost(stages, 0.5, 2)  # the kubelet applies each resize 1 s (two periods) late
    long_period, long_met = _cost(stages, 1.0, 1)  # the same kubelet, the period stretched to its delay
    assert instant_met == late_met == long_met == 8
    # Measured (mean core-seconds over static coresMax): waiting 0.31 / 0.45 / 0.48, busy
    # 0.86 / 0.89 / 0.91, waiting-then-busy 0.67 / 0.77 / 0.80.
    assert instant < late <= long_period
