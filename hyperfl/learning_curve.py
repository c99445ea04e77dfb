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


def theil_sen_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Median of the pairwise slopes (robust to single outlying points); ``None`` without two distinct ``xs``."""
    slopes = [
        (ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]
    ]
    return float(np.median(slopes)) if slopes else None


@dataclass(frozen=True)
class MeasuredPace:
    """Progress measured over the latest rounds, extrapolated without assuming a curve family.

    The slope of the latest window is extrapolated with the slowdown measured from the window
    before: the slope shrinks by ``decay`` every ``window`` of effort (exponential approach), or
    stays constant when it did not shrink. An accelerating start is never extrapolated as
    accelerating, so on an S-shaped rise this is a cautious predictor exactly where a power law
    (always decelerating) is most wrong.

    Attributes:
        level: Accuracy at the newest effort on the robust line through the latest window.
        slope: Accuracy gained per unit of effort over the latest window (> 0).
        decay: Ratio of the latest window's slope to the one before, in (0, 1].
        window: Effort the latest window spans.
    """

    level: float
    slope: float
    decay: float
    window: float

    def effort_for_gain(self, gain: float) -> float | None:
        """Further effort this pace needs to add ``gain``; ``None`` when its slowdown stops short of it."""
        if gain <= 0:
            return 0.0
        if self.decay >= 1.0:
            return gain / self.slope
        rate = -math.log(self.decay) / self.window
        # The window's slope is its middle's; the newest point is half a window further on.
        reachable = self.slope * math.exp(-0.5 * rate * self.window) / rate
        if gain >= reachable:
            return None
        return -math.log(1.0 - gain / reachable) / rate


def measure_pace(efforts: Sequence[float], accuracies: Sequence[float], window_points: int) -> MeasuredPace | None:
    """Measure the recent pace from the last two windows of ``window_points`` observations each.

    Args:
        efforts: Cumulative effort at each observation, increasing.
        accuracies: Accuracy observed at each effort.
        window_points: Observations per window (at least two).

    Returns:
        The pace, or ``None`` with fewer than two windows of points or when the latest window
        shows no progress.
    """
    if window_points < 2 or len(efforts) < 2 * window_points or len(efforts) != len(accuracies):
        return None
    x, y = list(efforts[-window_points:]), list(accuracies[-window_points:])
    px, py = list(efforts[-2 * window_points : -window_points]), list(accuracies[-2 * window_points : -window_points])
    slope, before = theil_sen_slope(x, y), theil_sen_slope(px, py)
    if slope is None or before is None or slope <= 0:
        return None
    decay = 1.0 if before <= slope else max(slope / before, 1e-6)
    level = float(np.median([b - slope * a for a, b in zip(x, y, strict=True)])) + slope * x[-1]
    return MeasuredPace(level=level, slope=slope, decay=decay, window=x[-1] - px[-1])
