"""What every per-resource daemon shares: waiting for its next period without missing a stop."""

from __future__ import annotations

import asyncio
import time

import kopf

STOP_POLL_S = 0.1


async def sleep_unless_stopped(stopped: kopf.DaemonStopped, until_monotonic_s: float) -> None:
    """Sleep until ``until_monotonic_s`` (``time.monotonic()``) or until the daemon is stopped.

    Short sleeps rather than ``stopped.wait(timeout)``: a cancellation that lands as that wait
    times out surfaces as a TimeoutError, which kopf treats as a crash of the operator's shutdown.
    """
    while not stopped:
        remaining_s = until_monotonic_s - time.monotonic()
        if remaining_s <= 0:
            return
        await asyncio.sleep(min(remaining_s, STOP_POLL_S))
