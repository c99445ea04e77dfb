"""The ports of the DeadlineJob loop: where progress comes from, where cores go, what CPU is used.

Locally the sensor is :class:`dynaspark.spark_rest.SparkRestSensor` and the actuator
:class:`dynaspark.cgroup_actuator.CgroupCoresActuator`; in a cluster the operator supplies
adapters that read the driver through its Service and resize executor pods. The CPU meter is
the executors' cgroup accounting locally (:class:`dynaspark.cgroup_actuator.CgroupCoresActuator`),
and in a cluster the same counters served from inside each executor pod
(:mod:`mlscale.cpu_meter`, read by ``controllers.executor_cpu.PodCpuMeter``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from dynaspark.observation import ExecutorCpu, ProgressObservation


class ProgressSensor(Protocol):
    """Reports the application's progress."""

    def read(self) -> ProgressObservation:
        """Return the progress now; an empty observation while nothing can be read."""
        ...


class CoresActuator(Protocol):
    """Applies cores per executor."""

    def apply(self, cores: Mapping[str, float]) -> Mapping[str, float]:
        """Give each executor its cores; return what was applied, by executor id."""
        ...


class CpuUsageMeter(Protocol):
    """Measures the CPU each executor really uses."""

    def usage(self) -> Mapping[str, ExecutorCpu]:
        """The CPU each executor used since the previous call; executors not measured yet are left out."""
        ...


class RecordingActuator:
    """An actuator that limits nothing and remembers what it was asked (uncontrolled runs, tests)."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def apply(self, cores: Mapping[str, float]) -> Mapping[str, float]:
        """Record ``cores`` and return them unchanged."""
        self.history.append(dict(cores))
        return dict(cores)
