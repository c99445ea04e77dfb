"""Handlers of the DeadlineJob resource: decorators only, each handing off to one service function."""

from __future__ import annotations

from typing import Any

import kopf

from controllers import deadlinejob_loop, deadlinejob_service
from controllers import retry as retry_mod
from mlscale import API_GROUP, API_VERSION

PLURAL = "deadlinejobs"


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL)
@kopf.on.create(API_GROUP, API_VERSION, PLURAL)
@kopf.on.update(API_GROUP, API_VERSION, PLURAL)
async def reconcile_deadlinejob(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, retry: int, **_: Any
) -> None:
    """Validate the DeadlineJob; once it can run, create its children and record its start."""
    try:
        await deadlinejob_service.reconcile(body, patch, memo, logger)
    except retry_mod.TRANSIENT as exc:
        raise retry_mod.retry_later(body, exc, retry) from exc


@kopf.daemon(API_GROUP, API_VERSION, PLURAL, cancellation_timeout=10.0)
async def control_deadlinejob(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """The job's control loop: one period every ``spec.control.periodSeconds`` until it ends."""
    await deadlinejob_loop.run_daemon(body, memo, stopped)


@kopf.on.delete(API_GROUP, API_VERSION, PLURAL)
async def delete_deadlinejob(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int, **_: Any) -> None:
    """Stop the application and remove its pods, Service, template and account."""
    try:
        await deadlinejob_service.delete(body, memo, logger)
    except retry_mod.TRANSIENT as exc:
        raise retry_mod.retry_later(body, exc, retry) from exc
