"""The CPU each executor used and whether it ran out of quota, read from the meter in its pod.

Each executor container runs :mod:`mlscale.cpu_meter` beside the JVM (the pod template starts
it, :func:`controllers.sparkpods.executor_pod_template`), which answers ``GET /cpu`` on
``MLSCALE_EXECUTOR_CPU_METER_PORT`` with its container's cgroup counters. Two readings a period
apart give what the local cgroup meter gives on one machine: the cores used and the share of CFS
periods throttled, so the law's usage cap works the same in a cluster. The resource metrics API
cannot stand in: metrics-server averages over 10 s or more and says nothing of throttling.

A pod whose meter does not answer (an image without ``python3``, a NetworkPolicy in the way) is
asked again only after a while, and its executor runs without the cap, as before the meter.

The meter also reads the quota the kernel applies to the container, so it times each in-place
resize: from the operator's request to the first reading under the new quota. That is how long
the kubelet takes to apply a resize, measured to within a control period; each reading after the
request that still showed another quota (a *missed* reading, about a period under the old
cores) bounds it from below.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from controllers.executor_pods import ExecutorPod
from dynaspark.observation import ExecutorCpu
from mlscale.cpu_meter import PATH, CpuCounters, cpu_between

log = logging.getLogger(__name__)

FAILURES_BEFORE_BACKOFF = 3
"""Failed reads in a row (a throttled container may answer late once) before a pod is left alone."""
BACKOFF_S = 30.0
"""How long a pod whose meter did not answer is left alone."""
RESIZES_KEPT = 20
"""How many of the latest resizes the resize latency is the median of."""
QUOTA_TOLERANCE = 0.006
"""Cores within which a container's quota counts as the one asked (the kubelet rounds to a millicore)."""


def _is_quota(quota: float | None, cores: float) -> bool:
    """Whether a container runs under the quota of ``cores`` (``None``: no limit, never)."""
    return quota is not None and abs(quota - cores) <= QUOTA_TOLERANCE


@dataclass
class _Reading:
    pod: str
    counters: CpuCounters


@dataclass
class _Pending:
    cores: float
    asked_s: float
    missed: int = 0
    """Readings after the request that still showed another quota."""
    last_missed_s: float = 0.0


@dataclass(frozen=True)
class ResizeTiming:
    """How long one in-place resize took to reach its executor's container.

    Attributes:
        missed_readings: Readings after the request (one a period) that still showed another
            quota: about that many periods the executor ran under the cores decided before.
        at_least_s: From the request to the last of those readings (0 when none).
        at_most_s: From the request to the first reading under the new quota; ``None`` when a
            later resize replaced this one before it was read applied.
    """

    missed_readings: int
    at_least_s: float
    at_most_s: float | None


@dataclass(frozen=True)
class ResizeDelays:
    """The latest resizes' timings, summed up.

    Attributes:
        timed: How many resizes were timed.
        late: How many of them missed the first reading after the request.
        missed_readings: The median readings missed by the late ones read applied (by every
            late one when none was; 0 when none was late).
        at_least_s: The median of the same ones' lower bounds.
        at_most_s: The median of the late ones' upper bounds (``None`` when none was read applied).
    """

    timed: int
    late: int
    missed_readings: int
    at_least_s: float
    at_most_s: float | None


@dataclass
class _Failures:
    count: int = 0
    retry_at_s: float = 0.0


class PodCpuMeter:
    """Reads each executor pod's CPU meter every period; keeps the previous reading to difference.

    Args:
        port: The meter's port in every executor pod.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._last: dict[str, _Reading] = {}
        self._failures: dict[str, _Failures] = {}
        self.quota_cores: dict[str, float | None] = {}
        """The quota each executor's container ran under at the last reading (``None``: none);
        an executor whose meter did not answer then is left out."""
        self._pending: dict[str, _Pending] = {}
        self.resize_timings: deque[ResizeTiming] = deque(maxlen=RESIZES_KEPT)
        """The latest resizes' timings, oldest first."""

    def expect(self, resized: Mapping[str, float], now_s: float) -> None:
        """Time the resizes just asked for (cores by executor id), until the meters read them applied.

        A resize asked while the previous one is still pending replaces it (the kubelet applies
        the pod's latest spec); the replaced one counts as late if a reading had missed it. One
        that asks for the quota the container already runs under (a resize reverted before the
        kubelet applied it) has nothing to wait for and is not timed.
        """
        for executor_id, cores in resized.items():
            replaced = self._pending.pop(executor_id, None)
            if replaced is not None and replaced.missed:
                self.resize_timings.append(
                    ResizeTiming(replaced.missed, replaced.last_missed_s - replaced.asked_s, None)
                )
            if _is_quota(self.quota_cores.get(executor_id), cores):
                continue
            self._pending[executor_id] = _Pending(cores, now_s)

    def forget_resizes(self) -> None:
        """Drop every timing and pending resize (the control period changed: they were timed against another)."""
        self.resize_timings.clear()
        self._pending.clear()

    @property
    def resize_latency_s(self) -> float | None:
        """The median time the latest resizes took to be applied, at most (``None`` before one was)."""
        applied = [t.at_most_s for t in self.resize_timings if t.at_most_s is not None]
        return statistics.median(applied) if applied else None

    def resize_delays(self) -> ResizeDelays:
        """The latest resizes' timings, summed up."""
        timings = list(self.resize_timings)
        late = [t for t in timings if t.missed_readings > 0]
        # Bounds from the late resizes that were read applied: a replaced one's lower bound ends
        # where the next resize replaced it, not where the kubelet applied it.
        at_most = [t.at_most_s for t in late if t.at_most_s is not None]
        bounded = [t for t in late if t.at_most_s is not None] or late
        return ResizeDelays(
            timed=len(timings),
            late=len(late),
            missed_readings=statistics.median_low([t.missed_readings for t in bounded]) if bounded else 0,
            at_least_s=statistics.median([t.at_least_s for t in bounded]) if bounded else 0.0,
            at_most_s=statistics.median(at_most) if at_most else None,
        )

    async def usage(
        self, http: aiohttp.ClientSession, pods: Mapping[str, ExecutorPod], now_s: float, *, timeout_s: float
    ) -> dict[str, ExecutorCpu]:
        """What each executor used since the previous call; executors read for the first time are left out.

        Args:
            http: The client session.
            pods: The executors' pods, by executor id.
            now_s: Now, on the clock the backoff is kept in.
            timeout_s: How long one read may take (a fraction of the control period).
        """
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        asked = {
            e: p
            for e, p in pods.items()
            # A pod that is not running yet (its image still pulling) has no meter to ask.
            if p.ip is not None and p.running and now_s >= self._failures.get(p.pod, _Failures()).retry_at_s
        }
        readings = await asyncio.gather(*(self._read(http, p, timeout) for p in asked.values()))
        result = {}
        for (executor_id, pod), counters in zip(asked.items(), readings, strict=True):
            if counters is None:
                # The next reading starts a new interval: one across the gap would average a
                # stretch far longer than a control period.
                self._last.pop(executor_id, None)
                self.quota_cores.pop(executor_id, None)
                self._failed(pod, now_s)
                continue
            self._failures.pop(pod.pod, None)
            last = self._last.get(executor_id)
            self._last[executor_id] = _Reading(pod.pod, counters)
            self.quota_cores[executor_id] = counters.quota_cores
            self._time_resize(executor_id, counters.quota_cores, now_s)
            # A new pod for the executor id starts its own counters: no interval with the old one.
            between = None if last is None or last.pod != pod.pod else cpu_between(last.counters, counters)
            if between is not None:
                result[executor_id] = ExecutorCpu(*between)
        for gone in (set(self._last) | set(self.quota_cores) | set(self._pending)) - set(pods):
            self._last.pop(gone, None)
            self.quota_cores.pop(gone, None)
            self._pending.pop(gone, None)
        return result

    def _time_resize(self, executor_id: str, quota: float | None, now_s: float) -> None:
        pending = self._pending.get(executor_id)
        if pending is None:
            return
        if not _is_quota(quota, pending.cores):
            # Still under another quota; ``now_s`` is when this reading was asked for, so the
            # kubelet had not applied the resize by then.
            if now_s > pending.asked_s:
                pending.missed += 1
                pending.last_missed_s = now_s
            return
        del self._pending[executor_id]
        at_least_s = pending.last_missed_s - pending.asked_s if pending.missed else 0.0
        self.resize_timings.append(ResizeTiming(pending.missed, at_least_s, max(0.0, now_s - pending.asked_s)))

    async def _read(
        self, http: aiohttp.ClientSession, pod: ExecutorPod, limit: aiohttp.ClientTimeout
    ) -> CpuCounters | None:
        host = f"[{pod.ip}]" if pod.ip is not None and ":" in pod.ip else pod.ip  # an IPv6 pod IP
        url = f"http://{host}:{self.port}{PATH}"
        try:
            async with http.get(url, timeout=limit) as response:
                if response.status != 200:
                    log.debug("CPU meter of pod %s answered %s: %s", pod.pod, response.status, await response.text())
                    return None
                return CpuCounters.from_dict(await response.json(content_type=None))
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.debug("CPU meter of pod %s (%s) not read: %s", pod.pod, url, exc)
            return None

    def _failed(self, pod: ExecutorPod, now_s: float) -> None:
        failures = self._failures.setdefault(pod.pod, _Failures())
        failures.count += 1
        if failures.count >= FAILURES_BEFORE_BACKOFF:
            log.info(
                "the CPU meter of executor pod %s does not answer on port %s; its executor runs without the "
                "usage cap; asking again in %.0f s",
                pod.pod,
                self.port,
                BACKOFF_S,
            )
            failures.count = 0
            failures.retry_at_s = now_s + BACKOFF_S
