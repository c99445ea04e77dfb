"""`mlscale run` of a DeadlineJob end to end: real Spark standalone, real cgroup quotas."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynaspark.api import DeadlineJob
from dynaspark.local import run_local
from dynaspark.processes import executor_processes
from dynaspark.profile import ApplicationProfile
from mlscale.cgroups import cgroup_unavailable_reason
from mlscale.local import LocalRunOptions

REPO = Path(__file__).resolve().parents[3]
APP = REPO / "examples" / "dynaspark" / "aggregate_by_key.py"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17+"),
    pytest.mark.skipif(cgroup_unavailable_reason() is not None, reason=str(cgroup_unavailable_reason())),
]


def _job_file(tmp_path: Path) -> Path:
    document = {
        "apiVersion": "mlscale.dev/v1alpha1",
        "kind": "DeadlineJob",
        "metadata": {"name": "agg-small"},
        "spec": {
            "deadline": "150s",
            "application": {
                "mainApplicationFile": str(APP),
                "arguments": ["--records", "200000", "--keys", "200", "--partitions", "8"],
            },
            "executors": {"instances": 2, "coresMin": "100m", "coresMax": "1", "memory": "512Mi"},
            "control": {"gain": 2},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _run(path: Path, report_dir: Path) -> tuple[int, dict[str, Any]]:
    job = DeadlineJob.model_validate(yaml.safe_load(path.read_text()))
    code = run_local(job, LocalRunOptions(report_dir=report_dir, quiet=True, source=path))
    return code, json.loads((report_dir / "report.json").read_text())


def test_job_meets_its_deadline_under_cgroup_quotas_and_profiles_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSCALE_CACHE_DIR", str(tmp_path / "cache"))
    path = _job_file(tmp_path)

    code, report = _run(path, tmp_path / "first")
    assert code == 0, report.get("conditions")
    assert report["kind"] == "DeadlineJob"
    assert report["name"] == "agg-small"
    assert report["phase"] == "Succeeded"
    assert report["deadline_met"] is True
    assert 0 < report["completion_s"] <= report["deadline_s"] == 150.0
    assert 0 < report["core_seconds"] <= report["max_core_seconds"]
    samples = report["samples"]
    assert isinstance(samples, list)
    assert len(samples) >= 5
    assert any(set(s["cores"]) == {"0", "1"} for s in samples)
    # The quotas were written to the kernel and read back from it, within [coresMin, coresMax].
    quotas = report["cgroup_quotas"]
    assert isinstance(quotas, dict)
    assert set(quotas) == {"0", "1"}
    assert all(0.1 - 1e-9 <= q <= 1.0 + 1e-9 for q in quotas.values())
    assert report["quota_writes"] >= 2
    assert report["cpu_seconds"] > 0
    # Each period reports the CPU every executor really used, read from its cgroup: within the
    # quota it had over that period (plus the kernel's burst slack), and in sum the run's CPU.
    used = [(before["cores"], after["used_cores"]) for before, after in itertools.pairwise(samples)]
    measured = [(cores, u) for cores, u in used if u]
    # From the second period an executor sits in its cgroup on, every period is measured.
    first = next(i for i, (_, u) in enumerate(used) if u)
    assert len(measured) >= 3
    assert len(measured) >= 0.8 * len(used[first:])
    assert all(set(u) <= set(cores) for cores, u in measured)
    assert all(u[e] <= cores[e] * 1.3 + 0.1 for cores, u in measured for e in u)
    assert sum(sum(u.values()) for _, u in measured) > 0.3 * report["cpu_seconds"]
    assert (tmp_path / "first" / "report.png").stat().st_size > 0
    first_profile = report["profile_cached"]
    assert first_profile is not None
    assert Path(str(first_profile)).exists()
    # The driver's event log gave the final word on both stages, the short last one included
    # (it can start and end between two samples), and the driver's stop after it is the tail.
    profile = ApplicationProfile.load(Path(str(first_profile)))
    assert [s.stage_id for s in profile.stages] == [0, 1]
    assert all(0.0 <= s.latency_s <= s.duration_s for s in profile.stages)
    assert any(s.latency_s > 0.0 for s in profile.stages)
    assert profile.tail_s > 0.2
    assert profile.total_duration_s <= report["completion_s"] + 0.5
    # Every task's end is in the event log: each stage of several tasks has its progress curve.
    curves = [s.progress_curve for s in profile.stages if s.tasks > 1]
    assert curves
    assert all(len(c) == 9 and list(c) == sorted(c) for c in curves)
    assert any("ProfileMissing" in c for c in report["conditions"])
    # Nothing of the run is left: no executor JVM, no cgroup.
    assert report["application_id"]
    assert executor_processes(str(report["application_id"])) == []
    assert report["cgroup_paths"]
    assert not any(Path(p).exists() for p in report["cgroup_paths"])

    # A profile an older version wrote (no latencies, no curves) is planned with, then replaced.
    old = json.loads(Path(str(first_profile)).read_text())
    old["formatVersion"] = 1
    for stage in old["stages"]:
        del stage["latencySeconds"]
        del stage["progressCurve"]
    Path(str(first_profile)).write_text(json.dumps(old))

    code, report = _run(path, tmp_path / "second")
    assert report["phase"] in ("Succeeded", "DeadlineMissed")
    assert report["profile_used"] == first_profile
    assert not any("ProfileMissing" in c for c in report["conditions"])
    assert code == 0
    assert report["profile_cached"] == first_profile
    replaced = ApplicationProfile.load(Path(str(first_profile)))
    assert not replaced.outdated
    assert any(s.progress_curve for s in replaced.stages)


def _spark_jvms() -> set[int]:
    """Pids of the Spark JVMs running now (master, worker, driver, executors)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"org.apache.spark" in cmdline:
            pids.add(int(entry.name))
    return pids


def _start_run(tmp_path: Path, report_dir: Path) -> subprocess.Popen[bytes]:
    """``mlscale run`` in a child, its temporary folders under ``tmp_path/tmp``, Ctrl-C as in a terminal."""
    (tmp_path / "tmp").mkdir()
    command = [sys.executable, "-c", _CTRL_C_AS_IN_A_TERMINAL, "run", str(_job_file(tmp_path))]
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        return subprocess.Popen(
            [*command, "--report", str(report_dir), "--quiet"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
        )


# A shell's background job ignores SIGINT, and a Python started so keeps it ignored: restore it.
_CTRL_C_AS_IN_A_TERMINAL = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from mlscale.cli import main; sys.argv[0] = 'mlscale'; raise SystemExit(main(sys.argv[1:]))"
)


def _nothing_left(tmp_path: Path, before: set[int]) -> None:
    """No Spark JVM the run started is running, and its Spark folders are gone."""
    left = _spark_jvms() - before
    waited = time.monotonic() + 15
    while left and time.monotonic() < waited:
        time.sleep(0.5)
        left = _spark_jvms() - before
    assert not left, f"Spark JVMs left running: {sorted(left)}"
    assert not list((tmp_path / "tmp").glob("mlscale-spark-*")), "the run's Spark folder was left"


def test_ctrl_c_while_the_cluster_starts_stops_the_daemons_already_started(tmp_path: Path) -> None:
    before = _spark_jvms()
    report_dir = tmp_path / "report"
    run = _start_run(tmp_path, report_dir)
    try:
        # The moment the master has a pid (its JVM launched) the worker is still to come.
        waited = time.monotonic() + 120
        while time.monotonic() < waited and not list((tmp_path / "tmp").glob("mlscale-spark-*/pids/*Master*.pid")):
            time.sleep(0.05)
        assert _spark_jvms() - before, "the master did not start within 120 s"
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) == 130
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "DeadlineJob agg-small: interrupted (Ctrl-C); the processes it started were stopped." in stderr
    assert f"No report was written; its logs so far are in {report_dir}" in stderr
    assert "Traceback" not in stderr
    _nothing_left(tmp_path, before)


def test_sigterm_stops_everything_the_run_started(tmp_path: Path) -> None:
    before = _spark_jvms()
    report_dir = tmp_path / "report"
    run = _start_run(tmp_path, report_dir)
    try:
        # Bounded wait until the application is submitted: the cluster is up and the driver starts.
        waited = time.monotonic() + 120
        while time.monotonic() < waited and not (report_dir / "spark.log").exists():
            time.sleep(0.5)
        assert (report_dir / "spark.log").exists(), "the application was not submitted within 120 s"
        time.sleep(3)
        assert _spark_jvms() - before, "no Spark JVM running"
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 128 + signal.SIGTERM, (tmp_path / "stderr.txt").read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "DeadlineJob agg-small: stopped (SIGTERM)" in (tmp_path / "stderr.txt").read_text()
    # What it started is gone with it (the worker's executors stop with the worker, within seconds).
    _nothing_left(tmp_path, before)
