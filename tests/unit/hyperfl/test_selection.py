"""Client selection: random, reproducible per round, preferring clients that answered in time."""

from __future__ import annotations

from hyperfl.selection import ClientSelector, SelectionState


def test_selects_distinct_clients_reproducibly_per_round() -> None:
    selector = ClientSelector(10, seed=3)
    first = selector.select(1, 4)
    assert len(first) == len(set(first)) == 4
    assert ClientSelector(10, seed=3).select(1, 4) == first
    assert any(selector.select(r, 4) != first for r in range(2, 6))


def test_asking_for_more_than_available_gives_all_available() -> None:
    selector = ClientSelector(10)
    assert selector.select(1, 5, available=[7, 2, 3]) == [2, 3, 7]
    assert selector.select(1, 0) == []


def test_stragglers_are_dropped_recorded_and_chosen_less_often() -> None:
    selector = ClientSelector(6, seed=1)
    for r in range(1, 21):
        chosen = selector.select(r, 3)
        answered = [c for c in chosen if c != 0]
        dropped = selector.record(r, chosen, answered)
        assert dropped == ([0] if 0 in chosen else [])
    assert all(client == 0 for _, client in selector.state.stragglers)
    picks = {c: 0 for c in range(6)}
    for r in range(100, 400):
        for c in selector.select(r, 3):
            picks[c] += 1
    assert picks[0] < 0.5 * min(picks[c] for c in range(1, 6))
    assert picks[0] > 0  # never excluded for good


def test_without_stragglers_the_first_rounds_spread_over_the_clients() -> None:
    # Label-skewed clients each hold a few classes: a selection that returned to the clients it
    # had just asked would train on a few label mixes only. Four rounds of 3 out of 10 clients
    # cover 10 * (1 - 0.7**4) = 7.6 distinct clients on average when every client is as likely.
    covered = []
    for seed in range(100):
        selector = ClientSelector(10, seed=seed)
        seen: set[int] = set()
        for r in range(1, 5):
            chosen = selector.select(r, 3)
            selector.record(r, chosen, chosen)
            seen.update(chosen)
        covered.append(len(seen))
    assert sum(covered) / len(covered) >= 7.3


def test_state_round_trips_and_resumes_the_same_choice() -> None:
    selector = ClientSelector(8, seed=2)
    for r in range(1, 4):
        chosen = selector.select(r, 3)
        selector.record(r, chosen, chosen[1:])
    restored = ClientSelector(8, seed=2, state=SelectionState.from_dict(selector.state.to_dict()))
    assert restored.state == selector.state
    assert restored.select(4, 3) == selector.select(4, 3)
