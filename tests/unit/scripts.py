"""Load a script that is not part of a package (an example app, a benchmark) as a module."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_script(relative_path: str, name: str) -> ModuleType:
    """Import ``REPO/relative_path`` under ``name`` and return the module."""
    spec = importlib.util.spec_from_file_location(name, REPO / relative_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
