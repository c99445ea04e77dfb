"""The executors' cgroups say how much CPU each used and whether it wanted more (real cgroups)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from dynaspark.cgroup_actuator import CgroupCoresActuator
from dynaspark.processes import EXECUTOR_MAIN
from mlscale.cgroups import cgroup_unavailable_reason

pytestmark = pytest.mark.skipif(cgroup_unavailable_reason() is not None, reason=str(cgroup_unavailable_reason()))

# A stand-in for an executor JVM: its command line names the executor main class, as Spark's does.
SPIN = "import time\nend = time.time() + 20\nwhile time.time() < end: pass"
NAP = "import time\nend = time.time() + 20\nwhile time.time() < end:\n    sum(range(2000))\n    time.sleep(0.05)"


@pytest.fixture
def executors() -> Iterator[None]:
    procs = [
        subprocess.Popen([sys.executable, "-c", code, EXECUTOR_MAIN, "--executor-id", eid, "--app-id", "app-usage"])
        for eid, code in (("1", SPIN), ("2", NAP))
    ]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_spinning_executor_runs_out_of_quota_and_a_napping_one_does_not(executors: None) -> None:
    actuator = CgroupCoresActuator(lambda: "app-usage", "usage-test")
    try:
        # The loop applies every period and picks up an executor on a later one if a scan missed
        # it; do the same here, bounded, so a loaded machine does not fail the test.
        deadline = time.monotonic() + 10
        applied = actuator.apply({"1": 0.3, "2": 0.3})
        while applied != {"1": 0.3, "2": 0.3} and time.monotonic() < deadline:
            time.sleep(0.1)
            applied = actuator.apply({"1": 0.3, "2": 0.3})
        assert applied == {"1": 0.3, "2": 0.3}
        assert actuator.usage() == {}  # the first read starts the interval
        time.sleep(1.5)
        usage = actuator.usage()
        assert usage["1"].used_cores == pytest.approx(0.3, abs=0.06)
        assert usage["1"].throttled_share is not None
        assert usage["1"].throttled_share > 0.8
        assert usage["2"].used_cores < 0.15
        assert usage["2"].throttled_share is not None
        assert usage["2"].throttled_share < 0.2
    finally:
        actuator.close()
