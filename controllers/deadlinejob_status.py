"""The status a DeadlineJob's control loop writes: figures from the law's decision, conditions, Events.

Pure builders over (decision, observation, allocation); each condition is announced with
:func:`controllers.conditions.announce`, the same way for every kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import kopf

from controllers.conditions import announce
from controllers.executor_cpu import ResizeDelays
from controllers.pods_waiting import Held, waiting_condition
from dynaspark.law_state import Decision, LawState
from dynaspark.observation import ProgressObservation
from mlscale.api import Condition, find_condition, rfc3339

DEADLINE_AT_RISK = "DeadlineAtRisk"
CONTENDED = "Contended"
RESIZE_UNSUPPORTED = "ResizeUnsupported"
PROFILE_MISSING = "ProfileMissing"
RESIZE_LAGGING = "ResizeLagging"

RESIZES_BEFORE_JUDGING = 5
"""Resizes timed before ``ResizeLagging`` is judged: one slow kubelet sync is no pattern."""
LATE_SHARE_LAGGING = 0.6
"""Share of the latest resizes that were late from which ``ResizeLagging`` turns ``True``."""
LATE_SHARE_IN_TIME = 0.4
"""Share at or under which it turns ``False``; in between it stays as it was."""


def at_epoch(seconds: float) -> str:
    """Seconds since the epoch as a Kubernetes time."""
    return rfc3339(dt.datetime.fromtimestamp(seconds, dt.UTC))


def epoch_of(text: str) -> float:
    """A Kubernetes time as seconds since the epoch."""
    return dt.datetime.fromisoformat(text).timestamp()


def stage_text(decision: Decision, obs: ProgressObservation) -> str | None:
    """The stage being regulated, as ``kubectl`` shows it: its id and Spark's name for it."""
    if decision.stage_id is None:
        return None
    name = next((s.name for s in obs.stages if s.stage_id == decision.stage_id), "")
    return f"{decision.stage_id} {name}".strip()


def paced_cores_before(state: LawState, status: Mapping[str, Any]) -> float:
    """The cores of the period that ends now as the recorded profile counts them.

    What each executor was given (``status.executors``), an executor the law capped at its use
    counted with what its regulator asked, as :meth:`dynaspark.law_state.LawState.paced_cores`
    does on one machine: a profile must not take the cap for a speed-up.
    """
    applied = {str(e["id"]): float(e["cores"]) for e in status.get("executors") or [] if "id" in e and "cores" in e}
    return state.paced_cores(applied) if applied else float(status.get("allocatedCores") or 0.0)


def period_status(
    decision: Decision,
    obs: ProgressObservation,
    applied: Mapping[str, float],
    core_seconds: float,
    used: Mapping[str, float] | None = None,
    *,
    throttled: Mapping[str, float] | None = None,
    enforced: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """The figures of one period: progress, stage, allocation, CPU used, prediction, slack, core-seconds.

    ``used`` is the CPU each executor used, where it was measured; ``throttled`` the share of
    CFS periods it ran out of quota in, and ``enforced`` the CPU limit its container runs under
    (``None``: none), where the CPU meter in its pod says.
    """
    throttled = throttled or {}
    enforced = enforced or {}
    predicted = decision.predicted_completion_s
    used = used or {}
    executors = []
    for e, c in sorted(applied.items(), key=lambda item: (len(item[0]), item[0])):
        executor: dict[str, Any] = {
            "id": e,
            "cores": round(c, 3),
            "progress": round(decision.executor_progress.get(e, 0.0), 4),
        }
        if e in used:
            executor["usedCores"] = round(used[e], 3)
        if e in throttled:
            executor["throttledShare"] = round(throttled[e], 3)
        if (limit := enforced.get(e)) is not None:
            executor["enforcedCores"] = round(limit, 3)
        executors.append(executor)
    return {
        "progress": round(min(1.0, max(0.0, decision.app_progress)), 4),
        "stage": stage_text(decision, obs),
        "allocatedCores": round(sum(applied.values()), 3),
        "usedCores": round(sum(used.values()), 3) if used else None,
        "executors": executors,
        "predictedCompletionTime": None if predicted is None else at_epoch(predicted),
        "slackSeconds": None if predicted is None else round(decision.deadline_at_s - predicted, 1),
        "coreSeconds": round(core_seconds, 2),
    }


def decision_conditions(
    body: kopf.Body,
    conditions: list[Condition],
    decision: Decision,
    capacity_cores: float | None,
    *,
    now: dt.datetime,
    generation: int | None,
) -> list[Condition]:
    """``DeadlineAtRisk`` and ``Contended`` from one period's decision."""
    if decision.at_risk:
        predicted = decision.predicted_completion_s
        when = "" if predicted is None else f" (at {at_epoch(predicted)})"
        conditions = announce(
            body,
            conditions,
            DEADLINE_AT_RISK,
            "True",
            reason="PredictedMiss",
            message=f"Even at coresMax the application is predicted to finish {decision.predicted_miss_s:.0f} s after "
            f"the deadline{when}; running every executor at coresMax.",
            now=now,
            generation=generation,
        )
    else:
        conditions = announce(
            body,
            conditions,
            DEADLINE_AT_RISK,
            "False",
            reason="OnTrack",
            message="The deadline can be met.",
            now=now,
            generation=generation,
        )
    if decision.contended:
        asked = sum(decision.requested_cores.values())
        capacity = "?" if capacity_cores is None else f"{capacity_cores:.2f}"
        message = (
            f"The executors asked for {asked:.2f} cores but their nodes have {capacity} to give: "
            "each request was scaled down in proportion."
        )
        return announce(
            body, conditions, CONTENDED, "True", reason="NodeCapacity", message=message, now=now, generation=generation
        )
    return announce(
        body,
        conditions,
        CONTENDED,
        "False",
        reason="WithinCapacity",
        message="The executors' requests fit their nodes.",
        now=now,
        generation=generation,
    )


def pods_waiting(
    body: kopf.Body,
    conditions: list[Condition],
    waiting: Mapping[str, Held],
    *,
    role: str,
    now: dt.datetime,
    generation: int | None,
) -> list[Condition]:
    """``PodsWaiting`` for the job's ``driver`` pod (before it runs) or its ``executor`` pods (while it runs)."""
    return waiting_condition(
        body,
        conditions,
        waiting,
        cleared=("PodsStarting", "No driver pod is held up.")
        if role == "driver"
        else ("PodsRunning", "No executor pod is held up."),
        consequence="The deadline runs meanwhile",
        fix=f"spec.{'driver' if role == 'driver' else 'executors'}.template",
        now=now,
        generation=generation,
    )


def resize_lag_conditions(
    body: kopf.Body,
    conditions: list[Condition],
    delays: ResizeDelays,
    *,
    period_s: float,
    now: dt.datetime,
    generation: int | None,
) -> list[Condition]:
    """``ResizeLagging`` from the latest resizes timed: late ones missed the first reading after their request.

    ``Unknown`` until a few were timed (after an operator restart too: timings are not kept in
    the status). ``True`` once most were late, ``False`` once most were not; in between it keeps
    what it said, so a kubelet whose delay is about the period does not flip it every period.
    It informs and recommends no period: against the simulated plant with resizes a second late,
    a 0.5 s period cost less than a 1 s one (``tests/unit/dynaspark/test_resize_lag.py``).

    Args:
        body: The DeadlineJob the Event is posted about.
        conditions: Its conditions now.
        delays: The latest resizes' timings, summed up.
        period_s: ``spec.control.periodSeconds``.
        now: When the condition changes, if it does.
        generation: The spec's generation acted on.
    """
    if delays.timed < RESIZES_BEFORE_JUDGING:
        return announce(
            body,
            conditions,
            RESIZE_LAGGING,
            "Unknown",
            reason="NotYetTimed",
            message=f"Not judged yet: {delays.timed} of the {RESIZES_BEFORE_JUDGING} in-place resizes it takes have "
            "been timed since the operator took this job on.",
            now=now,
            generation=generation,
        )
    share = delays.late / delays.timed
    if share >= LATE_SHARE_LAGGING:
        took = (
            f"{delays.at_least_s:.1f}-{delays.at_most_s:.1f} s"
            if delays.at_most_s is not None
            else f"more than {delays.at_least_s:.1f} s"
        )
        n = delays.missed_readings
        message = (
            f"{delays.late} of the latest {delays.timed} in-place resizes had not reached the executor's container "
            f"at the first reading after the request, a control period later (spec.control.periodSeconds "
            f"{period_s:g} s); they took {took} (medians). Each executor runs {n} period{'s' if n > 1 else ''} or "
            "more under cores decided before, and the regulator makes up for it with more cores later. The "
            "deadline is still controlled from progress, at a higher cost in cores; lengthening the period to "
            "the delay does not lower it (it cost more in simulation)."
        )
        return announce(
            body,
            conditions,
            RESIZE_LAGGING,
            "True",
            reason="SlowerThanPeriod",
            message=message,
            now=now,
            generation=generation,
        )
    if share > LATE_SHARE_IN_TIME and find_condition(conditions, RESIZE_LAGGING) is not None:
        return conditions
    return announce(
        body,
        conditions,
        RESIZE_LAGGING,
        "False",
        reason="WithinPeriod",
        message=f"{delays.timed - delays.late} of the latest {delays.timed} in-place resizes reached the executor's "
        f"container by the first reading after the request, within a control period ({period_s:g} s).",
        now=now,
        generation=generation,
    )
