"""The InferenceService allocation law: per-replica CPU regulators plus the horizontal step.

Every period each replica's regulator moves its cores by the latency error; the demand floor
(:mod:`roma.demand`) then raises any replica below its share of the cores the offered rate
needs; the scaler adds a replica when every one sits at ``cores_max`` and is still slow, or at
once when the rate needs more than all of them at ``cores_max``, and removes one after a
sustained low stretch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from roma.api import InferenceServiceSpec
from roma.demand import DemandEstimator
from roma.regulator import CpuLawGains, ReplicaCpuRegulator, ceil_step
from roma.scaling import ReplicaScaler, ScalingPolicy, redistribute_cores

COOLDOWN_PERIODS = 5
"""No scale step within this many control periods of the previous one."""


@dataclass(frozen=True)
class Allocation:
    """What the actuator applies for the next period.

    Attributes:
        cores: Cores of each replica (its length is the replica count).
    """

    cores: tuple[float, ...]

    @property
    def replicas(self) -> int:
        """Number of replicas."""
        return len(self.cores)

    @property
    def total_cores(self) -> float:
        """Sum over replicas."""
        return float(sum(self.cores))


@dataclass
class ServiceAllocationLaw:
    """Decides every period the replica count and each replica's cores.

    Attributes:
        slo_s: Latency objective in seconds.
        cores_min: Per-replica lower bound.
        cores_max: Per-replica upper bound.
        scaler: Replica-count decisions and their state.
        regulators: One CPU regulator per replica (state).
        demand: The CPU cost per request and the floor it puts under the allocation (state).
    """

    slo_s: float
    cores_min: float
    cores_max: float
    scaler: ReplicaScaler
    regulators: list[ReplicaCpuRegulator] = field(default_factory=list)
    demand: DemandEstimator = field(default_factory=DemandEstimator)

    @classmethod
    def start(
        cls,
        slo_s: float,
        cores_min: float,
        cores_max: float,
        *,
        replicas_min: int,
        replicas_max: int,
        gains: CpuLawGains | None = None,
        policy: ScalingPolicy | None = None,
        target_utilisation: float = 0.7,
    ) -> ServiceAllocationLaw:
        """A law with ``replicas_min`` replicas, each starting at ``cores_max``."""
        # The start counts as a step: no scaling on the cold-start latencies of the first
        # periods (model warm-up, first connections).
        scaler = ReplicaScaler(replicas_min, replicas_max, policy or ScalingPolicy(), last_step_s=0.0)
        regs = [ReplicaCpuRegulator.start(slo_s, cores_min, cores_max, gains=gains) for _ in range(replicas_min)]
        return cls(slo_s, cores_min, cores_max, scaler, regs, DemandEstimator(target_utilisation))

    @property
    def allocation(self) -> Allocation:
        """The allocation currently decided."""
        return Allocation(tuple(r.cores for r in self.regulators))

    def step(
        self,
        now_s: float,
        service_rt_s: float | None,
        replica_rt_s: Sequence[float | None] | None = None,
        *,
        rps: float | None = None,
        used_cores: Sequence[float] | None = None,
    ) -> Allocation:
        """One control period.

        Args:
            now_s: Current time in seconds.
            service_rt_s: Latency at the SLO percentile over all the service's requests.
            replica_rt_s: The same per replica, in replica order; a replica without a
                figure (or when omitted) uses the service figure.
            rps: Offered requests per second over the last window (feeds the demand floor).
            used_cores: CPU each replica used over the last period (cores), in replica
                order; without it (or after a replica count change) nothing is learned.

        Returns:
            The allocation to apply.
        """
        if rps is not None and used_cores is not None and len(used_cores) == len(self.regulators):
            self.demand.observe(sum(used_cores), sum(r.cores for r in self.regulators), rps)
        per = list(replica_rt_s or [])
        for i, reg in enumerate(self.regulators):
            rt = per[i] if i < len(per) and per[i] is not None else service_rt_s
            reg.update(rt)
        self._apply_demand_floor(rps)
        cores = [r.cores for r in self.regulators]
        target = self.scaler.decide(now_s, cores, self.cores_max, service_rt_s, self.slo_s)
        need = None if rps is None else self.demand.cores_for(rps)
        if need is not None and target <= len(cores) and need > len(cores) * self.cores_max + 1e-9:
            # The offered rate needs more than every replica at its maximum: add one now
            # rather than after the latency has shown it.
            target = self.scaler.force_up(now_s, len(cores))
        if target != len(cores):
            self.resize(target)
        return self.allocation

    def _apply_demand_floor(self, rps: float | None) -> None:
        """Raise every replica to its share of the cores the offered rate needs."""
        need = None if rps is None or not self.regulators else self.demand.cores_for(rps)
        if need is None:
            return
        share = min(self.cores_max, ceil_step(need / len(self.regulators)))
        for reg in self.regulators:
            if reg.cores < share - 1e-9:
                reg.reset_to(share)

    def resize(self, replicas: int) -> None:
        """Change the replica count, spreading cores as :func:`redistribute_cores` says."""
        new_cores = redistribute_cores([r.cores for r in self.regulators], replicas, self.cores_min, self.cores_max)
        gains = self.regulators[0].gains if self.regulators else None
        regs = self.regulators[:replicas]
        while len(regs) < replicas:
            regs.append(ReplicaCpuRegulator.start(self.slo_s, self.cores_min, self.cores_max, gains=gains))
        for reg, c in zip(regs, new_cores, strict=True):
            reg.reset_to(c)
        self.regulators = regs

    def impose(self, cores: Sequence[float]) -> None:
        """Record allocations cut by the contention arbiter as the regulators' state."""
        for reg, c in zip(self.regulators, cores, strict=False):
            reg.reset_to(c)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data state (for the resource status)."""
        return {
            "slo_s": self.slo_s,
            "cores_min": self.cores_min,
            "cores_max": self.cores_max,
            "scaler": self.scaler.to_dict(),
            "regulators": [r.to_dict() for r in self.regulators],
            "demand": self.demand.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceAllocationLaw:
        """Rebuild a law written by :meth:`to_dict`."""
        return cls(
            slo_s=float(data["slo_s"]),
            cores_min=float(data["cores_min"]),
            cores_max=float(data["cores_max"]),
            scaler=ReplicaScaler.from_dict(data["scaler"]),
            regulators=[ReplicaCpuRegulator.from_dict(r) for r in data["regulators"]],
            demand=DemandEstimator.from_dict(data["demand"]) if "demand" in data else DemandEstimator(),
        )


def scaling_policy(spec: InferenceServiceSpec) -> ScalingPolicy:
    """The scaler's thresholds: the spec's scale-down window, a cooldown of a few periods."""
    return ScalingPolicy(
        down_window_s=spec.control.scale_down_window_seconds,
        cooldown_s=COOLDOWN_PERIODS * spec.control.period_seconds,
    )


def start_law(spec: InferenceServiceSpec) -> ServiceAllocationLaw:
    """A new law for an InferenceService's spec: ``replicas.min`` replicas at ``coresMax``."""
    return ServiceAllocationLaw.start(
        spec.slo.latency_ms / 1000.0,
        spec.cpu.cores_min,
        spec.cpu.cores_max,
        replicas_min=spec.replicas.min,
        replicas_max=spec.replicas.max,
        gains=CpuLawGains(b=spec.control.proportional_gain, d=spec.control.integral_gain),
        policy=scaling_policy(spec),
        target_utilisation=spec.control.target_utilisation,
    )
