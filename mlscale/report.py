"""Reports written at the end of ``mlscale run``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_report_json(report_dir: Path, report: Mapping[str, Any], name: str = "report.json") -> Path:
    """Write ``report`` as indented JSON into ``report_dir`` (created if needed) and return its path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / name
    path.write_text(json.dumps(_clean(report), indent=2) + "\n")
    return path
