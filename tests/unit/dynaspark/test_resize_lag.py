"""``ResizeLagging``: judged from the bounds of the resizes timed, with the period that would fit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf
import pytest

from controllers import deadlinejob_status
from controllers.deadlinejob_status import RESIZE_LAGGING, recommended_period_s, resize_lag_conditions
from mlscale.api import Condition, find_condition

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


def test_the_recommended_period_is_the_next_half_second_up_from_the_latency() -> None:
    assert recommended_period_s(1.0) == 1.0
    assert recommended_period_s(1.01) == 1.5
    assert recommended_period_s(0.3) == 0.5


def test_a_kubelet_slower_than_the_period_is_reported_with_the_period_to_set(warnings: list[str]) -> None:
    cond = find_condition(judge(0.9, 1.4, 6, 0.5), RESIZE_LAGGING)
    assert cond is not None
    assert (cond.status, cond.reason) == ("True", "SlowerThanPeriod")
    assert "0.9-1.4 s" in cond.message
    assert "Set spec.control.periodSeconds to 1.5 or more" in cond.message
    assert warnings == [f"ResizeLagging: {cond.message}"]


def test_a_first_reading_under_the_new_quota_is_not_a_lag(warnings: list[str]) -> None:
    # Applied before the first reading after the request: at most a period late, at least none.
    cond = find_condition(judge(0.0, 0.5, 20, 0.5), RESIZE_LAGGING)
    assert cond is not None
    assert (cond.status, cond.reason) == ("False", "WithinPeriod")
    assert warnings == []


def test_a_few_resizes_are_no_pattern(warnings: list[str]) -> None:
    assert judge(3.0, 3.5, 4, 0.5) == []
    assert warnings == []
