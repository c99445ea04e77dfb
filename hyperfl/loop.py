"""The round loop: sensor (evaluated accuracy) → regulator → actuator (next round's clients and epochs).

:func:`run_rounds` is the one function that drives a FederatedTraining, used by ``mlscale run``
(:mod:`hyperfl.local`) and by the operator. Everything it needs to resume lives in the status it
returns after every round: rounds done, history, checkpoint path, and the regulator's and
selector's state in ``controlState``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hyperfl.api import HISTORY_LIMIT, FederatedTrainingSpec, FederatedTrainingStatus, RoundRecord
from hyperfl.federation import RoundResult
from hyperfl.regulator import QualityRegulator, RegulatorSettings, RegulatorState, RoundPlan
from hyperfl.selection import ClientSelector, SelectionState
from hyperfl.stopping import decide_stop, rounds_left_by_time
from mlscale.api import set_condition

log = logging.getLogger(__name__)


class RoundRunner(Protocol):
    """The federation: runs one round (the actuator) and reports its evaluated accuracy (the sensor)."""

    def run_round(self, round_: int, clients: Sequence[int], epochs: int, timeout_s: float | None) -> RoundResult:
        """Train ``clients`` for ``epochs`` local epochs, aggregate, evaluate, checkpoint."""
        ...

    def restore(self, path: str) -> int:
        """Load the global model from a checkpoint; return the round it was taken after."""
        ...


@dataclass(frozen=True)
class RoundReport:
    """One finished round, as handed to the ``on_round`` callback.

    Attributes:
        plan: What the regulator asked for.
        selected: Clients selected.
        dropped: Stragglers dropped past the round timeout.
        result: What the round did.
        status: The status after the round.
    """

    plan: RoundPlan
    selected: list[int]
    dropped: list[int]
    result: RoundResult
    status: FederatedTrainingStatus


def regulator_settings(spec: FederatedTrainingSpec) -> RegulatorSettings:
    """The regulator's limits for a spec."""
    clients_max = spec.rounds.clients_per_round
    return RegulatorSettings(
        target=spec.target.value,
        rounds_max=spec.rounds.max,
        epochs_min=spec.training.local_epochs.min,
        epochs_max=spec.training.local_epochs.max,
        clients_max=clients_max,
        clients_min=RegulatorSettings.default_clients_min(clients_max),
    )


def _restore_control(
    spec: FederatedTrainingSpec, status: FederatedTrainingStatus
) -> tuple[QualityRegulator, ClientSelector]:
    state = status.control_state or {}
    regulator = QualityRegulator(regulator_settings(spec), RegulatorState.from_dict(state.get("regulator", {})))
    selection = SelectionState.from_dict(state.get("selection", {}))
    return regulator, ClientSelector(spec.data.clients, seed=spec.data.seed, state=selection)


def _mean_round_s(status: FederatedTrainingStatus) -> float | None:
    seconds = [r.seconds for r in status.history if r.seconds is not None]
    return sum(seconds) / len(seconds) if seconds else None


def finish(
    status: FederatedTrainingStatus, spec: FederatedTrainingSpec, now: dt.datetime
) -> FederatedTrainingStatus | None:
    """The final status if the run ends here (target reached or budget out), else ``None``."""
    elapsed_s = (now - status.start_time).total_seconds() if status.start_time else 0.0
    decision = decide_stop(
        round_=status.round,
        accuracy=status.accuracy,
        target=spec.target.value,
        rounds_max=spec.rounds.max,
        elapsed_s=elapsed_s,
        deadline_s=spec.deadline,
        next_round_s=_mean_round_s(status),
    )
    if decision is None:
        return None
    conditions = status.conditions
    if decision.phase == "TargetReached":
        conditions = set_condition(conditions, "TargetAtRisk", "False", "TargetReached", decision.message, now=now)
    log.info("run ends: phase=%s reason=%s %s", decision.phase, decision.reason, decision.message)
    return status.model_copy(update={"phase": decision.phase, "completion_time": now, "conditions": conditions})


def run_rounds(
    spec: FederatedTrainingSpec,
    status: FederatedTrainingStatus,
    runner: RoundRunner,
    *,
    now: Callable[[], dt.datetime],
    on_round: Callable[[RoundReport], None] | None = None,
    max_rounds: int | None = None,
) -> FederatedTrainingStatus:
    """Run rounds until the target is reached, the budget is out, or ``max_rounds`` rounds were run.

    Args:
        spec: The FederatedTraining spec.
        status: Where the run stands (a fresh status starts it; a status with rounds resumes
            from its checkpoint without repeating them).
        runner: The federation.
        now: The clock (time since ``status.start_time`` counts against ``spec.deadline``).
        on_round: Called after every round with the new status (publish it, print a line).
        max_rounds: Most rounds to run in this call (``None``: until the run ends).

    Returns:
        The status after the last round run; its phase is final when the run ended.
    """
    if status.phase in ("TargetReached", "BudgetExhausted", "Failed"):
        return status
    if status.round > 0:
        if status.checkpoint is None:
            raise ValueError(f"status says {status.round} rounds are done but names no checkpoint")
        restored = runner.restore(status.checkpoint)
        if restored != status.round:
            raise ValueError(f"checkpoint {status.checkpoint} is of round {restored}, status says {status.round}")
    if status.start_time is None:
        status = status.model_copy(update={"start_time": now()})
    status = status.model_copy(update={"phase": "Running"})
    regulator, selector = _restore_control(spec, status)
    ran = 0
    while max_rounds is None or ran < max_rounds:
        ended = finish(status, spec, now())
        if ended is not None:
            return ended
        assert status.start_time is not None
        elapsed_s = (now() - status.start_time).total_seconds()
        plan = regulator.plan(rounds_left_by_time(elapsed_s, spec.deadline, _mean_round_s(status)))
        selected = selector.select(plan.round, plan.clients)
        result = runner.run_round(plan.round, selected, plan.epochs, spec.rounds.timeout_seconds)
        dropped = selector.record(plan.round, selected, result.answered)
        regulator.observe(plan.round, result.accuracy, plan.epochs, plan.clients)
        ran += 1
        status = _after_round(
            spec,
            status=status,
            plan=plan,
            result=result,
            dropped=dropped,
            regulator=regulator,
            selector=selector,
            now=now(),
        )
        log.info(
            "round=%d clients=%d epochs=%d dropped=%d accuracy=%.4f target=%g predicted=%s reason=%s",
            plan.round, len(result.answered), plan.epochs, len(dropped), result.accuracy, spec.target.value,
            status.predicted_rounds_to_target, plan.reason,
        )  # fmt: skip
        if on_round is not None:
            on_round(RoundReport(plan, selected, dropped, result, status))
    return status


def _after_round(
    spec: FederatedTrainingSpec,
    *,
    status: FederatedTrainingStatus,
    plan: RoundPlan,
    result: RoundResult,
    dropped: list[int],
    regulator: QualityRegulator,
    selector: ClientSelector,
    now: dt.datetime,
) -> FederatedTrainingStatus:
    record = RoundRecord(
        round=plan.round,
        accuracy=result.accuracy,
        loss=result.loss,
        clients=len(result.answered),
        epochs=plan.epochs,
        dropped=len(dropped),
        seconds=result.seconds,
    )
    history = [*status.history, record][-HISTORY_LIMIT:]
    upcoming = regulator.plan()
    predicted = plan.round if result.accuracy >= spec.target.value else upcoming.predicted_rounds_to_target
    conditions = status.conditions
    if upcoming.predicted_rounds_to_target is not None or upcoming.target_at_risk:
        at_risk = upcoming.target_at_risk and result.accuracy < spec.target.value
        message = (
            f"accuracy {result.accuracy:.4f} after round {plan.round}; predicted to reach "
            f"{spec.target.value:g} at round {predicted} (budget {spec.rounds.max})"
        )
        reason = "PredictedPastBudget" if at_risk else "OnTrack"
        conditions = set_condition(conditions, "TargetAtRisk", "True" if at_risk else "False", reason, message, now=now)
    return status.model_copy(
        update={
            "round": plan.round,
            "accuracy": result.accuracy,
            "history": history,
            "predicted_rounds_to_target": predicted,
            "client_epochs": status.client_epochs + len(result.answered) * plan.epochs,
            "checkpoint": result.checkpoint,
            "conditions": conditions,
            "control_state": {"regulator": regulator.state.to_dict(), "selection": selector.state.to_dict()},
        }
    )
