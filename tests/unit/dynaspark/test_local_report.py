"""What `mlscale run` shows and writes, without running Spark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynaspark import local, runner
from dynaspark.api import DeadlineJob
from dynaspark.law import DeadlineControlLaw, LawConfig
from dynaspark.loop import ControlSample
from dynaspark.regulator import RegulatorGains
from dynaspark.report_plot import plot_report
from dynaspark.runner import RunResult, RunSettings, core_seconds_of, report_of
from dynaspark.simulation import SimStage, SimulatedSparkApp
from mlscale.local import LocalRunOptions
from mlscale.report import write_report_json


def _job(app: str = "apps/job.py") -> DeadlineJob:
    return DeadlineJob.model_validate(
        {
            "apiVersion": "mlscale.dev/v1alpha1",
            "kind": "DeadlineJob",
            "metadata": {"name": "demo"},
            "spec": {
                "deadline": "60s",
                "application": {"mainApplicationFile": app, "arguments": ["--n", "5"]},
                "executors": {"instances": 2, "coresMin": "100m", "coresMax": "1"},
            },
        }
    )


def _sample(t: float, cores: dict[str, float]) -> ControlSample:
    return ControlSample(t, 0, 0.5, 0.4, 0.3, cores, cores, 50.0, at_risk=False, contended=False)


def test_application_path_is_relative_to_the_yaml(tmp_path: Path) -> None:
    assert local.resolve_application(_job(), tmp_path / "x.yaml") == (tmp_path / "apps" / "job.py").resolve()
    assert local.resolve_application(_job("local:///opt/app.py"), tmp_path / "x.yaml") == Path("/opt/app.py")


def test_progress_line_names_stage_cores_set_point_and_deadline() -> None:
    law = DeadlineControlLaw(
        LawConfig(deadline_s=60.0, instances=2, gains=RegulatorGains(gain=2.0, cores_min=0.1, cores_max=1.0))
    )
    app = SimulatedSparkApp([SimStage(0, 0, 10, 0.5, 0.0)])
    app.advance({"0": 1.0, "1": 1.0}, 2.0)
    _, decision = law.step(law.initial_state(0.0), app.observe(), 2.0)
    sample = ControlSample.of(decision, decision.cores, 2.0, 0.0)
    text = local.progress_text(sample, decision, 60.0)
    assert "stage 0" in text
    assert "SP" in text
    assert "0:" in text
    assert "1:" in text
    assert "deadline 60s" in text


def test_core_seconds_integrate_the_applied_cores() -> None:
    samples = [_sample(0.0, {"0": 1.0, "1": 1.0}), _sample(2.0, {"0": 0.5, "1": 0.25})]
    assert core_seconds_of(samples, 6.0) == pytest.approx(2 * 2.0 + 0.75 * 4.0)


def test_report_has_the_fields_users_read_and_a_plot(tmp_path: Path) -> None:
    samples = [_sample(float(t), {"0": 0.5, "1": 0.6}) for t in range(10)]
    result = RunResult(
        phase="Succeeded",
        deadline_s=60.0,
        completion_s=55.0,
        exit_code=0,
        core_seconds=core_seconds_of(samples, 55.0),
        max_core_seconds=2 * 1.0 * 55.0,
        cpu_seconds=20.0,
        samples=samples,
    )
    report = report_of(_job(), result, RunSettings())
    for key in (
        "kind",
        "name",
        "phase",
        "deadline_s",
        "completion_s",
        "deadline_met",
        "core_seconds",
        "max_core_seconds",
    ):
        assert key in report
    assert report["deadline_met"] is True
    assert report["max_core_seconds"] == pytest.approx(110.0)
    assert report["samples"][3]["cores"] == {"0": 0.5, "1": 0.6}
    path = write_report_json(tmp_path, report)
    assert json.loads(path.read_text())["kind"] == "DeadlineJob"
    png = plot_report(report, tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refuses_clearly_without_cgroups_unless_uncontrolled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "job.py").write_text("print('hi')\n")
    monkeypatch.setattr(local, "cgroup_unavailable_reason", lambda: "cannot limit CPU with cgroups: not root")
    code = local.run_local(_job(), LocalRunOptions(report_dir=tmp_path / "r", source=tmp_path / "job.yaml"))
    assert code == local.EXIT_CANNOT_RUN
    err = capsys.readouterr().err
    assert "not root" in err
    assert "--uncontrolled" in err
    assert not (tmp_path / "r" / "report.json").exists()


def test_a_missing_application_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = local.run_local(_job(), LocalRunOptions(report_dir=tmp_path / "r", source=tmp_path / "job.yaml"))
    assert code == local.EXIT_CANNOT_RUN
    assert "job.py does not exist" in capsys.readouterr().err


def test_a_folder_named_as_the_application_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "apps" / "job.py").mkdir(parents=True)
    code = local.run_local(_job(), LocalRunOptions(report_dir=tmp_path / "r", source=tmp_path / "job.yaml"))
    assert code == local.EXIT_CANNOT_RUN
    assert "job.py is a folder, not a file (spec.application.mainApplicationFile)" in capsys.readouterr().err


def test_a_run_whose_driver_never_answered_says_it_was_not_controlled() -> None:
    def result(application_id: str | None) -> RunResult:
        return RunResult("Succeeded", 60.0, 30.0, 0, 0.0, 60.0, 0.0, [], application_id=application_id)

    unobserved = runner.run_messages(result(None), None, RunSettings(mode="static"))
    assert any(m.startswith("Unobserved:") and "REST API" in m for m in unobserved), unobserved
    observed = runner.run_messages(result("app-1"), None, RunSettings(mode="static"))
    assert not any(m.startswith("Unobserved:") for m in observed)
    # Asked to run without cgroups, nothing is controlled anyway: no alarm.
    uncontrolled = runner.run_messages(result(None), None, RunSettings(mode="static", uncontrolled=True))
    assert not any(m.startswith("Unobserved:") for m in uncontrolled)


def test_a_local_run_says_which_pod_templates_it_ignored() -> None:
    assert runner.cluster_only_messages(_job()) == []

    def with_templates(**templates: dict[str, object]) -> DeadlineJob:
        data = {
            "apiVersion": "mlscale.dev/v1alpha1",
            "kind": "DeadlineJob",
            "metadata": {"name": "demo"},
            "spec": {
                "deadline": "60s",
                "application": {"mainApplicationFile": "apps/job.py"},
                "executors": {"instances": 2, "coresMax": "1", "template": templates.get("executors")},
                "driver": {"template": templates.get("driver")},
            },
        }
        return DeadlineJob.model_validate(data)

    (message,) = runner.cluster_only_messages(with_templates(executors={"spec": {"nodeSelector": {"pool": "spark"}}}))
    assert message.startswith("ClusterOnly:")
    assert "spec.executors.template" in message
    assert "spec.driver.template" not in message
    both = with_templates(executors={"spec": {}}, driver={"metadata": {"labels": {"team": "ml"}}})
    (message,) = runner.cluster_only_messages(both)
    assert "spec.driver.template and spec.executors.template" in message
