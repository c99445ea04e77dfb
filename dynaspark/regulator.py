"""One PI regulator per executor: from the gap between set point and progress to cores.

``e = SP − y``; ``P = K·e``; ``I += K·(Ts/Ti)·e``; ``cores = clamp(P + I, coresMin, coresMax)``
rounded to the actuator's quantum; anti-windup by back-calculation: ``I = cores − P``, so the
integral never holds more than the output can use. Once the set point has reached 1 the stage
is late and the regulator asks for coresMax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CORES_QUANTUM = 0.05
"""Resolution of a cores allocation (a CFS quota of 5 ms per 100 ms period)."""


def quantise_cores(cores: float, quantum: float = CORES_QUANTUM) -> float:
    """Round cores to the nearest multiple of ``quantum`` (kept positive)."""
    steps = max(1, math.floor(cores / quantum + 0.5))
    return round(steps * quantum, 6)


@dataclass(frozen=True)
class RegulatorGains:
    """Constants of an :class:`ExecutorCpuRegulator`.

    Attributes:
        gain: ``K``: cores per unit of progress error.
        integral_time_s: ``Ti``: the integral time (seconds).
        cores_min: Lowest allocation (cores).
        cores_max: Highest allocation (cores).
        quantum: Resolution of the output (cores).
    """

    gain: float = 50.0
    integral_time_s: float = 12.0
    cores_min: float = 0.1
    cores_max: float = 1.0
    quantum: float = CORES_QUANTUM

    def __post_init__(self) -> None:
        """Check the constants."""
        if self.gain <= 0 or self.integral_time_s <= 0:
            raise ValueError("gain and integral_time_s must be positive")
        if not 0 < self.cores_min <= self.cores_max:
            raise ValueError(f"need 0 < cores_min <= cores_max, got {self.cores_min} and {self.cores_max}")

    def clamp(self, cores: float) -> float:
        """Clamp to [cores_min, cores_max] and quantise (never outside the bounds)."""
        bounded = min(self.cores_max, max(self.cores_min, cores))
        return min(self.cores_max, max(self.cores_min, quantise_cores(bounded, self.quantum)))


@dataclass(frozen=True)
class RegulatorState:
    """What an :class:`ExecutorCpuRegulator` remembers between periods.

    Attributes:
        integral: The integral term ``I`` (cores).
        cores: The last output (cores).
        proportional: The last proportional term ``P`` (cores), for monitoring.
        error: The last error ``SP − y``, for monitoring.
    """

    integral: float
    cores: float
    proportional: float = 0.0
    error: float = 0.0

    def to_dict(self) -> dict[str, float]:
        """Return the state as a plain dict."""
        return {"integral": self.integral, "cores": self.cores, "proportional": self.proportional, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegulatorState:
        """Build the state from :meth:`to_dict`'s output."""
        return cls(
            integral=float(data["integral"]),
            cores=float(data["cores"]),
            proportional=float(data.get("proportional", 0.0)),
            error=float(data.get("error", 0.0)),
        )


@dataclass(frozen=True)
class ExecutorCpuRegulator:
    """The PI law of one executor; pure: every call takes the state and returns the next.

    Attributes:
        gains: The constants.
    """

    gains: RegulatorGains

    def start(self, initial_cores: float) -> RegulatorState:
        """Return the state for a stage starting with ``initial_cores`` (bumpless: ``I = cores``)."""
        cores = self.gains.clamp(initial_cores)
        return RegulatorState(integral=cores, cores=cores)

    def update(self, state: RegulatorState, set_point: float, progress: float, dt_s: float) -> RegulatorState:
        """Run one period.

        Args:
            state: The state after the previous period.
            set_point: ``SP`` in [0, 1].
            progress: ``y`` in [0, 1], the executor's share of the stage done.
            dt_s: ``Ts``, the time since the previous period (seconds).

        Returns:
            The new state; its ``cores`` is the allocation to apply.
        """
        g = self.gains
        if set_point >= 1.0:
            # The stage is at or past its deadline: nothing to regulate, give it all.
            return RegulatorState(integral=g.cores_max, cores=g.cores_max, proportional=0.0, error=set_point - progress)
        error = set_point - progress
        proportional = g.gain * error
        integral = state.integral + g.gain * (max(0.0, dt_s) / g.integral_time_s) * error
        cores = g.clamp(proportional + integral)
        # Back-calculation: keep P + I equal to what was applied, so saturation never winds up I.
        return RegulatorState(integral=cores - proportional, cores=cores, proportional=proportional, error=error)
