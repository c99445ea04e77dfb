"""Options of ``mlscale run``, handed to an engine's ``local.run_local``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LocalRunOptions:
    """How to run one resource on this machine.

    Attributes:
        report_dir: Where ``report.json`` and ``report.png`` are written.
        load: Load trace for an InferenceService (e.g. ``step:5:20@30``); ``None`` takes the example's default.
        duration_s: How long to drive the load (InferenceService).
        uncontrolled: Run without cgroup limits where cgroups cannot be written (no vertical control).
        quiet: No live line, only the final summary.
        source: The YAML file the resource came from (relative paths resolve against its folder).
    """

    report_dir: Path
    load: str | None = None
    duration_s: float | None = None
    uncontrolled: bool = False
    quiet: bool = False
    source: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)
