"""What a federation needs to run rounds, and what one round returns (plain data, JSON-safe)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hyperfl.api import FederatedTrainingSpec


@dataclass(frozen=True)
class FederationConfig:
    """Settings of the process that trains the global model.

    Attributes:
        builder: ``module:function`` of the Keras model.
        clients: Number of clients.
        partition: ``iid`` or ``dirichlet``.
        alpha: Dirichlet concentration.
        evaluation_fraction: Share of the data held out on the coordinator.
        seed: Seed of the data split and of the initial model.
        batch_size: Client batch size.
        learning_rate: Client SGD learning rate.
        server_learning_rate: Server learning rate on the averaged update.
        checkpoint_dir: Folder of the per-round checkpoints.
        workers: Base URLs of client workers (``http://127.0.0.1:PORT``); empty to simulate
            every client inside the TFF process.
        python_path: Extra import paths (where the model builder's module lives).
    """

    builder: str
    clients: int
    partition: Literal["iid", "dirichlet"]
    alpha: float
    evaluation_fraction: float
    seed: int
    batch_size: int
    learning_rate: float
    server_learning_rate: float
    checkpoint_dir: str
    workers: list[str] = field(default_factory=list)
    python_path: list[str] = field(default_factory=list)

    @classmethod
    def from_spec(
        cls,
        spec: FederatedTrainingSpec,
        checkpoint_dir: str,
        workers: list[str] | None = None,
        python_path: list[str] | None = None,
    ) -> FederationConfig:
        """Settings for a FederatedTraining spec."""
        return cls(
            builder=spec.model.builder,
            clients=spec.data.clients,
            partition=spec.data.partition.type,
            alpha=spec.data.partition.alpha,
            evaluation_fraction=spec.data.evaluation_fraction,
            seed=spec.data.seed,
            batch_size=spec.training.batch_size,
            learning_rate=spec.training.learning_rate,
            server_learning_rate=spec.training.server_learning_rate,
            checkpoint_dir=checkpoint_dir,
            workers=list(workers or []),
            python_path=list(python_path or []),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (sent to the trainer process)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FederationConfig:
        """Rebuild from :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class RoundResult:
    """What one federated round did.

    Attributes:
        accuracy: Evaluated accuracy of the new global model on the held-out set.
        loss: Evaluated loss.
        answered: Clients whose updates were aggregated.
        examples: Training examples those clients processed (over all their epochs).
        seconds: Wall time of the round.
        checkpoint: Path of the checkpoint written after the round.
    """

    accuracy: float
    loss: float
    answered: list[int]
    examples: int
    seconds: float
    checkpoint: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundResult:
        """Rebuild from :meth:`to_dict`."""
        return cls(**data)
