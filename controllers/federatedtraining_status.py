"""How the coordinator's report becomes the FederatedTraining's status (pure: time is an argument).

The coordinator is the authority on rounds; the operator only copies what is new, so a
restarted operator reports no round twice and the round counter never goes back (a coordinator
that starts over behind the status is ignored until it catches up). The history keeps the last
50 rounds. The stopping rule (:func:`hyperfl.stopping.decide_stop`) is applied on the operator's
side too: the run ends at the first round whose accuracy reaches the target, or when the rounds
or the deadline are spent, even if the coordinator has not said so yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import kopf

from controllers.flpods import CLIENT, COORDINATOR, checkpoint_reference
from controllers.pods_waiting import PODS_WAITING, Held, waiting_condition
from hyperfl.api import HISTORY_LIMIT, FederatedTraining, FederatedTrainingStatus
from hyperfl.stopping import decide_stop
from mlscale.api import SUBMITTED, Condition, conditions_of, dump_conditions, find_condition, rfc3339, set_condition

TERMINAL_PHASES = frozenset({"TargetReached", "BudgetExhausted", "Failed"})
TARGET_AT_RISK = "TargetAtRisk"
ROLES = {COORDINATOR: "coordinator", CLIENT: "client"}
"""What each component's pods are called in ``PodsWaiting`` (by ``app.kubernetes.io/component``)."""
_WAITING_COSTS = {
    "coordinator": "No round runs meanwhile, and the time budget (spec.deadline) counts",
    "client": "The coordinator waits for every client before its first round (10 minutes at most), "
    "and the time budget (spec.deadline) counts",
}
_WAITING_FIXES = {"coordinator": "spec.coordinatorTemplate", "client": "spec.clientTemplate"}


@dataclass(frozen=True)
class PhaseChange:
    """A phase transition, announced with an Event whose reason is the new phase.

    Attributes:
        phase: The new phase.
        message: A sentence for people.
        warning: Whether the Event is a Warning.
    """

    phase: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class StatusStep:
    """What one period changes.

    Attributes:
        update: Status fields to merge (camelCase); empty when nothing changed.
        phase: The phase after the period.
        change: The phase transition, if there was one.
        new_rounds: Rounds copied from the coordinator in this period.
    """

    update: dict[str, Any] = field(default_factory=dict)
    phase: str = "Pending"
    change: PhaseChange | None = None
    new_rounds: int = 0


def run_start(current: FederatedTrainingStatus) -> dt.datetime | None:
    """When the run's budget started counting: its first round, else when its children were created."""
    if current.start_time is not None:
        return current.start_time
    submitted = find_condition(current.conditions, SUBMITTED)
    return submitted.last_transition_time if submitted is not None and submitted.status == "True" else None


def follow(
    job: FederatedTraining,
    current: FederatedTrainingStatus,
    reported: FederatedTrainingStatus | None,
    *,
    now: dt.datetime,
) -> StatusStep:
    """One period: merge the coordinator's report (``None``: unreachable) and decide the phase.

    Args:
        job: The FederatedTraining (its spec and generation).
        current: The status stored in the resource.
        reported: What the coordinator answered on ``GET /status``, or ``None``.
        now: The time of this period.

    Returns:
        The status fields to write, the phase after the period and its transition.
    """
    if current.phase in TERMINAL_PHASES:
        return StatusStep(phase=current.phase)
    update: dict[str, Any] = {}
    merged = current
    new_rounds = 0
    generation = job.metadata.generation
    if reported is not None and reported.round > current.round:
        fresh = [r for r in reported.history if r.round > current.round]
        new_rounds = reported.round - current.round
        history = [*current.history, *fresh][-HISTORY_LIMIT:]
        merged = current.model_copy(
            update={
                "round": reported.round,
                "accuracy": reported.accuracy,
                "history": history,
                "predicted_rounds_to_target": reported.predicted_rounds_to_target,
                "client_epochs": max(current.client_epochs, reported.client_epochs),
                "checkpoint": checkpoint_reference(job, reported.checkpoint) or current.checkpoint,
                "control_state": reported.control_state or current.control_state,
                "start_time": current.start_time or reported.start_time,
            }
        )
        update.update(_round_fields(merged))
    elif reported is not None and current.start_time is None and reported.start_time is not None:
        merged = current.model_copy(update={"start_time": reported.start_time})
        update["startTime"] = rfc3339(reported.start_time)
    conditions = merged.conditions
    risk = find_condition(reported.conditions, TARGET_AT_RISK) if reported is not None else None
    if risk is not None and reported is not None and reported.round >= current.round:
        conditions = set_condition(
            conditions, TARGET_AT_RISK, risk.status, risk.reason, risk.message, now=now, observed_generation=generation
        )
    phase: str = current.phase
    if phase == "Pending" and current.round > 0:
        # Rounds were recorded, so the run was Running: a stale write reset the phase; restore it quietly.
        phase = update["phase"] = "Running"
        merged = merged.model_copy(update={"phase": "Running"})
    change = _phase_change(job, merged, reported, now=now)
    if change is not None:
        phase = change.phase
        update["phase"] = phase
        if phase in TERMINAL_PHASES:
            update["completionTime"] = rfc3339(now)
        if phase == "TargetReached":
            conditions = set_condition(
                conditions, TARGET_AT_RISK, "False", "TargetReached", change.message, now=now,
                observed_generation=generation,
            )  # fmt: skip
    if _differ(conditions, current.conditions):
        update["conditions"] = dump_conditions(conditions)
    return StatusStep(update=update, phase=phase, change=change, new_rounds=new_rounds)


def with_pods_waiting(
    body: kopf.Body,
    job: FederatedTraining,
    current: FederatedTrainingStatus,
    step: StatusStep,
    waiting: Mapping[str, Held],
    *,
    now: dt.datetime,
) -> StatusStep:
    """The period's step with ``PodsWaiting`` (coordinator or client pods that cannot run) set in its conditions."""
    conditions = conditions_of(step.update) if "conditions" in step.update else current.conditions
    ended = step.phase in TERMINAL_PHASES
    previous = find_condition(conditions, PODS_WAITING)
    if ended and (previous is None or previous.status != "True"):
        return step  # nothing held up to clear
    held = waiting_condition(
        body,
        conditions,
        {} if ended else waiting,
        cleared=("RunEnded", "The run has ended.")
        if ended
        else ("PodsRunning", "No coordinator or client pod is held up."),
        consequence=_WAITING_COSTS,
        fix=_WAITING_FIXES,
        now=now,
        generation=job.metadata.generation,
    )
    if not _differ(held, current.conditions):
        return step
    return replace(step, update={**step.update, "conditions": dump_conditions(held)})


def ended(current: FederatedTrainingStatus, message: str, *, now: dt.datetime) -> StatusStep:
    """The run failed outside the coordinator's report (its pod failed or ended without a final status)."""
    if current.phase in TERMINAL_PHASES:
        return StatusStep(phase=current.phase)
    change = PhaseChange("Failed", message, warning=True)
    return StatusStep(update={"phase": "Failed", "completionTime": rfc3339(now)}, phase="Failed", change=change)


def _round_fields(status: FederatedTrainingStatus) -> dict[str, Any]:
    document = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    keys = (
        "round", "accuracy", "history", "predictedRoundsToTarget", "clientEpochs", "checkpoint", "controlState",
        "startTime",
    )  # fmt: skip
    fields = {k: document[k] for k in keys if k in document}
    if status.start_time is not None:
        fields["startTime"] = rfc3339(status.start_time)
    return fields


def _phase_change(
    job: FederatedTraining,
    merged: FederatedTrainingStatus,
    reported: FederatedTrainingStatus | None,
    *,
    now: dt.datetime,
) -> PhaseChange | None:
    spec = job.spec
    start = run_start(merged)
    decision = decide_stop(
        round_=merged.round,
        accuracy=merged.accuracy,
        target=spec.target.value,
        rounds_max=spec.rounds.max,
        elapsed_s=(now - start).total_seconds() if start is not None else 0.0,
        deadline_s=spec.deadline if start is not None else None,
    )
    caught_up = reported is not None and reported.round >= merged.round
    if decision is not None:
        return PhaseChange(decision.phase, decision.message, warning=decision.phase != "TargetReached")
    if caught_up and reported is not None and reported.phase == "Failed":
        return PhaseChange("Failed", f"the coordinator failed after round {merged.round}", True)
    if caught_up and reported is not None and reported.phase in ("TargetReached", "BudgetExhausted"):
        # The coordinator stopped for a reason the operator cannot see (e.g. the next round would pass the deadline).
        message = f"the coordinator ended the run after round {merged.round}: {reported.phase}"
        return PhaseChange(reported.phase, message, warning=reported.phase != "TargetReached")
    if merged.phase == "Pending" and reported is not None and (reported.phase == "Running" or reported.round > 0):
        return PhaseChange("Running", f"the coordinator is running rounds (round {merged.round} done)")
    return None


def _differ(a: list[Condition], b: list[Condition]) -> bool:
    return dump_conditions(a) != dump_conditions(b)
