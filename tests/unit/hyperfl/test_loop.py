"""The round loop against a fake federation whose accuracy follows a synthetic learning curve."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from hyperfl.api import FederatedTrainingSpec, FederatedTrainingStatus
from hyperfl.federation import RoundResult
from hyperfl.learning_curve import PowerLawCurve
from hyperfl.loop import RoundReport, run_rounds

PLANT = PowerLawCurve(a_inf=0.97, b=0.8, c=0.7)
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class FakeFederation:
    """Accuracy is the plant's value at the cumulative local epochs; one round takes ``round_s``."""

    def __init__(self, clock: list[float], round_s: float = 1.0, late: Sequence[int] = ()) -> None:
        self.clock = clock
        self.round_s = round_s
        self.late = set(late)
        self.effort = 0.0
        self.checkpoints: dict[str, float] = {}
        self.rounds: list[int] = []

    def run_round(self, round_: int, clients: Sequence[int], epochs: int, timeout_s: float | None) -> RoundResult:
        self.rounds.append(round_)
        self.clock[0] += self.round_s
        self.effort += epochs
        path = f"ckpt-{round_}"
        self.checkpoints[path] = self.effort
        answered = [c for c in clients if c not in self.late]
        return RoundResult(PLANT.accuracy_at(self.effort), 0.5, answered, 100 * epochs, self.round_s, path)

    def restore(self, path: str) -> int:
        self.effort = self.checkpoints[path]
        return int(path.split("-")[1])


def _spec(**kw: object) -> FederatedTrainingSpec:
    doc: dict[str, object] = {
        "model": {"builder": "m:f"},
        "target": {"value": 0.9},
        "rounds": {"max": 40, "clientsPerRound": 5},
        "data": {"clients": 10},
    }
    doc.update(kw)
    return FederatedTrainingSpec.model_validate(doc)


def _clock(start_s: list[float]):
    return lambda: START + dt.timedelta(seconds=start_s[0])


def test_stops_at_the_first_round_on_target() -> None:
    clock = [0.0]
    fed = FakeFederation(clock)
    reports: list[RoundReport] = []
    status = run_rounds(_spec(), FederatedTrainingStatus(), fed, now=_clock(clock), on_round=reports.append)
    assert status.phase == "TargetReached"
    accuracies = [r.accuracy for r in status.history]
    assert accuracies[-1] >= 0.9
    assert all(a < 0.9 for a in accuracies[:-1])
    assert status.round == len(fed.rounds) <= 40
    assert status.client_epochs == sum(r.clients * r.epochs for r in status.history)
    assert status.predicted_rounds_to_target == status.round
    assert [r.status.round for r in reports] == list(range(1, status.round + 1))


def test_budget_exhausted_when_the_target_is_out_of_reach() -> None:
    clock = [0.0]
    status = run_rounds(
        _spec(target={"value": 0.99}, rounds={"max": 12}),
        FederatedTrainingStatus(),
        FakeFederation(clock),
        now=_clock(clock),
    )
    assert (status.phase, status.round) == ("BudgetExhausted", 12)
    at_risk = [c for c in status.conditions if c.type == "TargetAtRisk"]
    assert at_risk
    assert at_risk[0].status == "True"


def test_deadline_ends_the_run_before_a_round_that_would_overrun_it() -> None:
    clock = [0.0]
    status = run_rounds(
        _spec(deadline="10s"), FederatedTrainingStatus(), FakeFederation(clock, round_s=3.0), now=_clock(clock)
    )
    assert status.phase == "BudgetExhausted"
    assert status.round == 3
    assert clock[0] <= 10.0


def test_resume_continues_without_repeating_rounds() -> None:
    clock = [0.0]
    fed = FakeFederation(clock)
    first = run_rounds(_spec(), FederatedTrainingStatus(), fed, now=_clock(clock), max_rounds=5)
    assert (first.phase, first.round) == ("Running", 5)
    stored = FederatedTrainingStatus.model_validate(first.model_dump(mode="json", by_alias=True))
    fresh = FakeFederation(clock)
    fresh.checkpoints = fed.checkpoints
    done = run_rounds(_spec(), stored, fresh, now=_clock(clock))
    assert fresh.rounds[0] == 6
    assert done.phase == "TargetReached"
    assert [r.round for r in done.history] == list(range(1, done.round + 1))

    uninterrupted_clock = [0.0]
    straight = run_rounds(
        _spec(), FederatedTrainingStatus(), FakeFederation(uninterrupted_clock), now=_clock(uninterrupted_clock)
    )
    assert straight.history == done.history


def test_a_mismatched_checkpoint_is_refused() -> None:
    clock = [0.0]
    fed = FakeFederation(clock)
    status = run_rounds(_spec(), FederatedTrainingStatus(), fed, now=_clock(clock), max_rounds=3)
    bad = status.model_copy(update={"checkpoint": "ckpt-2"})
    with pytest.raises(ValueError, match="round 2"):
        run_rounds(_spec(), bad, fed, now=_clock(clock))


def test_stragglers_are_dropped_and_not_counted_as_work() -> None:
    clock = [0.0]
    late = [0, 1, 2]
    status = run_rounds(
        _spec(), FederatedTrainingStatus(), FakeFederation(clock, late=late), now=_clock(clock), max_rounds=6
    )
    dropped = sum(r.dropped for r in status.history)
    assert dropped > 0
    assert status.client_epochs == sum(r.clients * r.epochs for r in status.history)
    stragglers = {c for _, c in status.control_state["selection"]["stragglers"]}  # type: ignore[index]
    assert stragglers <= set(late)
