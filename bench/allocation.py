"""Benchmark analysis: where mlscale's DeadlineJob allocation went that its executors did not use.

Reads the ``report.json`` of every mlscale run that ``bench/deadlinejob.py`` kept (the folder it
prints, ``/tmp/mlscale-bench-*``) and splits, per workload, the cores allocated above what the
executors used over each control period. Each period of each executor falls in one class:

* ``throttled`` — the executor ran out of quota in some of its 100 ms CFS periods and left quota
  unused in others: bursts shorter than the control period;
* ``at coresMin`` — the floor an idle executor holds;
* ``usage cap`` — capped at what it used plus headroom (the law's usage ceiling);
* ``cap lifted`` — capped the period before, throttled, so the cap was lifted and the
  regulator's own output applied: more than the executor then used;
* ``regulator raise`` — not capped the period before but throttled, the regulator raised it
  (behind its set point) past what the executor then used;
* ``other`` — the rest (a new stage's feed-forward, the first period after a reading was
  missing, an application at risk).

Also per workload: how much the allocation moved, ``moved/s``: the cores each executor's
allocation changed by from one control period to the next, added up and divided by the run's
time (0 for constant cores; an executor swung between 0.2 and 0.9 core every second moves 0.7/s).

What the report's totals leave after these (the executors' start before the first meter
reading, and the end) is counted apart, so each row adds up to allocated minus used. A period's
reading can run a little past its end, so a class can come out slightly negative.

    .venv/bin/python bench/allocation.py [FOLDER]   # default: the folder of bench/results/deadlinejob.json's runs
    .venv/bin/python bench/allocation.py --table                      # the README's table from the JSON

writes bench/results/deadlinejob_allocation.json and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynaspark.law import LawConfig  # noqa: E402 - after the path set-up above

RESULTS = REPO / "bench" / "results"

# The law's default: an executor throttled in fewer CFS periods than this had what it wanted.
UNTHROTTLED_BELOW: float = LawConfig.unthrottled_below
CLASSES = ("throttled", "at coresMin", "usage cap", "cap lifted", "regulator raise", "other")


def classify(
    samples: Sequence[Mapping[str, Any]], cores_min: float, unthrottled_below: float = UNTHROTTLED_BELOW
) -> dict[str, float]:
    """Core-seconds allocated above use over one run's control periods, by class.

    A sample's ``cores`` hold from its time to the next sample's, whose ``used_cores`` and
    ``throttled_share`` measure that period. Also returns ``allocated``, ``used`` and
    ``unmetered`` (allocation in periods without a reading, not split).
    """
    out: dict[str, float] = defaultdict(float)
    for i, (now, after) in enumerate(pairwise(samples)):
        before = samples[i - 1] if i > 0 else None
        cores: Mapping[str, float] = now.get("cores") or {}
        used: Mapping[str, float] = after.get("used_cores") or {}
        throttled: Mapping[str, float] = after.get("throttled_share") or {}
        dt = float(after["t"]) - float(now["t"])
        for e, c in cores.items():
            out["allocated"] += c * dt
            if e not in used:
                out["unmetered"] += c * dt
                continue
            out["used"] += used[e] * dt
            # Signed: a period whose reading ran a little past its end shows more used than held.
            above = (c - used[e]) * dt
            out[
                _class_of(
                    executor=e,
                    cores=c,
                    throttled_share=throttled.get(e, 0.0),
                    now=now,
                    before=before,
                    cores_min=cores_min,
                    unthrottled_below=unthrottled_below,
                )
            ] += above
    return dict(out)


def moved_per_second(samples: Sequence[Mapping[str, Any]]) -> float:
    """Cores the allocation moved per executor and second: ``Σ |Δcores|`` over the control periods.

    Over the executors that held cores and the time from the first sample with cores to the last.
    """
    moved = 0.0
    executors: set[str] = set()
    held = [s for s in samples if s.get("cores")]
    for now, after in pairwise(held):
        for e, c in after["cores"].items():
            if e in now["cores"]:
                moved += abs(float(c) - float(now["cores"][e]))
                executors.add(e)
    span_s = float(held[-1]["t"]) - float(held[0]["t"]) if len(held) > 1 else 0.0
    return moved / len(executors) / span_s if executors and span_s > 0 else 0.0


def _class_of(
    *,
    executor: str,
    cores: float,
    throttled_share: float,
    now: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    cores_min: float,
    unthrottled_below: float,
) -> str:
    if throttled_share >= unthrottled_below:
        return "throttled"
    if cores <= cores_min + 1e-9:
        return "at coresMin"
    if executor in (now.get("usage_ceilings") or {}):
        return "usage cap"
    # What the executor did in the period before this one: ``now`` carries its reading.
    was_throttled = (now.get("throttled_share") or {}).get(executor, 0.0) >= unthrottled_below
    if was_throttled and before is not None and executor in (before.get("usage_ceilings") or {}):
        return "cap lifted"
    if was_throttled and executor in (now.get("used_cores") or {}):
        return "regulator raise"
    return "other"


def analyse(reports: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Per workload: the runs, their allocation, use and what sat idle by class (core-seconds)."""
    per: dict[str, dict[str, Any]] = {}
    for path in sorted(reports):
        report = json.loads(path.read_text())
        if report.get("mode") != "control" or not report.get("samples"):
            continue
        workload = path.parent.name.split("-")[0]
        split = classify(report["samples"], float(report["executors"]["cores_min"]))
        row = per.setdefault(
            workload, {"runs": 0, "core_seconds": 0.0, "cpu_seconds": 0.0, "moved": 0.0, "idle": defaultdict(float)}
        )
        row["runs"] += 1
        row["moved"] += moved_per_second(report["samples"])
        row["core_seconds"] += float(report["core_seconds"])
        row["cpu_seconds"] += float(report.get("cpu_seconds") or 0.0)
        for k in CLASSES:
            row["idle"][k] += split.get(k, 0.0)
        # The report counts each executor from its registration and its CPU over the whole run:
        # what the metered periods do not explain is the executors' start (no reading yet) and
        # the end, so the classes and this add up to allocated minus used.
        row["idle"]["start, unmetered"] += (
            float(report["core_seconds"])
            - float(report.get("cpu_seconds") or 0.0)
            - sum(split.get(k, 0.0) for k in CLASSES)
        )
    return {
        w: {
            "runs": r["runs"],
            "core_seconds": round(r["core_seconds"] / r["runs"], 2),
            "cpu_seconds": round(r["cpu_seconds"] / r["runs"], 2),
            "cores_moved_per_s": round(r["moved"] / r["runs"], 3),
            "idle_core_seconds": {k: round(v / r["runs"], 2) for k, v in r["idle"].items()},
        }
        for w, r in per.items()
    }


def table(result: Mapping[str, Any]) -> str:
    """The README's table: mean core-seconds per run (and cores moved per executor-second)."""
    keys = (*CLASSES, "start, unmetered")
    lines = [
        "| workload | runs | moved/s | allocated | used | " + " | ".join(keys) + " |",
        "|---|---|---|---|---|" + "---|" * len(keys),
    ]
    for w, r in result["workloads"].items():
        idle = r["idle_core_seconds"]
        cells = " | ".join(f"{idle.get(k, 0.0):.1f}" for k in keys)
        moved = f"{r['cores_moved_per_s']:.3f}" if "cores_moved_per_s" in r else "–"
        lines.append(f"| {w} | {r['runs']} | {moved} | {r['core_seconds']:.1f} | {r['cpu_seconds']:.1f} | {cells} |")
    return "\n".join(lines)


def plot(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ("used", *CLASSES, "start, unmetered")
    workloads = list(result["workloads"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bottom = [0.0] * len(workloads)
    for k in keys:
        values = [
            result["workloads"][w]["cpu_seconds"]
            if k == "used"
            else result["workloads"][w]["idle_core_seconds"].get(k, 0.0)
            for w in workloads
        ]
        ax.bar(workloads, values, bottom=bottom, label=k)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("core-seconds per run (mean)")
    ax.set_title("mlscale DeadlineJob: CPU used and allocation left unused, by cause")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, help="the folder bench/deadlinejob.py printed (default: its last run's)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the README table from the JSON and stop")
    args = parser.parse_args(argv)
    out_json = args.out / "deadlinejob_allocation.json"
    if args.table:
        print(table(json.loads(out_json.read_text())))
        return 0
    if args.folder is None:
        last = args.out / "deadlinejob.json"
        recorded = json.loads(last.read_text()).get("reports") if last.exists() else None
        if recorded is None:
            parser.error(f"{last} names no folder of reports: give the one bench/deadlinejob.py printed")
        args.folder = Path(recorded)
    reports = list(args.folder.glob("*-mlscale/report.json"))
    if not reports:
        parser.error(f"{args.folder}: no */report.json of mlscale runs in it")
    result = {"folder": str(args.folder), "workloads": analyse(reports)}
    args.out.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "deadlinejob_allocation.png")
    print(table(result))
    print(f"results: {out_json} {args.out / 'deadlinejob_allocation.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
