"""The per-executor PI regulator: bounds, quantum, anti-windup, late stage."""

from __future__ import annotations

import pytest

from dynaspark.regulator import ExecutorCpuRegulator, RegulatorGains, RegulatorState, quantise_cores

GAINS = RegulatorGains(gain=2.0, integral_time_s=12.0, cores_min=0.1, cores_max=1.0)


@pytest.mark.parametrize(("cores", "expected"), [(0.33, 0.35), (0.32, 0.3), (1.0, 1.0), (0.001, 0.05)])
def test_quantise_rounds_to_the_nearest_twentieth(cores: float, expected: float) -> None:
    assert quantise_cores(cores) == pytest.approx(expected)


def test_output_stays_within_bounds_and_on_the_quantum() -> None:
    regulator = ExecutorCpuRegulator(GAINS)
    state = regulator.start(0.5)
    for sp, y in [(0.9, 0.0), (0.0, 1.0), (0.5, 0.45), (0.2, 0.9), (0.7, 0.1)]:
        state = regulator.update(state, sp, y, 1.0)
        assert GAINS.cores_min <= state.cores <= GAINS.cores_max
        assert round(state.cores / 0.05, 6) == round(state.cores / 0.05)


def test_behind_schedule_gets_more_cores_ahead_gets_fewer() -> None:
    regulator = ExecutorCpuRegulator(GAINS)
    start = regulator.start(0.5)
    assert regulator.update(start, 0.5, 0.3, 1.0).cores > 0.5
    assert regulator.update(start, 0.5, 0.7, 1.0).cores < 0.5


def test_no_windup_after_a_long_saturation() -> None:
    """After minutes behind schedule at coresMax, cores fall as soon as the executor is ahead."""
    regulator = ExecutorCpuRegulator(GAINS)
    state = regulator.start(1.0)
    for _ in range(300):
        state = regulator.update(state, 0.6, 0.4, 1.0)
    assert state.cores == 1.0
    ahead = regulator.update(state, 0.6, 0.75, 1.0)
    assert ahead.cores < 1.0


def test_a_late_stage_runs_at_cores_max() -> None:
    state = ExecutorCpuRegulator(GAINS).update(RegulatorState(integral=0.1, cores=0.1), 1.0, 1.0, 1.0)
    assert state.cores == 1.0


def test_state_round_trips_through_a_dict() -> None:
    state = ExecutorCpuRegulator(GAINS).update(RegulatorState(integral=0.3, cores=0.3), 0.4, 0.35, 1.0)
    assert RegulatorState.from_dict(state.to_dict()) == state


def test_inconsistent_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="cores_min <= cores_max"):
        RegulatorGains(cores_min=2.0, cores_max=1.0)
