"""Finding executor JVMs and their Python workers in a (fake) /proc."""

from __future__ import annotations

from pathlib import Path

from dynaspark.processes import descendants, executor_processes, parent_map


def _process(proc: Path, pid: int, ppid: int, args: list[str]) -> None:
    folder = proc / str(pid)
    folder.mkdir(parents=True)
    (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
    (folder / "stat").write_text(f"{pid} (java (x)) S {ppid} 1 1 0 -1\n")


def _fake_proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    backend = "org.apache.spark.executor.CoarseGrainedExecutorBackend"
    _process(proc, 100, 1, ["java", "-cp", "x", backend, "--executor-id", "0", "--app-id", "app-1"])
    _process(proc, 101, 1, ["java", "-cp", "x", backend, "--executor-id", "1", "--app-id", "app-1"])
    _process(proc, 102, 1, ["java", "-cp", "x", backend, "--executor-id", "0", "--app-id", "app-other"])
    _process(proc, 200, 100, ["python", "-m", "pyspark.daemon"])
    _process(proc, 201, 200, ["python", "-m", "pyspark.daemon"])
    _process(proc, 300, 1, ["bash"])
    (proc / "self").mkdir()
    return proc


def test_executors_of_one_application_are_found_by_command_line(tmp_path: Path) -> None:
    found = executor_processes("app-1", _fake_proc(tmp_path))
    assert [(p.pid, p.executor_id) for p in found] == [(100, "0"), (101, "1")]
    assert {p.app_id for p in executor_processes(None, tmp_path / "proc")} == {"app-1", "app-other"}


def test_python_workers_are_descendants_of_their_executor(tmp_path: Path) -> None:
    parents = parent_map(_fake_proc(tmp_path))
    assert parents[201] == 200
    assert descendants(100, parents) == [200, 201]
    assert descendants(101, parents) == []
