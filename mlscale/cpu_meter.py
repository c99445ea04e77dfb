"""The CPU a cgroup used and how often it ran out of quota: read here, and served from inside a pod.

Two uses of the same counters (cgroup v2 ``cpu.stat`` / ``cpu.max``, or v1 ``cpuacct.usage``,
``cpu.stat`` and ``cpu.cfs_quota_us``):

* on one machine, :class:`mlscale.cgroups.CpuCgroup` reads the cgroups mlscale created;
* in a cluster, this file runs as a small HTTP server inside each executor container
  (``python3 cpu_meter.py --port 4049``) and answers ``GET /cpu`` with its own container's
  counters, the figures the kubelet's resource metrics only give averaged over 10 s or more and
  without the throttling. The operator reads it every control period.

Because it is shipped into application images as it is, this module imports the standard
library only and keeps to Python 3.8 syntax and APIs (what Spark's Python images carry); the
annotations are never evaluated (``from __future__ import annotations``), so they may be newer.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEFAULT_PORT = 4049
PATH = "/cpu"


@dataclass(frozen=True)
class CpuCounters:
    """A cgroup's cumulative CPU counters at one instant.

    Attributes:
        at_seconds: When they were read (the reader's monotonic clock).
        usage_seconds: CPU seconds its processes have used; ``None`` where the cgroup does not
            count them (v1 without cpuacct).
        periods: CFS periods (100 ms) in which it had work to run.
        throttled_periods: Those of them in which it ran out of quota.
        quota_cores: Its quota now, in cores (``None``: unlimited).
    """

    at_seconds: float
    usage_seconds: float | None
    periods: int
    throttled_periods: int
    quota_cores: float | None

    def to_json(self) -> str:
        """The counters as ``GET /cpu`` answers them."""
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CpuCounters:
        """The counters from ``GET /cpu``'s answer.

        Raises:
            ValueError: when a field is missing or not a number.
        """
        try:
            usage = data["usage_seconds"]
            quota = data["quota_cores"]
            counters = cls(
                at_seconds=float(str(data["at_seconds"])),
                usage_seconds=None if usage is None else float(str(usage)),
                periods=int(str(data["periods"])),
                throttled_periods=int(str(data["throttled_periods"])),
                quota_cores=None if quota is None else float(str(quota)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not CPU counters: {data!r} ({exc})") from exc
        numbers = (counters.at_seconds, counters.usage_seconds or 0.0, counters.quota_cores or 0.0)
        if (
            not all(math.isfinite(x) and x >= 0 for x in numbers)
            or min(counters.periods, counters.throttled_periods) < 0
        ):
            raise ValueError(f"not CPU counters: {data!r} (negative or not finite)")
        return counters


def cpu_between(earlier: CpuCounters, later: CpuCounters) -> tuple[float, float] | None:
    """The cores used on average between two readings, and the share of CFS periods throttled.

    ``None`` when there is no interval (same instant, or the counters went back: a new cgroup,
    a restarted container) or the cgroup does not count its CPU. The kernel counts only the
    periods in which the group had work: none means it never ran, so never ran out of quota.
    """
    elapsed = later.at_seconds - earlier.at_seconds
    if elapsed <= 0 or earlier.usage_seconds is None or later.usage_seconds is None:
        return None
    used = later.usage_seconds - earlier.usage_seconds
    periods = later.periods - earlier.periods
    throttled = later.throttled_periods - earlier.throttled_periods
    if used < 0 or periods < 0 or throttled < 0:
        return None
    share = 0.0 if periods == 0 else min(1.0, throttled / periods)
    return used / elapsed, share


def parse_stat(text: str) -> dict[str, int]:
    """The ``key value`` lines of a cgroup ``cpu.stat`` file."""
    values = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


def quota_v2(text: str) -> float | None:
    """Cores of a cgroup v2 ``cpu.max`` (``"max 100000"``: unlimited)."""
    quota, period = text.split()
    return None if quota == "max" else int(quota) / int(period)


def quota_v1(quota_text: str, period_text: str) -> float | None:
    """Cores of a cgroup v1 ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (``-1``: unlimited)."""
    quota = int(quota_text)
    return None if quota < 0 else quota / int(period_text)


def read_counters(version: int, cpu_dir: Path, acct_dir: Path | None, now: float | None = None) -> CpuCounters:
    """Read a cgroup's counters (``acct_dir``: its v1 cpuacct directory, if there is one).

    Raises:
        OSError: when the files cannot be read (the cgroup is gone).
    """
    at = time.monotonic() if now is None else now
    stat = parse_stat((cpu_dir / "cpu.stat").read_text())
    if version == 2:
        usage: float | None = stat["usage_usec"] / 1e6 if "usage_usec" in stat else None
        quota = quota_v2((cpu_dir / "cpu.max").read_text())
    else:
        usage = int((acct_dir / "cpuacct.usage").read_text()) / 1e9 if acct_dir is not None else None
        quota = quota_v1((cpu_dir / "cpu.cfs_quota_us").read_text(), (cpu_dir / "cpu.cfs_period_us").read_text())
    return CpuCounters(at, usage, stat.get("nr_periods", 0), stat.get("nr_throttled", 0), quota)


def own_cgroup(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> tuple[int, Path, Path | None]:
    """This process's own cgroup: version, CPU directory, v1 cpuacct directory.

    Inside a container with its own cgroup namespace, ``/proc/self/cgroup`` says ``/`` and the
    container's cgroup is mounted at ``root``; without one it names the path below ``root``.

    Raises:
        OSError: when no CPU cgroup of this process can be found.
    """
    lines = proc_cgroup.read_text().splitlines()
    if (root / "cgroup.controllers").exists():
        path = next((line[3:] for line in lines if line.startswith("0::")), "/")
        own = root / path.lstrip("/")
        return 2, own if (own / "cpu.stat").exists() else root, None
    v1: dict[str, str] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            v1[controller] = path

    def v1_dir(controller: str) -> Path | None:
        for name in (controller, "cpu,cpuacct", "cpuacct,cpu"):
            base = root / name
            if not base.is_dir():
                continue
            own = base / v1.get(controller, "/").lstrip("/")
            return own if own.is_dir() else base
        return None

    cpu = v1_dir("cpu")
    if cpu is None:
        raise OSError(f"no CPU cgroup of this process under {root}")
    return 1, cpu, v1_dir("cpuacct")


class _Handler(BaseHTTPRequestHandler):
    timeout = 5  # a connection that sends nothing does not hold its thread for long

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self._answer(404, json.dumps({"error": f"not found; GET {PATH}"}))
            return
        try:
            version, cpu_dir, acct_dir = own_cgroup()
            body = read_counters(version, cpu_dir, acct_dir).to_json()
        except (OSError, KeyError, ValueError) as exc:
            self._answer(503, json.dumps({"error": f"cannot read this container's cgroup: {exc}"}))
            return
        self._answer(200, body)

    def _answer(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one request per control period would flood the executor's log."""


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _DualStackServer(_IPv6Server):
    """Listens on IPv6 and IPv4 at once (``::``), as a pod of a dual-stack or IPv6 cluster needs."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve(host: str, port: int) -> ThreadingHTTPServer:
    """A server of ``GET /cpu`` bound to ``host:port``; with no host, every address of the pod.

    Without a host it listens on ``::`` (IPv6 and IPv4), or on ``0.0.0.0`` where the kernel has
    no IPv6.
    """
    server: ThreadingHTTPServer
    if host:
        server = (_IPv6Server if ":" in host else ThreadingHTTPServer)((host, port), _Handler)
    else:
        try:
            server = _DualStackServer(("::", port), _Handler)
        except OSError:
            server = ThreadingHTTPServer(("0.0.0.0", port), _Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """Serve this container's CPU counters until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="", help="address to listen on (default: all of the pod's, IPv6 and IPv4)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    try:
        version, cpu_dir, acct_dir = own_cgroup()
        read_counters(version, cpu_dir, acct_dir)
    except (OSError, KeyError, ValueError) as exc:
        print(f"mlscale CPU meter: cannot read this container's cgroup ({exc}); not serving", file=sys.stderr)
        return 1
    server = serve(args.host, args.port)
    print(
        f"mlscale CPU meter: cgroup v{version} {cpu_dir}; GET {PATH} on {args.host or 'every address'} "
        f"port {server.server_port}",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
