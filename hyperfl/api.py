"""The FederatedTraining resource: federated rounds until the global model reaches its target."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlscale.api import (
    BUILDER_PATTERN,
    ApiModel,
    Condition,
    CpuQuantity,
    Duration,
    MemoryQuantity,
    Resource,
    StatusModel,
    admitted,
)
from mlscale.podtemplate import PodTemplate, template_problems

KIND: Final = "FederatedTraining"
PLURAL = "federatedtrainings"
HISTORY_LIMIT = 50

Phase = Literal["Pending", "Running", "TargetReached", "BudgetExhausted", "Failed"]
COORDINATOR_CONTAINER: Final = "coordinator"
"""Name of the container that runs the rounds in the coordinator pod."""
CLIENT_CONTAINER: Final = "worker"
"""Name of the container that trains in each client pod."""
CHECKPOINT_VOLUME: Final = "checkpoints"
"""The coordinator pod's volume holding its checkpoints."""


class ModelSource(ApiModel):
    """Where the global model comes from."""

    builder: str = Field(pattern=BUILDER_PATTERN)
    """``module:function`` returning a Keras model for the dataset's features.

    For example ``examples.hyperfl.models:digits_mlp``.
    """


class Partition(ApiModel):
    """How the data is split over clients."""

    type: Literal["iid", "dirichlet"] = "iid"
    """``iid`` (shuffled, equal shares) or ``dirichlet`` (label skew drawn from Dirichlet(alpha))."""
    alpha: float = Field(default=0.5, gt=0)
    """Concentration of the Dirichlet label skew: smaller is more skewed (dirichlet only)."""

    @model_validator(mode="after")
    def _alpha_for_dirichlet(self, info: ValidationInfo) -> Partition:
        if self.type == "iid" and "alpha" in self.model_fields_set and not admitted(info):
            raise ValueError("alpha sets the skew of a dirichlet partition: remove it, or set type: dirichlet")
        return self


class Data(ApiModel):
    """The federated data."""

    dataset: Literal["digits"] = "digits"
    """Dataset shipped with scikit-learn: ``digits`` (8×8 images, 10 classes)."""
    clients: int = Field(default=10, ge=1, le=1000)
    """Number of clients, each holding its own partition."""
    partition: Partition = Field(default_factory=Partition)
    """How the data is split over clients."""
    evaluation_fraction: float = Field(default=0.2, gt=0, lt=1)
    """Share of the data held out on the coordinator for evaluation."""
    seed: int = 0
    """Seed of the split and of client selection."""


class Target(ApiModel):
    """The quality the training must reach."""

    metric: Literal["accuracy"] = "accuracy"
    """Metric evaluated on the held-out set after each round."""
    value: float
    """Target value; for accuracy in (0, 1]."""

    @model_validator(mode="after")
    def _accuracy_range(self) -> Target:
        if self.metric == "accuracy" and not 0 < self.value <= 1:
            raise ValueError(f"value must be in (0, 1] for accuracy (got {self.value:g}), e.g. 0.9")
        return self


class Rounds(ApiModel):
    """The round budget."""

    max: int = Field(default=50, ge=1, le=100000)
    """Most rounds to run."""
    clients_per_round: int = Field(default=5, ge=1)
    """Clients selected each round, at most `data.clients`; the regulator may use fewer (half, rounded down, but at
    least two where it asks for two or more), never more."""
    timeout_seconds: float | None = Field(default=None, gt=0)
    """A client that has not answered this long after the round started is dropped as a straggler."""


class LocalEpochs(ApiModel):
    """Range of local epochs the regulator chooses from."""

    min: int = Field(default=1, ge=1, le=100)
    """Fewest local epochs per round."""
    max: int = Field(default=5, ge=1, le=100)
    """Most local epochs per round."""

    @model_validator(mode="after")
    def _range(self) -> LocalEpochs:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max}): raise max or lower min")
        return self


class Training(ApiModel):
    """Client training settings."""

    local_epochs: LocalEpochs = Field(default_factory=LocalEpochs)
    """Range of local epochs per round."""
    batch_size: int = Field(default=32, ge=1, le=65536)
    """Client batch size."""
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    """Client SGD learning rate."""
    server_learning_rate: float = Field(default=1.0, gt=0, le=10)
    """Server learning rate applied to the averaged update."""


class ClientResources(ApiModel):
    """Resources of each client pod in a cluster."""

    cores: CpuQuantity = 0.5
    """CPU of each client (e.g. ``500m``)."""
    memory: MemoryQuantity = 1024**3
    """Memory of each client (e.g. ``1Gi``)."""


class CoordinatorTemplate(PodTemplate):
    """Fields added to the coordinator pod, as in a core/v1 PodTemplateSpec (cluster only).

    Node selector, tolerations, affinity, security context, image pull secrets, volumes,
    sidecars; the container named ``coordinator`` adds its ``env``, ``volumeMounts``,
    ``resources`` and other fields to the one that runs the rounds. Ignored on one machine.
    """

    @model_validator(mode="after")
    def _fits(self) -> CoordinatorTemplate:
        problems = template_problems(
            self,
            container=COORDINATOR_CONTAINER,
            owned_container_fields={
                "image": "the coordinator runs spec.image; set it there",
                "command": "the coordinator runs hyperfl.coordinator, built from the spec; remove it",
                "args": "the coordinator runs hyperfl.coordinator, built from the spec; remove it",
                "readinessProbe": "the coordinator is ready once its status server answers; remove it",
            },
            owned_pod_fields={
                "restartPolicy": "a crashed coordinator restarts in its pod and resumes (OnFailure); remove it"
            },
            reserved_volumes={CHECKPOINT_VOLUME: "the checkpoints (spec.checkpointClaim)"},
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ClientTemplate(PodTemplate):
    """Fields added to each client pod, as in a core/v1 PodTemplateSpec (cluster only).

    Node selector, tolerations, affinity, security context, image pull secrets, volumes,
    sidecars; the container named ``worker`` adds its ``env``, ``volumeMounts`` and other fields
    to the one that trains. Ignored on one machine.
    """

    @model_validator(mode="after")
    def _fits(self) -> ClientTemplate:
        problems = template_problems(
            self,
            container=CLIENT_CONTAINER,
            owned_container_fields={
                "image": "clients run spec.image; set it there",
                "command": "clients run hyperfl.worker, built from the spec; remove it",
                "args": "clients run hyperfl.worker, built from the spec; remove it",
                "resources": "a client's CPU and memory come from spec.clientResources; remove resources",
                "readinessProbe": "a client is ready once its worker answers /healthz; remove it",
            },
            owned_pod_fields={
                "restartPolicy": "a client pod restarts its worker (Always); remove it",
                "hostname": "each client is named after its index for the coordinator; remove it",
                "subdomain": "clients are found through their headless Service; remove it",
                "topologySpreadConstraints": "clients are spread over topology.kubernetes.io/zone; remove it "
                "(steer them with nodeSelector or affinity)",
            },
            reserved_volumes={},
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class FederatedTrainingSpec(ApiModel):
    """What a FederatedTraining asks for."""

    model: ModelSource
    """The global model."""
    data: Data = Field(default_factory=Data)
    """The federated data."""
    target: Target
    """The quality to reach; the run stops at the first round that reaches it."""
    rounds: Rounds = Field(default_factory=Rounds)
    """The round budget."""
    training: Training = Field(default_factory=Training)
    """Client training settings."""
    deadline: Duration | None = None
    """Optional wall-clock budget, e.g. ``30m``."""
    image: str | None = None
    """Container image with TensorFlow Federated for the coordinator and client pods in a cluster."""
    client_resources: ClientResources = Field(default_factory=ClientResources)
    """Resources of each client pod (cluster only)."""
    checkpoint_claim: str | None = None
    """PersistentVolumeClaim where the coordinator keeps its checkpoints (cluster only; emptyDir when unset)."""
    coordinator_template: CoordinatorTemplate | None = None
    """Fields added to the coordinator pod (node selector, tolerations, env, sidecars, ...), as in a
    core/v1 PodTemplateSpec; the container named `coordinator` runs the rounds. Cluster only."""
    client_template: ClientTemplate | None = None
    """Fields added to each client pod (node selector, tolerations, env, sidecars, ...), as in a
    core/v1 PodTemplateSpec; the container named `worker` trains. Cluster only."""

    @model_validator(mode="after")
    def _budget(self) -> FederatedTrainingSpec:
        if self.rounds.clients_per_round > self.data.clients:
            raise ValueError(
                f"rounds.clientsPerRound ({self.rounds.clients_per_round}) must not exceed "
                f"data.clients ({self.data.clients}): lower rounds.clientsPerRound or raise data.clients"
            )
        return self

    @field_validator("deadline")
    @classmethod
    def _positive_deadline(cls, deadline: float | None) -> float | None:
        if deadline is not None and deadline <= 0:
            raise ValueError("must be positive, e.g. '30m'")
        return deadline


class RoundRecord(StatusModel):
    """One finished round."""

    round: int
    """Round number, from 1."""
    accuracy: float
    """Evaluated accuracy after the round."""
    loss: float | None = None
    """Evaluated loss after the round."""
    clients: int
    """Clients whose updates were aggregated."""
    epochs: int
    """Local epochs of the round."""
    dropped: int = 0
    """Clients dropped as stragglers."""
    seconds: float | None = None
    """Wall time of the round."""


class FederatedTrainingStatus(StatusModel):
    """What the operator observed of a FederatedTraining."""

    phase: Phase = "Pending"
    """Pending, Running, TargetReached, BudgetExhausted or Failed."""
    conditions: list[Condition] = Field(default_factory=list)
    """Accepted, Submitted, TargetAtRisk, PodsWaiting."""
    observed_generation: int | None = None
    """The generation of the spec the operator last acted on."""
    start_time: dt.datetime | None = None
    """When the first round started."""
    completion_time: dt.datetime | None = None
    """When the run ended."""
    round: int = 0
    """Rounds finished."""
    accuracy: float | None = None
    """Accuracy after the last round."""
    history: list[RoundRecord] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    """The last rounds (at most 50)."""
    predicted_rounds_to_target: int | None = None
    """Rounds the learning curve predicts until the target is reached."""
    client_epochs: int = 0
    """Client work so far: the sum over rounds of clients × local epochs."""
    checkpoint: str | None = None
    """Where the last global model checkpoint is (a file path, or claim:path in a cluster)."""
    control_state: dict[str, Any] | None = None
    """Serialised state of the quality regulator, used to resume."""


class FederatedTraining(Resource[FederatedTrainingSpec, FederatedTrainingStatus]):
    """Federated learning that stops at its accuracy target with the least client work."""

    kind: Literal["FederatedTraining"] = KIND
    """``FederatedTraining``."""
