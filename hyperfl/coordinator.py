"""The coordinator of a FederatedTraining in a cluster: ``python -m hyperfl.coordinator``.

Reads the resource from ``MLSCALE_FL_RESOURCE`` (JSON, as the operator writes it), runs the
round loop (:func:`hyperfl.loop.run_rounds`) against the client workers, one per client, at
``--worker-url-template`` with ``{index}`` filled in, checkpoints every round into
``--checkpoint-dir``, and publishes its status on ``GET /status`` (:mod:`hyperfl.coordinator_status`)
for the operator. The status is also kept in ``status.json`` beside the checkpoints, so a restarted
coordinator resumes after its last round. Once the run ends the final status stays served for
``--linger-s`` seconds (the operator reads it, then stops the clients); exit status 0 unless it failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

from hyperfl.api import FederatedTraining, FederatedTrainingStatus
from hyperfl.coordinator_status import DEFAULT_PORT, StatusPublisher, status_document
from hyperfl.federation import FederationConfig
from hyperfl.loop import RoundReport, run_rounds
from hyperfl.trainer_process import TrainerError, TrainerProcess
from mlscale.api import ADMITTED

log = logging.getLogger(__name__)
RESOURCE_ENV = "MLSCALE_FL_RESOURCE"
STATUS_FILE = "status.json"
WORKERS_TIMEOUT_S = 600.0
"""Longest wait for every client worker to answer ``/healthz`` (image pulls, TensorFlow imports)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def load_status(directory: Path, name: str) -> FederatedTrainingStatus:
    """The status an earlier coordinator of the same training left in ``directory`` (a fresh one otherwise)."""
    path = directory / STATUS_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("name") == name:
            return FederatedTrainingStatus.model_validate(stored["status"])
    return FederatedTrainingStatus()


def save_status(directory: Path, name: str, status: FederatedTrainingStatus) -> None:
    """Write the status beside the checkpoints (temporary file, then rename)."""
    tmp = directory / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps({"name": name, "status": status_document(status)}))
    tmp.replace(directory / STATUS_FILE)


def wait_for_workers(urls: list[str], timeout_s: float) -> None:
    """Wait until every worker answers ``/healthz``.

    Raises:
        RuntimeError: When some worker does not answer within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    waiting = list(urls)
    while waiting:
        url = waiting[0]
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
                if response.status == 200:
                    waiting.pop(0)
                    continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} client workers did not answer in {timeout_s:g}s, e.g. {url}")
        time.sleep(1.0)


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the context managers: the trainer's process group is reaped


def main(argv: list[str] | None = None) -> int:
    """Run the training's rounds and serve their status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--worker-url-template", required=True)
    parser.add_argument("--linger-s", type=float, default=3600.0)
    parser.add_argument("--workers-timeout-s", type=float, default=WORKERS_TIMEOUT_S)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    # The operator admitted this spec: checks added since do not stop its training.
    job = FederatedTraining.model_validate_json(os.environ[RESOURCE_ENV], context=ADMITTED)
    name = job.metadata.name
    directory = Path(args.checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    status = load_status(directory, name)
    urls = [args.worker_url_template.format(index=i) for i in range(args.workers)]
    config = FederationConfig.from_spec(job.spec, str(directory), workers=urls, python_path=[os.getcwd()])

    def on_round(report: RoundReport) -> None:
        save_status(directory, name, report.status)
        publisher.publish(report.status)

    with StatusPublisher(args.host, args.port) as publisher:
        publisher.publish(status)
        try:
            wait_for_workers(urls, args.workers_timeout_s)
            with TrainerProcess(config, directory / "trainer.log") as trainer:
                if status.phase == "Pending":
                    publisher.publish(status.model_copy(update={"phase": "Running", "start_time": _now()}))
                status = run_rounds(job.spec, status, trainer, now=_now, on_round=on_round)
        except (TrainerError, RuntimeError, ValueError) as exc:
            log.error("%s failed: %s", name, exc)
            status = status.model_copy(update={"phase": "Failed", "completion_time": _now()})
        save_status(directory, name, status)
        publisher.publish(status)
        log.info("%s: %s after %d rounds; final status served %gs", name, status.phase, status.round, args.linger_s)
        time.sleep(args.linger_s)
    return 1 if status.phase == "Failed" else 0


if __name__ == "__main__":
    sys.exit(main())
