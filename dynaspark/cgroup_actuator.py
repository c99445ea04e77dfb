"""Cores actuator for one machine: each executor JVM (and its Python workers) in its own cgroup.

This is what the kubelet does for a pod whose CPU is resized: a CFS quota over a 100 ms
period (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), through :mod:`mlscale.cgroups`.
Executors are found by their command line (``CoarseGrainedExecutorBackend --executor-id N
--app-id A``); every period the executor's descendants are swept in as well, so Python workers
forked later are limited too.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dynaspark.observation import ExecutorCpu
from dynaspark.processes import ExecutorProcess, descendants, executor_processes, parent_map
from mlscale.cgroups import CgroupUnavailableError, CpuCgroup, cgroup_unavailable_reason
from mlscale.cpu_meter import CpuCounters, cpu_between

log = logging.getLogger(__name__)


class CgroupCoresActuator:
    """Limits each executor of one application to the cores it is given.

    Args:
        application_id: Returns the Spark application id once known (``None`` before).
        name_prefix: Prefix of the cgroup names (one cgroup per executor).
        proc: The proc filesystem.

    Raises:
        CgroupUnavailableError: when no writable CPU cgroup hierarchy exists.
    """

    def __init__(self, application_id: Callable[[], str | None], name_prefix: str, proc: Path = Path("/proc")) -> None:
        reason = cgroup_unavailable_reason()
        if reason is not None:
            raise CgroupUnavailableError(reason)
        self._application_id = application_id
        self._prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", name_prefix)[:60]
        self._proc = proc
        self.groups: dict[str, CpuCgroup] = {}
        self.pids: dict[str, set[int]] = {}
        self.quota_writes = 0
        self._clock = time.monotonic
        self._last_usage: dict[str, CpuCounters] = {}

    def _executors(self) -> dict[str, ExecutorProcess]:
        app_id = self._application_id()
        if app_id is None:
            return {}
        return {p.executor_id: p for p in executor_processes(app_id, self._proc)}

    def apply(self, cores: Mapping[str, float]) -> Mapping[str, float]:
        """Move executors (and their children) into their cgroups and set each quota.

        Args:
            cores: Cores per executor id.

        Returns:
            The cores applied, for the executors whose process was found.
        """
        processes = self._executors()
        parents = parent_map(self._proc) if processes else {}
        applied = {}
        for executor_id, value in cores.items():
            process = processes.get(executor_id)
            if process is None:
                continue
            group = self.groups.get(executor_id)
            if group is None:
                group = CpuCgroup.create(f"{self._prefix}-exec-{executor_id}")
                self.groups[executor_id] = group
                self.pids[executor_id] = set()
            known = self.pids[executor_id]
            for pid in [process.pid, *descendants(process.pid, parents)]:
                if pid in known:
                    continue
                try:
                    group.add_process(pid)
                    known.add(pid)
                except OSError as exc:  # the process ended in between
                    log.debug("could not move pid %s into %s: %s", pid, group.path, exc)
            if group.cores != value:
                group.set_cores(value)
                self.quota_writes += 1
            applied[executor_id] = value
        return applied

    def quotas(self) -> dict[str, float | None]:
        """Read each executor's quota back from the kernel, in cores."""
        result = {}
        for executor_id, group in self.groups.items():
            with contextlib.suppress(OSError):
                result[executor_id] = group.read_quota_cores()
        return result

    def usage(self) -> dict[str, ExecutorCpu]:
        """The CPU each executor used since the previous call (its cgroup's accounting).

        Cores used on average, and the share of the CFS periods in which its quota ran out.
        An executor read for the first time is left out: there is no interval yet. So is every
        executor where the cgroup does not count CPU (v1 without cpuacct): zero would read as
        "used nothing", and the law would cap it.
        """
        now = self._clock()
        result = {}
        for executor_id, group in self.groups.items():
            if not group.accounts_usage:
                continue
            try:
                counters = group.counters(now)
            except OSError:
                continue
            last = self._last_usage.get(executor_id)
            self._last_usage[executor_id] = counters
            between = None if last is None else cpu_between(last, counters)
            if between is not None:
                result[executor_id] = ExecutorCpu(*between)
        return result

    def usage_seconds(self) -> float:
        """CPU seconds all executors have consumed under their cgroups."""
        total = 0.0
        for group in self.groups.values():
            with contextlib.suppress(OSError):
                total += group.usage_seconds()
        return total

    def close(self) -> None:
        """Remove every cgroup created (processes still in them go back to the parent)."""
        for group in self.groups.values():
            with contextlib.suppress(OSError):
                group.destroy()
        self.groups.clear()
