"""Horizontal step on top of the per-replica CPU law: when to add or remove a replica."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ScalingPolicy:
    """Thresholds of :class:`ReplicaScaler`.

    Attributes:
        up_periods: Consecutive periods with every replica at ``cores_max`` since the period
            before (so the CPU law has had a period at its maximum) and the latency still
            above the SLO, before a replica is added. Requiring the earlier period at the
            maximum keeps one noisy window, which can drive the law to ``cores_max`` in a
            single step, from also adding a replica.
        down_window_s: How long every replica must sit low before one is removed.
        low_fraction: "Low" means every replica holds at most this fraction of ``cores_max``
            with the latency under the SLO. Not "the total fits on one replica fewer":
            fewer, faster replicas need fewer cores in all for the same latency (one queue
            pooled), so the sum overstates what the survivors will need.
        cooldown_s: No step within this time of the previous one (lets the law settle).
    """

    up_periods: int = 1
    down_window_s: float = 30.0
    low_fraction: float = 0.6
    cooldown_s: float = 10.0


@dataclass
class ReplicaScaler:
    """Decides the replica count; hysteresis between the up and the down conditions.

    Attributes:
        replicas_min: Lower bound.
        replicas_max: Upper bound.
        policy: Thresholds.
        hot_periods: Consecutive periods meeting the scale-up condition (state).
        low_since_s: Start of the current low stretch, None when not low (state).
        was_all_max: Whether every replica was at ``cores_max`` at the previous call (state).
        last_step_s: Time of the last step, None before the first (state).
    """

    replicas_min: int
    replicas_max: int
    policy: ScalingPolicy = ScalingPolicy()
    hot_periods: int = 0
    low_since_s: float | None = None
    last_step_s: float | None = None
    was_all_max: bool = False

    def decide(
        self,
        now_s: float,
        cores: Sequence[float],
        cores_max: float,
        rt_s: float | None,
        slo_s: float,
    ) -> int:
        """Replica count for the next period.

        Args:
            now_s: Current time in seconds.
            cores: Current allocation of each replica (its length is the replica count).
            cores_max: Per-replica upper bound.
            rt_s: Service latency at the SLO percentile (None when idle).
            slo_s: Latency objective.

        Returns:
            The new replica count (differs from ``len(cores)`` by at most one).
        """
        n = len(cores)
        all_max = n > 0 and all(c >= cores_max - 1e-9 for c in cores)
        hot = all_max and self.was_all_max and rt_s is not None and rt_s > slo_s
        self.was_all_max = all_max
        self.hot_periods = self.hot_periods + 1 if hot else 0
        low = (
            n > self.replicas_min
            and (rt_s is None or rt_s < slo_s)
            and all(c <= self.policy.low_fraction * cores_max + 1e-9 for c in cores)
        )
        if not low:
            self.low_since_s = None
        elif self.low_since_s is None:
            self.low_since_s = now_s
        cooling = self.last_step_s is not None and now_s - self.last_step_s < self.policy.cooldown_s
        target = n
        if cooling:
            return max(self.replicas_min, min(self.replicas_max, n))
        if self.hot_periods >= self.policy.up_periods and n < self.replicas_max:
            target = n + 1
        elif self.low_since_s is not None and now_s - self.low_since_s >= self.policy.down_window_s:
            target = n - 1
        target = max(self.replicas_min, min(self.replicas_max, target))
        if target != n:
            self.was_all_max = False
            self.last_step_s = now_s
            self.hot_periods = 0
            self.low_since_s = None
        return target

    def force_up(self, now_s: float, replicas: int) -> int:
        """Add a replica because the demand says so (bounded by ``replicas_max``); returns the count."""
        if replicas >= self.replicas_max:
            return replicas
        self.was_all_max = False
        self.last_step_s = now_s
        self.hot_periods = 0
        self.low_since_s = None
        return replicas + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain-data state (for the resource status)."""
        data = asdict(self)
        data["policy"] = asdict(self.policy)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplicaScaler:
        """Rebuild a scaler written by :meth:`to_dict`."""
        fields = dict(data)
        policy = ScalingPolicy(**fields.pop("policy", {}))
        return cls(policy=policy, **fields)


def redistribute_cores(cores: Sequence[float], replicas: int, cores_min: float, cores_max: float) -> list[float]:
    """Allocation after a scale step.

    Scaling up happens when every replica is at ``cores_max``, so new replicas start there
    too. Scaling down keeps the total and spreads it evenly over the survivors, so they
    absorb the departed replica's load at once.
    """
    if replicas <= 0:
        return []
    if replicas > len(cores):
        return [*cores, *([cores_max] * (replicas - len(cores)))]
    total = sum(cores)
    share = max(cores_min, min(cores_max, total / replicas))
    return [round(share, 6)] * replicas
