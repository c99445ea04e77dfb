"""The executors' CPU meter over their cgroups: what it reports, and what it leaves out."""

from __future__ import annotations

from typing import Any

import pytest

from dynaspark.cgroup_actuator import CgroupCoresActuator
from mlscale.cpu_meter import CpuCounters


class _Group:
    """A cgroup's accounting: CPU seconds used, CFS periods run and throttled."""

    def __init__(self, *, accounts_usage: bool) -> None:
        self.accounts_usage = accounts_usage
        self.used_s, self.periods, self.throttled = 0.0, 0, 0

    def counters(self, now: float) -> CpuCounters:
        # Where nothing counts CPU, the cgroup reads 0 however much its processes use.
        return CpuCounters(now, self.used_s if self.accounts_usage else 0.0, self.periods, self.throttled, 0.5)


def test_an_executor_whose_cgroup_counts_no_cpu_is_not_reported_as_using_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing here touches a real cgroup: let the meter be built where cgroups cannot be written.
    monkeypatch.setattr("dynaspark.cgroup_actuator.cgroup_unavailable_reason", lambda: None)
    meter = CgroupCoresActuator(lambda: "app", "meter-test")
    now = [100.0]
    meter._clock = lambda: now[0]
    counted, blind = _Group(accounts_usage=True), _Group(accounts_usage=False)
    groups: dict[str, Any] = {"1": counted, "2": blind}
    meter.groups = groups
    assert meter.usage() == {}  # the first read starts the interval
    now[0] += 2.0
    for group in (counted, blind):
        group.used_s, group.periods, group.throttled = 1.2, 20, 5
    usage = meter.usage()
    # Executor 1 used 0.6 core and ran out of quota in a quarter of its periods; executor 2's
    # cgroup (v1 without cpuacct) cannot say: left out, rather than "used 0, never throttled",
    # which the law would read as a reason to cap it at coresMin.
    assert set(usage) == {"1"}
    assert usage["1"].used_cores == pytest.approx(0.6)
    assert usage["1"].throttled_share == pytest.approx(0.25)
