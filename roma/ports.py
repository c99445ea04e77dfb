"""Ports of the InferenceService loop: what it observes and what it acts on.

The loop depends on these Protocols only; ``roma.replicas`` adapts them to local processes
in cgroups, ``controllers/`` to pods in a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class LatencyObservation:
    """One period's view of a service, as the router measured it.

    Attributes:
        t_s: When the observation was taken (seconds since the run started).
        requests_per_second: Offered load (arrivals) over the last window.
        latency_s: Response time at the SLO percentile over the last window (None: no request).
        replica_latency_s: The same per replica, keyed by replica name.
        requests: Requests completed over the whole run so far.
        violations: Of those, how many exceeded the SLO.
        queue_len: Requests waiting in the router now.
        oldest_wait_s: How long the oldest waiting request has waited (0 when none): a lower
            bound of a response time not yet measured, which reveals an overload at once.
        gpu_share: Share of the window's requests served by GPU replicas (None: no GPU).
        cpu_utilisation: Per replica, CPU seconds used per allocated core-second over the
            last period (filled by the actuator side when it can measure it).
    """

    t_s: float
    requests_per_second: float
    latency_s: float | None
    replica_latency_s: dict[str, float | None] = field(default_factory=dict)
    requests: int = 0
    violations: int = 0
    queue_len: int = 0
    oldest_wait_s: float = 0.0
    gpu_share: float | None = None
    cpu_utilisation: dict[str, float] = field(default_factory=dict)

    def effective_latency_s(self) -> float | None:
        """The percentile, raised to the oldest wait when a backlog is older than it."""
        if self.latency_s is None:
            return self.oldest_wait_s if self.queue_len > 0 else None
        return max(self.latency_s, self.oldest_wait_s)


class LatencySensor(Protocol):
    """Reads the service's latency figures (the router's stats endpoint, or metrics)."""

    async def observe(self) -> LatencyObservation:
        """The latest observation."""
        ...


class ReplicaActuator(Protocol):
    """Applies an allocation: replica count and cores per replica."""

    async def replicas(self) -> list[str]:
        """Names of the CPU replicas now serving, in a stable order."""
        ...

    async def set_replicas(self, count: int) -> list[str]:
        """Start or stop replicas until ``count`` serve; returns their names."""
        ...

    async def set_cores(self, cores: dict[str, float]) -> None:
        """Give each named replica its cores."""
        ...

    async def cpu_utilisation(self) -> dict[str, float]:
        """Per replica, CPU used over the last call's interval per allocated core (0..1+)."""
        ...
