"""Stage profile: JSON round trip and the questions the planner asks of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynaspark.profile import ApplicationProfile, StageProfile


def _profile() -> ApplicationProfile:
    return ApplicationProfile(
        nominal_cores=2.0,
        stages=(
            StageProfile(stage_id=3, name="collect at app.py:9", tasks=8, input_records=800, duration_s=4.0),
            StageProfile(
                stage_id=0, name="map at app.py:5", tasks=16, input_records=1600, duration_s=6.0, idle_before_s=3.0
            ),
        ),
        tail_s=0.5,
        source="app.py 100",
    )


def test_save_then_load_gives_the_same_profile(tmp_path: Path) -> None:
    path = _profile().save(tmp_path / "deep" / "profile.json")
    assert ApplicationProfile.load(path) == _profile()
    assert json.loads(path.read_text())["stages"][0]["stageId"] == 0


def test_stages_are_ordered_by_id_and_found_by_id() -> None:
    profile = _profile()
    assert [s.stage_id for s in profile.stages] == [0, 3]
    third = profile.stage(3)
    assert third is not None
    assert third.tasks == 8
    assert profile.stage(1) is None
    assert [s.stage_id for s in profile.stages_after(0)] == [3]
    assert profile.total_duration_s == pytest.approx(6.0 + 3.0 + 4.0 + 0.5)


def test_a_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"formatVersion": 99, "nominalCores": 1, "stages": []}))
    with pytest.raises(ValueError, match="unsupported stage profile format"):
        ApplicationProfile.load(path)


def test_a_profile_of_the_format_without_latencies_is_read_and_marked_for_replacement(tmp_path: Path) -> None:
    fresh = ApplicationProfile.load(_profile().save(tmp_path / "new.json"))
    assert not fresh.outdated
    old = {
        "formatVersion": 1,
        "nominalCores": 2.0,
        "stages": [{"stageId": 0, "tasks": 4, "durationSeconds": 5.0, "idleBeforeSeconds": 1.0}],
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    profile = ApplicationProfile.load(path)
    assert profile.outdated
    stage = profile.stages[0]
    assert stage.latency_s == 0.0
    assert stage.scalable_s == pytest.approx(5.0)
    # Written again, it is in the current format.
    assert not ApplicationProfile.load(profile.save(tmp_path / "again.json")).outdated


def test_a_stage_latency_is_held_within_its_duration() -> None:
    stage = StageProfile(stage_id=0, name="s", tasks=1, input_records=0, duration_s=2.0, latency_s=5.0)
    assert stage.latency_s == 2.0
    assert stage.scalable_s == 0.0
    assert stage.duration_at_s(3.0) == pytest.approx(2.0)
