"""Benchmark: the mlscale InferenceService law against three baselines, on real processes.

For each example service and each trace (step, sinusoid, spike) the same service runs four
times on this machine — router, model-server replicas in cgroups, open-loop Poisson load —
under a different allocation policy:

* ``mlscale``: the per-replica PI law on speed plus the horizontal step (``roma.law``);
* ``static-peak``: the replicas mlscale needed at its peak, each at ``coresMax``, all run long;
* ``rule-based``: ROMA's baseline, +1 core when RT > 0.8·SLO, −1 when RT < 0.2·SLO, cooldown 6 s;
* ``hpa-like``: replicas at ``coresMax`` each, count from CPU utilisation (target 70 %).

Each run's own report (report.json, report.png, process logs) goes under
``reports/bench/inferenceservice-runs/``.

It records each run's SLO-violation ratio (share of requests over the SLO) and core-seconds
(allocated cores integrated over the run), and writes ``bench/results/inferenceservice.json``
and ``.png``. ``--simulate`` runs the same comparison against ``roma.simqueue`` instead (fast,
no processes). Usage::

    .venv/bin/python bench/inferenceservice.py [--duration 45] [--examples small-cnn,resnet] [--simulate] [--merge]
    .venv/bin/python bench/inferenceservice.py --table   # the README's table from the JSON

``--merge`` replaces only the rows of the examples run, keeping the others in the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from roma.api import InferenceService  # noqa: E402 - after the path is set
from roma.local import build_policy, serve_and_drive  # noqa: E402
from roma.policies import AllocationPolicy, HpaLikePolicy, RuleBasedPolicy, StaticPolicy  # noqa: E402
from roma.simloop import simulate  # noqa: E402
from roma.simqueue import SimulatedService  # noqa: E402
from roma.traces import parse_trace  # noqa: E402

#: Traces per example, scaled to what each model can serve on two cores.
TRACES: dict[str, dict[str, str]] = {
    "small-cnn": {"step": "step:20:120@15", "sinusoid": "sin:70:50:30", "spike": "spike:20:150@20+8"},
    "resnet": {"step": "step:5:15@15", "sinusoid": "sin:10:6:30", "spike": "spike:5:20@20+8"},
}
#: Simulated CPU work per request (core-seconds), roughly what each model costs here.
SIM_WORK_CORE_S = {"small-cnn": 0.004, "resnet": 0.03}


def load_service(name: str) -> InferenceService:
    data = yaml.safe_load((REPO / "examples" / f"inferenceservice-{name}.yaml").read_text())
    return InferenceService.model_validate(data)


def baselines(svc: InferenceService, peak_replicas: int) -> list[AllocationPolicy]:
    spec = svc.spec
    slo_s = spec.slo.latency_ms / 1000.0
    return [
        StaticPolicy(peak_replicas, spec.cpu.cores_max),
        RuleBasedPolicy(slo_s, spec.cpu.cores_min, spec.cpu.cores_max, spec.replicas.min),
        HpaLikePolicy(spec.cpu.cores_max, spec.replicas.min, spec.replicas.max),
    ]


def run_real(svc: InferenceService, trace: str, duration_s: float, out_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    mls = build_policy(svc)
    policies: list[AllocationPolicy] = [mls]
    for i in range(4):
        policy = policies[i] if i < len(policies) else None
        if policy is None:
            break
        started = time.monotonic()
        report = asyncio.run(
            serve_and_drive(
                svc, trace, duration_s, out_dir / f"{policy.name}", controlled=True, policy=policy, cwd=REPO
            )
        )
        rows.append(_row(policy.name, report["slo_violation_ratio"], report["core_seconds"], report))
        print(
            f"  {policy.name:12s} violations={rows[-1]['slo_violation_ratio']:.3f} "
            f"core_s={rows[-1]['core_seconds']:.0f} ({time.monotonic() - started:.0f}s)",
            flush=True,
        )
        if i == 0:
            policies += baselines(svc, max(1, int(report["peak_replicas"])))
    return rows


def run_sim(svc: InferenceService, name: str, trace: str, duration_s: float) -> list[dict[str, Any]]:
    spec = svc.spec
    slo_s = spec.slo.latency_ms / 1000.0
    rows: list[dict[str, Any]] = []

    def plant(replicas: int) -> SimulatedService:
        p = SimulatedService(work_core_s=SIM_WORK_CORE_S[name], overhead_s=0.003, seed=7)
        p.prime([spec.cpu.cores_max] * replicas)
        return p

    mls = build_policy(svc)
    res = simulate(
        mls,
        plant(spec.replicas.min),
        parse_trace(trace),
        duration_s=duration_s,
        period_s=spec.control.period_seconds,
        slo_s=slo_s,
        pct=spec.slo.percentile,
    )
    rows.append(_row("mlscale", res.violation_ratio, res.core_seconds, None))
    peak = max(len(s.cores) for s in res.samples)
    for pol in baselines(svc, peak):
        first = len(pol.decide(_empty(), []).cores)
        r = simulate(
            pol,
            plant(first),
            parse_trace(trace),
            duration_s=duration_s,
            period_s=spec.control.period_seconds,
            slo_s=slo_s,
            pct=spec.slo.percentile,
        )
        rows.append(_row(pol.name, r.violation_ratio, r.core_seconds, None))
    return rows


def _empty() -> Any:
    from roma.ports import LatencyObservation

    return LatencyObservation(0.0, 0.0, None)


def _row(policy: str, violations: float, core_s: float, report: dict[str, Any] | None) -> dict[str, Any]:
    row = {"policy": policy, "slo_violation_ratio": round(violations, 4), "core_seconds": round(core_s, 1)}
    if report is not None:
        row |= {
            k: report[k]
            for k in (
                "requests",
                "latency_ms_p50",
                "latency_ms_p95",
                "latency_ms_p99",
                "peak_cores",
                "peak_replicas",
                "contended_periods",
            )
        }
    return row


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The README's table: violation ratio / core-seconds of each policy, and mlscale's two ratios."""
    lines = [
        "| example | trace | mlscale | static peak | rule-based | HPA-like | mlscale ÷ rule-based violations "
        "| mlscale ÷ static peak core-s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        by = {row["policy"]: row for row in r["rows"]}
        cells = [
            f"{by[p]['slo_violation_ratio']:.3f} / {by[p]['core_seconds']:.0f}" if p in by else "–"
            for p in ("mlscale", "static-peak", "rule-based", "hpa-like")
        ]
        rule = by["rule-based"]["slo_violation_ratio"]
        mine = by["mlscale"]["slo_violation_ratio"]
        vs_rule = f"{mine / rule:.2f}" if rule else ("0 (both 0)" if not mine else "∞ (rule-based 0)")
        lines.append(
            f"| {r['example']} | {r['trace']} | {' | '.join(cells)} | {vs_rule} "
            f"| {r['core_seconds_vs_static_peak']:.2f} |"
        )
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(3.2 * len(results), 6), squeeze=False)
    for col, case in enumerate(results):
        names = [r["policy"] for r in case["rows"]]
        axes[0][col].bar(names, [r["slo_violation_ratio"] for r in case["rows"]], color="tab:red")
        axes[0][col].set_title(f"{case['example']}\n{case['trace']}", fontsize=9)
        axes[1][col].bar(names, [r["core_seconds"] for r in case["rows"]], color="tab:blue")
        for ax in (axes[0][col], axes[1][col]):
            ax.tick_params(axis="x", rotation=60, labelsize=7)
    axes[0][0].set_ylabel("SLO violation ratio")
    axes[1][0].set_ylabel("core-seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--examples", default="small-cnn,resnet")
    parser.add_argument("--traces", default="step,sinusoid,spike")
    parser.add_argument("--simulate", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--merge", action="store_true", help="keep the other examples' rows in the JSON")
    parser.add_argument("--table", action="store_true", help="print the README table from the JSON and stop")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "inferenceservice-sim" if args.simulate else "inferenceservice"
    if args.table:
        print(markdown_table(json.loads((out / f"{stem}.json").read_text())["results"]))
        return 0
    results: list[dict[str, Any]] = []
    if args.merge and (out / f"{stem}.json").exists():
        ran = args.examples.split(",")
        results = [r for r in json.loads((out / f"{stem}.json").read_text())["results"] if r["example"] not in ran]
    for name in args.examples.split(","):
        svc = load_service(name)
        for kind in args.traces.split(","):
            trace = TRACES[name][kind]
            print(f"{name} {kind} {trace}", flush=True)
            if args.simulate:
                rows = run_sim(svc, name, trace, max(args.duration, 120.0))
            else:
                rows = run_real(
                    svc, trace, args.duration, REPO / "reports" / "bench" / "inferenceservice-runs" / name / kind
                )
            by = {r["policy"]: r for r in rows}
            m, rule, static = by["mlscale"], by["rule-based"], by["static-peak"]
            results.append(
                {
                    "example": name,
                    "trace": trace,
                    "kind": kind,
                    "rows": rows,
                    "violations_vs_rule_based": (m["slo_violation_ratio"] / rule["slo_violation_ratio"])
                    if rule["slo_violation_ratio"]
                    else (math.inf if m["slo_violation_ratio"] else 0.0),
                    "core_seconds_vs_static_peak": m["core_seconds"] / static["core_seconds"],
                }
            )
            (out / f"{stem}.json").write_text(
                json.dumps({"duration_s": args.duration, "results": results}, indent=2, default=str) + "\n"
            )
    plot(results, out / f"{stem}.png")
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
