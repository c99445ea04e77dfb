"""bench/deadlinejob.py: the jobs it runs are the examples, with the period it is told."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.unit.scripts import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench/deadlinejob.py", "bench_deadlinejob")


def test_each_workload_runs_its_example_with_the_period_it_is_told(bench: ModuleType) -> None:
    for name in bench.WORKLOADS:
        job, app = bench.load_job(name)
        assert app.is_file()
        as_written = job.spec.control.period_seconds
        overridden, _ = bench.load_job(name, 0.25)
        assert overridden.spec.control.period_seconds == 0.25
        assert overridden.spec.model_dump(exclude={"control"}) == job.spec.model_dump(exclude={"control"})
        assert bench.load_job(name)[0].spec.control.period_seconds == as_written
