"""Per-replica CPU regulator: a PI law on serving speed.

The law of the issue, ``e = 1/SLO - 1/RT``, has units of 1/s, so the same gains would act
ten times harder on a 100 ms SLO than on a 1 s one. We make it dimensionless by multiplying
by the setpoint latency: ``e = 1 - target/RT`` (``target = setpoint_fraction * SLO``), clipped
at -1; above the target the relative latency error ``RT/target - 1`` (same slope there, but
not saturating under overload), clipped at ``max_error``. Positive error = too slow.
The gains are then in fractions of ``cores_max`` per unit error, so one set of gains fits
a 0.5-core replica and an 8-core one.

With ``K_b = b * cores_max`` and ``K_d = d * cores_max`` each period does::

    x      = x_prev + K_b * e
    cores  = clamp(ceil_0.1(x + K_d * e), cores_min, cores_max)
    x_prev = cores - K_b * e

Re-basing ``x_prev`` on the applied (clamped, rounded) cores is the anti-windup: the state
never runs away from what the replica actually has. Unrolled, ``cores`` moves by
``K_b * (e_k - e_{k-1}) + K_d * e_k`` per period: ``K_d`` is the integral action and ``K_b``
the proportional (damping) action of a velocity-form PI.

Defaults (b = d = 0.1, setpoint 0.7·SLO) come from closed-loop runs against
``roma.simqueue`` (step, sinusoid, spike, constant loads; three seeds each): the issue's
starting point b = 0.21, d = 0.17 moved the allocation about twice as much per period
(mean |Δcores| 0.34 vs 0.15 on a 2-core replica) for a higher violation ratio
(sinusoid: 0.066 vs 0.035), i.e. it chased measurement noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: Granularity of a CPU allocation (cores): what the law rounds up to.
CORE_STEP = 0.1


def ceil_step(cores: float, step: float = CORE_STEP) -> float:
    """Round ``cores`` up to a multiple of ``step`` (tolerating float noise)."""
    return round(math.ceil(cores / step - 1e-9) * step, 6)


@dataclass(frozen=True)
class CpuLawGains:
    """Tuning of :class:`ReplicaCpuRegulator`.

    Attributes:
        b: Proportional gain, in fractions of ``cores_max`` per unit of normalised error.
        d: Integral gain, in fractions of ``cores_max`` per period per unit of error.
        setpoint_fraction: The law aims the measured percentile at this fraction of the SLO,
            leaving headroom for noise between two samples.
        idle_error: Error applied when a period saw no completed request (release cores).
        max_error: Clip of the error on the slow side (see :func:`normalised_error`).
    """

    b: float = 0.1
    d: float = 0.1
    setpoint_fraction: float = 0.7
    idle_error: float = -0.5
    max_error: float = 2.0


def normalised_error(rt_s: float | None, slo_s: float, gains: CpuLawGains) -> float:
    """Dimensionless speed error: ``1 - target/RT`` below the target, ``RT/target - 1`` above.

    Both branches equal ``(RT - target)/target`` to first order, so near the setpoint this
    is the issue's speed error ``1/SLO - 1/RT`` scaled by the setpoint. Far above it the
    speed form saturates at 1 — an overload of 10x would look like one of 2x — so the
    slow side uses the relative latency error instead, clipped at ``max_error``.

    Args:
        rt_s: Measured response time at the SLO percentile (None: no request completed).
        slo_s: Latency objective in seconds.
        gains: Supplies the setpoint fraction and the idle error.

    Returns:
        Positive when the replica is too slow, negative when it has spare speed.
    """
    if rt_s is None:
        return gains.idle_error
    target_s = gains.setpoint_fraction * slo_s
    if rt_s > target_s:
        return min(gains.max_error, rt_s / target_s - 1.0)
    return max(-1.0, 1.0 - target_s / max(rt_s, 1e-6))


@dataclass
class ReplicaCpuRegulator:
    """Cores for one replica from its measured latency percentile.

    Attributes:
        slo_s: Latency objective in seconds.
        cores_min: Lower bound of the allocation.
        cores_max: Upper bound of the allocation.
        cores: Allocation currently applied (state).
        x_prev: Integrator state (state).
        last_error: Normalised error of the last update, for monitoring.
        gains: Law tuning.
    """

    slo_s: float
    cores_min: float
    cores_max: float
    cores: float
    x_prev: float
    last_error: float = 0.0
    gains: CpuLawGains = CpuLawGains()

    @classmethod
    def start(
        cls,
        slo_s: float,
        cores_min: float,
        cores_max: float,
        cores: float | None = None,
        gains: CpuLawGains | None = None,
    ) -> ReplicaCpuRegulator:
        """A regulator whose replica starts with ``cores`` (default: ``cores_max``).

        Starting at the maximum is the safe choice for a service that has not yet been
        measured; the law releases what it does not need within a few periods.
        """
        if not 0 < cores_min <= cores_max:
            raise ValueError(f"need 0 < cores_min <= cores_max, got {cores_min}, {cores_max}")
        start = cores_max if cores is None else max(cores_min, min(cores_max, cores))
        return cls(slo_s, cores_min, cores_max, start, start, 0.0, gains or CpuLawGains())

    def update(self, rt_s: float | None) -> float:
        """Advance one period with the measured percentile ``rt_s`` and return the cores.

        Args:
            rt_s: Response time at the SLO percentile over the last window (None if idle).

        Returns:
            The new allocation in cores, a multiple of 0.1 within [cores_min, cores_max].
        """
        err = normalised_error(rt_s, self.slo_s, self.gains)
        k_b = self.gains.b * self.cores_max
        k_d = self.gains.d * self.cores_max
        x = self.x_prev + k_b * err
        cores = ceil_step(x + k_d * err)
        cores = max(self.cores_min, min(self.cores_max, cores))
        self.x_prev = cores - k_b * err
        self.cores = cores
        self.last_error = err
        return cores

    def reset_to(self, cores: float) -> None:
        """Impose an allocation decided elsewhere (scale step, contention) as the new state."""
        self.cores = max(self.cores_min, min(self.cores_max, cores))
        self.x_prev = self.cores - self.gains.b * self.cores_max * self.last_error

    @property
    def at_max(self) -> bool:
        """True when the replica already has ``cores_max``."""
        return self.cores >= self.cores_max - 1e-9

    def to_dict(self) -> dict[str, Any]:
        """Plain-data state (for the resource status)."""
        data = asdict(self)
        data["gains"] = asdict(self.gains)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplicaCpuRegulator:
        """Rebuild a regulator written by :meth:`to_dict`."""
        fields = dict(data)
        gains = CpuLawGains(**fields.pop("gains", {}))
        return cls(gains=gains, **{k: float(v) for k, v in fields.items()})
