"""The report plot: progress against set point, cores per executor, the deadline."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def plot_report(report: Mapping[str, Any], path: Path) -> Path:
    """Draw ``report`` (the report.json content) into a PNG at ``path``.

    Args:
        report: The report, with ``samples``, ``deadline_s`` and ``completion_s``.
        path: Where to write the PNG.

    Returns:
        ``path``.
    """
    with warnings.catch_warnings():
        # matplotlib 3.9 calls pyparsing names that pyparsing 3.3 deprecates, on import.
        warnings.simplefilter("ignore", DeprecationWarning)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    samples: Sequence[Mapping[str, Any]] = report.get("samples", [])
    t = [s["t"] for s in samples]
    deadline_s = float(report["deadline_s"])
    completion_s = float(report["completion_s"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    top.plot(t, [s["set_point"] for s in samples], label="stage set point", color="tab:orange", drawstyle="steps-post")
    top.plot(t, [s["progress"] for s in samples], label="stage progress", color="tab:blue", drawstyle="steps-post")
    top.plot(t, [s["app_progress"] for s in samples], label="application progress", color="tab:green", linestyle="--")
    top.set_ylabel("fraction done")
    top.set_ylim(-0.02, 1.05)
    top.set_title(
        f"{report.get('kind')} {report.get('name')}: {report.get('phase')} "
        f"({completion_s:.1f} s of {deadline_s:.0f} s, {report.get('core_seconds')} core-s)"
    )
    executors = sorted({e for s in samples for e in s["cores"]}, key=lambda x: (len(x), x))
    for e in executors:
        (line,) = bottom.plot(t, [s["cores"].get(e) for s in samples], label=f"executor {e}", drawstyle="steps-post")
        # What the executor really used over each period (reported at the period's end).
        used = [(s["t"], s["used_cores"][e]) for s in samples if e in s.get("used_cores", {})]
        if used:
            bottom.plot(
                [u[0] for u in used],
                [u[1] for u in used],
                color=line.get_color(),
                linestyle=":",
                drawstyle="steps-pre",
                label=f"executor {e} used",
            )
    bottom.set_ylabel("cores")
    bottom.set_xlabel("seconds since start")
    for axis in (top, bottom):
        axis.axvline(deadline_s, color="tab:red", linestyle=":", label="deadline")
        axis.axvline(completion_s, color="black", linestyle="-.", alpha=0.6, label="completion")
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
