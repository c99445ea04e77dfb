"""Plain-language summary of a resource: every field it sets, with what the field means."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from mlscale.units import format_cpu, format_duration

_CPU_FIELDS = {"cores", "cores_min", "cores_max"}
_DURATION_FIELDS = {"deadline"}


def _show(name: str, value: Any) -> str:
    if name in _CPU_FIELDS and isinstance(value, float):
        return f"{format_cpu(value)} ({value:g} core{'' if value == 1 else 's'})"
    if name in _DURATION_FIELDS and isinstance(value, float):
        return f"{format_duration(value)} ({value:g} s)"
    if name == "memory" and isinstance(value, int):
        return f"{value / 2**30:g} GiB" if value >= 2**30 else f"{value / 2**20:g} MiB"
    return repr(value) if isinstance(value, str) else str(value)


def explain_lines(model: BaseModel, prefix: str = "") -> Iterator[str]:
    """Yield ``path = value  # meaning`` for every field of ``model``, defaults included."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{prefix}{field.alias or name}"
        if isinstance(value, BaseModel):
            yield from explain_lines(value, prefix=f"{path}.")
            continue
        if value is None or value in ([], {}):
            continue
        meaning = " ".join((field.description or "").replace("``", "`").split())
        yield f"{path} = {_show(name, value)}" + (f"   # {meaning}" if meaning else "")
