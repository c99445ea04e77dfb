"""Client selection: random, with a preference for clients that answered in time.

Each client keeps a count of rounds it answered before the round deadline and rounds it
missed. Selection samples without replacement, each client weighted by its punctuality
(``(on_time + 2) / (on_time + late + 2)``: presumed punctual until it misses a deadline)
squared. Clients that never missed one are equally likely, whether asked before or not: under
label skew a selection that kept returning to the clients it already knows would train on a
few label mixes only. A habitual straggler becomes rare but is never excluded. The random draw
is seeded by ``(seed, round)``: a resumed run selects the same clients for a round as the run it
replaces. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STRAGGLER_LIMIT = 50
"""Dropped (round, client) records kept in the state."""


@dataclass
class ClientRecord:
    """Punctuality of one client.

    Attributes:
        on_time: Rounds the client answered before the deadline.
        late: Rounds the client was dropped as a straggler.
    """

    on_time: int = 0
    late: int = 0

    @property
    def punctuality(self) -> float:
        """Share of rounds answered in time, with two on-time answers presumed (1.0 until a miss)."""
        return (self.on_time + 2) / (self.on_time + self.late + 2)


@dataclass
class SelectionState:
    """Selection memory (serialisable to the resource status).

    Attributes:
        clients: Punctuality record per client id.
        stragglers: The latest ``(round, client)`` pairs dropped past the round deadline.
    """

    clients: dict[int, ClientRecord] = field(default_factory=dict)
    stragglers: list[tuple[int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON keys are strings)."""
        return {
            "clients": {str(k): [v.on_time, v.late] for k, v in sorted(self.clients.items())},
            "stragglers": [list(p) for p in self.stragglers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectionState:
        """Rebuild a state stored with :meth:`to_dict`."""
        clients = {int(k): ClientRecord(on_time=int(v[0]), late=int(v[1])) for k, v in data.get("clients", {}).items()}
        stragglers = [(int(r), int(c)) for r, c in data.get("stragglers", [])]
        return cls(clients=clients, stragglers=stragglers)


class ClientSelector:
    """Picks the clients of each round and remembers who answered in time."""

    def __init__(self, num_clients: int, seed: int = 0, state: SelectionState | None = None) -> None:
        """Create a selector.

        Args:
            num_clients: Clients ``0 .. num_clients - 1`` exist.
            seed: Seed of the random draw (combined with the round number).
            state: State to resume from.
        """
        if num_clients < 1:
            raise ValueError(f"need at least one client, got {num_clients}")
        self.num_clients = num_clients
        self.seed = seed
        self.state = state if state is not None else SelectionState()

    def weights(self, candidates: Sequence[int]) -> list[float]:
        """Selection weight of each candidate (punctuality squared)."""
        return [self.state.clients.get(c, ClientRecord()).punctuality ** 2 for c in candidates]

    def select(self, round_: int, count: int, available: Sequence[int] | None = None) -> list[int]:
        """Choose ``count`` distinct clients for ``round_``.

        Args:
            round_: Round number (part of the seed, so the choice is reproducible).
            count: Clients wanted; fewer are returned when fewer are available.
            available: Clients that can be asked (all when ``None``).

        Returns:
            The chosen client ids, sorted.
        """
        candidates = sorted(set(available)) if available is not None else list(range(self.num_clients))
        if count >= len(candidates):
            return candidates
        if count <= 0:
            return []
        weights = np.asarray(self.weights(candidates), dtype=float)
        rng = np.random.default_rng([self.seed, round_])
        chosen = rng.choice(len(candidates), size=count, replace=False, p=weights / weights.sum())
        return sorted(candidates[i] for i in chosen)

    def record(self, round_: int, selected: Sequence[int], answered: Sequence[int]) -> list[int]:
        """Record which selected clients answered before the round deadline.

        Args:
            round_: The round.
            selected: Clients asked.
            answered: Clients whose update arrived in time.

        Returns:
            The stragglers (selected but not answered), which the round drops.
        """
        answered_set = set(answered)
        dropped = sorted(c for c in selected if c not in answered_set)
        for client in selected:
            record = self.state.clients.setdefault(client, ClientRecord())
            if client in answered_set:
                record.on_time += 1
            else:
                record.late += 1
        self.state.stragglers = (self.state.stragglers + [(round_, c) for c in dropped])[-STRAGGLER_LIMIT:]
        return dropped
