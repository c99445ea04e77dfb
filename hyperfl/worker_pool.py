"""Client worker processes on 127.0.0.1, each in its own process group (see :mod:`hyperfl.worker`)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from hyperfl.federation import FederationConfig
from hyperfl.processes import child_env, reap_group, start_group

START_TIMEOUT_S = 120.0
"""Longest wait for a worker to import TensorFlow and listen."""


class WorkerPool:
    """Starts client workers and reaps them (use as a context manager)."""

    def __init__(
        self, config: FederationConfig, count: int, log_dir: Path, delays_s: list[float] | None = None
    ) -> None:
        """Start ``count`` workers serving the federation's clients.

        Args:
            config: The federation (model builder and data split the workers rebuild).
            count: Workers to start.
            log_dir: Where each worker's standard error goes.
            delays_s: Extra answer delay of each worker (to play slow clients); none by default.

        Raises:
            RuntimeError: When a worker does not come up in time.
        """
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        delays = delays_s or [0.0] * count
        try:
            for index in range(count):
                argv = [
                    sys.executable, "-m", "hyperfl.worker",
                    "--builder", config.builder, "--clients", str(config.clients),
                    "--partition", config.partition, "--alpha", str(config.alpha),
                    "--evaluation-fraction", str(config.evaluation_fraction), "--seed", str(config.seed),
                    "--delay-s", str(delays[index]),
                ]  # fmt: skip
                with (log_dir / f"worker-{index}.log").open("ab") as log:
                    process = start_group(argv, env=child_env(config.python_path), stdout=subprocess.PIPE, stderr=log)
                self.processes.append(process)
            for process in self.processes:
                self.urls.append(_await_url(process))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every worker and whatever it started."""
        for process in self.processes:
            reap_group(process, grace_s=3.0)
            if process.stdout is not None:
                process.stdout.close()
        self.processes = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _await_url(process: subprocess.Popen[bytes]) -> str:
    """Read the worker's ``listening on URL`` line, with a timeout."""
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if line.startswith("listening on "):
            found.append(line.removeprefix("listening on "))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    if not found:
        raise RuntimeError(f"client worker {process.pid} did not start (exit status {process.poll()})")
    return found[0]
