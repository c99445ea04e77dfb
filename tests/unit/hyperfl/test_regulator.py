"""The quality regulator, in closed loop with synthetic accuracy-vs-epochs plants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from hyperfl.learning_curve import PowerLawCurve
from hyperfl.regulator import QualityRegulator, RegulatorSettings, RegulatorState, RoundPlan

# 0.9 needs ~33 cumulative local epochs on this plant.
PLANT = PowerLawCurve(a_inf=0.97, b=0.8, c=0.7)


def _settings(**kw: object) -> RegulatorSettings:
    args: dict[str, object] = {
        "target": 0.9,
        "rounds_max": 30,
        "epochs_min": 1,
        "epochs_max": 5,
        "clients_max": 5,
        "clients_min": 3,
    }
    args.update(kw)
    return RegulatorSettings(**args)  # type: ignore[arg-type]


@dataclass
class Run:
    target: float
    plans: list[RoundPlan]
    accuracies: list[float]

    @property
    def reached(self) -> bool:
        return self.accuracies[-1] >= self.target

    @property
    def client_epochs(self) -> int:
        return sum(p.clients * p.epochs for p in self.plans)


def _closed_loop(settings: RegulatorSettings, plant: PowerLawCurve = PLANT, noise: float = 0.01, seed: int = 0) -> Run:
    regulator = QualityRegulator(settings)
    rng = np.random.default_rng(seed)
    effort = 0.0
    run = Run(settings.target, [], [])
    for round_ in range(1, settings.rounds_max + 1):
        plan = regulator.plan()
        assert plan.round == round_
        assert settings.epochs_min <= plan.epochs <= settings.epochs_max
        assert settings.clients_min <= plan.clients <= settings.clients_max
        effort += plan.epochs
        accuracy = plant.accuracy_at(effort) + rng.normal(0, noise)
        regulator.observe(round_, accuracy, plan.epochs, plan.clients)
        run.plans.append(plan)
        run.accuracies.append(accuracy)
        if accuracy >= settings.target:
            break
    return run


def test_first_round_is_the_cheapest_round() -> None:
    plan = QualityRegulator(_settings()).plan()
    assert (plan.round, plan.epochs, plan.clients, plan.reason) == (1, 1, 3, "start")


def test_a_budget_too_short_to_learn_the_curve_uses_all_clients() -> None:
    plan = QualityRegulator(_settings(rounds_max=6)).plan()
    assert (plan.epochs, plan.clients) == (1, 5)


# On this plant every schedule needs ~33 cumulative epochs; with all 5 clients that is ~165
# client-epochs (fixed 1 epoch: 33 rounds; fixed 5 epochs: 7 rounds, 175).
LEAST_FIXED_WORK = 165


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rounds_max", [20, 30])
def test_reaches_the_target_within_a_budget_without_wasting_work(rounds_max: int, seed: int) -> None:
    run = _closed_loop(_settings(rounds_max=rounds_max), seed=seed)
    assert run.reached
    assert run.client_epochs <= 1.3 * LEAST_FIXED_WORK


@pytest.mark.parametrize("seed", range(4))
def test_a_generous_budget_costs_less_than_any_fixed_setting(seed: int) -> None:
    run = _closed_loop(_settings(rounds_max=60), seed=seed)
    assert run.reached
    assert run.client_epochs <= 0.8 * LEAST_FIXED_WORK


@pytest.mark.parametrize("seed", range(4))
def test_a_tight_budget_raises_the_epochs_one_step_at_a_time(seed: int) -> None:
    run = _closed_loop(_settings(rounds_max=12), noise=0.005, seed=seed)
    assert run.reached
    assert max(p.epochs for p in run.plans) >= 3
    assert all(b.epochs - a.epochs <= 1 for a, b in zip(run.plans, run.plans[1:], strict=False))


# An S-shaped start (slow first rounds, then a fast rise, then saturation) is what federated
# training on label-skewed data looks like; a power law through its first points predicts a
# long way to go. Shaped after digits under Dirichlet(0.5) label skew with 3 clients a round:
# 0.61 after 8 epochs, 0.82 after 15; at one epoch per round it reaches 0.9 after 26 rounds.
class SlowStartPlant:
    def accuracy_at(self, effort: float) -> float:
        return 0.95 * effort**2 / (effort**2 + 6.0**2)


@pytest.mark.parametrize("seed", range(4))
def test_a_slow_start_does_not_buy_epochs_the_budget_does_not_need(seed: int) -> None:
    settings = _settings(rounds_max=40)
    run = _closed_loop(settings, plant=SlowStartPlant(), noise=0.01, seed=seed)  # type: ignore[arg-type]
    assert run.reached
    # The cheapest round all the way costs 3 clients x 1 epoch x ~26 rounds.
    assert run.client_epochs <= 1.2 * 3 * 26


class SlowerStartPlant:
    """Too slow for the cheapest round alone: one epoch a round reaches 0.9 only after ~42 rounds."""

    def accuracy_at(self, effort: float) -> float:
        return 0.95 * effort**2 / (effort**2 + 10.0**2)


@pytest.mark.parametrize("seed", range(4))
def test_a_slow_rise_is_caught_up_with_epochs_not_clients(seed: int) -> None:
    settings = _settings(rounds_max=40)
    run = _closed_loop(settings, plant=SlowerStartPlant(), noise=0.01, seed=seed)  # type: ignore[arg-type]
    assert run.reached
    # The power law calls this rise out of reach for many rounds; the measured pace does not,
    # so the regulator adds a few epochs late instead of ramping to full effort.
    assert all(p.clients == settings.clients_min for p in run.plans)
    assert "on-pace" in {p.reason for p in run.plans}
    assert run.client_epochs <= 1.15 * 3 * 42


def test_a_generous_budget_keeps_the_fewest_epochs_and_drops_clients() -> None:
    run = _closed_loop(_settings(rounds_max=80), noise=0.003)
    assert run.reached
    assert all(p.epochs == 1 for p in run.plans)
    assert run.plans[-1].clients == 3
    assert "ahead" in {p.reason for p in run.plans}


def test_an_unreachable_target_is_flagged_at_risk_at_the_most_epochs() -> None:
    run = _closed_loop(_settings(target=0.99, rounds_max=20), noise=0.003)
    assert not run.reached
    learned = run.plans[QualityRegulator(run_settings := _settings(rounds_max=20)).learning_rounds() :]
    assert all(p.target_at_risk for p in learned)
    # Epochs first (one more per round), then clients: the run ends at full effort.
    assert all(p.epochs == 5 and p.clients == 5 for p in run.plans[12:])
    assert run_settings.rounds_max == len(run.plans)


def test_a_reachable_target_is_not_at_risk_once_the_curve_is_known() -> None:
    run = _closed_loop(_settings(rounds_max=30), noise=0.003)
    assert not any(p.target_at_risk for p in run.plans[4:])
    predicted = [p.predicted_rounds_to_target for p in run.plans[4:]]
    assert all(p is not None and p <= 31 for p in predicted)


def test_a_near_deadline_asks_for_more_epochs() -> None:
    regulator = QualityRegulator(_settings(rounds_max=60))
    effort = 0.0
    for round_ in range(1, regulator.learning_rounds() + 1):
        effort += 1
        regulator.observe(round_, PLANT.accuracy_at(effort), 1, 5)
    relaxed = QualityRegulator(regulator.settings, RegulatorState.from_dict(regulator.state.to_dict())).plan()
    hurried = regulator.plan(rounds_left_by_time=4)
    assert hurried.epochs > relaxed.epochs


def test_state_round_trips_and_resumes_the_same_plan() -> None:
    regulator = QualityRegulator(_settings())
    effort = 0.0
    for round_ in range(1, 7):
        plan = regulator.plan()
        effort += plan.epochs
        regulator.observe(round_, PLANT.accuracy_at(effort), plan.epochs, plan.clients)
    restored = QualityRegulator(regulator.settings, RegulatorState.from_dict(regulator.state.to_dict()))
    assert restored.plan() == regulator.plan()


def test_observing_a_round_again_replaces_it_and_later_ones() -> None:
    regulator = QualityRegulator(_settings())
    for round_ in range(1, 5):
        regulator.observe(round_, 0.1 * round_, 1, 5)
    regulator.observe(3, 0.35, 2, 4)
    assert [o.round for o in regulator.state.observations] == [1, 2, 3]
    assert regulator.state.observations[-1].epochs == 2


def test_settings_refuse_inverted_ranges() -> None:
    with pytest.raises(ValueError, match="epochs"):
        _settings(epochs_min=4, epochs_max=2)
    with pytest.raises(ValueError, match="clients"):
        _settings(clients_min=6)
    assert RegulatorSettings.default_clients_min(5) == 2
    assert RegulatorSettings.default_clients_min(1) == 1
    assert RegulatorSettings.default_clients_min(10) == 5
