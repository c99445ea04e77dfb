"""Where the deploy tests find the repository's deploy files."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "mlscale"
OPERATOR_DIR = REPO_ROOT / "operator"
CRDS_DIR = REPO_ROOT / "crds"
