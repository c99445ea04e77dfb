"""Per-stage deadlines from the profile, or from task counts without one."""

from __future__ import annotations

import pytest

from dynaspark.planner import StageDeadlinePlanner
from dynaspark.profile import ApplicationProfile, StageProfile


def _profile() -> ApplicationProfile:
    return ApplicationProfile(
        nominal_cores=2.0,
        stages=(
            StageProfile(0, "a", tasks=10, input_records=0, duration_s=10.0),
            StageProfile(1, "b", tasks=10, input_records=0, duration_s=20.0, idle_before_s=2.0),
            StageProfile(2, "c", tasks=10, input_records=0, duration_s=10.0),
        ),
        tail_s=1.0,
    )


def test_application_deadline_is_alpha_times_deadline_after_start() -> None:
    assert StageDeadlinePlanner(alpha=0.9).application_deadline_s(100.0, 50.0) == pytest.approx(145.0)


def test_first_stage_gets_its_weighted_share_of_the_time_left() -> None:
    planner = StageDeadlinePlanner(alpha=1.0, beta=0.33, profile=_profile())
    plan = planner.plan_stage(0, 10, [], now_s=0.0, app_deadline_s=63.0)
    # w1 = 2 stages after; w2 = (20 + 10) / 10 = 3; idle after = 2 + tail 1.
    weight = 0.33 * 2 + 0.67 * 3
    assert plan.on_profile
    assert plan.weight == pytest.approx(weight)
    assert plan.duration_s == pytest.approx((63.0 - 3.0) / (weight + 1))


def test_pure_duration_weighting_splits_time_in_proportion_to_the_profile() -> None:
    planner = StageDeadlinePlanner(alpha=1.0, beta=0.0, profile=_profile())
    plan = planner.plan_stage(1, 10, [], now_s=20.0, app_deadline_s=80.0)
    # 60 s left, 1 s tail: stage b gets 20/(20+10) of 59 s.
    assert plan.duration_s == pytest.approx(59.0 * 20.0 / 30.0)
    assert plan.deadline_at_s == pytest.approx(20.0 + 59.0 * 20.0 / 30.0)


def test_without_profile_plans_on_tasks_and_says_so() -> None:
    planner = StageDeadlinePlanner(alpha=1.0, beta=0.0, profile=None, unprofiled_horizon=0.5)
    plan = planner.plan_stage(0, 10, [30], now_s=0.0, app_deadline_s=80.0)
    assert not plan.on_profile
    assert plan.duration_s == pytest.approx(40.0 * 10 / 40)


def test_a_stage_the_profile_lacks_is_planned_on_tasks() -> None:
    plan = StageDeadlinePlanner(profile=_profile()).plan_stage(7, 5, [], now_s=0.0, app_deadline_s=10.0)
    assert not plan.on_profile


def test_a_stage_is_never_planned_shorter_than_one_second() -> None:
    plan = StageDeadlinePlanner(profile=_profile()).plan_stage(0, 10, [], now_s=100.0, app_deadline_s=50.0)
    assert plan.duration_s == pytest.approx(1.0)


@pytest.mark.parametrize(("alpha", "beta"), [(0.0, 0.3), (1.2, 0.3), (0.9, -0.1), (0.9, 1.5)])
def test_constants_out_of_range_are_refused(alpha: float, beta: float) -> None:
    with pytest.raises(ValueError, match="must be in"):
        StageDeadlinePlanner(alpha=alpha, beta=beta)


def test_latency_of_later_stages_is_reserved_and_not_stretched() -> None:
    # Stage b is mostly round trips: 4 s of its 5 s take as long on any cores.
    profile = ApplicationProfile(
        nominal_cores=2.0,
        stages=(
            StageProfile(0, "a", tasks=10, input_records=0, duration_s=10.0, latency_s=1.0),
            StageProfile(1, "b", tasks=10, input_records=0, duration_s=5.0, latency_s=4.0),
        ),
        tail_s=1.0,
    )
    planner = StageDeadlinePlanner(alpha=1.0, beta=0.1, profile=profile)
    plan = planner.plan_stage(0, 10, [], now_s=0.0, app_deadline_s=30.0)
    # Only the scalable parts share the stretch: 30 - tail 1 - latencies (4 + 1) = 24 s for
    # 9 s and 1 s of work; b counts as 1/5 of a stage.
    weight = 0.1 * (1.0 / 5.0) + 0.9 * (1.0 / 9.0)
    assert plan.weight == pytest.approx(weight)
    assert plan.duration_s == pytest.approx(1.0 + 24.0 / (weight + 1.0))
    # Without the latency profiled, stage a would be given much less of the time.
    flat = StageDeadlinePlanner(alpha=1.0, beta=0.1, profile=_without_latency(profile))
    assert flat.plan_stage(0, 10, [], now_s=0.0, app_deadline_s=30.0).duration_s < plan.duration_s - 3.0


def _without_latency(profile: ApplicationProfile) -> ApplicationProfile:
    stages = tuple(StageProfile(s.stage_id, s.name, s.tasks, s.input_records, s.duration_s) for s in profile.stages)
    return ApplicationProfile(nominal_cores=profile.nominal_cores, stages=stages, tail_s=profile.tail_s)
