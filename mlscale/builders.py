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
    try:
        source = spec.loader.get_source(module_name) if spec.loader is not None else None  # type: ignore[attr-defined]
    except (AttributeError, ImportError, OSError):
        source = None
    if not isinstance(source, str):
        return None  # a compiled or generated module: only importing it would tell
    try:
        tree = ast.parse(source, filename=spec.origin or module_name)
    except SyntaxError as exc:
        return f"{spec.origin or module_name} is not valid Python: {exc}"
    names = _top_level_names(tree)
    if names is None or function_name in names:
        return None
    return f"{spec.origin or module_name} defines no {function_name!r}"


def _top_level_names(tree: ast.Module) -> set[str] | None:
    """Every name a module binds at its top level; ``None`` when a reading cannot be sure of them.

    Only plain definitions, imports and assignments to names (tuples of names included), in any
    branch of ``if``/``try``/``with``, and expressions without a walrus are followed; a module with
    anything else (a loop, a ``match``, ``globals()``, ``from x import *``, a module
    ``__getattr__``) may bind names this cannot see.
    """
    names: set[str] = set()
    if not _bound(tree.body, names) or "__getattr__" in names:
        return None
    return names


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_DYNAMIC = frozenset({"globals", "vars", "setattr", "exec", "__import__"})
"""Calls that may bind module names a reading cannot see."""


def _bound(body: list[ast.stmt], names: set[str]) -> bool:
    """Add the names ``body`` binds; ``False`` on a statement that may bind names unseen."""
    return all(_binds(node, names) for node in body)


def _binds(node: ast.stmt, names: set[str]) -> bool:
    """Add the names one top-level statement binds; ``False`` where it may bind others unseen."""
    if isinstance(node, _DEFINITIONS):
        names.add(node.name)
        return True
    if any(
        isinstance(inner, ast.NamedExpr) or (isinstance(inner, ast.Name) and inner.id in _DYNAMIC)
        for inner in ast.walk(node)
    ):
        return False
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return all(_target_names(target, names) for target in targets)
    if isinstance(node, ast.Import | ast.ImportFrom):
        names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        return all(alias.name != "*" for alias in node.names)
    if isinstance(node, ast.If | ast.Try | ast.With):
        branches = [getattr(node, field, []) for field in ("body", "orelse", "finalbody")]
        branches += [handler.body for handler in getattr(node, "handlers", [])]
        return all(_bound(branch, names) for branch in branches)
    # An expression (a docstring, a call), pass, assert or del binds nothing; anything else may.
    return isinstance(node, ast.Expr | ast.Pass | ast.Assert | ast.Delete)


def _target_names(target: ast.expr, names: set[str]) -> bool:
    """Add the names an assignment target binds; ``False`` for an attribute or item (it binds none we see)."""
    if isinstance(target, ast.Name):
        names.add(target.id)
        return True
    if isinstance(target, ast.Tuple | ast.List):
        return all(_target_names(element, names) for element in target.elts)
    if isinstance(target, ast.Starred):
        return _target_names(target.value, names)
    return False
