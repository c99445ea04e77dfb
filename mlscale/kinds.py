"""The three resource kinds and where their models and engines live.

The core never imports an engine at module level: models and runners are loaded by
name when a command needs them, so ``mlscale`` stays free of TensorFlow and Spark.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel

from mlscale import API_GROUP, API_GROUP_VERSION, API_VERSION


@dataclass(frozen=True)
class PrinterColumn:
    """One column of ``kubectl get``."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0
    format: str | None = None


@dataclass(frozen=True)
class KindInfo:
    """Names and modules of one resource kind."""

    kind: str
    plural: str
    singular: str
    short_name: str
    engine: str
    printer_columns: tuple[PrinterColumn, ...]

    @property
    def api_module(self) -> str:
        """Module holding the pydantic model."""
        return f"{self.engine}.api"

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``."""
        return f"{self.plural}.{API_GROUP}"

    def model(self) -> type[BaseModel]:
        """The pydantic model of the whole resource (imports the engine's ``api`` module only)."""
        module = importlib.import_module(self.api_module)
        return cast(type[BaseModel], getattr(module, self.kind))


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation")
_PHASE = PrinterColumn("Phase", "string", ".status.phase", "Where the resource is in its life")

KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo(
            kind="DeadlineJob",
            plural="deadlinejobs",
            singular="deadlinejob",
            short_name="dj",
            engine="dynaspark",
            printer_columns=(
                _PHASE,
                PrinterColumn("Deadline", "string", ".spec.deadline", "Time allowed from start"),
                PrinterColumn("Progress", "number", ".status.progress", "Completed share of the work"),
                PrinterColumn("Slack", "number", ".status.slackSeconds", "Deadline minus predicted completion (s)"),
                PrinterColumn("Cores", "number", ".status.allocatedCores", "Cores allocated to the executors now"),
                PrinterColumn("Core-s", "number", ".status.coreSeconds", "Core-seconds allocated so far", priority=1),
                _AGE,
            ),
        ),
        KindInfo(
            kind="FederatedTraining",
            plural="federatedtrainings",
            singular="federatedtraining",
            short_name="fedt",
            engine="hyperfl",
            printer_columns=(
                _PHASE,
                PrinterColumn("Round", "integer", ".status.round", "Rounds finished"),
                PrinterColumn("Accuracy", "number", ".status.accuracy", "Accuracy after the last round"),
                PrinterColumn("Target", "number", ".spec.target.value", "Accuracy to reach"),
                PrinterColumn("Predicted", "integer", ".status.predictedRoundsToTarget", "Predicted rounds to target"),
                PrinterColumn("Max-Rounds", "integer", ".spec.rounds.max", "Round budget", priority=1),
                _AGE,
            ),
        ),
        KindInfo(
            kind="InferenceService",
            plural="inferenceservices",
            singular="inferenceservice",
            short_name="mlis",
            engine="roma",
            printer_columns=(
                _PHASE,
                PrinterColumn("Latency-ms", "number", ".status.latencyMs", "Response time at the SLO percentile"),
                PrinterColumn("SLO-ms", "number", ".spec.slo.latencyMs", "Latency bound"),
                PrinterColumn("Replicas", "integer", ".status.replicas", "CPU replicas now"),
                PrinterColumn("Cores", "number", ".status.cores", "Cores allocated to all replicas"),
                PrinterColumn("RPS", "number", ".status.requestsPerSecond", "Offered load", priority=1),
                _AGE,
            ),
        ),
    )
}


class UnknownKindError(ValueError):
    """A document whose apiVersion/kind is not one of ours."""


def kind_of(document: dict[str, Any]) -> KindInfo:
    """Return the kind of a resource document, or raise with what is allowed."""
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    if api_version is None:
        raise UnknownKindError(f"apiVersion: missing: set it to {API_GROUP_VERSION!r}")
    if api_version != API_GROUP_VERSION:
        raise UnknownKindError(f"apiVersion: expected {API_GROUP_VERSION!r}, got {api_version!r}")
    if kind is None:
        raise UnknownKindError(f"kind: missing: set it to one of {', '.join(sorted(KINDS))}")
    if kind not in KINDS:
        raise UnknownKindError(f"kind: expected one of {', '.join(sorted(KINDS))}, got {kind!r}")
    return KINDS[str(kind)]


__all__ = ["API_GROUP", "API_VERSION", "KINDS", "KindInfo", "PrinterColumn", "UnknownKindError", "kind_of"]
