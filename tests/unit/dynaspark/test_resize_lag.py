"""A kubelet slower than the control period: what it costs, how it is timed, and ``ResizeLagging``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf
import pytest

from controllers import deadlinejob_status
from controllers.deadlinejob_status import RESIZE_LAGGING, resize_lag_conditions
from controllers.executor_cpu import PodCpuMeter, ResizeDelays
from dynaspark.law import DeadlineControlLaw, LawConfig
from dynaspark.simulation import SimStage, SimulatedSparkApp, profile_at_cores, run_closed_loop
from mlscale.api import Condition, find_condition
from tests.unit.dynaspark.test_usage_ceiling import BUSY, GAINS, WAITING, WAITING_THEN_BUSY

NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
BODY = kopf.Body({"apiVersion": "mlscale.dev/v1alpha1", "kind": "DeadlineJob", "metadata": {"name": "j"}})


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    posted: list[str] = []

    def post(kind: str) -> Any:
        return lambda body, *, reason, message: posted.append(f"{kind} {reason}: {message}")

    monkeypatch.setattr(deadlinejob_status.kopf, "warn", post("Warning"))
    monkeypatch.setattr(deadlinejob_status.kopf, "info", post("Normal"))
    return posted


def judge(
    timed: int, late: int, conditions: list[Condition] | None = None, *, at_most_s: float | None = 1.4
) -> list[Condition]:
    delays = ResizeDelays(timed=timed, late=late, missed_readings=2, at_least_s=0.9, at_most_s=at_most_s)
    return resize_lag_conditions(BODY, conditions or [], delays, period_s=0.5, now=NOW, generation=1)


def status_of(conditions: list[Condition]) -> tuple[str, str]:
    cond = find_condition(conditions, RESIZE_LAGGING)
    assert cond is not None
    return cond.status, cond.reason


def test_most_resizes_late_is_reported_with_what_they_took(events: list[str]) -> None:
    cond = find_condition(judge(8, 6), RESIZE_LAGGING)
    assert cond is not None
    assert (cond.status, cond.reason) == ("True", "SlowerThanPeriod")
    assert "6 of the latest 8 in-place resizes" in cond.message
    assert "spec.control.periodSeconds 0.5 s" in cond.message
    assert "took 0.9-1.4 s" in cond.message
    assert "runs 2 periods or more under cores decided before" in cond.message
    assert events == [f"Warning ResizeLagging: {cond.message}"]
    # Resizes replaced before a reading showed them applied have no upper bound.
    replaced = find_condition(judge(8, 8, at_most_s=None), RESIZE_LAGGING)
    assert replaced is not None
    assert "took more than 0.9 s" in replaced.message


def test_most_resizes_in_time_is_no_lag(events: list[str]) -> None:
    assert status_of(judge(20, 8)) == ("False", "WithinPeriod")
    assert events == []


def test_in_between_it_keeps_what_it_said(events: list[str]) -> None:
    # A kubelet whose delay is about the period: half the resizes late. No flip either way.
    lagging = judge(10, 7)
    assert status_of(judge(10, 5, lagging)) == ("True", "SlowerThanPeriod")
    in_time = judge(10, 3)
    assert status_of(judge(10, 5, in_time)) == ("False", "WithinPeriod")
    assert [e.split(":")[0] for e in events] == ["Warning ResizeLagging"]
    # With nothing said yet, the first judgement in between says the resizes kept up.
    assert status_of(judge(10, 5)) == ("False", "WithinPeriod")


def test_until_five_resizes_were_timed_it_is_unknown(events: list[str]) -> None:
    lagging = judge(8, 8)
    # After an operator restart the timings start again: what was said is no longer known.
    assert status_of(judge(4, 4, lagging)) == ("Unknown", "NotYetTimed")
    assert status_of(judge(5, 5)) == ("True", "SlowerThanPeriod")


class _Readings:
    """Feeds a PodCpuMeter the quota each reading shows, without HTTP."""

    def __init__(self, meter: PodCpuMeter) -> None:
        self.meter = meter

    def read(self, quota: float, now_s: float) -> None:
        self.meter.quota_cores["1"] = quota
        self.meter._time_resize("1", quota, now_s)


def test_a_resize_is_timed_from_the_readings_that_missed_it_to_the_one_that_saw_it() -> None:
    meter = PodCpuMeter(4049)
    readings = _Readings(meter)
    readings.read(1.0, 10.0)
    meter.expect({"1": 0.5}, 10.1)
    readings.read(1.0, 10.5)  # missed
    readings.read(1.0, 11.0)  # missed
    readings.read(0.5, 11.5)
    meter.expect({"1": 0.4}, 11.6)
    readings.read(0.4, 12.0)  # applied before the first reading after it
    assert meter.resize_timings[0].missed_readings == 2
    assert meter.resize_timings[0].at_least_s == pytest.approx(0.9)
    assert meter.resize_timings[0].at_most_s == pytest.approx(1.4)
    assert (meter.resize_timings[1].missed_readings, meter.resize_timings[1].at_least_s) == (0, 0.0)
    delays = meter.resize_delays()
    assert (delays.timed, delays.late, delays.missed_readings) == (2, 1, 2)
    assert delays.at_least_s == pytest.approx(0.9)
    assert delays.at_most_s == pytest.approx(1.4)  # the late ones' own


def test_a_resize_replaced_before_it_arrived_counts_late_and_a_reverted_one_is_not_timed() -> None:
    meter = PodCpuMeter(4049)
    readings = _Readings(meter)
    readings.read(1.0, 10.0)
    meter.expect({"1": 0.8}, 10.1)
    readings.read(1.0, 10.5)  # missed
    # Asked back to the quota the container still runs under: nothing for the kubelet to do.
    meter.expect({"1": 1.0}, 10.6)
    readings.read(1.0, 11.0)
    assert [(t.missed_readings, t.at_most_s) for t in meter.resize_timings] == [(1, None)]
    meter.expect({"1": 0.3}, 11.1)
    readings.read(1.0, 11.5)  # missed
    meter.expect({"1": 0.2}, 11.6)  # replaced while it waited: late, no upper bound
    readings.read(0.2, 12.0)  # the latest arrives before the first reading after it
    assert [(t.missed_readings, t.at_most_s) for t in meter.resize_timings] == [
        (1, None),
        (1, None),
        (0, pytest.approx(0.4)),
    ]
    # The bounds come from the late one read applied, not from the ones cut short by a replacement.
    readings.read(0.2, 12.5)
    meter.expect({"1": 0.6}, 12.6)
    readings.read(0.2, 13.0)  # missed
    readings.read(0.2, 13.5)  # missed
    readings.read(0.6, 14.0)
    delays = meter.resize_delays()
    assert (delays.timed, delays.late, delays.missed_readings) == (4, 3, 2)
    assert delays.at_least_s == pytest.approx(0.9)
    assert delays.at_most_s == pytest.approx(1.4)
    meter.forget_resizes()
    assert meter.resize_delays().timed == 0


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


@pytest.mark.parametrize(
    ("stages", "measured"),
    [(WAITING, (0.309, 0.475, 0.514)), (BUSY, (0.864, 0.909, 0.923)), (WAITING_THEN_BUSY, (0.667, 0.792, 0.825))],
    ids=["waiting", "busy", "waiting-then-busy"],
)
def test_resizes_a_second_late_cost_cores_and_a_period_that_long_does_not_win_them_back(
    stages: list[SimStage], measured: tuple[float, float, float]
) -> None:
    instant, instant_met = _cost(stages, 0.5, 0)
    late, late_met = _cost(stages, 0.5, 2)  # a kubelet that applies each resize 1 s (two periods) late
    long_period, long_met = _cost(stages, 1.0, 1)  # the same kubelet, the period stretched to its delay
    assert instant_met == late_met == long_met == 8
    assert instant < late < long_period
    # The figures the README quotes (mean core-seconds over static coresMax).
    assert (instant, late, long_period) == pytest.approx(measured, abs=0.005)
