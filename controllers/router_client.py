"""The router of an InferenceService as the operator uses it: its latency figures and its replica set.

:class:`RouterClient` is the cluster adapter of :class:`roma.ports.LatencySensor`: it reads the
router's ``GET /stats`` (the same JSON the local runs read, turned into an observation by
:func:`roma.sensor.observation_from_stats`), and registers the ready model-server pods with
``PUT /admin/replicas``. Its times count from the service's ``status.startTime``, so the law's
windows and cooldowns mean the same after an operator restart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from controllers.servingpods import ROUTER_PORT, router_service_name
from roma.ports import LatencyObservation
from roma.sensor import observation_from_stats

DEFAULT_ROUTER_URL = "http://{service}.{namespace}.svc:" + str(ROUTER_PORT)
"""Where the router answers, by default: its Service's cluster DNS name."""
READ_TIMEOUT_S = 5.0
"""Longest wait for the router's answer in one period."""


class RouterUnavailableError(RuntimeError):
    """The router did not answer (starting, restarting) or answered without the model."""


def router_url(name: str, namespace: str) -> str:
    """Base URL of the service's router: ``MLSCALE_ROUTER_URL`` (``{service}``, ``{namespace}``) filled in."""
    template = os.environ.get("MLSCALE_ROUTER_URL") or DEFAULT_ROUTER_URL
    return template.format(service=router_service_name(name), namespace=namespace).rstrip("/")


class RouterClient:
    """Reads one model's latency from the router and tells it which replicas serve.

    Args:
        http: The HTTP session (timeouts set by the caller).
        url: The router's base URL.
        model: The model's name.
        start_epoch_s: The service's start (Unix time): observation times count from it.
        admin_token: The token of the router's admin API (from the service's Secret).
    """

    def __init__(
        self, http: aiohttp.ClientSession, url: str, model: str, start_epoch_s: float, admin_token: str | None = None
    ) -> None:
        self.http = http
        self.url = url
        self.model = model
        self.start_epoch_s = start_epoch_s
        self.admin_token = admin_token

    async def observe(self) -> LatencyObservation:
        """The router's latest figures for the model.

        Raises:
            RouterUnavailableError: when the router cannot be read.
        """
        try:
            async with self.http.get(f"{self.url}/stats") as response:
                if response.status != 200:
                    raise RouterUnavailableError(f"the router at {self.url} answered {response.status} on /stats")
                document = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise RouterUnavailableError(f"the router at {self.url} cannot be read: {exc!r}") from exc
        stats = (document.get("models") or {}).get(self.model) if isinstance(document, dict) else None
        if stats is None:
            raise RouterUnavailableError(f"the router at {self.url} does not serve the model {self.model!r}")
        return observation_from_stats(stats, time.time() - self.start_epoch_s)

    async def register(self, replicas: Sequence[dict[str, Any]]) -> None:
        """Make ``replicas`` the router's complete replica set (``PUT /admin/replicas``).

        Raises:
            RouterUnavailableError: when the router refuses or cannot be reached.
        """
        try:
            headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else None
            body = {"replicas": list(replicas)}
            async with self.http.put(f"{self.url}/admin/replicas", json=body, headers=headers) as response:
                if response.status >= 300:
                    text = (await response.text())[:200]
                    raise RouterUnavailableError(f"the router refused the replica set ({response.status}): {text}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RouterUnavailableError(f"the router at {self.url} cannot be reached: {exc!r}") from exc
