"""What the law of a static or dynamic-allocation run may do: predict and report, nothing else."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from dynaspark.api import DeadlineJob
from dynaspark.observation import ExecutorCpu
from dynaspark.runner import Mode, law_for_mode
from dynaspark.simulation import SimStage, SimulatedSparkApp, profile_at_cores, run_closed_loop

REPO = Path(__file__).resolve().parents[3]
STAGES = [SimStage(0, 0, tasks=20, task_core_s=0.5, idle_before_s=2.0)]


@pytest.mark.parametrize("mode", ["control", "static", "dynamic"])
def test_only_a_controlled_run_plans_on_the_profile_and_caps_on_usage(mode: Mode) -> None:
    job = DeadlineJob.model_validate(yaml.safe_load((REPO / "examples" / "deadlinejob-pagerank.yaml").read_text()))
    job.spec.deadline = 9.0  # the stage takes about 7 s at coresMax: a few periods in, cores are high
    law = law_for_mode(job, 2.0, profile_at_cores(STAGES, 1.0), mode)
    app = SimulatedSparkApp(STAGES, seed=1)
    state, _ = run_closed_loop(app, law, law.initial_state(app.t_s), stop_after_steps=6, metered=False)
    # An executor that used little and was never throttled: a controlled run caps it; the
    # others' cores are fixed by the run, and their samples must not claim a cap.
    obs = replace(app.observe(), cpu={"0": ExecutorCpu(0.1, 0.0), "1": ExecutorCpu(0.1, 0.0)})
    _, decision = law.step(state, obs, app.t_s)
    assert bool(decision.usage_ceilings) == (mode == "control")
    assert (law.profile is not None) == (mode == "control")
