"""The InferenceService's law state and status in a cluster (pure: no I/O, time is an argument).

``status.controlState`` holds everything the loop needs to resume: the allocation law
(:meth:`roma.law.ServiceAllocationLaw.to_dict`: each replica's regulator, the scaler's windows)
and the router's request counters at the last period, from which the violation ratio of each
period is computed. Times in the law count from ``status.startTime``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from controllers.pods_waiting import Held, waiting_condition
from controllers.replica_pods import ReplicaPod
from controllers.servingpods import CPU_REPLICA, GPU_REPLICA, ROUTER
from mlscale.api import Condition, set_condition
from roma.api import InferenceService, InferenceServiceSpec
from roma.law import ServiceAllocationLaw, start_law
from roma.ports import LatencyObservation

SLO_MET = "SloMet"
CONTENDED = "Contended"
RESIZE_UNSUPPORTED = "ResizeUnsupported"

ROLES = {CPU_REPLICA: "CPU replica", GPU_REPLICA: "GPU replica", ROUTER: "router"}
"""What each component's pods are called in ``PodsWaiting`` (by ``app.kubernetes.io/component``)."""
_FIXES = {"CPU replica": "spec.template", "GPU replica": "spec.gpu.template", "router": "spec.routerTemplate"}
_COSTS = {
    "CPU replica": "The service has fewer CPU replicas than the law asked for meanwhile",
    "GPU replica": "The CPU replicas serve the GPU replicas' share meanwhile",
    "router": "No request reaches the model servers meanwhile",
}
"""Scale steps are this many control periods apart: the engine's 10 s at its default 2 s period."""


def resume_law(spec: InferenceServiceSpec, saved: Mapping[str, Any] | None) -> ServiceAllocationLaw:
    """The law kept in ``status.controlState['law']``, with the current spec's bounds and gains.

    The state (each regulator's cores and integrator, the scaler's windows) carries over; what
    the spec sets (SLO, core range, replica range, gains, thresholds) is taken from the spec as
    it is now, so an edited resource is obeyed from the next period. A state that cannot be
    read starts the law afresh.
    """
    try:
        law = ServiceAllocationLaw.from_dict(dict(saved)) if saved else None
    except (KeyError, TypeError, ValueError):
        law = None
    if law is None or not law.regulators:
        return start_law(spec)
    fresh = start_law(spec)
    law.slo_s, law.cores_min, law.cores_max = fresh.slo_s, fresh.cores_min, fresh.cores_max
    gains = fresh.regulators[0].gains
    for reg in law.regulators:
        reg.slo_s, reg.cores_min, reg.cores_max, reg.gains = law.slo_s, law.cores_min, law.cores_max, gains
        reg.reset_to(reg.cores)
    law.scaler.replicas_min, law.scaler.replicas_max = spec.replicas.min, spec.replicas.max
    law.scaler.policy = fresh.scaler.policy
    law.demand.target_utilisation = fresh.demand.target_utilisation
    count = len(law.regulators)
    if not spec.replicas.min <= count <= spec.replicas.max:
        law.resize(max(spec.replicas.min, min(spec.replicas.max, count)))
    return law


@dataclass(frozen=True)
class PeriodFigures:
    """What one period measured and applied, for the status.

    Attributes:
        observation: The router's reading.
        replicas: The CPU replica count decided (the CPU Deployment's ``spec.replicas``).
        pods: The live model-server pods (CPU and GPU).
        cores: Cores of each CPU replica pod after the period.
        requests_before: The router's request counter at the previous period, if known.
        violations_before: Its violation counter then.
    """

    observation: LatencyObservation
    replicas: int
    pods: Sequence[ReplicaPod]
    cores: Mapping[str, float]
    requests_before: int | None
    violations_before: int | None


def violation_ratio(figures: PeriodFigures) -> float | None:
    """Share of the requests completed since the previous period that exceeded the SLO."""
    obs = figures.observation
    before_r, before_v = figures.requests_before, figures.violations_before
    if before_r is None or before_v is None or obs.requests < before_r or obs.violations < before_v:
        before_r = before_v = 0  # first period, or a restarted router: its counters start over
    done = obs.requests - before_r
    if done <= 0:
        return None
    return round(min(1.0, max(0.0, (obs.violations - before_v) / done)), 4)


def measured_fields(figures: PeriodFigures) -> dict[str, Any]:
    """The status figures of a period (camelCase; ``None`` clears a figure)."""
    obs = figures.observation
    latency_s = obs.effective_latency_s()
    allocations: list[dict[str, Any]] = []
    for pod in figures.pods:
        cores = figures.cores.get(pod.name, pod.cores) if not pod.accelerator else pod.cores
        if cores is not None:
            allocations.append({"name": pod.name, "cores": round(cores, 3), "accelerator": pod.accelerator})
    cpu_cores = sum(a["cores"] for a in allocations if not a["accelerator"])
    return {
        "latencyMs": None if latency_s is None else round(latency_s * 1000.0, 1),
        "requestsPerSecond": round(obs.requests_per_second, 2),
        "sloViolationRatio": violation_ratio(figures),
        "replicas": figures.replicas,
        "cores": round(cpu_cores, 3),
        "allocations": allocations,
        "gpuShare": None if obs.gpu_share is None else round(obs.gpu_share, 4),
    }


def slo_condition(
    conditions: list[Condition],
    svc: InferenceService,
    latency_s: float | None,
    *,
    now: dt.datetime,
) -> list[Condition]:
    """``SloMet``: the latency at the percentile against the bound (met while no request comes)."""
    slo = svc.spec.slo
    generation = svc.metadata.generation
    if latency_s is None:
        return set_condition(
            conditions, SLO_MET, "True", "NoTraffic", "No request completed in the last window.",
            now=now, observed_generation=generation,
        )  # fmt: skip
    latency_ms = latency_s * 1000.0
    met = latency_ms <= slo.latency_ms
    relation = "within" if met else "above"
    message = f"p{slo.percentile:g} latency {latency_ms:.1f} ms is {relation} the SLO of {slo.latency_ms:g} ms."
    return set_condition(
        conditions, SLO_MET, "True" if met else "False", "WithinSlo" if met else "SloViolated", message,
        now=now, observed_generation=generation,
    )  # fmt: skip


def pods_waiting(
    body: kopf.Body,
    conditions: list[Condition],
    waiting: Mapping[str, Held],
    *,
    now: dt.datetime,
    generation: int | None,
) -> list[Condition]:
    """``PodsWaiting``: a router, CPU or GPU replica pod (or the Deployment of one) that cannot run."""
    return waiting_condition(
        body,
        conditions,
        waiting,
        cleared=("PodsRunning", "No router or model-server pod is held up."),
        consequence=_COSTS,
        fix=_FIXES,
        now=now,
        generation=generation,
    )


def scale_message(svc: InferenceService, before: int, after: int, latency_s: float | None) -> tuple[str, str]:
    """The reason and message of the Event announcing a scale step."""
    spec = svc.spec
    latency = "no traffic" if latency_s is None else f"p{spec.slo.percentile:g} latency {latency_s * 1000:.1f} ms"
    if after > before:
        return "ScaledOut", (
            f"CPU replicas {before} -> {after}: {latency} above the SLO of {spec.slo.latency_ms:g} ms "
            f"with every replica at coresMax ({spec.cpu.cores_max:g})"
        )
    return "ScaledIn", (
        f"CPU replicas {before} -> {after}: every replica needed little of its coresMax for "
        f"{spec.control.scale_down_window_seconds:g} s ({latency})"
    )


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 time as the API stores it."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
