"""API base models shared by the three resources.

Every model is a :class:`ApiModel`: camelCase aliases, unknown fields rejected, and the
docstring under each field kept as its description (it becomes the CRD schema and
``kubectl explain``). Quantities and durations are annotated types whose Python value is
a plain number (seconds, cores, bytes) and whose schema is Kubernetes' int-or-string.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from mlscale import API_GROUP_VERSION
from mlscale.units import (
    CPU_PATTERN,
    DURATION_PATTERN,
    MEMORY_PATTERN,
    QuantityError,
    parse_cpu,
    parse_duration,
    parse_memory,
)


class ApiModel(BaseModel):
    """Base of every spec model: camelCase aliases, unknown fields rejected, docstrings kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_assignment=False,
    )


class StatusModel(BaseModel):
    """Base of every status model: like :class:`ApiModel` but tolerant of fields from other versions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )


def _int_or_string(value: Any, what: str, example: str) -> Any:
    """Refuse what the API server's int-or-string schema would refuse (floats, booleans)."""
    if isinstance(value, bool | float):
        raise ValueError(f"{what} must be an integer or a quoted string such as {example}")
    if not isinstance(value, int | str):
        raise ValueError(f"{what} must be an integer or a string such as {example}")
    return value


def _duration(value: Any) -> float:
    try:
        return parse_duration(_int_or_string(value, "a duration", "'90s', '5m' or '1h30m'"))
    except QuantityError as exc:
        raise ValueError(str(exc)) from None


def _cpu(value: Any) -> float:
    try:
        return parse_cpu(_int_or_string(value, "a CPU quantity", "'1.5' or '500m'"))
    except QuantityError as exc:
        raise ValueError(str(exc)) from None


def _memory(value: Any) -> int:
    try:
        return parse_memory(_int_or_string(value, "a memory quantity", "'512Mi' or '1Gi'"))
    except QuantityError as exc:
        raise ValueError(str(exc)) from None


def _int_or_string_schema(pattern: str, minimum: int, hint: str) -> dict[str, Any]:
    return {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer", "minimum": minimum}, {"type": "string", "pattern": pattern}],
        "x-mlscale-hint": hint,
    }


def _plain_decimal(value: float) -> str:
    """A number as plain decimal digits, exactly (``1e-05`` → ``"0.00001"``), for the quantity patterns."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _dump_duration(seconds: float) -> int | str:
    """A duration as it reads back: integer seconds, or decimal seconds with their unit."""
    return int(seconds) if float(seconds).is_integer() else f"{_plain_decimal(seconds)}s"


def _dump_cpu(cores: float) -> int | str:
    """A CPU quantity as it reads back: whole cores, millicores, or decimal cores as text."""
    if float(cores).is_integer():
        return int(cores)
    millis = round(cores * 1000)
    return f"{millis}m" if millis / 1000.0 == cores else _plain_decimal(cores)


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(_dump_duration, when_used="json"),
    WithJsonSchema(_int_or_string_schema(DURATION_PATTERN, 1, "seconds, or text such as 90s, 5m, 1h30m")),
]
"""A duration: integer seconds or text like ``90s``, ``5m``, ``1h30m``; the value is seconds."""

CpuQuantity = Annotated[
    float,
    BeforeValidator(_cpu),
    PlainSerializer(_dump_cpu, when_used="json"),
    WithJsonSchema(_int_or_string_schema(CPU_PATTERN, 0, "cores such as '1.5' or 2, or millicores such as '500m'")),
]
"""A CPU quantity: ``"500m"``, ``"1.5"`` or an integer; the value is cores."""

MemoryQuantity = Annotated[
    int,
    BeforeValidator(_memory),
    WithJsonSchema(_int_or_string_schema(MEMORY_PATTERN, 0, "bytes, or text such as 512Mi, 1Gi")),
]
"""A memory quantity: ``"512Mi"``, ``"1Gi"`` or bytes; the value is bytes."""


NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
"""A Kubernetes object name (a DNS subdomain)."""
BUILDER_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"
"""``module:function``, a Python function to import."""

PATTERN_WORDS: dict[str, str] = {
    NAME_PATTERN: "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    BUILDER_PATTERN: "module:function, a function to import (e.g. 'mypackage.models:build')",
}
"""What a pattern of the models allows, in words, for error messages (engines add their own)."""


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata that mlscale reads; the rest is kept as is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str = Field(min_length=1, max_length=253, pattern=NAME_PATTERN)
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


ConditionStatus = Literal["True", "False", "Unknown"]

SUBMITTED = "Submitted"
"""Condition type: the resource's children (pods, Services, Deployments) were created in the cluster."""


class Condition(StatusModel):
    """One observation of the resource's state, as Kubernetes conventions define it."""

    type: str
    """Condition type, e.g. ``Accepted``, ``DeadlineAtRisk``, ``TargetAtRisk``, ``Contended``."""
    status: ConditionStatus
    """``True``, ``False`` or ``Unknown``."""
    reason: str = ""
    """One CamelCase word saying why."""
    message: str = ""
    """Human-readable details."""
    last_transition_time: dt.datetime | None = None
    """When the status last changed."""
    observed_generation: int | None = None
    """The ``metadata.generation`` this condition was set for."""


ADMITTED: Final = {"admitted": True}
"""Validation context for a spec the operator accepted before (a resource's accepted generation, or
what its pods were made from). Checks added since an earlier release are skipped for it, so an
upgrade of the operator does not stop a resource it runs; the next edit of the spec is checked in full."""


def admitted(info: ValidationInfo) -> bool:
    """Whether a validator runs for a spec accepted before (see :data:`ADMITTED`)."""
    return bool((info.context or {}).get("admitted"))


MIN_CORES: Final = 0.01
"""The least CPU a quota can hold: the kernel takes no ``cpu.max`` quota under 1 ms per 100 ms period."""


def check_core_range(cores_min: float, cores_max: float, info: ValidationInfo | None = None) -> None:
    """Refuse a CPU range a regulator cannot work in, naming both fields and the fix.

    ``info``: the validator's; a spec admitted before (:data:`ADMITTED`) may hold a coresMin under
    10m, which an earlier release accepted.

    Raises:
        ValueError: when ``coresMin`` is not above 0 or exceeds ``coresMax``.
    """
    least = 0.0 if info is not None and admitted(info) else MIN_CORES
    if cores_min < least or cores_min <= 0:
        raise ValueError(
            f"coresMin ({cores_min:g}) must be at least 10m: Linux enforces no CPU quota below 1 ms per 100 ms "
            "period (the kubelet raises a smaller one to that); e.g. '100m'"
        )
    if cores_min > cores_max:
        raise ValueError(
            f"coresMin ({cores_min:g}) must not exceed coresMax ({cores_max:g}): raise coresMax or lower coresMin"
        )


def utcnow() -> dt.datetime:
    """The current time in UTC, whole seconds (what Kubernetes timestamps carry)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def rfc3339(moment: dt.datetime) -> str:
    """A time as Kubernetes writes it (UTC, whole seconds, ``Z``)."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_of(status: Mapping[str, Any]) -> list[Condition]:
    """The conditions of a stored status, as models."""
    return [Condition.model_validate(c) for c in status.get("conditions") or []]


def dump_conditions(conditions: list[Condition]) -> list[dict[str, Any]]:
    """Conditions as the API stores them (camelCase, RFC 3339 times, no nulls)."""
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in conditions]


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: dt.datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return ``conditions`` with one condition set; its transition time moves only when its status does.

    Args:
        conditions: The current conditions (not modified).
        type_: The condition type.
        status: ``True``, ``False`` or ``Unknown``.
        reason: CamelCase reason.
        message: Human-readable message.
        now: The time of this observation.
        observed_generation: The generation the observation is about.

    Returns:
        A new list, ordered as before with a new type appended at the end.
    """
    result: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type_:
            result.append(cond)
            continue
        found = True
        changed = cond.status != status
        result.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now if changed or cond.last_transition_time is None else cond.last_transition_time,
                observed_generation=observed_generation,
            )
        )
    if not found:
        result.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=observed_generation,
            )
        )
    return result


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """Return the condition of that type, or ``None``."""
    return next((c for c in conditions if c.type == type_), None)


SpecT = TypeVar("SpecT", bound=ApiModel)
StatusT = TypeVar("StatusT", bound=StatusModel)


class Resource(BaseModel, Generic[SpecT, StatusT]):
    """A whole custom resource: apiVersion, kind, metadata, spec and status."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    api_version: Literal["mlscale.dev/v1alpha1"] = API_GROUP_VERSION
    """``mlscale.dev/v1alpha1``."""
    kind: str
    """The resource kind."""
    metadata: ObjectMeta
    """Standard object metadata."""
    spec: SpecT
    """What the user asks for."""
    status: StatusT | None = None
    """What the operator observed."""


def format_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """Turn a pydantic error into one line per problem, each naming the field path.

    Args:
        exc: The validation error.
        prefix: Text put before each line (e.g. the file and the resource name).

    Returns:
        Lines like ``spec.executors.coresMin: must not exceed coresMax (got 4 > 2)``.
    """
    lines = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"] if not _is_union_tag(part))
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            message = "unknown field: remove it or check its spelling (fields are camelCase)"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "literal_error":
            message = f"{message} (got {err.get('input')!r})"
        elif err["type"] == "string_pattern_mismatch":
            pattern = str((err.get("ctx") or {}).get("pattern", ""))
            if pattern in PATTERN_WORDS:
                message = f"must be {PATTERN_WORDS[pattern]} (got {err.get('input')!r})"
        elif err["type"] in ("model_type", "model_attributes_type", "dict_type"):
            message = f"must be a mapping of fields ({_got(err.get('input'))})"
        elif err["type"] == "list_type":
            message = f"must be a list ({_got(err.get('input'))})"
        lines.append(f"{prefix}{path or '<root>'}: {message}")
    return lines


def _got(value: Any) -> str:
    """What a user wrote where a mapping or list belongs, in words."""
    if value is None:
        return "it is empty"
    if isinstance(value, list):
        return "got a list"
    if isinstance(value, dict):
        return "got a mapping"
    return f"got {value!r}"


def _is_union_tag(part: Any) -> bool:
    """Pydantic puts union member names and validator names into error paths; users don't want them."""
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)
