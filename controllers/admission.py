"""Admission of a resource: validate the whole object once, record the verdict in its status.

An invalid resource gets ``Accepted=False`` with one message naming every bad field and a
Warning Event, and is not acted on. A valid one gets ``Accepted=True``, ``phase: Pending``
(when it has no phase yet) and ``observedGeneration``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from controllers.kube import KubeError, group_path, scoped_api
from controllers.metrics import StatusStore
from mlscale import API_GROUP_VERSION
from mlscale.api import (
    ADMITTED,
    SUBMITTED,
    Condition,
    ConditionStatus,
    conditions_of,
    dump_conditions,
    find_condition,
    format_validation_error,
    set_condition,
    utcnow,
)
from mlscale.kinds import KindInfo

ModelT = TypeVar("ModelT", bound=BaseModel)


def admit(
    info: KindInfo,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    *,
    status: Mapping[str, Any] | None = None,
) -> BaseModel | None:
    """Validate a resource and record ``Accepted`` in its status.

    Args:
        info: The resource kind.
        body: The object as the API server sent it.
        patch: kopf's patch, applied when the handler returns.
        memo: The operator's shared state (its status store).
        logger: The per-object logger.
        status: The status as stored now (see :func:`current_status`); ``body``'s when not given.

    Returns:
        The validated model, or ``None`` when the resource is invalid.
    """
    metadata = dict(body.metadata)
    document = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": metadata,
        "spec": dict(body.spec),
    }
    generation = metadata.get("generation")
    status = dict(status if status is not None else body.get("status") or {})
    conditions = conditions_of(status)
    previous = find_condition(conditions, "Accepted")
    now = utcnow()
    try:
        resource = info.model().model_validate(document, context=validation_context({**document, "status": status}))
    except ValidationError as exc:
        message = "; ".join(format_validation_error(exc))
        conditions = set_condition(
            conditions, "Accepted", "False", "InvalidSpec", message, now=now, observed_generation=generation
        )
        patch.status["conditions"] = dump_conditions(conditions)
        patch.status["observedGeneration"] = generation
        if not status.get("phase"):
            patch.status["phase"] = "Pending"
        kopf.warn(body, reason="InvalidSpec", message=message)
        logger.warning("rejected %s/%s: %s", info.kind, metadata.get("name"), message)
        _remember(memo, info, metadata, {**status, "phase": status.get("phase") or "Pending"})
        return None
    conditions = set_condition(
        conditions,
        "Accepted",
        "True",
        "Valid",
        "The spec is valid.",
        now=now,
        observed_generation=generation,
    )
    patch.status["conditions"] = dump_conditions(conditions)
    patch.status["observedGeneration"] = generation
    phase = status.get("phase") or "Pending"
    if not status.get("phase"):
        patch.status["phase"] = phase
    if previous is None or previous.status != "True":
        kopf.info(body, reason="Accepted", message=f"{info.kind} accepted")
    logger.info("accepted %s/%s (generation %s)", info.kind, metadata.get("name"), generation)
    _remember(memo, info, metadata, {**status, "phase": phase})
    return resource


async def current_status(info: KindInfo, body: kopf.Body, memo: kopf.Memo) -> dict[str, Any]:
    """The resource's status as stored now, which may be newer than the event being handled.

    kopf can hand a handler an event older than the daemon's last status write (a burst of
    events, or an API without resourceVersions such as the test emulator); deciding on that
    stale copy would, for instance, put a running resource back to ``Pending``.
    """
    meta = body.metadata
    path = group_path(API_GROUP_VERSION, info.plural, str(meta.get("namespace")), str(meta.get("name")))
    try:
        async with scoped_api(memo) as api:
            current = await api.get(path)
    except (KubeError, RuntimeError, OSError):
        current = None
    return dict((current if current is not None else body).get("status") or {})


def set_submitted(
    body: kopf.Body,
    patch: kopf.Patch,
    conditions: list[Condition],
    *,
    submitted: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> list[Condition]:
    """Record whether the resource's children were created (``Submitted``), with an Event on each change.

    A refusal (e.g. ``ImageMissing``) posts a Warning Event once per reason and message; a submission posts a
    Normal Event when the condition turns True.
    """
    previous = find_condition(conditions, SUBMITTED)
    status: ConditionStatus = "True" if submitted else "False"
    conditions = set_condition(conditions, SUBMITTED, status, reason, message, now=now, observed_generation=generation)
    patch.status["conditions"] = dump_conditions(conditions)
    if not submitted and (previous is None or previous.reason != reason or previous.message != message):
        kopf.warn(body, reason=reason, message=message)
    if submitted and (previous is None or previous.status != "True"):
        kopf.info(body, reason=SUBMITTED, message=message)
    return conditions


def forget(info: KindInfo, body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Drop a deleted resource from the metrics and log its removal."""
    store: StatusStore | None = memo.get("status_store")
    metadata = body.metadata
    if store is not None:
        store.forget(info.kind, str(metadata.get("namespace", "")), str(metadata.get("name", "")))
    logger.info("%s/%s deleted; cleanup done", info.kind, metadata.get("name"))


def validation_context(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """How to validate a stored resource: as admitted before when its generation was accepted.

    Checks added in a later release of the operator then pass it (see
    :data:`mlscale.api.ADMITTED`): an upgrade does not stop a resource the operator runs, while
    a new generation, an edit, is checked in full.
    """
    generation = (obj.get("metadata") or {}).get("generation")
    accepted = find_condition(conditions_of(obj.get("status") or {}), "Accepted")
    if (
        generation is not None
        and accepted is not None
        and accepted.status == "True"
        and accepted.observed_generation == generation
    ):
        return dict(ADMITTED)
    return None


def stored_resource(model: type[ModelT], obj: Mapping[str, Any], *, served: bool = False) -> ModelT | None:
    """A stored resource as its model, or ``None`` when its spec is invalid (admission says why).

    Validated as admitted before where its generation was accepted (:func:`validation_context`),
    or where ``served``: the spec is one its children were made from.
    """
    document = {k: obj.get(k) for k in ("apiVersion", "kind", "metadata", "spec")}
    context = dict(ADMITTED) if served else validation_context(obj)
    try:
        return model.model_validate(document, context=context)
    except ValidationError:
        return None


def is_accepted(body: kopf.Body) -> bool:
    """Whether the resource's current generation was accepted."""
    status = dict(body.get("status") or {})
    condition = find_condition(conditions_of(status), "Accepted")
    return condition is not None and condition.status == "True"


def _remember(memo: kopf.Memo, info: KindInfo, metadata: dict[str, Any], status: dict[str, Any]) -> None:
    store: StatusStore | None = memo.get("status_store")
    if store is not None:
        store.update(info.kind, str(metadata.get("namespace", "")), str(metadata.get("name", "")), status)
