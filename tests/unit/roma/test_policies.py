"""Baseline policies and the sensor's reading of the router's stats."""

from __future__ import annotations

import pytest

from roma.policies import HpaLikePolicy, RuleBasedPolicy, StaticPolicy
from roma.ports import LatencyObservation
from roma.sensor import observation_from_stats


def _obs(t_s: float, latency_s: float | None) -> LatencyObservation:
    return LatencyObservation(t_s, 10.0, latency_s)


def test_rule_based_steps_one_core_with_cooldown() -> None:
    rule = RuleBasedPolicy(0.1, 0.5, 3.0, replicas=1, cooldown_s=6.0)
    assert rule.decide(_obs(0.0, 0.01), []).cores == (2.0,)  # fast: -1 from the max
    assert rule.decide(_obs(2.0, 0.01), []).cores == (2.0,)  # cooling down
    assert rule.decide(_obs(8.0, 0.01), []).cores == (1.0,)
    assert rule.decide(_obs(16.0, 0.09), []).cores == (2.0,)  # above 0.8 SLO: +1
    assert rule.decide(_obs(24.0, 0.05), []).cores == (2.0,)  # in the dead band


def test_hpa_scales_by_utilisation_and_stabilises_down() -> None:
    hpa = HpaLikePolicy(cores=1.0, replicas_min=1, replicas_max=4, stabilisation_s=30.0)
    assert hpa.decide(_obs(0.0, None), [1.0]).replicas == 2  # 100 % / 70 % -> ceil(1.43)
    assert hpa.decide(_obs(2.0, None), [0.7, 0.7]).replicas == 2  # on target
    assert hpa.decide(_obs(4.0, None), [0.1, 0.1]).replicas == 2  # wants 1, held by the window
    assert hpa.decide(_obs(40.0, None), [0.1, 0.1]).replicas == 1


def test_static_never_moves() -> None:
    static = StaticPolicy(2, 1.5)
    assert static.decide(_obs(0.0, 5.0), [1.0, 1.0]).cores == (1.5, 1.5)


def test_observation_from_router_stats() -> None:
    stats = {
        "requests_per_second": 12.5,
        "latency_ms": 80.0,
        "requests_total": 100,
        "violations_total": 3,
        "queue_len": 2,
        "oldest_wait_ms": 150.0,
        "gpu_share": None,
        "replicas": {"a": {"latency_ms": 70.0}, "b": {"latency_ms": None}},
    }
    obs = observation_from_stats(stats, 4.0)
    assert obs.latency_s == pytest.approx(0.08)
    assert obs.replica_latency_s == {"a": pytest.approx(0.07), "b": None}
    assert obs.effective_latency_s() == pytest.approx(0.15)  # a backlog older than the percentile
