"""The TFF trainer in its own process group, driven over a pipe with one JSON object per line.

The coordinator's loop stays free of TensorFlow: :class:`TrainerProcess` starts
``python -m hyperfl.trainer_process`` as a new session, sends it the federation config, then
one request per round, and reaps the whole group (TFF's ``worker_binary`` included) on close.

Requests: ``{"op": "restore", "path": ...}``, ``{"op": "round", "round", "clients", "epochs",
"timeout_s"}``, ``{"op": "exit"}``. Answers: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from hyperfl.federation import FederationConfig, RoundResult
from hyperfl.processes import child_env, reap_group, start_group

READY_TIMEOUT_S = 300.0
"""Longest wait for TensorFlow and TFF to import and build the computation."""


class TrainerError(RuntimeError):
    """The trainer process failed or stopped answering."""


class TrainerProcess:
    """A TFF federation running in a child process group (use as a context manager)."""

    def __init__(self, config: FederationConfig, log_path: Path, round_timeout_s: float = 600.0) -> None:
        """Start the trainer process and wait until it has built the federation.

        Args:
            config: What to train and where the checkpoints go.
            log_path: File receiving the child's standard error (TensorFlow's logs).
            round_timeout_s: Longest wait for one round's answer.

        Raises:
            TrainerError: When the process does not start or build in time.
        """
        self.round_timeout_s = round_timeout_s
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.process = start_group(
            [sys.executable, "-m", "hyperfl.trainer_process"],
            env=child_env(config.python_path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self._call({"op": "init", "config": config.to_dict()}, READY_TIMEOUT_S)
        except TrainerError:
            self.close()
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._answers.put(json.loads(line))
            except ValueError:
                continue
        self._answers.put(None)

    def _call(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise TrainerError(f"trainer process is gone ({exc}); see {self.log_path}") from exc
        try:
            answer = self._answers.get(timeout=timeout_s)
        except queue.Empty:
            raise TrainerError(f"trainer did not answer {request['op']!r} in {timeout_s:g}s") from None
        if answer is None:
            raise TrainerError(f"trainer process exited; see {self.log_path}")
        if not answer.get("ok"):
            raise TrainerError(str(answer.get("error")))
        return answer

    def restore(self, path: str) -> int:
        """Load the global model from a checkpoint; returns its round."""
        return int(self._call({"op": "restore", "path": path}, self.round_timeout_s)["round"])

    def run_round(self, round_: int, clients: Sequence[int], epochs: int, timeout_s: float | None) -> RoundResult:
        """Run one federated round and return what it did."""
        request = {"op": "round", "round": round_, "clients": list(clients), "epochs": epochs, "timeout_s": timeout_s}
        return RoundResult.from_dict(self._call(request, self.round_timeout_s)["result"])

    def close(self) -> None:
        """Ask the trainer to exit, then reap its process group."""
        if self.process.poll() is None and self.process.stdin is not None:
            try:
                self.process.stdin.write(b'{"op": "exit"}\n')
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        reap_group(self.process, grace_s=5.0)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()

    def __enter__(self) -> TrainerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(requests: IO[str], answers: IO[str]) -> int:
    """Child side: build the federation from the first request, then answer until exit."""

    def reply(answer: dict[str, Any]) -> None:
        answers.write(json.dumps(answer) + "\n")
        answers.flush()

    federation: Any = None
    for line in requests:
        request = json.loads(line)
        op = request.get("op")
        if op == "exit":
            break
        try:
            if op == "init":
                config = FederationConfig.from_dict(request["config"])
                sys.path[:0] = config.python_path
                from hyperfl.tff_trainer import RemoteFederation, SimulatedFederation

                federation = RemoteFederation(config) if config.workers else SimulatedFederation(config)
                reply({"ok": True})
            elif op == "restore":
                reply({"ok": True, "round": federation.restore(request["path"])})
            elif op == "round":
                result = federation.run_round(
                    request["round"], request["clients"], request["epochs"], request.get("timeout_s")
                )
                reply({"ok": True, "result": result.to_dict()})
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    if federation is not None and hasattr(federation, "close"):
        federation.close()
    return 0


def main() -> int:
    """Run the trainer: answers go to the original standard output, anything printed goes to standard error."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return _serve(sys.stdin, answers)


if __name__ == "__main__":
    sys.exit(main())
