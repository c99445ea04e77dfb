"""Closed loop of a policy against the simulated plant (tests, tuning, benchmark)."""

from __future__ import annotations

from dataclasses import dataclass, field

from roma.latency import LatencyWindow, percentile
from roma.policies import AllocationPolicy
from roma.ports import LatencyObservation
from roma.simqueue import SimulatedService
from roma.traces import Trace


@dataclass(frozen=True)
class SimSample:
    """One period of a simulated run.

    Attributes:
        t_s: End of the period.
        rps: Offered rate at that time.
        latency_s: Percentile over the window (None when idle).
        cores: Cores per replica applied for the next period.
    """

    t_s: float
    rps: float
    latency_s: float | None
    cores: tuple[float, ...]


@dataclass
class SimResult:
    """Outcome of :func:`simulate`.

    Attributes:
        policy: Policy name.
        samples: One per period.
        latencies_s: Every request's latency.
        slo_s: Latency objective.
        core_seconds: Allocated cores integrated over the run.
    """

    policy: str
    slo_s: float
    samples: list[SimSample] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    core_seconds: float = 0.0

    @property
    def violation_ratio(self) -> float:
        """Share of requests slower than the SLO."""
        if not self.latencies_s:
            return 0.0
        return sum(1 for x in self.latencies_s if x > self.slo_s) / len(self.latencies_s)

    def latency_pct_s(self, pct: float) -> float | None:
        """Percentile over the whole run."""
        return percentile(self.latencies_s, pct)


def simulate(
    policy: AllocationPolicy,
    plant: SimulatedService,
    trace: Trace,
    *,
    duration_s: float,
    period_s: float,
    slo_s: float,
    pct: float,
    window_s: float | None = None,
) -> SimResult:
    """Run ``policy`` in closed loop against ``plant`` under ``trace``.

    Args:
        policy: Decides each period.
        plant: The simulated service (its current allocation is the starting one).
        trace: Offered load.
        duration_s: Length of the run.
        period_s: Control period.
        slo_s: Latency objective.
        pct: SLO percentile.
        window_s: Latency window (default: two periods).

    Returns:
        Samples, latencies and core-seconds.
    """
    window = LatencyWindow(window_s or 2 * period_s)
    result = SimResult(policy.name, slo_s)
    t = plant.now_s
    while t < duration_s - 1e-9:
        t_next = min(duration_s, t + period_s)
        for c in plant.run_until(t_next, trace.rate_rps):
            window.add(c.done_s, c.latency_s)
            result.latencies_s.append(c.latency_s)
        rt = window.percentile_s(t_next, pct)
        obs = LatencyObservation(
            t_next,
            trace.rate_rps(t_next),
            rt,
            queue_len=plant.queue_len,
            oldest_wait_s=plant.oldest_wait_s,
        )
        alloc = policy.decide(obs, plant.take_busy_fractions(t_next - t))
        plant.apply(alloc.cores)
        result.samples.append(SimSample(t_next, obs.requests_per_second, rt, alloc.cores))
        t = t_next
    result.core_seconds = plant.core_seconds
    return result
