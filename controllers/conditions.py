"""Conditions the operator sets on its resources, each announced the same way."""

from __future__ import annotations

import datetime as dt

import kopf

from mlscale.api import Condition, ConditionStatus, find_condition, set_condition


def is_true(conditions: list[Condition], type_: str) -> bool:
    """Whether the condition of that type is there and ``True``."""
    condition = find_condition(conditions, type_)
    return condition is not None and condition.status == "True"


def announce(
    body: kopf.Body,
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    *,
    reason: str,
    message: str,
    now: dt.datetime,
    generation: int | None,
) -> list[Condition]:
    """Set a condition; post a Warning Event when it turns ``True`` (a Normal one when it clears)."""
    was_true = is_true(conditions, type_)
    updated = set_condition(conditions, type_, status, reason, message, now=now, observed_generation=generation)
    if status == "True" and not was_true:
        kopf.warn(body, reason=type_, message=message)
    elif status != "True" and was_true:
        kopf.info(body, reason=reason, message=message)
    return updated


__all__ = ["announce", "is_true"]
