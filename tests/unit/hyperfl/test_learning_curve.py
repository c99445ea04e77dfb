"""The learning curve recovers synthetic curves and predicts the round that reaches a target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyperfl.learning_curve import PowerLawCurve, fit_power_law, measure_pace, predict_rounds_to_target

TRUE = PowerLawCurve(a_inf=0.96, b=0.8, c=0.7)


def _rounds_to(curve: PowerLawCurve, target: float) -> int:
    return next(r for r in range(1, 10_000) if curve.accuracy_at(r) >= target)


def test_fit_recovers_a_noiseless_curve() -> None:
    rounds = list(range(1, 16))
    fitted = fit_power_law(rounds, [TRUE.accuracy_at(r) for r in rounds])
    assert fitted is not None
    assert fitted.a_inf == pytest.approx(TRUE.a_inf, abs=0.005)
    assert fitted.c == pytest.approx(TRUE.c, abs=0.05)


@pytest.mark.parametrize("seed", range(10))
def test_prediction_from_half_the_rounds_is_within_a_quarter(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rounds = list(range(1, 21))
    observed = [TRUE.accuracy_at(r) + rng.normal(0, 0.005) for r in rounds]
    truth = _rounds_to(TRUE, 0.9)  # 41 rounds
    predicted = predict_rounds_to_target(rounds, observed, 0.9)
    assert predicted is not None
    assert abs(predicted - truth) <= 0.25 * truth


def test_prediction_from_a_quarter_of_the_rounds_is_right_on_median() -> None:
    truth = _rounds_to(TRUE, 0.9)
    predictions = []
    for seed in range(9):
        rng = np.random.default_rng(seed)
        rounds = list(range(1, 11))
        observed = [TRUE.accuracy_at(r) + rng.normal(0, 0.005) for r in rounds]
        predictions.append(predict_rounds_to_target(rounds, observed, 0.9))
    assert None not in predictions
    assert abs(float(np.median(predictions)) - truth) <= 0.15 * truth


def test_prediction_is_none_when_the_curve_saturates_below_the_target() -> None:
    rounds = list(range(1, 16))
    assert predict_rounds_to_target(rounds, [TRUE.accuracy_at(r) for r in rounds], 0.99) is None


def test_prediction_is_the_first_round_that_reached_the_target() -> None:
    assert predict_rounds_to_target([1, 2, 3, 4], [0.5, 0.91, 0.89, 0.95], 0.9) == 2


def test_prediction_is_at_least_the_next_round() -> None:
    rounds = list(range(1, 6))
    predicted = predict_rounds_to_target(rounds, [TRUE.accuracy_at(r) for r in rounds], 0.5)
    assert predicted == 6 or (predicted is not None and predicted <= 6)


def test_too_few_points_give_no_fit() -> None:
    assert fit_power_law([1, 2], [0.3, 0.5]) is None
    assert fit_power_law([1, 1, 1], [0.3, 0.5, 0.4]) is None
    assert predict_rounds_to_target([1, 2], [0.3, 0.5], 0.9) is None


def test_inverse_matches_forward_and_round_trips() -> None:
    effort = TRUE.effort_for(0.9)
    assert effort is not None
    assert TRUE.accuracy_at(effort) == pytest.approx(0.9)
    assert TRUE.effort_for(0.97) is None
    assert PowerLawCurve.from_dict(TRUE.to_dict()) == TRUE
    assert math.isfinite(TRUE.accuracy_at(0.0))


def test_measured_pace_extrapolates_a_steady_rise_linearly() -> None:
    efforts = [float(x) for x in range(1, 9)]
    accuracies = [0.1 + 0.05 * x for x in efforts]
    accuracies[-2] += 0.2  # one outlying round does not move a robust slope
    pace = measure_pace(efforts, accuracies, window_points=4)
    assert pace is not None
    assert (pace.slope, pace.decay, pace.level) == pytest.approx((0.05, 1.0, 0.5))
    assert pace.effort_for_gain(0.3) == pytest.approx(6.0)


def test_measured_pace_of_a_slowing_rise_stops_short_of_what_it_cannot_reach() -> None:
    efforts = [float(x) for x in range(1, 13)]
    accuracies = [0.9 - 0.8 * math.exp(-x / 4) for x in efforts]
    pace = measure_pace(efforts, accuracies, window_points=4)
    assert pace is not None
    assert 0 < pace.decay < 1
    gain_needed = 0.88 - accuracies[-1]
    effort = pace.effort_for_gain(gain_needed)
    assert effort is not None
    true_effort = -4 * math.log((0.9 - 0.88) / 0.8) - efforts[-1]
    assert effort == pytest.approx(true_effort, rel=0.25)
    assert pace.effort_for_gain(0.95 - accuracies[-1]) is None


def test_measured_pace_needs_two_windows_and_progress() -> None:
    assert measure_pace([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], window_points=2) is None
    assert measure_pace([float(x) for x in range(1, 7)], [0.5, 0.5, 0.5, 0.6, 0.55, 0.5], window_points=3) is None
