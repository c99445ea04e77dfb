"""The InferenceService resource: model serving inside a latency SLO with the fewest cores."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal

from pydantic import Field, ValidationError, ValidationInfo, model_validator

from mlscale.api import (
    BUILDER_PATTERN,
    PATTERN_WORDS,
    ApiModel,
    Condition,
    CpuQuantity,
    MemoryQuantity,
    Resource,
    StatusModel,
    admitted,
    check_core_range,
)
from mlscale.podtemplate import PodTemplate, layer, template_problems

KIND: Final = "InferenceService"
PLURAL = "inferenceservices"

Phase = Literal["Pending", "Running", "Failed"]
SERVER_CONTAINER: Final = "server"
"""Name of the model-server container in each replica pod."""
ROUTER_CONTAINER: Final = "router"
"""Name of the router's container."""
ROUTER_ADMIN_VOLUME: Final = "mlscale-router-admin"
"""The router pod's volume of its admin token (the operator's Secret)."""
ADMIN_TOKEN_FILE_ENV: Final = "MLSCALE_ROUTER_ADMIN_TOKEN_FILE"
"""The router's environment variable naming the file of the token its admin API asks for (unset: none asked).

Read at each admin request, so a token the operator replaces reaches the router without a
restart (the kubelet updates a mounted Secret in place)."""
_OWNED_POD_FIELDS = {
    "restartPolicy": "a Deployment's pods always restart (Always); remove it",
    "terminationGracePeriodSeconds": "the operator gives its pods 10 s to stop; remove it",
}


class ReplicaTemplate(PodTemplate):
    """Fields added to model-server replica pods, as in a core/v1 PodTemplateSpec (cluster only).

    Node selector, tolerations (a GPU pool's taint), affinity, security context, image pull
    secrets, volumes, sidecars; the container named ``server`` adds its ``env``,
    ``volumeMounts`` and other fields to the model server's. Ignored on one machine.
    """

    @model_validator(mode="after")
    def _fits(self) -> ReplicaTemplate:
        problems = template_problems(
            self,
            container=SERVER_CONTAINER,
            owned_container_fields={
                "image": "replicas run spec.image; set it there",
                "command": "replicas run roma.server, built from the spec; remove it",
                "args": "replicas run roma.server, built from the spec; remove it",
                "resources": "a replica's CPU comes from spec.cpu, its memory from spec.memory and its GPU from "
                "spec.gpu; remove resources",
                "resizePolicy": "the operator resizes the CPU in place (NotRequired); remove it",
                "readinessProbe": "the router takes a replica once it answers /v2/health/ready; remove it",
            },
            owned_pod_fields=_OWNED_POD_FIELDS,
            reserved_volumes={},
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class RouterTemplate(PodTemplate):
    """Fields added to the router pod, as in a core/v1 PodTemplateSpec (cluster only).

    Node selector, tolerations, affinity, security context, image pull secrets, sidecars; the
    container named ``router`` adds its ``env`` and other fields to the router's. Ignored on one
    machine.
    """

    @model_validator(mode="after")
    def _fits(self) -> RouterTemplate:
        problems = template_problems(
            self,
            container=ROUTER_CONTAINER,
            owned_container_fields={
                "image": "the router runs spec.image; set it there",
                "command": "the router runs roma.router, built from the spec; remove it",
                "args": "the router runs roma.router, built from the spec; remove it",
                "resources": "the router's CPU and memory are the operator's (500m, 512Mi); remove resources",
                "readinessProbe": "the router is ready once it answers /stats; remove it",
            },
            owned_pod_fields=_OWNED_POD_FIELDS,
            reserved_volumes={ROUTER_ADMIN_VOLUME: "the token of the router's admin API"},
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


MODEL_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"
"""A served model's name, part of its URL path."""
PATTERN_WORDS[MODEL_NAME_PATTERN] = (
    "lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
)


class ModelSource(ApiModel):
    """The model to serve: a builder or a SavedModel, exactly one."""

    name: str = Field(pattern=MODEL_NAME_PATTERN, max_length=63)
    """Name under which the model is served (``/v2/models/{name}``)."""
    builder: str | None = Field(default=None, pattern=BUILDER_PATTERN)
    """``module:function`` returning a Keras model (e.g. ``examples.roma.models:small_cnn``)."""
    uri: str | None = None
    """Path of a TensorFlow SavedModel directory."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if (self.builder is None) == (self.uri is None):
            raise ValueError("set exactly one of builder (module:function) or uri (SavedModel path)")
        return self


class Slo(ApiModel):
    """The latency promise."""

    latency_ms: float = Field(gt=0, le=600000)
    """Response-time bound in milliseconds."""
    percentile: float = Field(default=95.0, gt=0, lt=100)
    """Percentile of response times that must stay within the bound, in (0, 100)."""


class Replicas(ApiModel):
    """Range of CPU replicas."""

    min: int = Field(default=1, ge=1, le=1000)
    """Fewest replicas."""
    max: int = Field(default=4, ge=1, le=1000)
    """Most replicas."""

    @model_validator(mode="after")
    def _range(self) -> Replicas:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max}): raise max or lower min")
        return self


class CpuRange(ApiModel):
    """CPU range of each replica."""

    cores_min: CpuQuantity = 0.2
    """Fewest cores a replica is given (e.g. ``200m``; at least ``10m``, the least quota Linux enforces)."""
    cores_max: CpuQuantity = 2.0
    """Most cores a replica is given."""

    @model_validator(mode="after")
    def _range(self, info: ValidationInfo) -> CpuRange:
        check_core_range(self.cores_min, self.cores_max, info)
        return self


class Gpu(ApiModel):
    """GPU replicas that share the load."""

    count: int = Field(default=0, ge=0, le=64)
    """Number of GPU replicas (0: CPU only)."""
    resource_name: str = "nvidia.com/gpu"
    """Extended resource a GPU replica requests."""
    alpha: float = Field(default=0.2, ge=0, lt=1)
    """Margin of the dispatcher: a model needs the GPU once its response time reaches (1 − alpha)·SLO."""
    template: ReplicaTemplate | None = None
    """Fields added to GPU replica pods after `spec.template`'s (a GPU pool's node selector and
    taint, say), as in a core/v1 PodTemplateSpec. Cluster only."""


class Batching(ApiModel):
    """Dynamic batching in each model server."""

    max_batch_size: int = Field(default=8, ge=1, le=4096)
    """Most requests merged into one batch."""
    max_delay_ms: float = Field(default=5.0, ge=0, le=10000)
    """Longest a request waits for others to fill a batch, in milliseconds."""


class ServiceControl(ApiModel):
    """Settings of the latency regulator; the defaults suit most models."""

    period_seconds: float = Field(default=2.0, gt=0, le=300)
    """Sampling period of the control loop in seconds."""
    proportional_gain: float = Field(default=0.1, ge=0)
    """Gain b of each replica's speed regulator, on the change of the error (its proportional action).

    The law is x = x_prev + b·e, cores = x + d·e, x_prev = cores − b·e: each period moves the
    cores by b·Δe + d·e, in units of coresMax per unit of normalised speed error.
    """
    integral_gain: float = Field(default=0.1, gt=0)
    """Gain d of each replica's speed regulator, on the error itself (its integral action)."""
    scale_down_window_seconds: float = Field(default=30.0, gt=0)
    """How long every replica must sit low before one is removed."""
    target_utilisation: float = Field(default=0.7, gt=0, le=1)
    """Share of its cores the offered load may use; sets the least the service is given.

    That least is the CPU a request costs (measured) times the offered rate, divided by this.
    Lower it for a model whose latency climbs early under load (long requests against the SLO).
    """


class InferenceServiceSpec(ApiModel):
    """What an InferenceService asks for."""

    model: ModelSource
    """The model to serve."""
    slo: Slo
    """The latency promise."""
    replicas: Replicas = Field(default_factory=Replicas)
    """Range of CPU replicas."""
    cpu: CpuRange = Field(default_factory=CpuRange)
    """CPU range of each replica."""
    memory: MemoryQuantity = 1024**3
    """Memory of each replica (e.g. ``1Gi``)."""
    gpu: Gpu = Field(default_factory=Gpu)
    """GPU replicas."""
    batching: Batching = Field(default_factory=Batching)
    """Dynamic batching."""
    control: ServiceControl = Field(default_factory=ServiceControl)
    """Regulator settings."""
    image: str | None = None
    """Container image of the model server and router in a cluster."""
    template: ReplicaTemplate | None = None
    """Fields added to every model-server replica pod, CPU and GPU (node selector, tolerations,
    env, volumes, sidecars, ...), as in a core/v1 PodTemplateSpec; the container named `server`
    is the model server's. Cluster only."""
    router_template: RouterTemplate | None = None
    """Fields added to the router pod (image pull secrets, node selector, ...), as in a core/v1
    PodTemplateSpec; the container named `router` is the router's. Cluster only."""

    @model_validator(mode="after")
    def _gpu_template_layers(self) -> InferenceServiceSpec:
        try:
            layer(self.template, self.gpu.template)
        except ValidationError as exc:
            reasons = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
            raise ValueError(f"spec.gpu.template over spec.template: {reasons}") from exc
        return self

    @model_validator(mode="after")
    def _batch_delay_within_slo(self, info: ValidationInfo) -> InferenceServiceSpec:
        if self.batching.max_delay_ms >= self.slo.latency_ms and not admitted(info):
            raise ValueError(
                f"batching.maxDelayMs ({self.batching.max_delay_ms:g}) is not below slo.latencyMs "
                f"({self.slo.latency_ms:g}): a request that waits alone for a batch misses the SLO by that wait; "
                "lower maxDelayMs (a few percent of the SLO)"
            )
        return self


class ReplicaAllocation(StatusModel):
    """What one replica was last given."""

    name: str
    """Replica (pod or process) name."""
    cores: float
    """Cores allocated."""
    accelerator: bool = False
    """Whether the replica is a GPU replica."""


class InferenceServiceStatus(StatusModel):
    """What the operator observed of an InferenceService."""

    phase: Phase = "Pending"
    """Pending, Running or Failed."""
    conditions: list[Condition] = Field(default_factory=list)
    """Accepted, Submitted, SloMet, Contended, ResizeUnsupported, PodsWaiting."""
    observed_generation: int | None = None
    """The generation of the spec the operator last acted on."""
    start_time: dt.datetime | None = None
    """When serving started."""
    latency_ms: float | None = None
    """Response time at the SLO percentile over the last window."""
    requests_per_second: float | None = None
    """Offered load over the last window."""
    slo_violation_ratio: float | None = Field(default=None, ge=0, le=1)
    """Share of requests over the SLO latency in the last window."""
    replicas: int | None = None
    """CPU replicas now."""
    cores: float | None = None
    """Cores allocated to all CPU replicas now."""
    allocations: list[ReplicaAllocation] = Field(default_factory=list)
    """Per-replica allocation."""
    gpu_share: float | None = Field(default=None, ge=0, le=1)
    """Share of requests served by GPU replicas in the last window."""
    control_state: dict[str, Any] | None = None
    """Serialised state of the regulators, used to resume."""


class InferenceService(Resource[InferenceServiceSpec, InferenceServiceStatus]):
    """Interactive model serving that keeps a latency SLO with the fewest cores."""

    kind: Literal["InferenceService"] = KIND
    """``InferenceService``."""
