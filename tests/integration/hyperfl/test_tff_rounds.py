"""Real TFF federated rounds on digits: stop on target, resume from the checkpoint, HTTP client workers."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperfl.api import FederatedTrainingSpec, FederatedTrainingStatus
from hyperfl.federation import FederationConfig
from hyperfl.loop import RoundReport, run_rounds
from hyperfl.processes import group_alive
from hyperfl.trainer_process import TrainerProcess
from hyperfl.worker_pool import WorkerPool

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _spec(**kw: object) -> FederatedTrainingSpec:
    doc: dict[str, object] = {
        "model": {"builder": "examples.hyperfl.models:digits_mlp"},
        "data": {"clients": 6},
        "target": {"value": 0.85},
        "rounds": {"max": 25, "clientsPerRound": 3},
        "training": {"batchSize": 16, "learningRate": 0.1, "localEpochs": {"min": 1, "max": 4}},
    }
    doc.update(kw)
    return FederatedTrainingSpec.model_validate(doc)


def _config(spec: FederatedTrainingSpec, tmp_path: Path, workers: list[str] | None = None) -> FederationConfig:
    return FederationConfig.from_spec(spec, str(tmp_path / "ckpt"), workers=workers, python_path=[str(ROOT)])


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[TrainerProcess]:
    process = TrainerProcess(_config(_spec(), tmp_path), tmp_path / "trainer.log")
    pgid = process.process.pid
    try:
        yield process
    finally:
        process.close()
        assert not group_alive(pgid), "the TFF worker_binary outlived the trainer"


def test_stops_at_the_first_round_on_target(trainer: TrainerProcess) -> None:
    status = run_rounds(_spec(), FederatedTrainingStatus(), trainer, now=_now)
    assert status.phase == "TargetReached"
    accuracies = [r.accuracy for r in status.history]
    assert accuracies[-1] >= 0.85
    assert all(a < 0.85 for a in accuracies[:-1])
    assert status.checkpoint is not None
    assert Path(status.checkpoint).exists()


def test_resume_from_checkpoint_does_not_repeat_rounds(tmp_path: Path) -> None:
    spec = _spec(target={"value": 0.99}, rounds={"max": 6, "clientsPerRound": 3})
    with TrainerProcess(_config(spec, tmp_path), tmp_path / "trainer.log") as first:
        interrupted = run_rounds(spec, FederatedTrainingStatus(), first, now=_now, max_rounds=3)
    assert (interrupted.phase, interrupted.round) == ("Running", 3)
    stored = FederatedTrainingStatus.model_validate(json.loads(interrupted.model_dump_json(by_alias=True)))
    seen: list[RoundReport] = []
    with TrainerProcess(_config(spec, tmp_path), tmp_path / "trainer2.log") as second:
        done = run_rounds(spec, stored, second, now=_now, on_round=seen.append)
    assert [r.plan.round for r in seen] == [4, 5, 6]
    assert done.phase == "BudgetExhausted"
    assert [r.round for r in done.history] == [1, 2, 3, 4, 5, 6]
    # The resumed model continues from round 3's weights, not from a fresh initialisation.
    assert seen[0].result.accuracy > max(0.5, interrupted.history[0].accuracy)


def test_http_client_workers_train_and_stragglers_are_dropped(tmp_path: Path) -> None:
    spec = _spec(
        target={"value": 0.99},
        rounds={"max": 2, "clientsPerRound": 6, "timeoutSeconds": 4},
    )
    config = _config(spec, tmp_path)
    # Clients go round-robin to workers: worker 2 (clients 2 and 5) answers too late.
    with WorkerPool(config, 3, tmp_path / "logs", delays_s=[0.0, 0.0, 8.0]) as pool:
        pgids = [p.pid for p in pool.processes]
        remote = _config(spec, tmp_path, workers=pool.urls)
        with TrainerProcess(remote, tmp_path / "trainer.log") as trainer:
            status = run_rounds(spec, FederatedTrainingStatus(), trainer, now=_now)
    assert not any(group_alive(pgid) for pgid in pgids)
    assert status.round == 2
    first = status.history[0]
    assert (first.clients, first.dropped) == (4, 2)
    assert first.accuracy > 0.2
    stragglers = {c for _, c in status.control_state["selection"]["stragglers"]}  # type: ignore[index]
    assert stragglers == {2, 5}


def test_mlscale_run_reaches_the_example_target_and_writes_the_report(tmp_path: Path) -> None:
    example = ROOT / "examples" / "federatedtraining-digits-iid.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "mlscale", "run", str(example), "--report", str(tmp_path), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kind"] == "FederatedTraining"
    assert report["phase"] == "TargetReached"
    assert report["final_accuracy"] >= report["target"]
    assert report["client_epochs"] == sum(h["clients"] * h["epochs"] for h in report["history"])
    assert len(report["history"]) == report["rounds"]
    assert (tmp_path / "report.png").stat().st_size > 0
