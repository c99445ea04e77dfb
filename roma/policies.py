"""Allocation policies behind one interface: the mlscale law and the baselines it is compared to.

The benchmark and the closed-loop tests drive any of them the same way: every period,
``decide(observation, current cores)`` returns the next :class:`~roma.law.Allocation`.
Baselines:

* :class:`StaticPolicy` — a fixed allocation (provisioned for the peak);
* :class:`RuleBasedPolicy` — ROMA's rule: +1 core when RT > 0.8·SLO, −1 core when
  RT < 0.2·SLO, then a cooldown;
* :class:`HpaLikePolicy` — Kubernetes' HPA: replicas at ``cores_max`` each, count
  ``ceil(n · utilisation / target)`` with a scale-down stabilisation window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from roma.law import Allocation, ServiceAllocationLaw
from roma.ports import LatencyObservation


class AllocationPolicy(Protocol):
    """Anything that turns an observation into the next allocation."""

    name: str

    def decide(self, obs: LatencyObservation, utilisation: Sequence[float]) -> Allocation:
        """Allocation for the next period.

        Args:
            obs: The period's latency observation.
            utilisation: Per replica, busy share of its allocated cores over the period.
        """
        ...


@dataclass
class MlscalePolicy:
    """The mlscale law (:class:`~roma.law.ServiceAllocationLaw`) behind the policy interface.

    Attributes:
        law: The law and its state.
        name: Label in reports.
    """

    law: ServiceAllocationLaw
    name: str = "mlscale"

    def decide(self, obs: LatencyObservation, utilisation: Sequence[float]) -> Allocation:
        """Step the law with the service and per-replica percentiles, the rate and the CPU used."""
        per = list(obs.replica_latency_s.values()) if obs.replica_latency_s else None
        cores = self.law.allocation.cores
        used = [u * c for u, c in zip(utilisation, cores, strict=True)] if len(utilisation) == len(cores) else None
        return self.law.step(obs.t_s, obs.effective_latency_s(), per, rps=obs.requests_per_second, used_cores=used)


@dataclass
class StaticPolicy:
    """Always the same allocation.

    Attributes:
        replicas: Replica count.
        cores: Cores per replica.
        name: Label in reports.
    """

    replicas: int
    cores: float
    name: str = "static-peak"

    def decide(self, obs: LatencyObservation, utilisation: Sequence[float]) -> Allocation:
        """The fixed allocation."""
        return Allocation((self.cores,) * self.replicas)


@dataclass
class RuleBasedPolicy:
    """ROMA's rule-based baseline, per replica (vertical only).

    Attributes:
        slo_s: Latency objective.
        cores_min: Lower bound per replica.
        cores_max: Upper bound per replica.
        replicas: Replica count (fixed).
        step_cores: Change per step.
        high_fraction: Add a core above this fraction of the SLO.
        low_fraction: Remove a core below this fraction of the SLO.
        cooldown_s: Minimum time between two steps.
        cores: Current cores per replica (state).
        last_step_s: Time of the last step (state).
        name: Label in reports.
    """

    slo_s: float
    cores_min: float
    cores_max: float
    replicas: int
    step_cores: float = 1.0
    high_fraction: float = 0.8
    low_fraction: float = 0.2
    cooldown_s: float = 6.0
    cores: float | None = None
    last_step_s: float | None = None
    name: str = "rule-based"

    def decide(self, obs: LatencyObservation, utilisation: Sequence[float]) -> Allocation:
        """One step of the rule."""
        if self.cores is None:
            self.cores = self.cores_max
        cooling = self.last_step_s is not None and obs.t_s - self.last_step_s < self.cooldown_s
        rt = obs.effective_latency_s()
        if not cooling and rt is not None:
            new = self.cores
            if rt > self.high_fraction * self.slo_s:
                new = min(self.cores_max, self.cores + self.step_cores)
            elif rt < self.low_fraction * self.slo_s:
                new = max(self.cores_min, self.cores - self.step_cores)
            if new != self.cores:
                self.cores = new
                self.last_step_s = obs.t_s
        return Allocation((self.cores,) * self.replicas)


@dataclass
class HpaLikePolicy:
    """Horizontal autoscaling on CPU utilisation, as Kubernetes' HPA does it.

    Attributes:
        cores: Cores per replica (fixed, the replica's request/limit).
        replicas_min: Lower bound.
        replicas_max: Upper bound.
        target_utilisation: Desired mean utilisation (0.7 = 70 %).
        tolerance: No change while the ratio is within 1 ± tolerance (HPA's 10 %).
        stabilisation_s: Scale down to the highest recommendation of this window.
        replicas: Current count (state).
        history: Recent (t, recommendation) pairs (state).
        name: Label in reports.
    """

    cores: float
    replicas_min: int
    replicas_max: int
    target_utilisation: float = 0.7
    tolerance: float = 0.1
    stabilisation_s: float = 30.0
    replicas: int = 0
    history: list[tuple[float, int]] | None = None
    name: str = "hpa-like"

    def decide(self, obs: LatencyObservation, utilisation: Sequence[float]) -> Allocation:
        """One HPA evaluation."""
        if self.replicas == 0:
            self.replicas = self.replicas_min
        history = self.history if self.history is not None else []
        self.history = history
        if utilisation:
            mean = sum(utilisation) / len(utilisation)
            ratio = mean / self.target_utilisation
            wanted = self.replicas
            if abs(ratio - 1.0) > self.tolerance:
                wanted = math.ceil(self.replicas * ratio)
            wanted = max(self.replicas_min, min(self.replicas_max, wanted))
            history.append((obs.t_s, wanted))
            history[:] = [(t, r) for t, r in history if obs.t_s - t <= self.stabilisation_s]
            self.replicas = wanted if wanted > self.replicas else max(r for _, r in history)
        return Allocation((self.cores,) * self.replicas)
