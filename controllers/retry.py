"""Retrying a failed handler with exponential backoff; kopf records each failure as an Event."""

from __future__ import annotations

import os

import aiohttp
import kopf

from controllers.kube import KubeError

# Errors worth retrying: the API server or the network, not a bug in the handler.
TRANSIENT = (KubeError, aiohttp.ClientError, OSError, TimeoutError)


def backoff_s(retry: int) -> float:
    """Delay before retry number ``retry + 1``: base·2^retry, capped (``MLSCALE_RETRY_BASE_SECONDS``, 1 s; 60 s)."""
    base_s = float(os.environ.get("MLSCALE_RETRY_BASE_SECONDS", "1"))
    return min(60.0, base_s * float(2 ** min(retry, 16)))


def retry_later(body: kopf.Body, exc: BaseException, retry: int) -> kopf.TemporaryError:
    """Record a Warning Event on ``body`` and return the error that makes kopf retry after :func:`backoff_s`."""
    delay_s = backoff_s(retry)
    message = f"{exc}; retry {retry + 1} in {delay_s:g} s"
    kopf.warn(body, reason="RetryingAfterError", message=message)
    return kopf.TemporaryError(message, delay=delay_s)
