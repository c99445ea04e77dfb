"""The PNG of an InferenceService run: latency vs SLO, cores and replicas, offered load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def plot_run(path: Path, samples: Sequence[Mapping[str, Any]], slo_ms: float, title: str) -> Path:
    """Write a three-panel figure of ``samples`` (as in report.json) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    lat = [s["latency_ms"] if s["latency_ms"] is not None else float("nan") for s in samples]
    axes[0].plot(t, lat, label="latency at SLO percentile")
    axes[0].axhline(slo_ms, color="red", linestyle="--", label=f"SLO {slo_ms:g} ms")
    axes[0].set_ylabel("ms")
    axes[0].legend(loc="upper right")
    total = [sum(s["cores"]) for s in samples]
    axes[1].step(t, total, where="post", label="cores (all replicas)")
    axes[1].step(t, [s["replicas"] for s in samples], where="post", label="replicas")
    axes[1].set_ylabel("cores / replicas")
    axes[1].legend(loc="upper right")
    axes[2].plot(t, [s["rps"] for s in samples], label="offered rps")
    axes[2].set_ylabel("requests/s")
    axes[2].set_xlabel("seconds")
    axes[2].legend(loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
