"""The status merge of the FederatedTraining daemon, period by period (pure: no emulator, time is an argument)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from controllers.federatedtraining_status import follow
from hyperfl.api import FederatedTraining, FederatedTrainingStatus, RoundRecord
from mlscale.api import Condition

pytestmark = pytest.mark.operator

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def training(**spec: Any) -> FederatedTraining:
    body: dict[str, Any] = {
        "model": {"builder": "examples.hyperfl.models:digits_mlp"},
        "target": {"value": 0.9},
        "data": {"clients": 4},
        "rounds": {"max": 20, "clientsPerRound": 2},
        "image": "registry.example/mlscale-hyperfl:0.1",
        **spec,
    }
    return FederatedTraining.model_validate({"metadata": {"name": "digits", "generation": 1}, "spec": body})


def reported(rounds: int, accuracy: float = 0.5, phase: str = "Running", **extra: Any) -> FederatedTrainingStatus:
    history = [RoundRecord(round=r, accuracy=accuracy, clients=2, epochs=1) for r in range(1, rounds + 1)]
    return FederatedTrainingStatus.model_validate(
        {
            "phase": phase,
            "startTime": T0,
            "round": rounds,
            "accuracy": accuracy if rounds else None,
            "history": [h.model_dump() for h in history],
            "clientEpochs": 2 * rounds,
            "checkpoint": f"/checkpoints/digits/global-round-{rounds:06d}.npz",
            **extra,
        }
    )


def running(rounds: int) -> FederatedTrainingStatus:
    status = follow(training(), FederatedTrainingStatus(), reported(rounds), now=T0)
    return FederatedTrainingStatus.model_validate({"phase": status.phase, **status.update})


def test_first_report_starts_the_run_and_copies_its_rounds() -> None:
    step = follow(training(), FederatedTrainingStatus(), reported(2), now=T0)
    assert step.phase == "Running"
    assert step.change is not None
    assert step.change.phase == "Running"
    assert step.update["round"] == 2
    assert step.new_rounds == 2
    assert step.update["checkpoint"] == "emptyDir:/digits/global-round-000002.npz"


def test_unreachable_coordinator_changes_nothing_before_the_deadline() -> None:
    current = running(2)
    step = follow(training(deadline="1h"), current, None, now=T0 + dt.timedelta(minutes=5))
    assert step.update == {}
    assert step.change is None


def test_deadline_ends_the_run_even_when_the_coordinator_is_silent() -> None:
    current = running(2)
    step = follow(training(deadline="10m"), current, None, now=T0 + dt.timedelta(minutes=11))
    assert step.phase == "BudgetExhausted"
    assert step.change is not None
    assert step.change.warning
    assert "deadline" in step.change.message
    assert step.update["completionTime"] == "2025-01-01T12:11:00Z"


def test_a_coordinator_behind_the_status_is_ignored() -> None:
    current = running(5)
    step = follow(training(), current, reported(2), now=T0)
    assert "round" not in step.update
    assert "history" not in step.update
    assert step.phase == "Running"


def test_coordinator_that_stops_for_its_own_reason_ends_the_run() -> None:
    # e.g. the next round would have ended past the deadline: the operator cannot see that itself.
    current = running(3)
    step = follow(training(), current, reported(3, phase="BudgetExhausted"), now=T0)
    assert step.phase == "BudgetExhausted"
    assert step.change is not None
    assert step.change.warning


def test_coordinator_failure_fails_the_run() -> None:
    step = follow(training(), running(3), reported(3, phase="Failed"), now=T0)
    assert step.phase == "Failed"


def test_target_at_risk_follows_the_coordinator() -> None:
    risk = Condition(type="TargetAtRisk", status="True", reason="PredictedPastBudget", message="round 40 > 20")
    step = follow(training(), running(3), reported(4, conditions=[risk.model_dump(by_alias=True)]), now=T0)
    (condition,) = [c for c in step.update["conditions"] if c["type"] == "TargetAtRisk"]
    assert (condition["status"], condition["reason"]) == ("True", "PredictedPastBudget")


def test_phase_reset_to_pending_by_a_stale_write_is_restored_without_an_event() -> None:
    current = running(3).model_copy(update={"phase": "Pending"})
    step = follow(training(), current, reported(3), now=T0)
    assert step.phase == "Running"
    assert step.update["phase"] == "Running"
    assert step.change is None


def test_ended_run_is_left_alone() -> None:
    current = running(3).model_copy(update={"phase": "TargetReached"})
    step = follow(training(), current, reported(9, accuracy=0.95), now=T0)
    assert step.update == {}
    assert step.phase == "TargetReached"
