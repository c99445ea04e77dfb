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
the kubelet takes to apply a resize, measured to within a control period: the reading before, if
it came after the request and still showed the old quota, bounds it from below.
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


@dataclass
class _Reading:
    pod: str
    counters: CpuCounters


@dataclass
class _Pending:
    cores: float
    asked_s: float
    old_quota_s: float | None = None
    """When a reading after the request last showed the container still under another quota."""


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
        self.resize_latencies: deque[float] = deque(maxlen=RESIZES_KEPT)
        """Seconds the latest resizes took to reach the executors' containers, at most."""
        self.resize_lags: deque[float] = deque(maxlen=RESIZES_KEPT)
        """Seconds the latest resizes took at least: from the request to the last reading that
        still showed another quota (0 where the first reading after the request showed the new one)."""

    def expect(self, resized: Mapping[str, float], now_s: float) -> None:
        """Time the resizes just asked for (cores by executor id), until the meters read them applied.

        A resize asked while the previous one is still pending replaces it: the kubelet applies
        the latest.
        """
        for executor_id, cores in resized.items():
            self._pending[executor_id] = _Pending(cores, now_s)

    @property
    def resize_latency_s(self) -> float | None:
        """The median time the latest resizes took to be applied (``None`` before one was timed)."""
        return statistics.median(self.resize_latencies) if self.resize_latencies else None

    @property
    def resize_lag_s(self) -> float | None:
        """The median time the latest resizes took at least (``None`` before one was timed).

        Where it reaches the control period, the kubelet took longer than a period for most
        resizes: the reading after the request still showed the quota before it.
        """
        return statistics.median(self.resize_lags) if self.resize_lags else None

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
        if quota is None or abs(quota - pending.cores) > QUOTA_TOLERANCE:
            # Still under another quota; ``now_s`` is when this reading was asked for, so the
            # kubelet had not applied the resize by then.
            if now_s > pending.asked_s:
                pending.old_quota_s = now_s
            return
        del self._pending[executor_id]
        self.resize_latencies.append(max(0.0, now_s - pending.asked_s))
        self.resize_lags.append(0.0 if pending.old_quota_s is None else pending.old_quota_s - pending.asked_s)

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
