"""A Spark standalone master and worker on 127.0.0.1, started from the pyspark package.

The pyspark wheel has no ``start-master.sh``, but ``sbin/spark-daemon.sh`` starts the
master and worker classes directly. Every port is picked free, and pid, log and work folders
live under a private folder, so several clusters (other users, tests) can run side by side.
:meth:`SparkStandalone.stop` stops both daemons and kills any executor they left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType

from dynaspark.jvm import with_quick_compilation
from dynaspark.processes import executor_processes

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class SparkStartError(RuntimeError):
    """The standalone cluster did not come up; the message names the log to read."""


def spark_home() -> Path:
    """The Spark installation inside the pyspark package."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10000


def ephemeral_port_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The ports the kernel hands out to a bind on port 0 (Linux's default where it cannot be read)."""
    try:
        low, high = (int(v) for v in path.read_text().split()[:2])
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_port(range_file: Path = EPHEMERAL_RANGE_FILE) -> int:
    """A TCP port on 127.0.0.1 that is free now, outside the kernel's ephemeral range.

    The port is chosen here and bound later by a Spark process. Spark binds its other services
    (the driver's RPC endpoint, the block managers) to port 0, so a port from the ephemeral
    range could be handed to one of them in between; the Spark UI would then move to the next
    port and the loop would read nothing. Below that range only explicit binds compete.
    """
    low, _ = ephemeral_port_range(range_file)
    candidates = list(range(_LOWEST_PORT, low)) if low > _LOWEST_PORT + 100 else []
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spark_env(work_dir: Path) -> dict[str, str]:
    """Environment for Spark scripts: loopback only, private folders, this Python for workers."""
    env = dict(os.environ)
    conf_dir = work_dir / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(conf_dir),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOCAL_HOSTNAME": "localhost",
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
    )
    return env


class SparkStandalone:
    """One master and one worker; use as a context manager.

    Args:
        work_dir: Private folder for pids, logs and the worker's work folder.
        worker_cores: Task slots the worker offers.
        worker_memory_mb: Memory the worker offers (MiB).
        start_timeout_s: How long to wait for the worker to register.
    """

    def __init__(self, work_dir: Path, worker_cores: int, worker_memory_mb: int, start_timeout_s: float = 60.0) -> None:
        self.work_dir = work_dir
        self.worker_cores = worker_cores
        self.worker_memory_mb = worker_memory_mb
        self.start_timeout_s = start_timeout_s
        self.master_port = free_port()
        self.master_ui_port = free_port()
        self.worker_ui_port = free_port()
        self.ident = f"mlscale-{uuid.uuid4().hex[:8]}"
        self._env = spark_env(work_dir)
        self._env.update(
            {
                "SPARK_PID_DIR": str(work_dir / "pids"),
                "SPARK_LOG_DIR": str(work_dir / "logs"),
                "SPARK_WORKER_DIR": str(work_dir / "work"),
                "SPARK_IDENT_STRING": self.ident,
                # Short-lived daemons: C2 would compile for longer than they run (dynaspark.jvm).
                "SPARK_DAEMON_JAVA_OPTS": with_quick_compilation(os.environ.get("SPARK_DAEMON_JAVA_OPTS", "")),
            }
        )
        self._started: list[str] = []

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:<port>``."""
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment spark-submit should run with."""
        return dict(self._env)

    def _daemon(self, action: str, cls: str, *args: str) -> None:
        script = spark_home() / "sbin" / "spark-daemon.sh"
        subprocess.run(
            ["bash", str(script), action, cls, "1", *args],
            env=self._env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        """Start master and worker and wait until the worker has registered.

        Raises:
            SparkStartError: when the worker is not alive within ``start_timeout_s``.
        """
        for sub in ("pids", "logs", "work"):
            (self.work_dir / sub).mkdir(parents=True, exist_ok=True)
        self._started.append(MASTER_CLASS)
        self._daemon(
            "start",
            MASTER_CLASS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.master_port),
            "--webui-port",
            str(self.master_ui_port),
        )
        self._started.append(WORKER_CLASS)
        self._daemon(
            "start",
            WORKER_CLASS,
            "--host",
            "127.0.0.1",
            "--cores",
            str(self.worker_cores),
            "--memory",
            f"{self.worker_memory_mb}m",
            "--webui-port",
            str(self.worker_ui_port),
            self.master_url,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.alive_workers() >= 1:
                return
            time.sleep(0.5)
        raise SparkStartError(
            f"Spark worker did not register with {self.master_url} within {self.start_timeout_s:.0f} s; "
            f"see the logs in {self.work_dir / 'logs'}"
        )

    def alive_workers(self) -> int:
        """Workers the master reports ALIVE (0 while the master is not up)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui_port}/json/", timeout=2) as resp:
                state = json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError):
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def daemon_pids(self) -> list[int]:
        """Pids of the daemons started (from their pid files)."""
        pids = []
        for path in (self.work_dir / "pids").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pids.append(int(path.read_text().strip()))
        return pids

    def stop(self) -> None:
        """Stop the worker and the master; kill whatever of theirs is still running."""
        pids = self.daemon_pids()
        for cls in reversed(self._started):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._daemon("stop", cls)
        self._started.clear()
        work = str((self.work_dir / "work").resolve())
        leftovers = pids + [p.pid for p in executor_processes() if p.cwd.startswith(work)]
        deadline = time.monotonic() + 10.0
        for pid in leftovers:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> SparkStandalone:
        try:
            self.start()
        except BaseException:
            # Interrupted or failed half-way: the daemon already launched must not outlive the run.
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    """Whether a process exists (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
