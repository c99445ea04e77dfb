"""Federated data: scikit-learn's digits split into client partitions and a held-out set.

Deterministic for a seed, so the coordinator and every client worker rebuild the same
partitions without exchanging data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FEATURES = 64
"""Features of a digits sample (8×8 pixels)."""
CLASSES = 10
"""Classes of digits."""
MIN_CLIENT_SAMPLES = 4
"""A Dirichlet draw that leaves a client with fewer samples is drawn again."""
DIRICHLET_TRIES = 100
"""Draws tried before giving up on a Dirichlet split."""

Features = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int32]


@dataclass(frozen=True)
class FederatedData:
    """Client partitions and the coordinator's evaluation set.

    Attributes:
        clients: ``(features, labels)`` of each client, indexed by client id.
        eval_x: Held-out features.
        eval_y: Held-out labels.
    """

    clients: list[tuple[Features, Labels]]
    eval_x: Features
    eval_y: Labels

    def client_sizes(self) -> list[int]:
        """Samples held by each client."""
        return [len(y) for _, y in self.clients]


def _load_digits() -> tuple[Features, Labels]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (np.asarray(x, dtype=np.float32) / 16.0), np.asarray(y, dtype=np.int32)


def dirichlet_split(
    labels: Labels, num_clients: int, alpha: float, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Split sample indices over clients with label skew drawn from Dirichlet(alpha).

    Args:
        labels: Label of each sample.
        num_clients: Clients to split over.
        alpha: Concentration; small values give each client few classes.
        rng: Random generator.

    Returns:
        The sample indices of each client.

    Raises:
        ValueError: When no draw gives every client enough samples (too many clients).
    """
    floor = min(MIN_CLIENT_SAMPLES, len(labels) // num_clients)
    for _ in range(DIRICHLET_TRIES):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(int(i) for i in chunk)
        if min(len(p) for p in parts) >= floor:
            return [np.asarray(sorted(p), dtype=np.int64) for p in parts]
    raise ValueError(f"cannot split {len(labels)} samples over {num_clients} clients with alpha={alpha:g}")


def load_federated_digits(
    num_clients: int,
    partition: Literal["iid", "dirichlet"] = "iid",
    alpha: float = 0.5,
    evaluation_fraction: float = 0.2,
    seed: int = 0,
) -> FederatedData:
    """Digits split over ``num_clients`` clients plus a stratified held-out evaluation set.

    Args:
        num_clients: Clients to split the training part over.
        partition: ``iid`` (shuffled equal shares) or ``dirichlet`` (label skew).
        alpha: Dirichlet concentration (``dirichlet`` only).
        evaluation_fraction: Share of the data held out on the coordinator.
        seed: Seed of the split.

    Returns:
        The federated data.
    """
    from sklearn.model_selection import train_test_split

    x, y = _load_digits()
    x_train, x_eval, y_train, y_eval = train_test_split(
        x, y, test_size=evaluation_fraction, random_state=seed, stratify=y
    )
    rng = np.random.default_rng(seed)
    if partition == "iid":
        shares = np.array_split(rng.permutation(len(y_train)), num_clients)
    else:
        shares = dirichlet_split(y_train, num_clients, alpha, rng)
    clients = [(x_train[i], y_train[i]) for i in shares]
    return FederatedData(clients=clients, eval_x=x_eval, eval_y=y_eval)
