"""The report of a local FederatedTraining run: ``report.json`` and ``report.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hyperfl.api import FederatedTraining, FederatedTrainingStatus, RoundRecord


def build_report(
    job: FederatedTraining, status: FederatedTrainingStatus, history: list[RoundRecord], wall_s: float
) -> dict[str, Any]:
    """The report's content (``history`` is every round, not only the status' last 50)."""
    return {
        "kind": job.kind,
        "name": job.metadata.name,
        "phase": status.phase,
        "target": job.spec.target.value,
        "rounds": status.round,
        "rounds_max": job.spec.rounds.max,
        "final_accuracy": status.accuracy,
        "client_epochs": status.client_epochs,
        "predicted_rounds_to_target": status.predicted_rounds_to_target,
        "wall_s": round(wall_s, 3),
        "checkpoint": status.checkpoint,
        "history": [
            {
                "round": r.round,
                "accuracy": r.accuracy,
                "loss": r.loss,
                "clients": r.clients,
                "epochs": r.epochs,
                "dropped": r.dropped,
                "seconds": r.seconds,
            }
            for r in history
        ],
    }


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Accuracy per round against the target, and local epochs and clients per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [h["round"] for h in report["history"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=[2, 1])
    top.plot(rounds, [h["accuracy"] for h in report["history"]], marker="o", ms=3, label="evaluated accuracy")
    top.axhline(report["target"], color="tab:red", ls="--", label=f"target {report['target']:g}")
    top.set_ylabel("accuracy")
    top.set_title(f"{report['kind']} {report['name']}: {report['phase']} after {report['rounds']} rounds")
    top.legend(loc="lower right")
    top.grid(alpha=0.3)
    bottom.step(rounds, [h["epochs"] for h in report["history"]], where="mid", label="local epochs")
    bottom.step(rounds, [h["clients"] for h in report["history"]], where="mid", label="clients", alpha=0.7)
    bottom.set_xlabel("round")
    bottom.set_ylabel("per round")
    bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
