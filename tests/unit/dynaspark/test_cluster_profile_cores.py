"""In a cluster, the stage profile counts an executor capped at its use with what its regulator asked."""

from __future__ import annotations

import pytest

from controllers.deadlinejob_status import paced_cores_before
from dynaspark.law_state import LawState
from dynaspark.regulator import RegulatorState


def test_a_capped_executor_counts_with_its_regulators_cores() -> None:
    state = LawState(
        start_s=0.0,
        regulators={"1": RegulatorState(integral=0.9, cores=0.9), "2": RegulatorState(integral=0.9, cores=0.9)},
        usage_capped=("2",),
    )
    status = {"allocatedCores": 1.05, "executors": [{"id": "1", "cores": 0.9}, {"id": "2", "cores": 0.15}]}
    # Executor 2 was given 0.15 because it used no more: more would not have made its stage
    # faster, so the profile counts the 0.9 its regulator asked (on one machine too).
    assert paced_cores_before(state, status) == pytest.approx(1.8)
    assert paced_cores_before(LawState(start_s=0.0), status) == pytest.approx(1.05)


def test_before_any_executor_was_given_cores_the_allocation_counts() -> None:
    assert paced_cores_before(LawState(start_s=0.0), {"allocatedCores": 3.0}) == 3.0
    assert paced_cores_before(LawState(start_s=0.0), {}) == 0.0
