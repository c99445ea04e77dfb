"""Checking a ``module:function`` model builder before anything is started for it.

A builder is imported by the process that trains or serves the model, after that process has
loaded TensorFlow: a typo would surface seconds later, as a traceback in a log. This finds the
module on the same import paths and looks for the function in its source, without importing
the module itself (only its parent packages), so it costs milliseconds.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path


def builder_problem(reference: str, paths: Sequence[str]) -> str | None:
    """What is wrong with the builder ``module:function`` found on ``paths``, or ``None``.

    ``None`` also where the module's source cannot be read (a compiled module) or defines names in
    ways a reading cannot follow (``from x import *``, a module ``__getattr__``).
    """
    module_name, _, function_name = reference.partition(":")
    saved, loaded = list(sys.path), set(sys.modules)
    sys.path[:0] = [p for p in paths if p not in sys.path]
    importlib.invalidate_caches()
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        spec = None
    except Exception as exc:  # a parent package that fails on import
        return f"importing the packages of {module_name!r} failed: {type(exc).__name__}: {exc}"
    finally:
        # The parent packages find_spec imported go again: the check leaves this process as it was.
        sys.path[:] = saved
        for name in set(sys.modules) - loaded:
            del sys.modules[name]
    if spec is None:
        return f"no module {module_name!r} on the import path (looked first in {', '.join(paths)})"
    origin = spec.origin
    if origin is None or not origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"), filename=origin)
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        return f"{origin} cannot be read as Python: {exc}"
    names = _top_level_names(tree)
    if names is None or function_name in names:
        return None
    return f"{origin} defines no {function_name!r}"


def _top_level_names(tree: ast.Module) -> set[str] | None:
    """Names a module binds at its top level, in any branch; ``None`` when it may bind others unseen."""
    if any(
        isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names) for node in ast.walk(tree)
    ):
        return None
    names: set[str] = set()
    _bound(tree.body, names)
    return None if "__getattr__" in names else names


def _bound(body: list[ast.stmt], names: set[str]) -> None:
    """Add the names the statements of ``body`` bind, descending into ``if``, ``try`` and ``with``."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.If):
            _bound(node.body + node.orelse, names)
        elif isinstance(node, ast.Try):
            _bound(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body], names)
        elif isinstance(node, ast.With):
            _bound(node.body, names)
