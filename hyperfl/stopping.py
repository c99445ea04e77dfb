"""Stopping rule: stop at the first round that reaches the target, or when the budget runs out.

Pure: elapsed time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EndPhase = Literal["TargetReached", "BudgetExhausted"]


@dataclass(frozen=True)
class StopDecision:
    """Why a run ends.

    Attributes:
        phase: ``TargetReached`` or ``BudgetExhausted``.
        reason: One CamelCase word (for the condition and the event).
        message: A sentence for people.
    """

    phase: EndPhase
    reason: str
    message: str


def decide_stop(
    *,
    round_: int,
    accuracy: float | None,
    target: float,
    rounds_max: int,
    elapsed_s: float,
    deadline_s: float | None,
    next_round_s: float | None = None,
) -> StopDecision | None:
    """Decide whether the run ends after ``round_``.

    Args:
        round_: Rounds finished.
        accuracy: Evaluated accuracy after that round (``None`` before the first round).
        target: Accuracy to reach.
        rounds_max: Round budget.
        elapsed_s: Wall time since the run started.
        deadline_s: Wall-clock budget, or ``None``.
        next_round_s: Expected duration of one more round (e.g. the mean so far); when given,
            a round that would end past the deadline is not started.

    Returns:
        The decision, or ``None`` to run another round.
    """
    if accuracy is not None and accuracy >= target:
        return StopDecision(
            "TargetReached", "TargetReached", f"accuracy {accuracy:.4f} >= target {target:g} after round {round_}"
        )
    if round_ >= rounds_max:
        message = f"{round_} rounds run (budget {rounds_max}) without reaching {target:g}"
        return StopDecision("BudgetExhausted", "RoundsExhausted", message)
    if deadline_s is not None:
        if elapsed_s >= deadline_s:
            return StopDecision(
                "BudgetExhausted", "DeadlinePassed", f"deadline {deadline_s:g}s passed after round {round_}"
            )
        if next_round_s is not None and elapsed_s + next_round_s > deadline_s:
            return StopDecision(
                "BudgetExhausted",
                "DeadlinePassed",
                f"another round (~{next_round_s:.1f}s) would end after the deadline {deadline_s:g}s",
            )
    return None


def rounds_left_by_time(elapsed_s: float, deadline_s: float | None, mean_round_s: float | None) -> int | None:
    """Rounds that still fit before the deadline at the mean round duration (``None``: no limit known)."""
    if deadline_s is None or mean_round_s is None or mean_round_s <= 0:
        return None
    return max(int((deadline_s - elapsed_s) // mean_round_s), 0)
