"""Feed-forward on the request rate: the cores the offered load needs at a safe utilisation.

A latency percentile is flat until a replica nears saturation and then climbs by an order
of magnitude within a few tenths of a core (measured on the small-CNN example: p95 16 ms at
0.6 core and 120 req/s, over 150 ms at 0.45). A regulator that follows only the percentile
learns where that cliff is by falling over it. The CPU a request costs is measurable,
though: cores used / requests served. With it, the load of the next period needs

    demand = cost · rps / target_utilisation

cores, and the law never gives a service less than that: a step of the offered rate is met
in the period that sees it, before any latency has grown. ``target_utilisation`` leaves the
queueing headroom (0.7, as the HPA's usual CPU target).

The cost is learned only from periods in which the replicas were not saturated (used below
``saturated`` of what they had): a throttled replica serves fewer requests than arrive, so
its cores/rps would understate the cost. Nor while the rate moves (more than ``steady``
relative change since the previous period): the CPU and the rate are measured over windows
that do not line up exactly, and across a step they would pair the old load with the new.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class DemandEstimator:
    """CPU cost per request, smoothed over periods; turns an offered rate into cores.

    Attributes:
        target_utilisation: Share of the allocated cores the load may use.
        smoothing: Weight of the newest period in the cost's moving average.
        saturated: Utilisation from which a period teaches nothing about the cost.
        min_rps: Periods with less traffic than this are too noisy to learn from.
        steady: Largest relative change of the rate between two periods to learn from.
        cost_core_s: Learned CPU seconds per request (state; None before the first).
        last_rps: The rate of the previous period (state).
    """

    target_utilisation: float = 0.7
    smoothing: float = 0.3
    saturated: float = 0.9
    min_rps: float = 1.0
    steady: float = 0.25
    cost_core_s: float | None = None
    last_rps: float | None = None

    def __post_init__(self) -> None:
        """Check the constants."""
        if not 0 < self.target_utilisation <= 1:
            raise ValueError(f"target_utilisation must be in (0, 1], got {self.target_utilisation}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")

    def observe(self, used_cores: float, allocated_cores: float, rps: float) -> None:
        """Learn from one period.

        Args:
            used_cores: CPU seconds the replicas used per second over the period.
            allocated_cores: Cores they had.
            rps: Requests per second they were offered over the period.
        """
        previous, self.last_rps = self.last_rps, rps
        if previous is None or abs(rps - previous) > self.steady * max(previous, self.min_rps):
            return
        if rps < self.min_rps or allocated_cores <= 0 or used_cores <= 0:
            return
        if used_cores >= self.saturated * allocated_cores:
            return
        cost = used_cores / rps
        if self.cost_core_s is None:
            self.cost_core_s = cost
        else:
            self.cost_core_s += self.smoothing * (cost - self.cost_core_s)

    def cores_for(self, rps: float) -> float | None:
        """Cores that serve ``rps`` at the target utilisation (None before anything was learned)."""
        if self.cost_core_s is None:
            return None
        return self.cost_core_s * max(0.0, rps) / self.target_utilisation

    def to_dict(self) -> dict[str, Any]:
        """Plain-data state (for the resource status)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemandEstimator:
        """Rebuild an estimator written by :meth:`to_dict`."""
        return cls(**data)
