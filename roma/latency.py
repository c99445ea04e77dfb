"""Sliding-window percentile of response times."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Iterable[float], pct: float) -> float | None:
    """Nearest-rank percentile of ``values``.

    Args:
        values: Samples (any order).
        pct: Percentile in (0, 100].

    Returns:
        The smallest sample such that at least ``pct`` percent of samples are at or below
        it, or None when there are no samples.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    # Rounded before the ceiling: 99.9 % of 1000 is 999.0000000000001 in floating point, which
    # would take the largest sample for p99.9.
    rank = max(1, math.ceil(round(pct * len(ordered) / 100.0, 9)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class LatencyWindow:
    """Response times observed over the last ``window_s`` seconds.

    Time is always an argument: the window never reads a clock, so it behaves the same in a
    simulation, a test and a live router.

    Attributes:
        window_s: Length of the sliding window in seconds.
        max_samples: Bound on retained samples; the oldest are dropped first.
    """

    window_s: float
    max_samples: int = 50_000
    _samples: deque[tuple[float, float]] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        """Validate the window length."""
        if self.window_s <= 0:
            raise ValueError(f"window_s must be positive, got {self.window_s}")

    def add(self, t_s: float, latency_s: float) -> None:
        """Record one completed request.

        Args:
            t_s: Completion time in seconds (any monotonic origin).
            latency_s: Response time of the request in seconds.
        """
        self._samples.append((t_s, latency_s))
        while len(self._samples) > self.max_samples:
            self._samples.popleft()

    def _prune(self, now_s: float) -> None:
        horizon = now_s - self.window_s
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()

    def count(self, now_s: float) -> int:
        """Number of samples inside the window ending at ``now_s``."""
        self._prune(now_s)
        return len(self._samples)

    def percentile_s(self, now_s: float, pct: float) -> float | None:
        """Response time at percentile ``pct`` over the window ending at ``now_s``.

        Args:
            now_s: End of the window.
            pct: Percentile in (0, 100].

        Returns:
            Seconds, or None when the window holds no samples.
        """
        self._prune(now_s)
        return percentile((lat for _, lat in self._samples), pct)

    def violation_ratio(self, now_s: float, slo_s: float) -> float | None:
        """Fraction of the window's requests slower than ``slo_s`` (None when empty)."""
        self._prune(now_s)
        if not self._samples:
            return None
        slow = sum(1 for _, lat in self._samples if lat > slo_s)
        return slow / len(self._samples)

    def to_dict(self) -> dict[str, Any]:
        """Serialise the window (samples included) to plain data."""
        return {
            "window_s": self.window_s,
            "max_samples": self.max_samples,
            "samples": [list(s) for s in self._samples],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyWindow:
        """Rebuild a window written by :meth:`to_dict`."""
        win = cls(window_s=float(data["window_s"]), max_samples=int(data["max_samples"]))
        for t_s, lat in data.get("samples", []):
            win.add(float(t_s), float(lat))
        return win
