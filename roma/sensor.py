"""Local adapter of the sensor port: reads the router's ``/stats``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from roma.ports import LatencyObservation


class RouterLatencySensor:
    """Reads one model's figures from the router (implements ``LatencySensor``)."""

    def __init__(self, router_url: str, model: str, started_s: float | None = None) -> None:
        """Sensor for ``model`` behind ``router_url``; times count from ``started_s`` (monotonic)."""
        self.router_url = router_url.rstrip("/")
        self.model = model
        self.started_s = time.monotonic() if started_s is None else started_s

    async def observe(self) -> LatencyObservation:
        """The latest observation."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.router_url}/stats") as resp:
            resp.raise_for_status()
            stats = (await resp.json())["models"][self.model]
        return observation_from_stats(stats, time.monotonic() - self.started_s)


def observation_from_stats(stats: Mapping[str, Any], t_s: float) -> LatencyObservation:
    """Turn one model's entry of the router's ``/stats`` into an observation."""

    def sec(ms: Any) -> float | None:
        return None if ms is None else float(ms) / 1000.0

    replicas: Mapping[str, Any] = stats.get("replicas") or {}
    gpu_share = stats.get("gpu_share")
    return LatencyObservation(
        t_s=t_s,
        requests_per_second=float(stats["requests_per_second"]),
        latency_s=sec(stats.get("latency_ms")),
        replica_latency_s={str(k): sec(v.get("latency_ms")) for k, v in replicas.items()},
        requests=int(stats.get("requests_total", 0)),
        violations=int(stats.get("violations_total", 0)),
        queue_len=int(stats.get("queue_len", 0)),
        oldest_wait_s=float(stats.get("oldest_wait_ms", 0.0)) / 1000.0,
        gpu_share=None if gpu_share is None else float(gpu_share),
    )
