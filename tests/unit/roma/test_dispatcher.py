"""GpuDispatcher: ROMA's need rule."""

from __future__ import annotations

import pytest

from roma.dispatcher import GpuDispatcher, ModelQueueView, need_s


def test_need_zero_below_band_then_linear() -> None:
    assert need_s(0.05, 0.1, 0.2) == 0.0
    assert need_s(0.08, 0.1, 0.2) == pytest.approx(0.0)
    assert need_s(0.09, 0.1, 0.2) == pytest.approx(0.01)
    assert need_s(0.15, 0.1, 0.2) == pytest.approx(0.07)


def test_gpu_serves_model_closest_to_violating() -> None:
    d = GpuDispatcher(alpha=0.2, default_service_s=0.01)
    views = [
        ModelQueueView("big-queue", 20, 0.02, 1.0),  # long queue, far from its 1 s SLA
        ModelQueueView("urgent", 2, 0.09, 0.1),  # short queue, about to break 100 ms
    ]
    assert d.choose(views) == "urgent"


def test_longest_queue_when_no_need() -> None:
    d = GpuDispatcher(alpha=0.2, default_service_s=0.001)
    views = [ModelQueueView("a", 3, 0.01, 1.0), ModelQueueView("b", 7, 0.01, 1.0)]
    assert d.choose(views) == "b"
    assert d.choose([ModelQueueView("a", 0, 0.0, 1.0)]) is None


def test_recent_response_times_raise_the_estimate() -> None:
    d = GpuDispatcher(alpha=0.2, blend=0.5, default_service_s=0.01)
    view = ModelQueueView("m", 1, 0.0, 0.1)
    before = d.estimate_rt_s(view)
    d.profile("m").observe_response(0.3)
    assert d.estimate_rt_s(view) > before
    assert d.needs([view])["m"] > 0


def test_round_trip() -> None:
    d = GpuDispatcher()
    d.profile("m").observe_service(0.02)
    assert GpuDispatcher.from_dict(d.to_dict()) == d
