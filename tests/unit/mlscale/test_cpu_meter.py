"""The CPU meter's reading of cgroup counters, and what it takes to run inside an application image."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from mlscale import cpu_meter
from mlscale.cpu_meter import CpuCounters, cpu_between, own_cgroup, read_counters


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cores_used_and_throttled_share_between_two_readings() -> None:
    earlier = CpuCounters(10.0, 5.0, 100, 10, 0.5)
    later = CpuCounters(12.0, 6.0, 120, 25, 0.5)
    assert cpu_between(earlier, later) == pytest.approx((0.5, 0.75))
    # No period with work: it never ran, so never ran out of quota.
    assert cpu_between(earlier, CpuCounters(12.0, 5.0, 100, 10, 0.5)) == (0.0, 0.0)


@pytest.mark.parametrize(
    "later",
    [
        CpuCounters(10.0, 6.0, 120, 25, 0.5),  # no time passed
        CpuCounters(12.0, 1.0, 20, 2, 0.5),  # counters went back: a restarted container
        CpuCounters(12.0, None, 120, 25, 0.5),  # v1 without cpuacct: CPU not counted
    ],
)
def test_no_figure_where_the_readings_give_no_interval(later: CpuCounters) -> None:
    # Not "used nothing": the law would read that as a reason to cap the executor at coresMin.
    assert cpu_between(CpuCounters(10.0, 5.0, 100, 10, 0.5), later) is None


def test_a_container_with_its_own_cgroup_namespace_reads_the_v2_root(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    _write(
        root,
        {
            "cgroup.controllers": "cpuset cpu io memory pids",
            "cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nnr_periods 40\nnr_throttled 30\nthrottled_usec 9\n",
            "cpu.max": "35000 100000\n",
        },
    )
    proc = tmp_path / "cgroup"
    proc.write_text("0::/\n")
    version, cpu_dir, acct_dir = own_cgroup(proc, root)
    assert (version, cpu_dir, acct_dir) == (2, root, None)
    counters = read_counters(version, cpu_dir, acct_dir, now=7.0)
    assert counters == CpuCounters(7.0, 2.5, 40, 30, pytest.approx(0.35))


def test_a_process_without_a_cgroup_namespace_reads_its_own_v2_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    own = "kubepods.slice/pod1/cri-containerd-abc.scope"
    _write(
        root,
        {
            "cgroup.controllers": "cpu memory",
            "cpu.stat": "usage_usec 999\n",
            f"{own}/cpu.stat": "usage_usec 1000000\nnr_periods 3\nnr_throttled 0\n",
            f"{own}/cpu.max": "max 100000\n",
        },
    )
    proc = tmp_path / "cgroup"
    proc.write_text(f"0::/{own}\n")
    version, cpu_dir, acct_dir = own_cgroup(proc, root)
    assert cpu_dir == root / own
    assert read_counters(version, cpu_dir, acct_dir, now=1.0) == CpuCounters(1.0, 1.0, 3, 0, None)


def test_cgroup_v1_reads_cpu_and_cpuacct_where_they_are_mounted_together(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    _write(
        root,
        {
            "cpu,cpuacct/cpu.stat": "nr_periods 50\nnr_throttled 5\nthrottled_time 123\n",
            "cpu,cpuacct/cpu.cfs_quota_us": "150000\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            "cpu,cpuacct/cpuacct.usage": "4000000000\n",
            "memory/memory.limit_in_bytes": "1\n",
        },
    )
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/\n3:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n")
    version, cpu_dir, acct_dir = own_cgroup(proc, root)
    assert (version, cpu_dir, acct_dir) == (1, root / "cpu,cpuacct", root / "cpu,cpuacct")
    assert read_counters(version, cpu_dir, acct_dir, now=2.0) == CpuCounters(2.0, 4.0, 50, 5, 1.5)


def test_no_cpu_cgroup_is_an_error_that_says_where_it_looked(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("1:memory:/\n")
    with pytest.raises(OSError, match="no CPU cgroup"):
        own_cgroup(proc, tmp_path)


def test_the_answer_round_trips_and_a_wrong_one_is_refused() -> None:
    counters = CpuCounters(1.5, 2.25, 10, 3, None)
    assert CpuCounters.from_dict(json.loads(counters.to_json())) == counters
    with pytest.raises(ValueError, match="not CPU counters"):
        CpuCounters.from_dict({"at_seconds": 1.0, "usage_seconds": 2.0})


def test_the_meter_runs_in_an_application_image_alone() -> None:
    # It is copied into executor pods as one file: the standard library only, Python 3.8 syntax
    # (Spark's Python images), and nothing that needs this project installed.
    source = Path(cpu_meter.__file__).read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add(str(node.module).split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
    assert "mlscale" not in imported


@pytest.mark.parametrize(
    ("field", "value"), [("usage_seconds", float("nan")), ("quota_cores", float("inf")), ("periods", -1)]
)
def test_numbers_a_control_law_cannot_use_are_refused(field: str, value: float) -> None:
    answer = json.loads(CpuCounters(1.0, 2.0, 10, 3, 0.5).to_json())
    answer[field] = value
    with pytest.raises(ValueError, match="not CPU counters"):
        CpuCounters.from_dict(answer)


def test_a_cgroup_path_not_mounted_here_falls_back_to_the_mount_itself(tmp_path: Path) -> None:
    # A container whose /proc/self/cgroup names the host's path while only its own cgroup is
    # mounted (no cgroup namespace, a read-only cgroupfs of its own).
    v2 = tmp_path / "v2"
    _write(v2, {"cgroup.controllers": "cpu", "cpu.stat": "usage_usec 5\n", "cpu.max": "max 100000\n"})
    proc = tmp_path / "cgroup2"
    proc.write_text("0::/kubepods/burstable/pod1/abc\n")
    assert own_cgroup(proc, v2) == (2, v2, None)
    v1 = tmp_path / "v1"
    _write(v1, {"cpu/cpu.stat": "nr_periods 1\n", "cpuacct/cpuacct.usage": "1\n"})
    proc = tmp_path / "cgroup1"
    proc.write_text("3:cpu:/docker/abc\n2:cpuacct:/docker/abc\n")
    assert own_cgroup(proc, v1) == (1, v1 / "cpu", v1 / "cpuacct")
