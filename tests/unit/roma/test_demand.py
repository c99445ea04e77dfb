"""The demand floor: the CPU a request costs, learned from steady periods, sizes the next one."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controllers.inferenceservice_status import resume_law
from roma.api import InferenceServiceSpec
from roma.demand import DemandEstimator
from roma.law import Allocation, ServiceAllocationLaw, start_law
from roma.policies import MlscalePolicy
from roma.ports import LatencyObservation
from roma.simloop import SimResult, simulate
from roma.simqueue import SimulatedService
from roma.traces import parse_trace


def test_cost_is_learned_from_steady_unsaturated_periods_only() -> None:
    est = DemandEstimator(target_utilisation=0.5)
    est.observe(used_cores=0.2, allocated_cores=1.0, rps=20.0)
    assert est.cores_for(20.0) is None  # one period: nothing to compare the rate with yet
    est.observe(used_cores=0.2, allocated_cores=1.0, rps=20.0)
    assert est.cost_core_s == pytest.approx(0.01)
    assert est.cores_for(100.0) == pytest.approx(2.0)  # 0.01 core-s x 100/s at 50 %
    est.observe(used_cores=0.98, allocated_cores=1.0, rps=20.0)  # throttled: says nothing
    est.observe(used_cores=0.9, allocated_cores=2.0, rps=120.0)  # the rate just jumped
    assert est.cost_core_s == pytest.approx(0.01)


def test_state_round_trips() -> None:
    est = DemandEstimator()
    est.observe(0.3, 1.0, 30.0)
    est.observe(0.3, 1.0, 30.0)
    assert DemandEstimator.from_dict(est.to_dict()) == est


def _law() -> ServiceAllocationLaw:
    return ServiceAllocationLaw.start(0.1, 0.2, 2.0, replicas_min=1, replicas_max=3)


def _settle(law: ServiceAllocationLaw, rps: float, used: float, periods: int = 8) -> None:
    for i in range(periods):
        law.step(2.0 * i, 0.02, rps=rps, used_cores=[used] * len(law.regulators))


def test_a_rate_step_raises_cores_in_the_period_that_sees_it() -> None:
    law = _law()
    _settle(law, 20.0, 0.2)  # 0.01 core-s per request; latency far under the SLO
    before = law.allocation.total_cores
    # The first period of the step: the latency has not grown yet, the rate has.
    after = law.step(20.0, 0.02, rps=60.0, used_cores=[0.3]).total_cores
    assert after >= 60.0 * 0.01 / 0.7 - 1e-9
    assert after > before


def test_a_rate_beyond_every_replica_at_max_adds_one_at_once() -> None:
    law = _law()
    _settle(law, 20.0, 0.2)
    alloc = law.step(20.0, 0.02, rps=400.0, used_cores=[0.5])  # needs 5.4 cores, one replica has 2
    assert alloc.replicas == 2
    assert law.step(22.0, 0.02, rps=400.0, used_cores=[1.0, 1.0]).replicas == 3


def test_law_state_keeps_the_learned_cost() -> None:
    law = _law()
    _settle(law, 20.0, 0.2)
    again = ServiceAllocationLaw.from_dict(law.to_dict())
    assert again.demand.cost_core_s == pytest.approx(law.demand.cost_core_s)


class _Blind(MlscalePolicy):
    """The same law without the CPU figures (as where nothing measures them)."""

    def decide(self, obs: LatencyObservation, utilisation: Sequence[float]) -> Allocation:
        return super().decide(obs, [])


def _spike(policy_cls: type[MlscalePolicy], seed: int) -> SimResult:
    law = ServiceAllocationLaw.start(0.1, 0.2, 2.0, replicas_min=1, replicas_max=3)
    plant = SimulatedService(work_core_s=0.01, overhead_s=0.002, seed=seed)
    plant.prime([2.0])
    return simulate(
        policy_cls(law), plant, parse_trace("spike:20:150@40+10"), duration_s=90.0, period_s=2.0, slo_s=0.1, pct=95
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_the_floor_cuts_the_violations_of_a_spike(seed: int) -> None:
    seeing, blind = _spike(MlscalePolicy, seed), _spike(_Blind, seed)
    assert seeing.violation_ratio < 0.5 * blind.violation_ratio


def _spec(target: float) -> InferenceServiceSpec:
    return InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "builder": "examples.roma.models:small_cnn"},
            "slo": {"latencyMs": 100},
            "cpu": {"coresMin": "200m", "coresMax": "2"},
            "control": {"targetUtilisation": target},
        }
    )


def test_target_utilisation_from_the_spec_sets_the_headroom_and_an_edit_is_obeyed_on_resume() -> None:
    law = start_law(_spec(0.5))
    _settle(law, 20.0, 0.2)  # 0.01 core-s a request
    assert law.step(20.0, 0.02, rps=60.0, used_cores=[0.6]).total_cores == pytest.approx(1.2)
    resumed = resume_law(_spec(0.8), law.to_dict())
    assert resumed.demand.cost_core_s == pytest.approx(law.demand.cost_core_s)
    assert resumed.step(22.0, 0.02, rps=60.0, used_cores=[0.6]).total_cores < 1.2
