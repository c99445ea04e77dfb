"""Dynamic batching: requests arriving close together run through the model as one batch."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass
class _Item:
    rows: NDArray[Any]
    future: asyncio.Future[NDArray[Any]]


@dataclass(frozen=True)
class BatchRecord:
    """One batch the model ran, for metrics.

    Attributes:
        size: Rows in the batch.
        compute_s: Wall time the model took.
    """

    size: int
    compute_s: float


class DynamicBatcher:
    """Merges concurrent requests into batches of at most ``max_batch_size`` rows.

    The first request of a batch waits at most ``max_delay_s`` for others; the model runs
    in one worker thread, so one batch at a time (the replica's cores serve that batch).
    """

    def __init__(
        self,
        infer: Callable[[NDArray[Any]], NDArray[Any]],
        max_batch_size: int,
        max_delay_s: float,
        on_batch: Callable[[BatchRecord], None] | None = None,
    ) -> None:
        """Create a batcher; call :meth:`start` inside the event loop.

        Args:
            infer: The model: batch in, batch out (first axis = rows).
            max_batch_size: Most rows per batch.
            max_delay_s: Longest the first request waits for company.
            on_batch: Called after each batch (metrics).
        """
        self._infer = infer
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roma-infer")
        self._task: asyncio.Task[None] | None = None
        self._carry: _Item | None = None

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop and the worker thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, rows: NDArray[Any]) -> NDArray[Any]:
        """Queue ``rows`` (with a batch axis) and wait for their outputs."""
        future: asyncio.Future[NDArray[Any]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(rows, future))
        return await future

    async def _collect(self) -> list[_Item]:
        if self._carry is not None:
            first, self._carry = self._carry, None
        else:
            first = await self._queue.get()
        batch = [first]
        rows = len(first.rows)
        deadline = time.monotonic() + self.max_delay_s
        while rows < self.max_batch_size:
            if not self._queue.empty():
                item = self._queue.get_nowait()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + len(item.rows) > self.max_batch_size:
                self._carry = item  # too big to join: it opens the next batch
                break
            batch.append(item)
            rows += len(item.rows)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            inputs = np.concatenate([item.rows for item in batch], axis=0)
            started = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._executor, self._infer, inputs)
            except Exception as exc:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(BatchRecord(len(inputs), time.perf_counter() - started))
            offset = 0
            for item in batch:
                n = len(item.rows)
                if not item.future.done():
                    item.future.set_result(outputs[offset : offset + n])
                offset += n
