"""Load traces: offered requests per second as a function of time.

Spec syntax (times take units as in ``90s``/``2m``; a bare number is seconds)::

    const:RPS                 constant load, e.g. ``const:20``
    step:LOW:HIGH@T           LOW until T, then HIGH, e.g. ``step:10:40@30``
    ramp:FROM:TO@T            linear from FROM to TO over T, then TO, e.g. ``ramp:5:50@60``
    sin:MEAN:AMP:PERIOD       MEAN + AMP*sin(2*pi*t/PERIOD), e.g. ``sin:20:10:60``
    spike:BASE:PEAK@T+W       BASE, PEAK during [T, T+W), e.g. ``spike:10:60@20+5``
    csv:PATH (or PATH.csv)    rows ``t_seconds,rps`` (header optional), each held until the next

Rates are clipped at zero. Traces are pure: ``rate_rps(t_s)`` for any ``t_s >= 0``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from mlscale.units import parse_duration


class TraceError(ValueError):
    """A trace spec that cannot be parsed; the message shows the accepted forms."""


FORMS = "const:RPS, step:LOW:HIGH@T, ramp:FROM:TO@T, sin:MEAN:AMP:PERIOD, spike:BASE:PEAK@T+W, csv:PATH"


@dataclass(frozen=True)
class Trace:
    """A load trace.

    Attributes:
        kind: const, step, ramp, sin, spike or csv.
        spec: The text it was parsed from.
        points: Parameters (meaning depends on ``kind``; for csv the (t, rps) rows flattened).
    """

    kind: str
    spec: str
    points: tuple[float, ...]

    def rate_rps(self, t_s: float) -> float:
        """Offered requests per second at ``t_s`` seconds into the run."""
        p = self.points
        if self.kind == "const":
            rate = p[0]
        elif self.kind == "step":
            rate = p[0] if t_s < p[2] else p[1]
        elif self.kind == "ramp":
            frac = 1.0 if p[2] <= 0 else min(1.0, max(0.0, t_s / p[2]))
            rate = p[0] + (p[1] - p[0]) * frac
        elif self.kind == "sin":
            rate = p[0] + p[1] * math.sin(2 * math.pi * t_s / p[2])
        elif self.kind == "spike":
            rate = p[1] if p[2] <= t_s < p[2] + p[3] else p[0]
        else:  # csv: pairs (t, rps)
            rate = 0.0
            for i in range(0, len(p), 2):
                if p[i] <= t_s:
                    rate = p[i + 1]
                else:
                    break
        return max(0.0, rate)

    def peak_rps(self, duration_s: float, step_s: float = 0.1) -> float:
        """Highest rate over ``[0, duration_s]`` (sampled every ``step_s``)."""
        n = max(1, int(duration_s / step_s))
        return max(self.rate_rps(i * step_s) for i in range(n + 1))

    def expected_requests(self, duration_s: float, step_s: float = 0.1) -> float:
        """Integral of the rate over ``[0, duration_s]``."""
        n = max(1, int(duration_s / step_s))
        return sum(self.rate_rps((i + 0.5) * step_s) for i in range(n)) * duration_s / n


def _num(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{spec!r}: {what} must be a number, got {text!r} (forms: {FORMS})") from None
    if not math.isfinite(value):
        raise TraceError(f"{spec!r}: {what} must be finite")
    return value


def _dur(text: str, what: str, spec: str) -> float:
    try:
        value = parse_duration(float(text) if _is_number(text) else text)
    except ValueError as exc:
        raise TraceError(f"{spec!r}: {what}: {exc}") from None
    if value < 0:
        raise TraceError(f"{spec!r}: {what} must not be negative")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_csv(path: Path, spec: str) -> tuple[float, ...]:
    if not path.is_file():
        raise TraceError(f"{spec!r}: no such CSV file {path}")
    rows: list[tuple[float, float]] = []
    with path.open(newline="") as fh:
        for row in csv.reader(fh):
            if not row or row[0].strip().startswith("#"):
                continue
            if not _is_number(row[0].strip()):
                if rows:
                    raise TraceError(f"{spec!r}: row {row} is not 't_seconds,rps'")
                continue  # header
            if len(row) < 2:
                raise TraceError(f"{spec!r}: row {row} needs two columns t_seconds,rps")
            rows.append((_num(row[0], "t_seconds", spec), _num(row[1], "rps", spec)))
    if not rows:
        raise TraceError(f"{spec!r}: CSV holds no (t_seconds, rps) rows")
    rows.sort()
    return tuple(v for r in rows for v in r)


def parse_trace(spec: str) -> Trace:
    """Parse a trace spec (see the module docstring for the forms).

    Raises:
        TraceError: naming the accepted forms when ``spec`` is not one of them.
    """
    text = spec.strip()
    if text.endswith(".csv") and not text.startswith("csv:"):
        text = "csv:" + text
    kind, _, rest = text.partition(":")
    if not rest:
        raise TraceError(f"{spec!r} is not a trace; use one of: {FORMS}")
    if kind == "csv":
        return Trace("csv", spec, _load_csv(Path(rest), spec))
    body, _, when = rest.partition("@")
    parts = body.split(":")
    if kind == "const" and len(parts) == 1 and not when:
        return Trace(kind, spec, (_num(parts[0], "RPS", spec),))
    if kind in ("step", "ramp") and len(parts) == 2 and when:
        a, b = (_num(x, "rate", spec) for x in parts)
        return Trace(kind, spec, (a, b, _dur(when, "T", spec)))
    if kind == "sin" and len(parts) == 3 and not when:
        mean, amp = _num(parts[0], "MEAN", spec), _num(parts[1], "AMP", spec)
        period = _dur(parts[2], "PERIOD", spec)
        if period <= 0:
            raise TraceError(f"{spec!r}: PERIOD must be positive")
        return Trace(kind, spec, (mean, amp, period))
    if kind == "spike" and len(parts) == 2 and "+" in when:
        start, _, width = when.partition("+")
        base, peak = (_num(x, "rate", spec) for x in parts)
        return Trace(kind, spec, (base, peak, _dur(start, "T", spec), _dur(width, "W", spec)))
    raise TraceError(f"{spec!r} is not a trace; use one of: {FORMS}")
