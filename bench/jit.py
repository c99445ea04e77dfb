"""Benchmark: what the executors' just-in-time compiler costs a DeadlineJob.

Each example workload runs at static cores per executor (1 and 0.3 core by default, the cgroup
quota the law would set) twice: with HotSpot's default tiered compilation (C1 then C2,
``-XX:TieredStopAtLevel=4``) and with C1 only (``-XX:TieredStopAtLevel=1``, what mlscale gives
executors unless ``sparkConf`` says otherwise). The two alternate within each repeat, so a
drift of the machine falls on both. Reported per run: completion time and the CPU-seconds the
executors really used (their cgroups' accounting).

    .venv/bin/python bench/executor_jit.py [--workloads pagerank ...] [--cores 1 0.3] [--repeats 1]
    .venv/bin/python bench/executor_jit.py --table     # the README's table from the JSON

writes bench/results/executor_jit.json and bench/results/executor_jit.png. Needs root (cgroups),
Java 17 and about a minute per run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynaspark.api import DeadlineJob  # noqa: E402 - after the path set-up above
from dynaspark.jvm import EXECUTOR_JAVA_OPTIONS  # noqa: E402
from dynaspark.local import resolve_application  # noqa: E402
from dynaspark.runner import RunSettings, run_deadline_job  # noqa: E402

WORKLOADS = ("pagerank", "kmeans", "sortbykey", "aggregatebykey", "enrich")
COMPILERS = {"C1+C2": "-XX:TieredStopAtLevel=4", "C1": "-XX:TieredStopAtLevel=1"}
RESULTS = REPO / "bench" / "results"


def load_job(name: str, compile_option: str) -> tuple[DeadlineJob, Path]:
    source = REPO / "examples" / f"deadlinejob-{name}.yaml"
    document = yaml.safe_load(source.read_text())
    conf = document["spec"]["application"].setdefault("sparkConf", {})
    conf[EXECUTOR_JAVA_OPTIONS] = f"{conf.get(EXECUTOR_JAVA_OPTIONS, '')} {compile_option}".strip()
    job = DeadlineJob.model_validate(document)
    return job, resolve_application(job, source)


def measure(workloads: list[str], cores: list[float], repeats: int, work: Path) -> list[dict[str, Any]]:
    rows = []
    for repeat in range(repeats):
        for workload in workloads:
            for c in cores:
                for compiler, option in COMPILERS.items():
                    job, app = load_job(workload, option)
                    label = f"{workload}-{c:g}-{compiler.replace('+', '')}-r{repeat}"
                    print(f"  {label} ...", end="", flush=True)
                    result = run_deadline_job(
                        job, app, work / label, RunSettings(mode="static", static_cores=c, use_profile_cache=False)
                    )
                    print(f" {result.completion_s:.1f} s, {result.cpu_seconds or 0:.1f} CPU-s", flush=True)
                    rows.append(
                        {
                            "workload": workload,
                            "cores": c,
                            "compiler": compiler,
                            "repeat": repeat,
                            "exit_code": result.exit_code,
                            "completion_s": round(result.completion_s, 2),
                            "cpu_seconds": None if result.cpu_seconds is None else round(result.cpu_seconds, 2),
                            "core_seconds": round(result.core_seconds, 2),
                        }
                    )
    return rows


def cell(rows: list[dict[str, Any]], workload: str, cores: float, compiler: str, key: str) -> float | None:
    values = [
        r[key]
        for r in rows
        if (r["workload"], r["cores"], r["compiler"]) == (workload, cores, compiler)
        and r["exit_code"] == 0
        and r[key] is not None
    ]
    return statistics.median(values) if values else None


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Completion and CPU used, C1+C2 → C1, with the change; medians over the repeats."""
    lines = [
        "| workload | cores per executor | runs | completion s, C1+C2 → C1 | executors' CPU-s, C1+C2 → C1 |",
        "|---|---|---|---|---|",
    ]
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]
    for workload in workloads:
        for c in sorted({r["cores"] for r in rows if r["workload"] == workload}, reverse=True):
            runs = sum(1 for r in rows if (r["workload"], r["cores"], r["compiler"]) == (workload, c, "C1"))
            parts = []
            for key in ("completion_s", "cpu_seconds"):
                before, after = (cell(rows, workload, c, k, key) for k in COMPILERS)
                if before is None or after is None:
                    parts.append("–")
                else:
                    parts.append(f"{before:.1f} → {after:.1f} ({100 * (after / before - 1):+.0f} %)")
            lines.append(f"| {workload} | {c:g} | {runs} | {parts[0]} | {parts[1]} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    cases = sorted({(r["workload"], r["cores"]) for r in rows}, key=lambda k: (WORKLOADS.index(k[0]), -k[1]))
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.2 * len(cases)), 7), sharex=True)
    width = 0.4
    panels = (("completion_s", "completion (s)"), ("cpu_seconds", "executors' CPU (s)"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for i, compiler in enumerate(COMPILERS):
            values = [cell(rows, w, c, compiler, key) or 0.0 for w, c in cases]
            ax.bar([j + (i - 0.5) * width for j in range(len(cases))], values, width, label=compiler)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="executor JIT")
    axes[0].set_title("Executors' JIT compiler: tiered (C1+C2) vs C1 only, static cores per executor")
    axes[1].set_xticks(range(len(cases)))
    axes[1].set_xticklabels([f"{w}\n{c:g} core" for w, c in cases], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--cores", nargs="+", type=float, default=[1.0, 0.3])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--table", action="store_true", help="print the table from the JSON and stop")
    args = parser.parse_args()
    json_path, png_path = RESULTS / "executor_jit.json", RESULTS / "executor_jit.png"
    if args.table:
        print(markdown_table(json.loads(json_path.read_text())["runs"]))
        return
    work = Path(tempfile.mkdtemp(prefix="mlscale-bench-jit-"))
    print(f"Each run's report and spark.log go under {work}")
    rows = measure(args.workloads, args.cores, args.repeats, work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    arguments = {"workloads": args.workloads, "cores": args.cores, "repeats": args.repeats}
    json_path.write_text(json.dumps({"arguments": arguments, "runs": rows}, indent=2) + "\n")
    plot(rows, png_path)
    print(markdown_table(rows))
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()
