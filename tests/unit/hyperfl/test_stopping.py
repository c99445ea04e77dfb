"""The run stops at the first round on target, or when rounds or time run out."""

from __future__ import annotations

from hyperfl.stopping import decide_stop, rounds_left_by_time


def _decide(**kw: object):
    args: dict[str, object] = {
        "round_": 5,
        "accuracy": 0.8,
        "target": 0.9,
        "rounds_max": 20,
        "elapsed_s": 10.0,
        "deadline_s": None,
    }
    args.update(kw)
    return decide_stop(**args)  # type: ignore[arg-type]


def test_keeps_going_below_target_within_budget() -> None:
    assert _decide() is None
    assert _decide(accuracy=None, round_=0) is None


def test_target_reached_at_or_above_target() -> None:
    decision = _decide(accuracy=0.9)
    assert decision is not None
    assert decision.phase == "TargetReached"


def test_target_wins_over_an_exhausted_budget_on_the_same_round() -> None:
    decision = _decide(accuracy=0.95, round_=20, elapsed_s=1e6, deadline_s=10.0)
    assert decision is not None
    assert decision.phase == "TargetReached"


def test_rounds_exhausted() -> None:
    decision = _decide(round_=20)
    assert decision is not None
    assert (decision.phase, decision.reason) == ("BudgetExhausted", "RoundsExhausted")


def test_deadline_passed_or_no_room_for_another_round() -> None:
    passed = _decide(elapsed_s=61.0, deadline_s=60.0)
    assert passed is not None
    assert passed.reason == "DeadlinePassed"
    no_room = _decide(elapsed_s=55.0, deadline_s=60.0, next_round_s=10.0)
    assert no_room is not None
    assert no_room.phase == "BudgetExhausted"
    assert _decide(elapsed_s=40.0, deadline_s=60.0, next_round_s=10.0) is None


def test_rounds_left_by_time() -> None:
    assert rounds_left_by_time(40.0, 100.0, 10.0) == 6
    assert rounds_left_by_time(40.0, None, 10.0) is None
    assert rounds_left_by_time(120.0, 100.0, 10.0) == 0
