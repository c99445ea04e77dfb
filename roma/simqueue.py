"""A simulated serving plant: Poisson arrivals, one FIFO queue, replicas whose speed ∝ cores.

It stands in for the router and model servers when the laws are tested in closed loop
(and in the benchmark's simulated mode). Each request needs an exponentially distributed
amount of CPU work (mean ``work_core_s`` core-seconds, plus a fixed ``overhead_s``);
a replica with ``c`` cores serves one request at a time at speed ``c`` — an M/M/c queue
with heterogeneous servers. A new replica serves only after ``startup_s``.
Deterministic for a given seed.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _SimReplica:
    cores: float
    ready_s: float
    busy_until_s: float = 0.0
    retired: bool = False


@dataclass
class Completion:
    """One finished request.

    Attributes:
        done_s: Completion time.
        latency_s: Arrival to completion.
        replica: Index of the replica that served it.
    """

    done_s: float
    latency_s: float
    replica: int


@dataclass
class SimulatedService:
    """The plant. Advance it period by period with :meth:`run_until`.

    Attributes:
        work_core_s: Mean CPU work per request, in core-seconds.
        overhead_s: Fixed per-request time that more cores do not shorten (network, parse).
        startup_s: Delay before a new replica serves.
        seed: Random seed.
    """

    work_core_s: float
    overhead_s: float = 0.0
    startup_s: float = 3.0
    seed: int = 0
    now_s: float = 0.0
    core_seconds: float = 0.0
    _rng: np.random.Generator = field(init=False, repr=False)
    _replicas: list[_SimReplica] = field(default_factory=list, repr=False)
    _queue: deque[float] = field(default_factory=deque, repr=False)
    _events: list[tuple[float, int]] = field(default_factory=list, repr=False)
    _running: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)
    _busy_s: dict[int, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        """Seed the random generator."""
        self._rng = np.random.default_rng(self.seed)

    @property
    def replicas(self) -> int:
        """Replicas currently in service (not retired)."""
        return sum(1 for r in self._replicas if not r.retired)

    @property
    def queue_len(self) -> int:
        """Requests waiting."""
        return len(self._queue)

    def prime(self, cores: Sequence[float]) -> None:
        """Start with replicas already serving (no startup delay), one per entry of ``cores``."""
        for c in cores:
            self._replicas.append(_SimReplica(float(c), self.now_s))

    @property
    def oldest_wait_s(self) -> float:
        """How long the oldest queued request has waited."""
        return self.now_s - self._queue[0] if self._queue else 0.0

    def apply(self, cores: Sequence[float]) -> None:
        """Apply an allocation: replica count = ``len(cores)``, each its cores."""
        live = [i for i, r in enumerate(self._replicas) if not r.retired]
        for i in live[len(cores) :]:
            self._replicas[i].retired = True
        live = live[: len(cores)]
        while len(live) < len(cores):
            self._replicas.append(_SimReplica(0.0, self.now_s + self.startup_s))
            live.append(len(self._replicas) - 1)
        for i, c in zip(live, cores, strict=True):
            self._replicas[i].cores = float(c)

    def cores(self) -> list[float]:
        """Cores of each live replica."""
        return [r.cores for r in self._replicas if not r.retired]

    def take_busy_fractions(self, period_s: float) -> list[float]:
        """Per live replica, the share of the last ``period_s`` it spent serving; resets."""
        live = [i for i, r in enumerate(self._replicas) if not r.retired]
        fractions = [min(1.0, self._busy_s.get(i, 0.0) / period_s) for i in live]
        self._busy_s.clear()
        return fractions

    def _service_s(self, cores: float) -> float:
        return self.overhead_s + float(self._rng.exponential(self.work_core_s)) / max(cores, 1e-3)

    def _dispatch(self, t_s: float, out: list[Completion]) -> None:
        for idx, rep in enumerate(self._replicas):
            if not self._queue:
                return
            if rep.retired or idx in self._running or rep.ready_s > t_s:
                continue
            arrival = self._queue.popleft()
            done = t_s + self._service_s(rep.cores)
            self._running[idx] = (arrival, t_s)
            heapq.heappush(self._events, (done, idx))

    def run_until(self, end_s: float, rate_rps: Callable[[float], float], dt_s: float = 0.05) -> list[Completion]:
        """Advance to ``end_s`` with arrivals at ``rate_rps(t)``; return the completions."""
        out: list[Completion] = []
        t = self.now_s
        while t < end_s - 1e-12:
            t_next = min(end_s, t + dt_s)
            self.core_seconds += sum(r.cores for r in self._replicas if not r.retired) * (t_next - t)
            n = int(self._rng.poisson(rate_rps(t) * (t_next - t)))
            arrivals = sorted(float(a) for a in self._rng.uniform(t, t_next, n))
            ai = 0
            cur = t
            while True:
                next_done = self._events[0][0] if self._events else float("inf")
                next_arr = arrivals[ai] if ai < len(arrivals) else float("inf")
                next_ready = min(
                    (r.ready_s for r in self._replicas if not r.retired and cur < r.ready_s <= t_next),
                    default=float("inf"),
                )
                nxt = min(next_done, next_arr, next_ready)
                if nxt > t_next:
                    break
                cur = nxt
                if nxt == next_done:
                    done, idx = heapq.heappop(self._events)
                    arrival, started = self._running.pop(idx)
                    self._busy_s[idx] = self._busy_s.get(idx, 0.0) + done - started
                    out.append(Completion(done, done - arrival, idx))
                elif nxt == next_arr:
                    self._queue.append(next_arr)
                    ai += 1
                self._dispatch(cur, out)
            t = t_next
        self.now_s = end_s
        return out
