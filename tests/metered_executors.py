"""Stand-ins for executor containers on this machine: a busy process in its own real cgroup, the CPU meter beside it.

The meter runs as a pod runs it: the file alone, by a Python that cannot import this project
(``-I``), moved into the cgroup so it reads that cgroup as its own, exactly as it reads its
container's inside a pod.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlscale import cpu_meter
from mlscale.cgroups import CpuCgroup

SPIN = "import time\nend = time.time() + 60\nwhile time.time() < end: pass"
"""An executor whose task wants a whole core."""
NAP = "import time\nend = time.time() + 60\nwhile time.time() < end:\n    sum(range(2000))\n    time.sleep(0.05)"
"""An executor whose task mostly waits (I/O, a shuffle fetch): a few hundredths of a core."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class MeteredExecutor:
    """One stand-in: its cgroup, its busy process and its meter."""

    group: CpuCgroup
    host: str
    port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Where its meter answers."""
        return f"http://{self.host}:{self.port}{cpu_meter.PATH}"

    def read(self) -> dict[str, object]:
        """What its meter answers now."""
        with urllib.request.urlopen(self.url, timeout=5) as response:
            answer: dict[str, object] = json.load(response)
            return answer

    def stop(self) -> None:
        """Kill its processes and remove its cgroup."""
        for process in self.processes:
            process.kill()
            process.wait()
        self.group.destroy()


def start_metered_executor(name: str, load: str, cores: float, host: str, port: int) -> MeteredExecutor:
    """Start a stand-in limited to ``cores``, running ``load``, its meter on ``host:port``."""
    group = CpuCgroup.create(name)
    group.set_cores(cores)
    executor = MeteredExecutor(group, host, port)
    try:
        meter = subprocess.Popen(
            [sys.executable, "-I", str(Path(cpu_meter.__file__)), "--host", host, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        executor.processes.append(meter)
        group.add_process(meter.pid)
        busy = subprocess.Popen([sys.executable, "-c", load])
        executor.processes.append(busy)
        group.add_process(busy.pid)
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError):
                executor.read()
                return executor
            if meter.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the CPU meter of {name} did not answer on {executor.url}")
            time.sleep(0.05)
    except BaseException:
        executor.stop()
        raise


@contextlib.contextmanager
def metered_executors(
    loads: Mapping[str, str], hosts: Mapping[str, str], port: int, cores: float, prefix: str
) -> Iterator[dict[str, MeteredExecutor]]:
    """Stand-ins by executor id, each running its load on its host (one port, as every pod has it)."""
    started: dict[str, MeteredExecutor] = {}
    try:
        for executor_id, load in loads.items():
            started[executor_id] = start_metered_executor(
                f"{prefix}-{executor_id}", load, cores, hosts[executor_id], port
            )
        yield started
    finally:
        for executor in started.values():
            executor.stop()
