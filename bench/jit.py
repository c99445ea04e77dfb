"""Benchmark: what the JVMs' just-in-time compiler costs a DeadlineJob on one machine.

``--jvm executor`` (the default): each example workload runs at static cores per executor (1 and
0.3 core by default, the cgroup quota the law would set) twice: with HotSpot's default tiered
compilation (C1 then C2, ``-XX:TieredStopAtLevel=4``) and with C1 only
(``-XX:TieredStopAtLevel=1``, what mlscale gives executors unless ``sparkConf`` says otherwise).

``--jvm driver``: the same with the driver JVM's compilation switched (the executors at C1, as
mlscale runs them), at coresMax per executor by default. The driver shares the machine's cores
with the executors outside any cgroup; its own CPU is read from ``/proc`` while it runs, with
what its compiler threads took.

The two compilers alternate within each repeat, so a drift of the machine falls on both.
Reported per run: completion time and the CPU-seconds the executors really used (their
cgroups' accounting), and for ``--jvm driver`` the driver JVM's CPU-seconds.

    .venv/bin/python bench/jit.py [--jvm executor|driver] [--workloads pagerank ...] [--cores 1 0.3] [--repeats 1]
    .venv/bin/python bench/jit.py [--jvm driver] --table     # the README's table from the JSON

writes bench/results/{executor,driver}_jit.json and .png. Needs root (cgroups), Java 17 and
about a minute per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynaspark.api import DeadlineJob  # noqa: E402 - after the path set-up above
from dynaspark.jvm import DRIVER_JAVA_OPTIONS, EXECUTOR_JAVA_OPTIONS  # noqa: E402
from dynaspark.local import resolve_application  # noqa: E402
from dynaspark.runner import RunSettings, run_deadline_job  # noqa: E402

WORKLOADS = ("pagerank", "kmeans", "sortbykey", "aggregatebykey", "enrich")
COMPILERS = {"C1+C2": "-XX:TieredStopAtLevel=4", "C1": "-XX:TieredStopAtLevel=1"}
RESULTS = REPO / "bench" / "results"


JVM_OPTIONS = {"executor": EXECUTOR_JAVA_OPTIONS, "driver": DRIVER_JAVA_OPTIONS}
DRIVER_MAIN = "org.apache.spark.deploy.SparkSubmit"
LAUNCHER_MAIN = "org.apache.spark.launcher.Main"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load_job(name: str, key: str, compile_option: str) -> tuple[DeadlineJob, Path]:
    source = REPO / "examples" / f"deadlinejob-{name}.yaml"
    document = yaml.safe_load(source.read_text())
    conf = document["spec"]["application"].setdefault("sparkConf", {})
    conf[key] = f"{conf.get(key, '')} {compile_option}".strip()
    job = DeadlineJob.model_validate(document)
    return job, resolve_application(job, source)


def _cpu_seconds(stat_path: str) -> tuple[str, float]:
    """The name and user + system CPU seconds in a ``/proc/.../stat`` file."""
    text = Path(stat_path).read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return text[text.index("(") + 1 : text.rindex(")")], (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class DriverCpu:
    """Follows the driver JVM (spark-submit's) CPU while it runs: the last reading before it exits."""

    def __init__(self, period_s: float = 0.25) -> None:
        self.period_s = period_s
        self.total_s = 0.0
        self.compiler_s = 0.0
        self._threads: dict[str, float] = {}
        self._stop = threading.Event()

    @contextlib.contextmanager
    def following(self) -> Iterator[DriverCpu]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                with contextlib.suppress(OSError, ValueError):
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    # spark-class first runs a short launcher JVM with SparkSubmit as an argument.
                    if DRIVER_MAIN.encode() in cmdline and LAUNCHER_MAIN.encode() not in cmdline:
                        self._read(pid)

    def _read(self, pid: str) -> None:
        self.total_s = max(self.total_s, _cpu_seconds(f"/proc/{pid}/stat")[1])
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                name, seconds = _cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
                if "Compiler" in name:  # "C1 CompilerThre", "C2 CompilerThre"
                    self._threads[tid] = max(self._threads.get(tid, 0.0), seconds)
        self.compiler_s = sum(self._threads.values())


def measure(jvm: str, workloads: list[str], cores: list[float], repeats: int, work: Path) -> list[dict[str, Any]]:
    rows = []
    for repeat in range(repeats):
        for workload in workloads:
            for c in cores:
                for compiler, option in COMPILERS.items():
                    job, app = load_job(workload, JVM_OPTIONS[jvm], option)
                    label = f"{workload}-{c:g}-{jvm}-{compiler.replace('+', '')}-r{repeat}"
                    print(f"  {label} ...", end="", flush=True)
                    with DriverCpu().following() as driver:
                        result = run_deadline_job(
                            job, app, work / label, RunSettings(mode="static", static_cores=c, use_profile_cache=False)
                        )
                    print(
                        f" {result.completion_s:.1f} s, executors {result.cpu_seconds or 0:.1f} CPU-s, "
                        f"driver {driver.total_s:.1f} CPU-s (compilers {driver.compiler_s:.1f})",
                        flush=True,
                    )
                    rows.append(
                        {
                            "workload": workload,
                            "cores": c,
                            "jvm": jvm,
                            "compiler": compiler,
                            "repeat": repeat,
                            "exit_code": result.exit_code,
                            "completion_s": round(result.completion_s, 2),
                            "cpu_seconds": None if result.cpu_seconds is None else round(result.cpu_seconds, 2),
                            "core_seconds": round(result.core_seconds, 2),
                            "driver_cpu_seconds": round(driver.total_s, 2),
                            "driver_compiler_cpu_seconds": round(driver.compiler_s, 2),
                        }
                    )
    return rows


def cell(rows: list[dict[str, Any]], workload: str, cores: float, compiler: str, key: str) -> float | None:
    values = [
        r[key]
        for r in rows
        if (r["workload"], r["cores"], r["compiler"]) == (workload, cores, compiler)
        and r["exit_code"] == 0
        and r.get(key) is not None
    ]
    return statistics.median(values) if values else None


def markdown_table(rows: list[dict[str, Any]], jvm: str) -> str:
    """Completion and CPU used, C1+C2 → C1, with the change; medians over the repeats."""
    keys = ["completion_s", "cpu_seconds"]
    header = "| workload | cores per executor | runs | completion s, C1+C2 → C1 | executors' CPU-s, C1+C2 → C1 |"
    if jvm == "driver":
        keys.append("driver_cpu_seconds")
        header += " driver JVM's CPU-s, C1+C2 → C1 |"
    lines = [header, "|---" * (3 + len(keys)) + "|"]
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]
    for workload in workloads:
        for c in sorted({r["cores"] for r in rows if r["workload"] == workload}, reverse=True):
            runs = sum(1 for r in rows if (r["workload"], r["cores"], r["compiler"]) == (workload, c, "C1"))
            parts = []
            for key in keys:
                before, after = (cell(rows, workload, c, k, key) for k in COMPILERS)
                if before is None or after is None:
                    parts.append("–")
                else:
                    parts.append(f"{before:.1f} → {after:.1f} ({100 * (after / before - 1):+.0f} %)")
            lines.append(f"| {workload} | {c:g} | {runs} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, jvm: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    cases = sorted({(r["workload"], r["cores"]) for r in rows}, key=lambda k: (WORKLOADS.index(k[0]), -k[1]))
    panels = [("completion_s", "completion (s)"), ("cpu_seconds", "executors' CPU (s)")]
    if jvm == "driver":
        panels.append(("driver_cpu_seconds", "driver JVM's CPU (s)"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, 1.2 * len(cases)), 3.5 * len(panels)), sharex=True)
    width = 0.4
    for ax, (key, label) in zip(axes, panels, strict=True):
        for i, compiler in enumerate(COMPILERS):
            values = [cell(rows, w, c, compiler, key) or 0.0 for w, c in cases]
            ax.bar([j + (i - 0.5) * width for j in range(len(cases))], values, width, label=compiler)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title=f"{jvm} JIT")
    axes[0].set_title(f"The {jvm} JVM's JIT compiler: tiered (C1+C2) vs C1 only, static cores per executor")
    axes[-1].set_xticks(range(len(cases)))
    axes[-1].set_xticklabels([f"{w}\n{c:g} core" for w, c in cases], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jvm", choices=tuple(JVM_OPTIONS), default="executor", help="whose compiler to switch")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--cores", nargs="+", type=float, help="cores per executor (executor: 1 0.3; driver: 1)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--table", action="store_true", help="print the table from the JSON and stop")
    args = parser.parse_args()
    cores = args.cores or ([1.0, 0.3] if args.jvm == "executor" else [1.0])
    json_path, png_path = RESULTS / f"{args.jvm}_jit.json", RESULTS / f"{args.jvm}_jit.png"
    if args.table:
        print(markdown_table(json.loads(json_path.read_text())["runs"], args.jvm))
        return
    work = Path(tempfile.mkdtemp(prefix="mlscale-bench-jit-"))
    print(f"Each run's report and spark.log go under {work}")
    rows = measure(args.jvm, args.workloads, cores, args.repeats, work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    arguments = {"jvm": args.jvm, "workloads": args.workloads, "cores": cores, "repeats": args.repeats}
    json_path.write_text(json.dumps({"arguments": arguments, "runs": rows}, indent=2) + "\n")
    plot(rows, png_path, args.jvm)
    print(markdown_table(rows, args.jvm))
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()
