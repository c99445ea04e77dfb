"""Handlers of the InferenceService resource: decorators only, each handing off to one service function."""

from __future__ import annotations

from typing import Any

import kopf

from controllers import inferenceservice_loop, inferenceservice_service
from controllers import retry as retry_mod
from mlscale import API_GROUP, API_VERSION

PLURAL = "inferenceservices"


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL)
@kopf.on.create(API_GROUP, API_VERSION, PLURAL)
@kopf.on.update(API_GROUP, API_VERSION, PLURAL)
async def reconcile_inferenceservice(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, retry: int, **_: Any
) -> None:
    """Validate the InferenceService; create (or update) its replicas, router and Services once accepted."""
    try:
        await inferenceservice_service.reconcile(body, patch, memo, logger)
    except retry_mod.TRANSIENT as exc:
        raise retry_mod.retry_later(body, exc, retry) from exc


@kopf.daemon(API_GROUP, API_VERSION, PLURAL, cancellation_timeout=10.0)
async def regulate_inferenceservice(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Keep the service inside its latency SLO with the fewest cores, one period at a time."""
    await inferenceservice_loop.run_daemon(body, memo, stopped)


@kopf.on.delete(API_GROUP, API_VERSION, PLURAL)
async def delete_inferenceservice(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int, **_: Any) -> None:
    """Remove every child of the InferenceService (explicitly: no garbage collector is assumed)."""
    try:
        await inferenceservice_service.delete(body, memo, logger)
    except retry_mod.TRANSIENT as exc:
        raise retry_mod.retry_later(body, exc, retry) from exc
