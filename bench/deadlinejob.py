"""Benchmark: does a DeadlineJob meet its deadline with fewer cores than the alternatives?

For each example workload, one run at static coresMax measures its completion time T and
records the stage profile (stored in the profile cache, as a first run would). Then for each
slack s in {20 %, 40 %} the deadline is D = T·(1 + s) and four policies run it:

* ``mlscale``   — the DeadlineJob control law (per-executor cgroup quotas every period);
* ``static-max`` — every executor at coresMax (the calibration run, deadline D);
* ``static-avg`` — every executor at the constant cores that would just fill D
  (coresMax·T/D, rounded up to 0.05);
* ``dynamic``   — Spark dynamic allocation of executors (1..instances), each at coresMax.

Reported per run: deadline met, completion / deadline, core-seconds (cores allocated to
executors × time) and core-seconds relative to static-max, plus CPU seconds really used.

    .venv/bin/python bench/deadlinejob.py [--workloads pagerank kmeans ...] [--slacks 0.2 0.4] [--repeats 3] [--merge]
    .venv/bin/python bench/deadlinejob.py --table     # the README's table from the JSON

``--period S`` runs every workload with a control period of S seconds instead of its example's
(for an A/B of the period; ``bench/ab.py`` compares the outputs).

``--repeats N`` runs the whole comparison N times, each with its own calibration run (the time
at coresMax varies from run to run too); the table gives the median of the N runs and, for
mlscale, the range. ``--merge`` replaces only the rows of the workloads run, keeping the others
in the JSON.

writes bench/results/deadlinejob.json and bench/results/deadlinejob.png. Needs root (cgroups),
Java 17 and about one minute per run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynaspark.api import DeadlineJob  # noqa: E402 - after the path set-up above
from dynaspark.local import resolve_application  # noqa: E402
from dynaspark.profile import ApplicationProfile  # noqa: E402
from dynaspark.profile_cache import cached_profile_path  # noqa: E402
from dynaspark.regulator import quantise_cores  # noqa: E402
from dynaspark.runner import RunResult, RunSettings, report_of, run_deadline_job  # noqa: E402
from mlscale.report import write_report_json  # noqa: E402

WORKLOADS = ("pagerank", "kmeans", "sortbykey", "aggregatebykey", "enrich")
RESULTS = REPO / "bench" / "results"


def load_job(name: str, period_s: float | None = None) -> tuple[DeadlineJob, Path]:
    """The example's DeadlineJob and application; ``period_s`` overrides its control period."""
    source = REPO / "examples" / f"deadlinejob-{name}.yaml"
    raw = yaml.safe_load(source.read_text())
    if period_s is not None:  # through the API's validation, as if the example said so
        raw["spec"].setdefault("control", {})["periodSeconds"] = period_s
    job = DeadlineJob.model_validate(raw)
    return job, resolve_application(job, source)


def row(
    workload: str,
    slack: float,
    policy: str,
    deadline_s: float,
    result: RunResult,
    *,
    static_max_cs: float,
    repeat: int,
) -> dict[str, Any]:
    return {
        "workload": workload,
        "slack": slack,
        "policy": policy,
        "repeat": repeat,
        "deadline_s": round(deadline_s, 2),
        "completion_s": round(result.completion_s, 2),
        "deadline_met": result.exit_code == 0 and result.completion_s <= deadline_s,
        "completion_ratio": round(result.completion_s / deadline_s, 4),
        "core_seconds": round(result.core_seconds, 2),
        "core_seconds_vs_static_max": round(result.core_seconds / static_max_cs, 4) if static_max_cs > 0 else None,
        "cpu_seconds": None if result.cpu_seconds is None else round(result.cpu_seconds, 2),
        # The CPU the executors really used, relative to static coresMax's allocation: no
        # policy that does the same work can allocate less.
        "cpu_seconds_vs_static_max": (
            None if result.cpu_seconds is None or static_max_cs <= 0 else round(result.cpu_seconds / static_max_cs, 4)
        ),
        "exit_code": result.exit_code,
        # False when the loop never reached the driver's REST API: nothing was controlled or
        # counted, and the run is left out of the table.
        "observed": result.application_id is not None,
        "conditions": result.messages,
    }


def run(job: DeadlineJob, app: Path, deadline_s: float, settings: RunSettings, *, work: Path, label: str) -> RunResult:
    job = job.model_copy(deep=True)
    job.spec.deadline = deadline_s
    print(f"  {label}: deadline {deadline_s:.0f} s ...", end="", flush=True)
    result = run_deadline_job(job, app, work / label, settings)
    # Each run's own report (its per-period samples) next to its Spark log, to look into a figure.
    write_report_json(work / label, report_of(job, result, settings))
    unobserved = "" if result.application_id is not None else " UNOBSERVED (left out of the table)"
    print(f" {result.completion_s:.1f} s, {result.core_seconds:.0f} core-s, {result.phase}{unobserved}", flush=True)
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One policy on one case over its repeats: medians, ranges and how many deadlines were met."""
    ratios = [r["completion_ratio"] for r in runs]
    core_s = [r["core_seconds_vs_static_max"] or 0.0 for r in runs]
    used = [r["cpu_seconds_vs_static_max"] for r in runs if r.get("cpu_seconds_vs_static_max") is not None]
    # What the policy allocated per CPU-second its executors really used (1.0: nothing idle).
    allocated_per_used = [r["core_seconds"] / r["cpu_seconds"] for r in runs if r.get("cpu_seconds")]
    return {
        "n": len(runs),
        "met": sum(1 for r in runs if r["deadline_met"]),
        "ratio": statistics.median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
        "core_s": statistics.median(core_s),
        "core_s_range": (min(core_s), max(core_s)),
        "used": statistics.median(used) if used else None,
        "allocated_per_used": statistics.median(allocated_per_used) if allocated_per_used else None,
    }


def cases_of(rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return sorted({(r["workload"], r["slack"]) for r in rows}, key=lambda c: (WORKLOADS.index(c[0]), c[1]))


def summaries(rows: list[dict[str, Any]], case: tuple[str, float]) -> dict[str, dict[str, Any]]:
    """Each policy's :func:`summary` on one case (workload, slack)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if (r["workload"], r["slack"]) == case and r.get("observed", True):
            by.setdefault(r["policy"], []).append(r)
    return {policy: summary(runs) for policy, runs in by.items()}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The README's table: one line per workload and slack, the policies side by side (medians)."""

    def missed(s: dict[str, Any]) -> str:
        return "" if s["met"] == s["n"] else f" ({s['n'] - s['met']}/{s['n']} missed)"

    def cell(s: dict[str, Any] | None, *, core_s: bool = True, spread: bool = False) -> str:
        if s is None:
            return "–"
        text = f"{s['ratio']:.3f}"
        if spread and s["n"] > 1:
            text += " ({:.3f}–{:.3f})".format(*s["ratio_range"])
        if core_s:
            text += f", {s['core_s']:.2f}×"
            if spread and s["n"] > 1:
                text += " ({:.2f}–{:.2f})".format(*s["core_s_range"])
        return text + missed(s)

    lines = [
        "| workload | slack | runs | mlscale C/D, core-s | static coresMax C/D (CPU used) "
        "| static average C/D, core-s | dynamic allocation C/D, core-s | allocated ÷ used: mlscale, static coresMax |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, slack in cases_of(rows):
        by = summaries(rows, (workload, slack))
        static = by.get("static-max")
        used = "" if static is None or static["used"] is None else f" ({static['used']:.2f}×)"
        runs = max(s["n"] for s in by.values())
        per_used = " / ".join(
            "–" if by.get(p, {}).get("allocated_per_used") is None else f"{by[p]['allocated_per_used']:.2f}"
            for p in ("mlscale", "static-max")
        )
        lines.append(
            f"| {workload} | {round(100 * slack)}% | {runs} | {cell(by.get('mlscale'), spread=True)} "
            f"| {cell(static, core_s=False)}{used} | {cell(by.get('static-avg'))} | {cell(by.get('dynamic'))} "
            f"| {per_used} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    policies = ["mlscale", "static-max", "static-avg", "dynamic"]
    cases = cases_of(rows)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, 1.6 * len(cases)), 7), sharex=True)
    width = 0.8 / len(policies)
    per_case = [summaries(rows, case) for case in cases]
    for i, policy in enumerate(policies):
        xs, found = [], []
        for j, by in enumerate(per_case):
            if policy in by:
                xs.append(j + (i - 1.5) * width)
                found.append(by[policy])

        for axis, key in ((top, "ratio"), (bottom, "core_s")):
            medians = [s[key] for s in found]
            low = [m - s[f"{key}_range"][0] for m, s in zip(medians, found, strict=True)]
            high = [s[f"{key}_range"][1] - m for m, s in zip(medians, found, strict=True)]
            axis.bar(xs, medians, width, yerr=[low, high], capsize=2, label=policy)
    used = [(j, by["static-max"]["used"]) for j, by in enumerate(per_case) if by.get("static-max", {}).get("used")]
    if used:
        bottom.scatter(
            [j for j, _ in used],
            [v for _, v in used],
            marker="_",
            s=900,
            color="black",
            label="CPU used at static coresMax (median)",
        )
    top.axhline(1.0, color="tab:red", linestyle=":", label="deadline")
    top.axhline(0.9, color="gray", linestyle=":", label="0.9 · deadline")
    top.set_ylabel("completion / deadline")
    top.set_ylim(0, 1.3)  # room for the legend above the bars
    bottom.axhline(0.65, color="gray", linestyle=":", label="target 0.65")
    bottom.set_ylabel("core-seconds / static coresMax")
    bottom.set_ylim(0, 1.45)
    bottom.set_xticks(range(len(cases)), [f"{w}\nslack {int(100 * s)}%" for w, s in cases])
    top.legend(fontsize=8, ncol=3)
    bottom.legend(fontsize=8, ncol=3)
    top.set_title("DeadlineJob on Spark standalone, 2 executors × coresMax 1")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_label(workload: str, repeat: int, slack: float, policy: str) -> str:
    """The folder of one run's report and log under the work folder (bench/ab.py reads it back)."""
    return f"{workload}-r{repeat}-{int(100 * slack)}-{policy}"


def compare(
    name: str, slacks: list[float], policies: list[str], *, work: Path, repeat: int, period_s: float | None = None
) -> list[dict[str, Any]]:
    """One workload: a calibration run at static coresMax, then every policy at every slack."""
    job, app = load_job(name, period_s)
    ex = job.spec.executors
    print(f"{name} (run {repeat + 1}): calibration at static coresMax", flush=True)
    tag = f"{name}-r{repeat}"
    calibration = run(
        job,
        app,
        10 * job.spec.deadline,
        RunSettings(mode="static", use_profile_cache=False),
        work=work,
        label=f"{tag}-max",
    )
    if calibration.exit_code != 0 or calibration.profile_written is None:
        print(f"  {name} failed (exit {calibration.exit_code}); see {work / f'{tag}-max' / 'spark.log'}")
        return []
    ApplicationProfile.load(Path(calibration.profile_written)).save(
        cached_profile_path(app, job.spec.application.arguments)
    )
    t_max = calibration.completion_s
    static_max_cs = calibration.core_seconds
    rows: list[dict[str, Any]] = []
    for slack in slacks:
        deadline_s = math.ceil(t_max * (1 + slack))
        rows.append(row(name, slack, "static-max", deadline_s, calibration, static_max_cs=static_max_cs, repeat=repeat))
        average = min(ex.cores_max, quantise_cores(math.ceil(ex.cores_max * t_max / deadline_s / 0.05) * 0.05))
        for policy in policies:
            if policy == "mlscale":
                settings = RunSettings(mode="control")
            elif policy == "static-avg":
                settings = RunSettings(mode="static", static_cores=average, use_profile_cache=False)
            else:
                settings = RunSettings(mode="dynamic", use_profile_cache=False)
            result = run(job, app, deadline_s, settings, work=work, label=run_label(name, repeat, slack, policy))
            rows.append(row(name, slack, policy, deadline_s, result, static_max_cs=static_max_cs, repeat=repeat))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--slacks", nargs="+", type=float, default=[0.2, 0.4])
    parser.add_argument("--policies", nargs="+", default=["mlscale", "static-avg", "dynamic"])
    parser.add_argument("--repeats", type=int, default=1, help="run the whole comparison this many times")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for deadlinejob.json and .png")
    parser.add_argument("--merge", action="store_true", help="keep the other workloads' rows in the JSON")
    parser.add_argument("--table", action="store_true", help="print the README table from the JSON and stop")
    parser.add_argument(
        "--period", type=float, help="control period in seconds for every workload (default: each example's)"
    )
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads((args.out / "deadlinejob.json").read_text())["runs"]))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be 1 or more")
    try:  # every job once before the first run: a bad --period fails now, not an hour in
        for name in args.workloads:
            load_job(name, args.period)
    except ValidationError as exc:
        parser.error(f"--period {args.period}: {exc}")
    kept: list[dict[str, Any]] = []
    if args.merge and (args.out / "deadlinejob.json").exists():
        previous = json.loads((args.out / "deadlinejob.json").read_text())["runs"]
        kept = [r for r in previous if r["workload"] not in args.workloads]

    cache = Path(tempfile.mkdtemp(prefix="mlscale-bench-cache-"))
    os.environ["MLSCALE_CACHE_DIR"] = str(cache)  # a clean profile cache: profiles come from the calibration runs
    work = Path(tempfile.mkdtemp(prefix="mlscale-bench-"))
    print(f"each run's report.json and spark.log go under {work}", flush=True)
    rows: list[dict[str, Any]] = []
    started = time.time()
    # Repeats outermost: a slow spell of the machine spreads over the workloads instead of one.
    for repeat in range(args.repeats):
        for name in args.workloads:
            rows += compare(name, args.slacks, args.policies, work=work, repeat=repeat, period_s=args.period)
            args.out.mkdir(parents=True, exist_ok=True)
            every = kept + rows
            (args.out / "deadlinejob.json").write_text(
                json.dumps(
                    {
                        "machine": f"{os.cpu_count()} CPUs",
                        "repeats": args.repeats,
                        # The control period every workload ran with (null: each example's own).
                        "period_s": args.period,
                        "elapsed_s": round(time.time() - started),
                        # Where each run's report.json is (bench/allocation.py reads them).
                        "reports": str(work),
                        "runs": every,
                    },
                    indent=2,
                )
                + "\n"
            )
            plot(every, args.out / "deadlinejob.png")
    print(
        f"{'workload':15s} {'run':>3s} {'slack':>5s} {'policy':11s} {'met':>4s} {'C/D':>6s} "
        f"{'core-s':>7s} {'vs max':>7s} {'cpu/max':>7s}"
    )
    for r in rows:
        print(
            f"{r['workload']:15s} {r['repeat'] + 1:3d} {r['slack']:5.1f} {r['policy']:11s} "
            f"{'yes' if r['deadline_met'] else 'NO':>4s} {r['completion_ratio']:6.3f} {r['core_seconds']:7.1f} "
            f"{r['core_seconds_vs_static_max'] or 0:7.3f} {r['cpu_seconds_vs_static_max'] or 0:7.3f}"
        )
    print(f"results: {args.out / 'deadlinejob.json'} {args.out / 'deadlinejob.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
