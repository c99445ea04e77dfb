"""Kubernetes-style quantities and durations, parsed in one place.

Durations: ``250ms``, ``90s``, ``5m``, ``1h30m``, ``2h``; a plain number means seconds.
CPU: ``500m`` (millicores), ``1.5`` or ``2`` (cores).
Memory: ``512Mi``, ``1Gi``, ``1G``, ``1e9`` or a plain number of bytes.
"""

from __future__ import annotations

import math
import re

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
CPU_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?(e[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$"

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MEMORY_FACTORS = {
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


class QuantityError(ValueError):
    """A quantity or duration that cannot be parsed; the message says what is allowed."""


def parse_duration(value: str | int | float) -> float:
    """Parse a duration into seconds.

    Args:
        value: ``"90s"``, ``"5m"``, ``"1h30m"``, ``"250ms"``, or a number of seconds.

    Returns:
        The duration in seconds.

    Raises:
        QuantityError: when the text is not a duration.
    """
    if isinstance(value, bool):
        raise QuantityError("a duration must be a number of seconds or text like '90s', '5m', '1h30m'")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise QuantityError("a duration must be finite")
        return float(value)
    text = value.strip()
    if not re.fullmatch(DURATION_PATTERN, text):
        raise QuantityError(
            f"{value!r} is not a duration: use a number with a unit, e.g. '90s', '5m', '1h30m', '250ms'"
        )
    return sum(float(n) * _DURATION_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """Format seconds as a short duration (``"1h30m"``, ``"90s"`` → ``"1m30s"``, ``"0.25s"``)."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.3g}s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def parse_cpu(value: str | int | float) -> float:
    """Parse a Kubernetes CPU quantity into cores.

    Args:
        value: ``"500m"``, ``"1.5"``, ``2`` or ``1.5``.

    Returns:
        Cores as a float.

    Raises:
        QuantityError: when the text is not a CPU quantity.
    """
    if isinstance(value, bool):
        raise QuantityError("a CPU quantity must be cores ('1.5', 2) or millicores ('500m')")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise QuantityError("a CPU quantity must be finite")
        return float(value)
    text = value.strip()
    if not re.fullmatch(CPU_PATTERN, text):
        raise QuantityError(f"{value!r} is not a CPU quantity: use cores ('1.5', '2') or millicores ('500m')")
    if text.endswith("m"):
        return int(text[:-1]) / 1000.0
    return float(text)


_USAGE_SCALE = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0}


def parse_cpu_usage(value: str | int | float) -> float:
    """Parse a measured CPU usage, as the resource metrics API reports it, into cores.

    Measurements come finer than requests do: ``"123456789n"`` (nanocores), ``"250u"``,
    ``"250m"``, ``"1"``.

    Raises:
        QuantityError: when the text is not such a quantity.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_cpu(value)
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([num]?)", str(value).strip())
    if match is None:
        raise QuantityError(f"{value!r} is not a measured CPU quantity (like '123456789n', '250m' or '1')")
    return float(match.group(1)) * _USAGE_SCALE[match.group(2)]


def format_cpu(cores: float) -> str:
    """Format cores as a Kubernetes quantity in millicores (``1.5`` → ``"1500m"``, ``2`` → ``"2"``)."""
    millis = round(cores * 1000)
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"


def parse_memory(value: str | int) -> int:
    """Parse a Kubernetes memory quantity into bytes.

    Args:
        value: ``"512Mi"``, ``"1Gi"``, ``"1G"``, ``"1e9"`` or a number of bytes.

    Returns:
        Bytes as an int.

    Raises:
        QuantityError: when the text is not a memory quantity.
    """
    if isinstance(value, bool):
        raise QuantityError("a memory quantity must be bytes or text like '512Mi', '1Gi'")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not re.fullmatch(MEMORY_PATTERN, text):
        raise QuantityError(f"{value!r} is not a memory quantity: use e.g. '512Mi', '1Gi', '2G' or bytes")
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(e[0-9]+|[A-Za-z]*)", text)
    assert match is not None  # guaranteed by MEMORY_PATTERN
    number, suffix = match.groups()
    if suffix.startswith("e"):
        return int(float(number) * 10 ** int(suffix[1:]))
    return int(float(number) * _MEMORY_FACTORS[suffix])


def spark_memory(value: str | int) -> str:
    """Format a memory quantity the way Spark reads it (``"1Gi"`` → ``"1024m"``)."""
    return f"{max(1, parse_memory(value) // 2**20)}m"


_SPARK_SIZE = re.compile(r"([0-9]+)\s*(b|kb?|mb?|gb?|tb?|pb?)?", re.IGNORECASE)
_SPARK_BYTES = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


def spark_size(text: str | None, unit: str) -> int | None:
    """A Spark size (``"384"``, ``"512m"``, ``"2g"``, ``"100b"``) in bytes; ``None`` when unset or not one.

    Args:
        text: The setting's value.
        unit: The unit of a bare number, as Spark reads that setting (``"m"`` for MiB, ``"b"``).
    """
    match = _SPARK_SIZE.fullmatch((text or "").strip())
    if match is None:
        return None
    suffix = (match.group(2) or unit).lower()[0]
    return int(match.group(1)) * _SPARK_BYTES[suffix]
