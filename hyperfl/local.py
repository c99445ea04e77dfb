"""``mlscale run`` for a FederatedTraining: the TFF federation on this machine, one line per round.

Clients are simulated inside one TFF process, or served by client worker processes over HTTP
when ``workers`` is given in the run's extra options. The status after every round is written
to ``status.json`` in the report folder; running the same file again with the same report
folder resumes an interrupted run from its last checkpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from hyperfl.api import FederatedTraining, FederatedTrainingStatus, RoundRecord
from hyperfl.federation import FederationConfig
from hyperfl.local_report import build_report, plot_report
from hyperfl.loop import RoundReport, run_rounds
from hyperfl.trainer_process import TrainerError, TrainerProcess
from hyperfl.worker_pool import WorkerPool
from mlscale.builders import builder_problem
from mlscale.local import LocalRunOptions
from mlscale.report import write_report_json

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"
HISTORY_FILE = "history.jsonl"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _import_paths(options: LocalRunOptions) -> list[str]:
    """Where the model builder's module may live: the working folder and the example's repository."""
    paths = [str(Path.cwd())]
    if options.source is not None:
        folder = options.source.resolve().parent
        paths += [str(folder), str(folder.parent)]
    return paths


def load_interrupted(report_dir: Path, job: FederatedTraining) -> tuple[FederatedTrainingStatus, list[RoundRecord]]:
    """The status and full history of an interrupted run of ``job`` in ``report_dir`` (fresh ones otherwise)."""
    path = report_dir / STATUS_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        status = FederatedTrainingStatus.model_validate(stored.get("status", {}))
        if stored.get("name") == job.metadata.name and status.phase == "Running" and status.round > 0:
            history_path = report_dir / HISTORY_FILE
            lines = history_path.read_text().splitlines() if history_path.exists() else []
            records = [RoundRecord.model_validate_json(line) for line in lines]
            return status, [r for r in records if r.round <= status.round]
    return FederatedTrainingStatus(), []


def _save(
    report_dir: Path, job: FederatedTraining, status: FederatedTrainingStatus, history: list[RoundRecord]
) -> None:
    payload = {"name": job.metadata.name, "status": status.model_dump(mode="json", by_alias=True)}
    tmp = report_dir / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(report_dir / STATUS_FILE)
    (report_dir / HISTORY_FILE).write_text("".join(r.model_dump_json() + "\n" for r in history))


def format_round(report: RoundReport, target: float, rounds_max: int) -> str:
    """One line per round: round, clients, epochs, accuracy vs target, predicted rounds to target."""
    status = report.status
    predicted = status.predicted_rounds_to_target
    dropped = f" ({len(report.dropped)} dropped)" if report.dropped else ""
    mark = ">=" if report.result.accuracy >= target else "< "
    return (
        f"round {report.plan.round:3d}/{rounds_max}  clients {len(report.result.answered):2d}{dropped}  "
        f"epochs {report.plan.epochs}  accuracy {report.result.accuracy:.4f} {mark} {target:g}  "
        f"predicted rounds to target {predicted if predicted is not None else '?'}  "
        f"[{report.plan.reason}] {report.result.seconds:.2f}s"
    )


def run_local(job: FederatedTraining, options: LocalRunOptions) -> int:
    """Run ``job`` on this machine until the target or the budget; write the report.

    Args:
        job: The FederatedTraining.
        options: Report folder, quiet flag, and ``extra["workers"]`` (client worker processes;
            0 or absent simulates the clients in the TFF process).

    Returns:
        0 when the target was reached, 1 when the budget ran out, 2 on failure.
    """
    spec = job.spec
    report_dir = options.report_dir
    if problem := builder_problem(spec.model.builder, _import_paths(options)):
        print(f"{job.metadata.name}: cannot run: spec.model.builder: {problem}", file=sys.stderr)
        return 2
    report_dir.mkdir(parents=True, exist_ok=True)
    workers = int(options.extra.get("workers", "0"))
    status, history = load_interrupted(report_dir, job)
    if status.round:
        print(f"resuming {job.metadata.name} after round {status.round} from {status.checkpoint}", flush=True)
    config = FederationConfig.from_spec(spec, str(report_dir / "checkpoints"), python_path=_import_paths(options))
    t0 = time.monotonic()

    def on_round(report: RoundReport) -> None:
        history.append(report.status.history[-1])
        _save(report_dir, job, report.status, history)
        if not options.quiet:
            print(format_round(report, spec.target.value, spec.rounds.max), flush=True)

    try:
        with ExitStack() as stack:
            if workers > 0:
                pool = stack.enter_context(WorkerPool(config, workers, report_dir / "logs"))
                config = FederationConfig.from_spec(
                    spec, config.checkpoint_dir, workers=pool.urls, python_path=config.python_path
                )
            trainer = stack.enter_context(TrainerProcess(config, report_dir / "logs" / "trainer.log"))
            status = run_rounds(spec, status, trainer, now=_now, on_round=on_round)
    except (TrainerError, RuntimeError, ValueError) as exc:
        print(f"{job.metadata.name}: failed: {exc}", file=sys.stderr)
        status = status.model_copy(update={"phase": "Failed"})
    except (KeyboardInterrupt, SystemExit):
        # Interrupted: the rounds done are checkpointed, and the same command resumes after them.
        print(
            f"\n{job.metadata.name}: {len(history)} rounds kept in {report_dir}; the same command with "
            f"--report {report_dir} resumes after them",
            file=sys.stderr,
        )
        raise
    _save(report_dir, job, status, history)
    report = build_report(job, status, history, time.monotonic() - t0)
    write_report_json(report_dir, report)
    if history:
        plot_report(report, report_dir / "report.png")
    print(
        f"{job.metadata.name}: {status.phase} after {status.round} rounds, accuracy "
        f"{status.accuracy if status.accuracy is not None else float('nan'):.4f} (target {spec.target.value:g}), "
        f"{status.client_epochs} client-epochs, report in {report_dir}",
        flush=True,
    )
    return {"TargetReached": 0, "BudgetExhausted": 1}.get(status.phase, 2)
