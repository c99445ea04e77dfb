"""ReplicaCpuRegulator: the per-replica PI law on speed."""

from __future__ import annotations

import pytest

from roma.regulator import CpuLawGains, ReplicaCpuRegulator, ceil_step, normalised_error


def test_ceil_step_rounds_up_to_tenths() -> None:
    assert ceil_step(0.71) == pytest.approx(0.8)
    assert ceil_step(0.7) == pytest.approx(0.7)
    assert ceil_step(0.7000000001) == pytest.approx(0.7)


def test_error_sign_and_bounds() -> None:
    g = CpuLawGains(setpoint_fraction=1.0)
    assert normalised_error(0.2, 0.1, g) == pytest.approx(1.0)  # twice too slow
    assert normalised_error(0.11, 0.1, g) == pytest.approx(0.1, abs=0.01)  # ~ speed error near the setpoint
    assert normalised_error(0.09, 0.1, g) == pytest.approx(-0.1, abs=0.02)
    assert normalised_error(0.05, 0.1, g) == pytest.approx(-1.0)  # spare speed
    assert normalised_error(100.0, 0.1, g) == g.max_error  # overload: large but bounded
    assert normalised_error(1e-9, 0.1, g) == -1.0
    assert normalised_error(None, 0.1, g) == g.idle_error


def test_error_is_dimensionless() -> None:
    g = CpuLawGains()
    assert normalised_error(0.2, 0.1, g) == pytest.approx(normalised_error(2.0, 1.0, g))


def test_slow_replica_gets_more_cores_fast_one_fewer() -> None:
    reg = ReplicaCpuRegulator.start(0.1, 0.2, 2.0, cores=1.0)
    up = reg.update(0.5)
    assert up > 1.0
    reg2 = ReplicaCpuRegulator.start(0.1, 0.2, 2.0, cores=1.0)
    assert reg2.update(0.01) < 1.0


def test_output_stays_in_bounds_and_on_grid() -> None:
    reg = ReplicaCpuRegulator.start(0.1, 0.3, 1.5, cores=0.3)
    for rt in [5.0] * 30:
        c = reg.update(rt)
        assert 0.3 <= c <= 1.5
        assert c * 10 == pytest.approx(round(c * 10))
    assert reg.at_max
    for _ in range(60):
        reg.update(0.001)
    assert reg.cores == pytest.approx(0.3)


def test_no_windup_after_saturation() -> None:
    """A long overload at cores_max must not delay the release once latency drops."""
    reg = ReplicaCpuRegulator.start(0.1, 0.2, 2.0)
    for _ in range(100):
        reg.update(10.0)
    reg.update(0.01)
    assert reg.cores < 2.0


def test_round_trip() -> None:
    reg = ReplicaCpuRegulator.start(0.1, 0.2, 2.0, cores=1.0)
    reg.update(0.3)
    again = ReplicaCpuRegulator.from_dict(reg.to_dict())
    assert again == reg
    assert again.update(0.3) == reg.update(0.3)


def test_rejects_bad_range() -> None:
    with pytest.raises(ValueError, match="cores_min"):
        ReplicaCpuRegulator.start(0.1, 2.0, 1.0)
