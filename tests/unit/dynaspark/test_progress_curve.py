"""Each stage's progress curve: recorded from when its tasks ended, and followed by the set point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynaspark.event_log import read_completed_stages
from dynaspark.feasibility import completion_at_cores_from_profile
from dynaspark.law import DeadlineControlLaw, LawConfig
from dynaspark.observation import ProgressObservation, StageObservation
from dynaspark.profile import ApplicationProfile, StageProfile
from dynaspark.profiler import ProfileRecorder
from dynaspark.regulator import RegulatorGains


def _stage(**kw: object) -> StageObservation:
    base: dict[str, object] = {"stage_id": 0, "name": "map", "status": "COMPLETE", "num_tasks": 4}
    base.update(kw)
    base.setdefault("completed_tasks", base["num_tasks"])
    return StageObservation(**base)  # type: ignore[arg-type]


def _record(recorder: ProfileRecorder, t: float, stage: StageObservation) -> None:
    recorder.record(t, ProgressObservation(stages=(stage,), executor_ids=("0", "1")), 2.0)


def _recorder() -> ProfileRecorder:
    return ProfileRecorder(start_s=0.0, nominal_cores=2.0, task_slots=2, executor_slots=1)


def test_the_curve_runs_through_the_finish_times_of_the_stage_s_tasks() -> None:
    recorder = _recorder()
    _record(recorder, 1.0, _stage(status="ACTIVE", completed_tasks=0, submission_time_s=0.0))
    # A 10 s stage whose first tasks warmed up their workers: nothing ends before 6 s.
    recorder.complete(
        [_stage(submission_time_s=0.0, completion_time_s=10.0, task_finish_times_s=(6.0, 7.0, 8.0, 10.0))]
    )
    profile = recorder.profile(10.0)
    assert profile is not None
    curve = profile.stages[0].progress_curve
    assert len(curve) == 9
    assert curve[0] == pytest.approx(0.25 * 1.0 / 6.0)  # rising evenly towards the first task's end
    assert curve[5] == pytest.approx(0.25)
    assert curve[6:] == pytest.approx((0.5, 0.75, 0.875))


def test_without_finish_times_the_curve_comes_from_the_tasks_done_in_each_sample() -> None:
    recorder = _recorder()
    for t, done in ((0.5, 0), (2.5, 0), (4.5, 1), (6.5, 2), (8.5, 3)):
        _record(recorder, t, _stage(status="ACTIVE", completed_tasks=done, submission_time_s=0.5))
    _record(recorder, 10.5, _stage(submission_time_s=0.5, completion_time_s=10.5))
    curve = recorder.profile(10.5).stages[0].progress_curve  # type: ignore[union-attr]
    assert curve[1] == pytest.approx(0.0)  # 2 s in, nothing done
    assert curve[3] == pytest.approx(0.25)  # 4 s in, a task done
    assert curve[7] == pytest.approx(0.75)


def test_a_stage_seen_in_too_few_samples_or_of_one_task_keeps_an_even_pace() -> None:
    recorder = _recorder()
    _record(recorder, 1.0, _stage(status="ACTIVE", completed_tasks=1, submission_time_s=0.5))
    _record(recorder, 2.0, _stage(submission_time_s=0.5, completion_time_s=2.0))
    assert recorder.profile(2.0).stages[0].progress_curve == ()  # type: ignore[union-attr]
    single = _recorder()
    single.complete([_stage(num_tasks=1, submission_time_s=0.0, completion_time_s=5.0, task_finish_times_s=(4.0,))])
    assert single.profile(5.0).stages[0].progress_curve == ()  # type: ignore[union-attr]


def test_the_event_log_gives_each_successful_task_s_finish_time(tmp_path: Path) -> None:
    def task_end(finish_ms: int, reason: str = "Success") -> dict[str, object]:
        return {
            "Event": "SparkListenerTaskEnd",
            "Stage ID": 0,
            "Stage Attempt ID": 0,
            "Task End Reason": {"Reason": reason},
            "Task Info": {"Executor ID": "0", "Finish Time": finish_ms, "Failed": reason != "Success"},
            "Task Metrics": {"Executor Run Time": 100},
        }

    completed = {
        "Event": "SparkListenerStageCompleted",
        "Stage Info": {
            "Stage ID": 0,
            "Stage Attempt ID": 0,
            "Number of Tasks": 2,
            "Submission Time": 1000,
            "Completion Time": 5000,
        },
    }
    folder = tmp_path / "events"
    folder.mkdir()
    events = [task_end(4000), task_end(2000, reason="ExceptionFailure"), task_end(3000), completed]
    (folder / "app-1").write_text("\n".join(json.dumps(e) for e in events), encoding="utf-8")
    (stage,) = read_completed_stages(folder)
    assert stage.task_finish_times_s == pytest.approx((3.0, 4.0))


def test_the_profile_s_curve_is_kept_rising_within_0_and_1_and_read_back(tmp_path: Path) -> None:
    stage = StageProfile(0, "s", 4, 0, 10.0, progress_curve=(-0.1, 0.3, 0.2, 1.4))
    assert stage.progress_curve == (0.0, 0.3, 0.3, 1.0)
    profile = ApplicationProfile(nominal_cores=2.0, stages=(stage,))
    assert ApplicationProfile.load(profile.save(tmp_path / "p.json")) == profile


def test_planned_progress_follows_the_curve_and_is_the_time_share_without_one() -> None:
    curved = StageProfile(0, "s", 4, 0, 10.0, progress_curve=(0.0, 0.0, 0.0, 0.0, 0.2, 0.4, 0.6, 0.8, 0.9))
    assert curved.planned_progress(0.3) == 0.0
    assert curved.planned_progress(0.55) == pytest.approx(0.3)
    assert curved.planned_progress(0.95) == pytest.approx(0.95)
    assert curved.planned_progress(1.5) == 1.0
    even = StageProfile(0, "s", 4, 0, 10.0)
    assert even.planned_progress(0.37) == pytest.approx(0.37)


def test_a_profile_without_curves_is_read_with_even_paces_and_marked_for_replacement(tmp_path: Path) -> None:
    path = tmp_path / "v2.json"
    stages = [{"stageId": 0, "tasks": 4, "durationSeconds": 5.0, "latencySeconds": 1.0}]
    path.write_text(json.dumps({"formatVersion": 2, "nominalCores": 2.0, "stages": stages}))
    profile = ApplicationProfile.load(path)
    assert profile.outdated
    assert profile.stages[0].latency_s == 1.0
    assert profile.stages[0].planned_progress(0.5) == 0.5


def test_while_the_curve_says_the_first_tasks_warm_up_the_regulator_holds_its_feed_forward() -> None:
    # Profiled: nothing of the stage ends in its first 40%; then its tasks end at an even pace.
    warm = StageProfile(0, "map", 16, 0, 10.0, progress_curve=(0.0, 0.0, 0.0, 0.0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6))
    gains = RegulatorGains(gain=2.0, integral_time_s=12.0, cores_min=0.1, cores_max=1.0)
    config = LawConfig(deadline_s=40.0, instances=2, gains=gains)
    even = StageProfile(0, "map", 16, 0, 10.0)

    def cores_after(stage: StageProfile, steps: int) -> list[float]:
        law = DeadlineControlLaw(config, ApplicationProfile(nominal_cores=2.0, stages=(stage,)))
        state = law.initial_state(0.0)
        seen = []
        for t in range(steps):
            running = StageObservation(0, "map", "ACTIVE", 16, 0, {"0": 0, "1": 0}, submission_time_s=0.0)
            obs = ProgressObservation(
                stages=(running,), executor_ids=("0", "1"), active_tasks_by_executor={"0": 1, "1": 1}
            )
            state, decision = law.step(state, obs, float(t))
            seen.append(decision.cores["0"])
        return seen

    # The plan gives the stage about 38 s; its first 40% is 15 s with no task done.
    held = cores_after(warm, 12)
    assert max(held) == pytest.approx(held[0])
    assert held[0] < 0.5
    # An even ramp reads the same silence as falling behind and raises the cores.
    assert max(cores_after(even, 12)) >= held[0] + 0.3


# Nothing ends in the first half (Python workers starting), then the tasks end evenly.
WARMING = StageProfile(
    stage_id=0,
    name="map",
    tasks=16,
    input_records=0,
    duration_s=10.0,
    progress_curve=(0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.4, 0.6, 0.8),
)


def test_where_a_stage_is_along_its_curve_comes_from_its_tasks_done_and_the_time_it_has_run() -> None:
    # No task done: anywhere in the first half, by the time it has run; not beyond the point
    # where the curve expects the first task (1/16) to have ended.
    assert WARMING.time_fraction_done(0.0, tasks=16, elapsed_fraction=0.3) == pytest.approx(0.3)
    assert WARMING.time_fraction_done(0.0, tasks=16, elapsed_fraction=0.9) == pytest.approx(0.5 + 0.1 * 0.0625 / 0.2)
    # Half the tasks done: where the curve reaches a half, however long it has run.
    assert WARMING.time_fraction_done(0.5, tasks=16, elapsed_fraction=0.1) == pytest.approx(0.75)
    assert WARMING.time_fraction_done(1.0, tasks=16, elapsed_fraction=0.2) == 1.0
    # Without a curve, the share of tasks done, as before.
    even = StageProfile(stage_id=0, name="map", tasks=16, input_records=0, duration_s=10.0)
    assert even.time_fraction_done(0.25, tasks=16, elapsed_fraction=0.9) == 0.25


def test_the_earliest_completion_counts_a_warm_up_the_stage_has_already_run() -> None:
    profile = ApplicationProfile(nominal_cores=2.0, stages=(WARMING,))

    def predicted(elapsed_s: float) -> float:
        return completion_at_cores_from_profile(
            profile,
            now_s=100.0,
            current_stage_id=0,
            current_fraction_done=0.0,
            completed_stage_ids=(),
            total_cores=2.0,
            current_elapsed_s=elapsed_s,
            current_tasks=16,
        )

    assert predicted(0.0) == pytest.approx(110.0)
    # Four seconds into a warm-up of five with no task done is on the profiled pace.
    assert predicted(4.0) == pytest.approx(106.0)
