"""Handlers of the FederatedTraining resource: decorators only, each handing off to one service function."""

from __future__ import annotations

from typing import Any

import kopf

from controllers import federatedtraining_loop, federatedtraining_service
from controllers import retry as retry_mod
from mlscale import API_GROUP, API_VERSION

PLURAL = "federatedtrainings"


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL)
@kopf.on.create(API_GROUP, API_VERSION, PLURAL)
@kopf.on.update(API_GROUP, API_VERSION, PLURAL)
async def reconcile_federatedtraining(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, retry: int, **_: Any
) -> None:
    """Validate the FederatedTraining; create its coordinator, clients and Services once accepted."""
    try:
        await federatedtraining_service.reconcile(body, patch, memo, logger)
    except retry_mod.TRANSIENT as exc:
        raise retry_mod.retry_later(body, exc, retry) from exc


@kopf.daemon(API_GROUP, API_VERSION, PLURAL, cancellation_timeout=10.0)
async def follow_federatedtraining(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Follow the coordinator's rounds into the status until the run ends."""
    await federatedtraining_loop.run_daemon(body, memo, logger, stopped)


@kopf.on.delete(API_GROUP, API_VERSION, PLURAL)
async def delete_federatedtraining(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, retry: int, **_: Any) -> None:
    """Remove every child of the FederatedTraining (explicitly: no garbage collector is assumed)."""
    try:
        await federatedtraining_service.delete(body, memo, logger)
    except retry_mod.TRANSIENT as exc:
        raise retry_mod.retry_later(body, exc, retry) from exc
