"""``mlscale run deadlinejob.yaml``: run a DeadlineJob on this machine and report.

Starts a Spark standalone master and worker on 127.0.0.1, submits the application, puts each
executor in its own cgroup and regulates its CPU quota every period, shows one live line,
and writes ``report.json`` and ``report.png``. Exit status 0 when the deadline was met.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from dynaspark.api import DeadlineJob
from dynaspark.law import Decision
from dynaspark.loop import ControlSample
from dynaspark.report_plot import plot_report
from dynaspark.runner import RunSettings, report_of, run_deadline_job
from mlscale.cgroups import CgroupUnavailableError, cgroup_unavailable_reason
from mlscale.local import LocalRunOptions
from mlscale.progress import LiveLine
from mlscale.report import write_report_json

log = logging.getLogger(__name__)

EXIT_DEADLINE_MISSED = 1
EXIT_CANNOT_RUN = 2


def resolve_application(job: DeadlineJob, source: Path | None) -> Path:
    """Resolve ``mainApplicationFile`` (``local://`` and ``file://`` accepted) against the YAML's folder."""
    name = job.spec.application.main_application_file
    for scheme in ("local://", "file://"):
        name = name.removeprefix(scheme)
    path = Path(name)
    if not path.is_absolute() and source is not None:
        path = source.resolve().parent / path
    return path.resolve()


def progress_text(sample: ControlSample, decision: Decision, deadline_s: float) -> str:
    """The live line of one period."""
    cores = " ".join(f"{e}:{c:.2f}" for e, c in sorted(sample.cores.items())) or "-"
    if sample.stage_id is None:
        stage = "between stages"
    else:
        stage = f"stage {sample.stage_id} {100 * (sample.progress or 0):3.0f}%"
        stage += f" (SP {100 * (sample.set_point or 0):3.0f}%)"
    earliest = "?" if sample.predicted_completion_s is None else f"{sample.predicted_completion_s:.0f}s"
    flags = " AT RISK" if decision.at_risk else ""
    flags += " contended" if decision.contended else ""
    return (
        f"t {sample.t_s:5.1f}s | {stage} | app {100 * sample.app_progress:3.0f}% | cores {cores} | "
        f"earliest {earliest} / deadline {deadline_s:.0f}s{flags}"
    )


def run_local(job: DeadlineJob, options: LocalRunOptions) -> int:
    """Run the DeadlineJob here; return 0 when its deadline was met.

    Args:
        job: The validated resource.
        options: Report folder, ``uncontrolled``, ``quiet``, the YAML's path.

    Returns:
        0 when the deadline was met, 1 when it was missed or the application failed, 2 when
        it could not run (no cgroups, missing application file).
    """
    line = LiveLine(enabled=not options.quiet)
    app_file = resolve_application(job, options.source)
    if not app_file.is_file():
        what = "is a folder, not a file" if app_file.is_dir() else "does not exist"
        line.done(f"error: application file {app_file} {what} (spec.application.mainApplicationFile)")
        return EXIT_CANNOT_RUN
    if job.spec.application.type != "Python":
        line.done("error: locally only Python applications run (spec.application.type: Python)")
        return EXIT_CANNOT_RUN
    reason = cgroup_unavailable_reason()
    if reason is not None and not options.uncontrolled:
        line.done(
            f"error: {reason}.\n"
            "mlscale limits each executor's CPU through cgroups, as the kubelet does for a pod. "
            "Run as root on a machine with writable cgroups, or pass --uncontrolled to run "
            "without CPU limits (no vertical control; the report still measures the deadline)."
        )
        return EXIT_CANNOT_RUN
    settings = RunSettings(uncontrolled=options.uncontrolled or reason is not None)
    deadline_s = job.spec.deadline

    def show(sample: ControlSample, decision: Decision) -> None:
        line.update(progress_text(sample, decision, deadline_s))

    try:
        result = run_deadline_job(job, app_file, options.report_dir, settings, on_sample=show)
    except CgroupUnavailableError as exc:
        line.done(f"error: {exc}")
        return EXIT_CANNOT_RUN
    report = report_of(job, result, settings)
    json_path = write_report_json(options.report_dir, report)
    png_path = plot_report(report, options.report_dir / "report.png")
    verdict = "met" if result.deadline_met else ("MISSED" if result.phase == "DeadlineMissed" else "FAILED")
    summary = (
        f"{job.kind} {job.metadata.name}: {result.phase} — completed in {result.completion_s:.1f} s, "
        f"deadline {deadline_s:.0f} s {verdict}; {result.core_seconds:.0f} core-s "
        f"({100 * result.core_seconds / max(result.max_core_seconds, 1e-9):.0f}% of static coresMax)"
    )
    for message in result.messages:
        summary += f"\n  {message}"
    if result.profile_cached:
        summary += f"\n  stage profile recorded for later runs: {result.profile_cached}"
    elif result.profile_used:
        summary += f"\n  planned with stage profile {result.profile_used}"
    if result.phase == "Failed":
        summary += f"\n  the application failed (exit {result.exit_code}); see {options.report_dir / 'spark.log'}"
    summary += f"\n  report: {json_path} {png_path}"
    line.done(summary)
    sys.stderr.flush()
    return 0 if result.deadline_met else EXIT_DEADLINE_MISSED
