"""Benchmark analysis: mlscale's DeadlineJob runs of two (or more) variants side by side.

For an A/B of a change, run ``bench/deadlinejob.py --policies mlscale --out DIR`` alternately
with each variant (one folder per run, so a slow spell of the machine hits both), then:

    .venv/bin/python bench/ab.py "period 1 s=DIR_A1,DIR_A2" "period 0.5 s=DIR_B1,DIR_B2" --out OUT
    .venv/bin/python bench/ab.py --out OUT --table      # the README's table from OUT/ab.json

Per variant and workload (both slacks together), the mean over its runs of:

* ``allocated`` — core-seconds as the report counts them (each executor's quota over time);
* ``charged`` — the same with each control period charged the larger of the quota and the CPU
  the executor really used over it. Writing a cgroup's ``cpu.max`` hands it a fresh quota at
  once, so an executor whose quota changes often gets a little more CPU than its quota says;
  ``charged`` leaves that out of any saving;
* ``used`` — CPU-seconds the executors used.

Each relative to the median core-seconds of the calibration runs at static coresMax of every
folder for that workload (the same job, whichever the variant: one denominator for all), plus
deadlines met, completions in [0.9·D, D] and quota writes per run.

writes OUT/ab.json and OUT/ab.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.deadlinejob import run_label  # after the path set-up above


def charged_core_seconds(samples: Sequence[Mapping[str, Any]], end_s: float) -> float:
    """Core-seconds with each period charged ``max(quota, CPU used over it)`` per executor.

    A sample's cores hold until the next sample, whose ``used_cores`` measure that period; the
    last sample's cores hold until ``end_s`` (no reading: charged at the quota).
    """
    total = 0.0
    for i, sample in enumerate(samples):
        after = samples[i + 1] if i + 1 < len(samples) else None
        until = float(after["t"]) if after is not None else end_s
        dt = max(0.0, until - float(sample["t"]))
        used: Mapping[str, float] = (after.get("used_cores") or {}) if after is not None else {}
        total += sum(max(float(c), float(used.get(e, 0.0))) for e, c in sample["cores"].items()) * dt
    return total


def runs_of(folder: Path) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """mlscale's runs in one bench/deadlinejob.py output, each with its charged core-seconds,
    and the calibration runs' core-seconds per workload."""
    bench = json.loads((folder / "deadlinejob.json").read_text())
    reports = Path(bench["reports"])
    runs: list[dict[str, Any]] = []
    static: dict[str, list[float]] = {}
    first_slack = min(r["slack"] for r in bench["runs"])  # the calibration run has a row per slack
    for r in bench["runs"]:
        if r["policy"] == "static-max" and r["slack"] == first_slack:
            static.setdefault(r["workload"], []).append(float(r["core_seconds"]))
        if r["policy"] != "mlscale" or not r.get("observed", True):
            continue
        label = run_label(r["workload"], r["repeat"], r["slack"], "mlscale")
        report = json.loads((reports / label / "report.json").read_text())
        runs.append(
            {
                "workload": r["workload"],
                "slack": r["slack"],
                "allocated": float(report["core_seconds"]),
                "charged": charged_core_seconds(report["samples"], float(report["completion_s"])),
                "used": float(report.get("cpu_seconds") or 0.0),
                "completion_ratio": float(r["completion_ratio"]),
                "deadline_met": bool(r["deadline_met"]),
                "quota_writes": int(report.get("quota_writes") or 0),
            }
        )
    return runs, static


def _mean(runs: Sequence[Mapping[str, Any]], key: str) -> float:
    return statistics.fmean(float(r[key]) for r in runs)


def analyse(variants: Mapping[str, Sequence[Path]]) -> dict[str, Any]:
    """Per variant and workload: means relative to the pooled static coresMax median."""
    runs: dict[str, list[dict[str, Any]]] = {}
    static: dict[str, list[float]] = {}
    for name, folders in variants.items():
        for folder in folders:
            found, calibrations = runs_of(folder)
            runs.setdefault(name, []).extend(found)
            for w, values in calibrations.items():
                static.setdefault(w, []).extend(values)
    denominators = {w: statistics.median(v) for w, v in static.items()}
    out: dict[str, Any] = {"static_max_core_seconds": denominators, "variants": {}}
    for name, found in runs.items():
        rows: dict[str, Any] = {}
        for w in sorted({r["workload"] for r in found}):
            mine = [r for r in found if r["workload"] == w]
            d = denominators[w]
            rows[w] = {
                "runs": len(mine),
                "allocated": round(_mean(mine, "allocated") / d, 3),
                "charged": round(_mean(mine, "charged") / d, 3),
                "used": round(_mean(mine, "used") / d, 3),
                "met": sum(r["deadline_met"] for r in mine),
                "in_band": sum(0.9 <= r["completion_ratio"] <= 1.0 for r in mine),
                "quota_writes": round(_mean(mine, "quota_writes"), 1),
            }
        out["variants"][name] = rows
    return out


def table(result: Mapping[str, Any]) -> str:
    lines = [
        "| workload | variant | runs | allocated | charged | used | met | in [0.9·D, D] | quota writes / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    workloads = sorted({w for rows in result["variants"].values() for w in rows})
    for w in workloads:
        for name, rows in result["variants"].items():
            r = rows.get(w)
            if r is None:
                continue
            lines.append(
                f"| {w} | {name} | {r['runs']} | {r['allocated']:.2f}× | {r['charged']:.2f}× | {r['used']:.2f}× "
                f"| {r['met']}/{r['runs']} | {r['in_band']}/{r['runs']} | {r['quota_writes']:.0f} |"
            )
    return "\n".join(lines)


def plot(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(result["variants"])
    workloads = sorted({w for rows in result["variants"].values() for w in rows})
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(variants))
    for i, name in enumerate(variants):
        rows = result["variants"][name]
        xs = [j + i * width for j in range(len(workloads))]
        ax.bar(xs, [rows.get(w, {}).get("charged", 0.0) for w in workloads], width, label=f"{name}: charged")
        ax.scatter(xs, [rows.get(w, {}).get("used", 0.0) for w in workloads], color="black", marker="_", s=200)
    ax.axhline(0.65, color="red", linestyle="--", linewidth=1, label="0.65× static coresMax")
    ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(workloads))], workloads)
    ax.set_ylabel("core-seconds / static coresMax (black: CPU used)")
    ax.set_title("mlscale DeadlineJob, variants side by side (mean per run)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", help="NAME=DIR[,DIR...]: bench/deadlinejob.py output folders")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table", action="store_true", help="print the table from OUT/ab.json and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads((args.out / "ab.json").read_text())))
        return 0
    variants: dict[str, list[Path]] = {}
    for spec in args.variants:
        name, sep, folders = spec.partition("=")
        if not sep or not folders:
            parser.error(f"variant {spec!r}: write NAME=DIR[,DIR...]")
        variants[name] = [Path(f) for f in folders.split(",")]
    if not variants:
        parser.error("name at least one variant: NAME=DIR[,DIR...]")
    result = analyse(variants)
    result["folders"] = {name: [str(f) for f in folders] for name, folders in variants.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ab.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "ab.png")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
