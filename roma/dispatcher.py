"""ROMA's GPU dispatcher: which model's queue the accelerator serves next.

For each model the dispatcher estimates the response time a request would see now: the
oldest queued request's wait plus the profiled service time, blended with the response
times of the last completed requests. Its *need* is how far that estimate intrudes into a
safety band of width ``alpha * SLA`` below the SLA::

    need = RT - SLA + alpha * SLA   if RT >= SLA * (1 - alpha)   else 0

The GPU serves the model with the largest need; when no model is in the band, the longest
queue. Pure: the caller passes the queue views (times are arguments).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelQueueView:
    """A model's queue as the dispatcher sees it at one instant.

    Attributes:
        name: Model name.
        queue_len: Requests waiting.
        head_wait_s: How long the oldest waiting request has waited (0 when empty).
        sla_s: The model's latency objective.
    """

    name: str
    queue_len: int
    head_wait_s: float
    sla_s: float


def need_s(rt_s: float, sla_s: float, alpha: float) -> float:
    """ROMA's need of a model whose estimated response time is ``rt_s``."""
    if rt_s >= sla_s * (1.0 - alpha):
        return rt_s - sla_s + alpha * sla_s
    return 0.0


@dataclass
class ServiceProfile:
    """Moving estimates of a model's service time and completed response times.

    Attributes:
        service_s: Profiled service time of one request/batch on the device (EWMA).
        recent_rt_s: Response time of the last completed requests (EWMA), None before any.
        smoothing: Weight of a new observation in both averages.
    """

    service_s: float
    recent_rt_s: float | None = None
    smoothing: float = 0.2

    def observe_service(self, service_s: float) -> None:
        """Fold in one measured service time."""
        self.service_s += self.smoothing * (service_s - self.service_s)

    def observe_response(self, rt_s: float) -> None:
        """Fold in one completed request's response time."""
        if self.recent_rt_s is None:
            self.recent_rt_s = rt_s
        else:
            self.recent_rt_s += self.smoothing * (rt_s - self.recent_rt_s)


@dataclass
class GpuDispatcher:
    """Chooses the model the GPU serves next (ROMA's rule).

    Attributes:
        alpha: Width of the safety band below the SLA, as a fraction of the SLA.
        blend: Weight of the queue-based estimate against the recent completed RTs.
        default_service_s: Service time assumed for a model never profiled.
        profiles: Per-model service profile (state).
    """

    alpha: float = 0.2
    blend: float = 0.5
    default_service_s: float = 0.01
    profiles: dict[str, ServiceProfile] = field(default_factory=dict)

    def profile(self, name: str) -> ServiceProfile:
        """The profile of model ``name`` (created on first use)."""
        if name not in self.profiles:
            self.profiles[name] = ServiceProfile(self.default_service_s)
        return self.profiles[name]

    def estimate_rt_s(self, view: ModelQueueView) -> float:
        """Estimated response time of ``view``'s model right now."""
        prof = self.profile(view.name)
        queued = view.head_wait_s + prof.service_s
        if prof.recent_rt_s is None:
            return queued
        return self.blend * queued + (1.0 - self.blend) * prof.recent_rt_s

    def needs(self, views: Sequence[ModelQueueView]) -> dict[str, float]:
        """Need of every model with a non-empty queue."""
        return {v.name: need_s(self.estimate_rt_s(v), v.sla_s, self.alpha) for v in views if v.queue_len > 0}

    def choose(self, views: Sequence[ModelQueueView]) -> str | None:
        """Model the GPU should serve next, or None when every queue is empty."""
        waiting = [v for v in views if v.queue_len > 0]
        if not waiting:
            return None
        needs = self.needs(waiting)
        best = max(waiting, key=lambda v: (needs[v.name], v.queue_len, v.head_wait_s))
        if needs[best.name] > 0:
            return best.name
        return max(waiting, key=lambda v: (v.queue_len, v.head_wait_s)).name

    def to_dict(self) -> dict[str, Any]:
        """Plain-data state."""
        return {
            "alpha": self.alpha,
            "blend": self.blend,
            "default_service_s": self.default_service_s,
            "profiles": {k: asdict(p) for k, p in self.profiles.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuDispatcher:
        """Rebuild a dispatcher written by :meth:`to_dict`."""
        return cls(
            alpha=float(data["alpha"]),
            blend=float(data["blend"]),
            default_service_s=float(data["default_service_s"]),
            profiles={k: ServiceProfile(**p) for k, p in data.get("profiles", {}).items()},
        )
