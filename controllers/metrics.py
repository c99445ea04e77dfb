"""Prometheus metrics, computed when Prometheus scrapes from the last status of each resource."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Status fields exported per kind: metric suffix → (status key, help text).
_EXPORTED: dict[str, dict[str, tuple[str, str]]] = {
    "DeadlineJob": {
        "allocated_cores": ("allocatedCores", "Cores allocated to the executors now"),
        "used_cores": ("usedCores", "CPU the executors used, per their pods' CPU meters or metrics-server"),
        "resize_latency_seconds": ("resizeLatencySeconds", "Median time the kubelet took to apply a resize"),
        "slack_seconds": ("slackSeconds", "Deadline minus predicted completion"),
        "progress_ratio": ("progress", "Completed share of the application's work"),
        "core_seconds": ("coreSeconds", "Core-seconds allocated so far"),
    },
    "FederatedTraining": {
        "round": ("round", "Rounds finished"),
        "accuracy": ("accuracy", "Accuracy after the last round"),
        "predicted_rounds_to_target": ("predictedRoundsToTarget", "Rounds predicted until the target"),
        "client_epochs": ("clientEpochs", "Client work so far (clients x local epochs)"),
    },
    "InferenceService": {
        "latency_ms": ("latencyMs", "Response time at the SLO percentile"),
        "requests_per_second": ("requestsPerSecond", "Offered load"),
        "slo_violation_ratio": ("sloViolationRatio", "Share of requests over the SLO latency"),
        "replicas": ("replicas", "CPU replicas now"),
        "cores": ("cores", "Cores allocated to all replicas"),
        "gpu_share": ("gpuShare", "Share of requests served by GPU replicas"),
    },
}


@dataclass
class StatusStore:
    """The last status seen of every resource, by (kind, namespace, name)."""

    statuses: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def update(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into what is known of one resource."""
        self.statuses.setdefault((kind, namespace, name), {}).update(status)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop a deleted resource."""
        self.statuses.pop((kind, namespace, name), None)


class StatusCollector(Collector):
    """Exports ``mlscale_resources`` and the per-kind figures of each resource's status."""

    def __init__(self, store: StatusStore) -> None:
        """Collect from ``store``."""
        self._store = store

    def collect(self) -> Iterator[Metric]:
        """Build the metric families from the store (called on each scrape)."""
        counts = GaugeMetricFamily("mlscale_resources", "Resources by kind and phase", labels=["kind", "phase"])
        tally: dict[tuple[str, str], int] = {}
        for (kind, _, _), status in self._store.statuses.items():
            key = (kind, str(status.get("phase", "Unknown")))
            tally[key] = tally.get(key, 0) + 1
        for (kind, phase), count in sorted(tally.items()):
            counts.add_metric([kind, phase], count)
        yield counts
        for kind, exported in _EXPORTED.items():
            for suffix, (status_key, help_text) in exported.items():
                family = GaugeMetricFamily(f"mlscale_{kind.lower()}_{suffix}", help_text, labels=["namespace", "name"])
                for (k, namespace, name), status in sorted(self._store.statuses.items()):
                    value = status.get(status_key)
                    if k == kind and isinstance(value, int | float) and not isinstance(value, bool):
                        family.add_metric([namespace, name], float(value))
                yield family
