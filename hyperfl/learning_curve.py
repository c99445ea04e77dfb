"""Learning curve: accuracy as a saturating power law of training effort.

The curve is ``a(x) = a_inf - b * x^-c`` where ``x`` is the training effort so far (rounds, or
cumulative local epochs). It is fitted by least squares to the observed points, inverted to
find the effort a given accuracy needs, and used to predict the round that reaches a target.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MIN_POINTS = 3
"""Fewest observations a fit is attempted on (three parameters)."""

MAX_PREDICTED_ROUNDS = 1_000_000
"""Predictions are capped here: beyond, 'far more than any budget' is all they say."""


@dataclass(frozen=True)
class PowerLawCurve:
    """A fitted learning curve ``a(x) = a_inf - b * x^-c``.

    Attributes:
        a_inf: Accuracy the curve saturates at.
        b: Scale of the remaining gap (``a_inf - a(1)``).
        c: Decay exponent of the gap; larger learns faster.
    """

    a_inf: float
    b: float
    c: float

    def accuracy_at(self, effort: float) -> float:
        """Accuracy the curve predicts after ``effort`` (rounds or cumulative epochs, > 0)."""
        return float(self.a_inf - self.b * max(effort, 1e-9) ** -self.c)

    def effort_for(self, accuracy: float) -> float | None:
        """Effort at which the curve reaches ``accuracy``; ``None`` when it never does.

        Accuracies below ``a(1)`` map to efforts below one (the curve is monotone, so the
        inverse is still meaningful for differences).
        """
        gap = self.a_inf - accuracy
        if gap <= 0 or self.b <= 0 or self.c <= 0:
            return None
        return float((self.b / gap) ** (1.0 / self.c))

    def to_dict(self) -> dict[str, float]:
        """Plain-number form for the resource status."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PowerLawCurve:
        """Rebuild a curve stored with :meth:`to_dict`."""
        return cls(a_inf=float(data["a_inf"]), b=float(data["b"]), c=float(data["c"]))


def _model(x: npt.NDArray[np.float64], a_inf: float, b: float, c: float) -> npt.NDArray[np.float64]:
    return np.asarray(a_inf - b * np.power(x, -c))


def fit_power_law(efforts: Sequence[float], accuracies: Sequence[float], ceiling: float = 1.0) -> PowerLawCurve | None:
    """Fit ``a(x) = a_inf - b * x^-c`` to observed (effort, accuracy) points.

    Args:
        efforts: Training effort of each observation (positive, e.g. round numbers or
            cumulative local epochs).
        accuracies: Accuracy observed at each effort.
        ceiling: Highest accuracy the metric allows (the asymptote is bounded by it).

    Returns:
        The fitted curve, or ``None`` with fewer than three distinct efforts or when the fit
        does not converge.
    """
    x = np.asarray(efforts, dtype=float)
    y = np.asarray(accuracies, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"{len(x)} efforts but {len(y)} accuracies")
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < MIN_POINTS:
        return None
    from scipy.optimize import curve_fit  # scipy is heavy; only fitting needs it

    top = float(np.max(y))
    a0 = min(ceiling, top + 0.5 * (ceiling - top))
    b0 = max(a0 - float(y[np.argmin(x)]), 1e-3) * float(np.min(x)) ** 0.5
    # Later rounds are less noisy relative to the remaining gap and say more about the asymptote.
    sigma = 1.0 / np.sqrt(x / np.min(x))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = curve_fit(
                _model,
                x,
                y,
                p0=(a0, b0, 0.5),
                bounds=([0.0, 0.0, 0.05], [ceiling, 100.0, 5.0]),
                sigma=sigma,
                maxfev=5000,
            )
    except (RuntimeError, ValueError):
        return None
    a_inf, b, c = (float(p) for p in params)
    if not all(math.isfinite(p) for p in (a_inf, b, c)):
        return None
    return PowerLawCurve(a_inf=a_inf, b=b, c=c)


def predict_rounds_to_target(
    rounds: Sequence[int], accuracies: Sequence[float], target: float, ceiling: float = 1.0
) -> int | None:
    """Round number at which the accuracy-per-round curve reaches ``target``.

    Args:
        rounds: Round numbers observed (from 1).
        accuracies: Evaluated accuracy after each of those rounds.
        target: Accuracy to reach.
        ceiling: Highest accuracy the metric allows.

    Returns:
        The first round (an absolute round number, at least the next one) the fitted curve
        puts at or above ``target``; ``None`` when the curve cannot be fitted or saturates below it.
    """
    for done, accuracy in zip(rounds, accuracies, strict=True):
        if accuracy >= target:
            return done
    curve = fit_power_law([float(r) for r in rounds], accuracies, ceiling)
    if curve is None:
        return None
    effort = curve.effort_for(target)
    if effort is None:
        return None
    last = max(rounds) if rounds else 0
    return max(last + 1, math.ceil(min(effort, MAX_PREDICTED_ROUNDS) - 1e-9))
