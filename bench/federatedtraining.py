"""Benchmark: mlscale's quality regulator against fixed-epoch FedAvg on digits.

For the iid and Dirichlet(0.5) partitions and two accuracy targets each, compares
- mlscale: the regulator picks local epochs and clients per round, the run stops at the target;
- FedAvg with a fixed 1 and a fixed 5 local epochs, the same clients per round, run for the
  whole round budget (as fixed-round training does),
on rounds to target, client-epochs to target (sum of clients × local epochs), wall time to
target, and rounds run after the target was reached. Every run is real TFF on this machine.

    .venv/bin/python bench/federatedtraining.py [--seeds 0 1] [--out bench/results]

Writes ``federatedtraining.json`` and ``federatedtraining.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyperfl.api import FederatedTrainingSpec, FederatedTrainingStatus  # noqa: E402
from hyperfl.federation import FederationConfig  # noqa: E402
from hyperfl.loop import run_rounds  # noqa: E402
from hyperfl.selection import ClientSelector  # noqa: E402
from hyperfl.trainer_process import TrainerProcess  # noqa: E402

ROUNDS_MAX = 40
CLIENTS = 10
CLIENTS_PER_ROUND = 5
CASES = [("iid", [0.90, 0.93]), ("dirichlet", [0.85, 0.90])]


def spec_for(partition: str, target: float, seed: int) -> FederatedTrainingSpec:
    return FederatedTrainingSpec.model_validate(
        {
            "model": {"builder": "examples.hyperfl.models:digits_mlp"},
            "data": {"clients": CLIENTS, "partition": {"type": partition, "alpha": 0.5}, "seed": seed},
            "target": {"value": target},
            "rounds": {"max": ROUNDS_MAX, "clientsPerRound": CLIENTS_PER_ROUND},
            "training": {"batchSize": 16, "learningRate": 0.1, "localEpochs": {"min": 1, "max": 5}},
        }
    )


def trainer(spec: FederatedTrainingSpec, work: Path) -> TrainerProcess:
    config = FederationConfig.from_spec(spec, str(work / "ckpt"), python_path=[str(ROOT)])
    return TrainerProcess(config, work / "trainer.log")


def run_fixed(partition: str, epochs: int, seed: int, work: Path) -> list[dict[str, Any]]:
    """FedAvg with fixed local epochs for the whole budget; one record per round."""
    spec = spec_for(partition, 1.0, seed)
    selector = ClientSelector(CLIENTS, seed=seed)
    history = []
    with trainer(spec, work) as process:
        for round_ in range(1, ROUNDS_MAX + 1):
            clients = selector.select(round_, CLIENTS_PER_ROUND)
            result = process.run_round(round_, clients, epochs, None)
            history.append({"round": round_, "accuracy": result.accuracy, "clients": len(clients), "epochs": epochs,
                            "seconds": result.seconds})  # fmt: skip
    return history


def run_mlscale(partition: str, target: float, seed: int, work: Path) -> list[dict[str, Any]]:
    spec = spec_for(partition, target, seed)
    with trainer(spec, work) as process:
        status = run_rounds(spec, FederatedTrainingStatus(), process, now=lambda: dt.datetime.now(dt.UTC))
    return [
        {"round": r.round, "accuracy": r.accuracy, "clients": r.clients, "epochs": r.epochs, "seconds": r.seconds}
        for r in status.history
    ]


def summarise(history: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Figures to the first round at or above ``target``."""
    reached = next((h["round"] for h in history if h["accuracy"] >= target), None)
    upto = [h for h in history if reached is None or h["round"] <= reached]
    return {
        "reached": reached is not None,
        "rounds_to_target": reached,
        "client_epochs_to_target": sum(h["clients"] * h["epochs"] for h in upto) if reached else None,
        "wall_s_to_target": round(sum(h["seconds"] for h in upto), 2) if reached else None,
        "rounds_after_target": (len(history) - reached) if reached else None,
        "rounds_run": len(history),
        "final_accuracy": history[-1]["accuracy"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for partition, targets in CASES:
            for seed in args.seeds:
                fixed = {e: run_fixed(partition, e, seed, Path(tmp) / f"fixed{e}-{partition}-{seed}") for e in (1, 5)}
                for e, history in fixed.items():
                    curves[f"{partition}/fixed-{e}/seed{seed}"] = history
                for target in targets:
                    history = run_mlscale(partition, target, seed, Path(tmp) / f"mlscale-{partition}-{target}-{seed}")
                    curves[f"{partition}/mlscale-{target}/seed{seed}"] = history
                    for name, runs in [("mlscale", history), ("fixed-1", fixed[1]), ("fixed-5", fixed[5])]:
                        row = {"partition": partition, "target": target, "seed": seed, "strategy": name}
                        rows.append(row | summarise(runs, target))
                        print(json.dumps(rows[-1]), flush=True)
    table = aggregate(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "settings": {"rounds_max": ROUNDS_MAX, "clients": CLIENTS, "clients_per_round": CLIENTS_PER_ROUND,
                     "seeds": args.seeds, "dataset": "digits", "model": "digits_mlp"},
        "wall_s": round(time.monotonic() - t0, 1),
        "table": table,
        "runs": rows,
        "curves": curves,
    }  # fmt: skip
    (args.out / "federatedtraining.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(table, curves, args.out / "federatedtraining.png")
    for line in table:
        print(line)
    return 0


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (partition, target, strategy), with mlscale's work relative to the best fixed."""
    keys = sorted({(r["partition"], r["target"], r["strategy"]) for r in rows})
    table = []
    for partition, target, strategy in keys:
        group = [r for r in rows if (r["partition"], r["target"], r["strategy"]) == (partition, target, strategy)]
        reached = [r for r in group if r["reached"]]

        def mean(key: str, runs: list[dict[str, Any]] = reached) -> float | None:
            return round(statistics.mean(r[key] for r in runs), 2) if runs else None

        table.append({
            "partition": partition, "target": target, "strategy": strategy,
            "reached": f"{len(reached)}/{len(group)}", "rounds_to_target": mean("rounds_to_target"),
            "client_epochs_to_target": mean("client_epochs_to_target"), "wall_s_to_target": mean("wall_s_to_target"),
            "rounds_after_target": mean("rounds_after_target"),
        })  # fmt: skip
    for row in table:
        if row["strategy"] != "mlscale" or row["client_epochs_to_target"] is None:
            continue
        fixed = [
            r["client_epochs_to_target"] for r in table
            if (r["partition"], r["target"]) == (row["partition"], row["target"])
            and r["strategy"] != "mlscale" and r["client_epochs_to_target"] is not None
        ]  # fmt: skip
        row["work_vs_best_fixed"] = round(row["client_epochs_to_target"] / min(fixed), 2) if fixed else None
    return table


def plot(table: list[dict[str, Any]], curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({(r["partition"], r["target"]) for r in table})
    fig, axes = plt.subplots(2, len(cases), figsize=(4 * len(cases), 7), squeeze=False)
    for i, (partition, target) in enumerate(cases):
        top, bottom = axes[0][i], axes[1][i]
        for name, history in curves.items():
            part, strategy, seed = name.split("/")
            if (
                part != partition
                or seed != "seed0"
                or (strategy.startswith("mlscale") and strategy != f"mlscale-{target}")
            ):
                continue
            top.plot([h["round"] for h in history], [h["accuracy"] for h in history], label=strategy.split("-0")[0])
        top.axhline(target, color="tab:red", ls="--", lw=1)
        top.set_title(f"{partition}, target {target:g}")
        top.set_xlabel("round")
        top.set_ylabel("accuracy")
        top.set_ylim(0.5, 1.0)
        top.legend(fontsize=8)
        rows = [r for r in table if (r["partition"], r["target"]) == (partition, target)]
        names = [r["strategy"] for r in rows]
        bottom.bar(
            names, [r["client_epochs_to_target"] or 0 for r in rows], color=["tab:green", "tab:blue", "tab:orange"]
        )
        bottom.set_ylabel("client-epochs to target")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
