"""CPU limits for local processes through cgroups, as the kubelet applies them to a pod.

Each controlled process (a Spark executor JVM, a model-server replica) gets its own
cgroup under ``mlscale/`` below this process's own cgroup. The quota is written as
cgroup v2 ``cpu.max`` or cgroup v1 ``cpu.cfs_quota_us`` with a 100 ms period — the same
CFS bandwidth control a resized pod gets. Where neither hierarchy is writable the
caller gets :class:`CgroupUnavailableError` with the reason, never a silent no-op.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from mlscale.cpu_meter import CpuCounters, read_counters

PERIOD_US = 100_000
MIN_QUOTA_US = 1_000
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class CgroupUnavailableError(RuntimeError):
    """No writable cgroup hierarchy with a CPU controller is available."""


@dataclass(frozen=True)
class _Hierarchy:
    version: int
    cpu_root: Path
    acct_root: Path | None


def _mounts(mounts_file: Path) -> list[tuple[str, str, str]]:
    entries = []
    for line in mounts_file.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            entries.append((parts[2], parts[1], parts[3]))
    return entries


def _own_path(controller: str, proc_cgroup: Path) -> str:
    """This process's cgroup path for a v1 controller (``controller``) or v2 (``""``)."""
    for line in proc_cgroup.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller == "" and controllers == "" and line.startswith("0::"):
            return path
        if controller and controller in controllers.split(","):
            return path
    return "/"


def _detect(mounts_file: Path = Path("/proc/mounts"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> _Hierarchy:
    reasons = []
    mounts = _mounts(mounts_file)
    for fstype, mountpoint, _options in mounts:
        if fstype != "cgroup2":
            continue
        controllers = Path(mountpoint, "cgroup.controllers")
        if controllers.exists() and "cpu" in controllers.read_text().split():
            base = Path(mountpoint) / _own_path("", proc_cgroup).lstrip("/")
            if os.access(base, os.W_OK):
                return _Hierarchy(2, base / "mlscale", None)
            reasons.append(f"cgroup v2 at {base} is not writable (run as root or delegate the cgroup)")
        else:
            reasons.append(f"cgroup v2 at {mountpoint} has no cpu controller")
    for fstype, mountpoint, options in mounts:
        if fstype == "cgroup" and "cpu" in options.split(","):
            base = Path(mountpoint) / _own_path("cpu", proc_cgroup).lstrip("/")
            if not os.access(base, os.W_OK):
                reasons.append(f"cgroup v1 cpu at {base} is not writable (run as root)")
                continue
            acct = None
            for fstype2, mountpoint2, options2 in mounts:
                if fstype2 == "cgroup" and "cpuacct" in options2.split(","):
                    acct = Path(mountpoint2) / _own_path("cpuacct", proc_cgroup).lstrip("/")
            return _Hierarchy(1, base / "mlscale", acct / "mlscale" if acct and os.access(acct, os.W_OK) else None)
    if not reasons:
        reasons.append("no cgroup filesystem with a cpu controller is mounted")
    raise CgroupUnavailableError("cannot limit CPU with cgroups: " + "; ".join(reasons))


def cgroup_unavailable_reason() -> str | None:
    """Return why CPU cgroups cannot be used here, or ``None`` when they can."""
    try:
        _detect()
    except (CgroupUnavailableError, OSError) as exc:
        return str(exc)
    return None


class CpuCgroup:
    """One cgroup holding one or more processes, with a CPU quota in cores."""

    def __init__(self, hierarchy: _Hierarchy, name: str) -> None:
        """Use :meth:`create` instead."""
        self._h = hierarchy
        self.name = name
        self.path = hierarchy.cpu_root / name
        self.acct_path = hierarchy.acct_root / name if hierarchy.acct_root else None
        self._cores: float | None = None

    @classmethod
    def create(cls, name: str) -> CpuCgroup:
        """Create (or reuse) the cgroup ``mlscale/<name>`` with no limit.

        Raises:
            CgroupUnavailableError: when no writable CPU hierarchy exists.
            ValueError: for a name with characters other than letters, digits, ``._-``.
        """
        if not _NAME.match(name):
            raise ValueError(f"cgroup name {name!r}: use letters, digits, '.', '_' and '-' only")
        hierarchy = _detect()
        group = cls(hierarchy, name)
        try:
            if hierarchy.version == 2:
                hierarchy.cpu_root.mkdir(exist_ok=True)
                _enable_cpu_controller(hierarchy.cpu_root.parent)
                _enable_cpu_controller(hierarchy.cpu_root)
            group.path.mkdir(parents=True, exist_ok=True)
            if group.acct_path is not None:
                group.acct_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CgroupUnavailableError(f"cannot create cgroup {group.path}: {exc}") from exc
        group.set_cores(None)
        return group

    @property
    def version(self) -> int:
        """1 or 2."""
        return self._h.version

    @property
    def cores(self) -> float | None:
        """The limit last set, in cores (``None``: unlimited)."""
        return self._cores

    def add_process(self, pid: int) -> None:
        """Move a process (all its threads) into this cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))
        if self.acct_path is not None:
            (self.acct_path / "cgroup.procs").write_text(str(pid))

    def processes(self) -> list[int]:
        """The processes now in the cgroup."""
        text = (self.path / "cgroup.procs").read_text()
        return [int(p) for p in text.split()]

    def set_cores(self, cores: float | None) -> None:
        """Limit the cgroup to ``cores`` CPUs (``None`` removes the limit)."""
        if cores is None:
            quota = -1
        else:
            if cores <= 0:
                raise ValueError(f"cores must be positive, got {cores}")
            quota = max(MIN_QUOTA_US, round(cores * PERIOD_US))
        if self._h.version == 2:
            text = f"{'max' if quota < 0 else quota} {PERIOD_US}"
            (self.path / "cpu.max").write_text(text)
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        self._cores = cores

    def read_quota_cores(self) -> float | None:
        """Read the limit back from the kernel, in cores (``None``: unlimited)."""
        return self.counters().quota_cores

    @property
    def accounts_usage(self) -> bool:
        """Whether the CPU its processes use is counted (v2 always; v1 with a cpuacct hierarchy)."""
        return self._h.version == 2 or self.acct_path is not None

    def counters(self, now: float | None = None) -> CpuCounters:
        """Its cumulative CPU counters: CPU used, CFS periods run and throttled, quota.

        Args:
            now: The instant to stamp them with (the monotonic clock when ``None``).
        """
        return read_counters(self._h.version, self.path, self.acct_path, now)

    def usage_seconds(self) -> float:
        """CPU seconds the cgroup's processes have consumed since it was created (0 where uncounted)."""
        return self.counters().usage_seconds or 0.0

    def destroy(self, timeout_s: float = 5.0) -> None:
        """Move remaining processes back to the parent and remove the cgroup."""
        for path in (self.path, self.acct_path):
            if path is None or not path.exists():
                continue
            parent_procs = path.parent.parent / "cgroup.procs"
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    for pid in (path / "cgroup.procs").read_text().split():
                        with contextlib.suppress(OSError):
                            parent_procs.write_text(pid)
                    path.rmdir()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)


def _enable_cpu_controller(path: Path) -> None:
    control = path / "cgroup.subtree_control"
    if control.exists() and "cpu" not in control.read_text().split():
        with contextlib.suppress(OSError):
            control.write_text("+cpu")
