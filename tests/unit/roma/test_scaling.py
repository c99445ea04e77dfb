"""ReplicaScaler: the horizontal step with hysteresis."""

from __future__ import annotations

from roma.scaling import ReplicaScaler, ScalingPolicy, redistribute_cores


def test_adds_replica_only_when_all_at_max_and_slow() -> None:
    sc = ReplicaScaler(1, 3)
    assert sc.decide(0.0, [1.5], 2.0, 0.5, 0.1) == 1  # not at max: the CPU law acts first
    assert sc.decide(2.0, [2.0], 2.0, 0.5, 0.1) == 1  # just reached max: give it a period
    assert sc.decide(4.0, [2.0], 2.0, 0.05, 0.1) == 1  # at max but fast enough
    assert sc.decide(6.0, [2.0], 2.0, 0.5, 0.1) == 2


def test_respects_max_and_cooldown() -> None:
    sc = ReplicaScaler(1, 2, ScalingPolicy(cooldown_s=10.0), was_all_max=True)
    assert sc.decide(0.0, [2.0], 2.0, 0.5, 0.1) == 2
    assert sc.decide(20.0, [2.0, 2.0], 2.0, 0.5, 0.1) == 2
    assert sc.decide(22.0, [2.0, 2.0], 2.0, 0.5, 0.1) == 2  # max reached
    sc2 = ReplicaScaler(1, 5, ScalingPolicy(cooldown_s=10.0), was_all_max=True)
    assert sc2.decide(0.0, [2.0], 2.0, 0.5, 0.1) == 2
    assert sc2.decide(2.0, [2.0, 2.0], 2.0, 0.5, 0.1) == 2  # cooling down
    assert sc2.decide(12.0, [2.0, 2.0], 2.0, 0.5, 0.1) == 3


def test_removes_only_after_a_sustained_low_window() -> None:
    sc = ReplicaScaler(1, 3, ScalingPolicy(down_window_s=30.0, cooldown_s=0.0))
    t = 0.0
    decisions = []
    while t <= 40.0:
        decisions.append(sc.decide(t, [0.4, 0.4], 2.0, 0.03, 0.1))
        t += 2.0
    first_drop = decisions.index(1)
    assert first_drop * 2.0 >= 30.0
    # One period not low resets the window.
    sc = ReplicaScaler(1, 3, ScalingPolicy(down_window_s=30.0, cooldown_s=0.0))
    for t in range(0, 20, 2):
        sc.decide(float(t), [0.4, 0.4], 2.0, 0.03, 0.1)
    sc.decide(20.0, [1.9, 0.4], 2.0, 0.03, 0.1)
    assert sc.decide(40.0, [0.4, 0.4], 2.0, 0.03, 0.1) == 2


def test_never_below_min() -> None:
    sc = ReplicaScaler(2, 3, ScalingPolicy(down_window_s=1.0, cooldown_s=0.0))
    for t in range(10):
        assert sc.decide(float(t), [0.2, 0.2], 2.0, 0.01, 0.1) == 2


def test_redistribute() -> None:
    assert redistribute_cores([2.0], 2, 0.2, 2.0) == [2.0, 2.0]
    assert redistribute_cores([0.6, 0.6], 1, 0.2, 2.0) == [1.2]
    assert redistribute_cores([2.0, 2.0], 1, 0.2, 2.0) == [2.0]


def test_round_trip() -> None:
    sc = ReplicaScaler(1, 3)
    sc.decide(0.0, [2.0], 2.0, 0.5, 0.1)
    assert ReplicaScaler.from_dict(sc.to_dict()) == sc
