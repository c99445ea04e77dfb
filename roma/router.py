"""The router: the service's single entry point, its latency sensor, and the CPU/GPU dispatcher.

Every request joins its model's queue on arrival; CPU replicas of that model pull from it
(``slots`` requests in flight each, so the server can batch), GPU replicas pull from the
queue ROMA's rule picks (:class:`roma.dispatcher.GpuDispatcher`). The response time of
every request — arrival to reply — is recorded per model and per replica, and exported on
``/stats`` (JSON, read by the control loop) and ``/metrics`` (Prometheus).

Run as ``python -m roma.router --model NAME:SLO_MS[:PERCENTILE] ...``; replicas are
registered with ``PUT /admin/replicas``. With ``MLSCALE_ROUTER_ADMIN_TOKEN_FILE`` set (in a
cluster the operator mounts the file from a Secret), ``/admin/*`` answers only requests bearing
the token that file holds, read at each request: the router's port is the one its Service
offers every client, and whoever may change the replica set may send the model's requests
anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from roma.api import ADMIN_TOKEN_FILE_ENV
from roma.dispatcher import GpuDispatcher, ModelQueueView
from roma.latency import LatencyWindow
from roma.server import serve_app


@dataclass
class _Pending:
    arrival_s: float
    path: str
    body: bytes
    future: asyncio.Future[tuple[int, bytes, str]]


@dataclass
class Replica:
    """A model-server replica the router sends work to.

    Attributes:
        name: Replica name (as the actuator knows it).
        url: Base URL, e.g. ``http://127.0.0.1:41234``.
        models: Models it serves.
        accelerator: True for a GPU replica.
        slots: Requests in flight at once.
    """

    name: str
    url: str
    models: tuple[str, ...]
    accelerator: bool = False
    slots: int = 4
    stopping: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class ModelState:
    """Queue and measurements of one model."""

    name: str
    slo_s: float
    percentile: float
    window_s: float
    queue: deque[_Pending] = field(default_factory=deque)
    window: LatencyWindow = field(init=False)
    per_replica: dict[str, LatencyWindow] = field(default_factory=dict)
    arrivals: deque[float] = field(default_factory=deque)
    served: deque[tuple[float, bool]] = field(default_factory=deque)
    requests: int = 0
    violations: int = 0

    def __post_init__(self) -> None:
        """Create the service window."""
        self.window = LatencyWindow(self.window_s)

    def prune(self, now_s: float) -> None:
        """Forget arrivals and served records older than the window."""
        for dq in (self.arrivals,):
            while dq and dq[0] < now_s - self.window_s:
                dq.popleft()
        while self.served and self.served[0][0] < now_s - self.window_s:
            self.served.popleft()


class Router:
    """State and HTTP handlers of the router."""

    def __init__(
        self,
        models: list[ModelState],
        alpha: float = 0.2,
        timeout_s: float = 60.0,
        admin_token_file: Path | None = None,
    ) -> None:
        """Create a router for ``models`` (replicas come later through the admin API).

        ``admin_token_file``: when given, the admin API answers only ``Authorization: Bearer
        <token>`` with the token the file holds when the request arrives, and nothing while the
        file is missing or empty (a Secret not mounted yet).
        """
        self.models = {m.name: m for m in models}
        self.admin_token_file = admin_token_file
        self.replicas: dict[str, Replica] = {}
        self.dispatcher = GpuDispatcher(alpha=alpha)
        self.timeout_s = timeout_s
        self.started_s = time.monotonic()
        self._cond = asyncio.Condition()
        self._session: aiohttp.ClientSession | None = None
        self.registry = CollectorRegistry()
        self._latency = Histogram(
            "roma_router_response_seconds",
            "Arrival-to-reply time",
            ["model"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._served = Counter("roma_router_requests", "Requests answered", ["model", "device"], registry=self.registry)
        self._queue_len = Gauge("roma_router_queue_length", "Requests waiting", ["model"], registry=self.registry)
        for m in models:
            self._queue_len.labels(m.name).set_function(_queue_length(m))

    def now_s(self) -> float:
        """Seconds since the router started."""
        return time.monotonic() - self.started_s

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v2/models/{name}/infer", self._infer)
        app.router.add_post("/v1/models/{tail}", self._infer)
        app.router.add_get("/v2/models/{name}", self._metadata)
        app.router.add_get("/v2/health/ready", self._ready)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_put("/admin/replicas", self._set_replicas)
        app.router.add_get("/admin/replicas", self._get_replicas)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )

    async def _stop(self, _: web.Application) -> None:
        for rep in list(self.replicas.values()):
            await self._retire(rep)
        if self._session is not None:
            await self._session.close()

    # -- requests ---------------------------------------------------------------------
    async def _infer(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name") or request.match_info["tail"].partition(":")[0]
        model = self.models.get(name)
        if model is None:
            return web.json_response({"error": f"no model {name!r}; served: {sorted(self.models)}"}, status=404)
        arrival = self.now_s()
        item = _Pending(arrival, request.path, await request.read(), asyncio.get_running_loop().create_future())
        model.arrivals.append(arrival)
        async with self._cond:
            model.queue.append(item)
            self._cond.notify_all()
        try:
            status, body, replica = await asyncio.wait_for(item.future, self.timeout_s)
        except TimeoutError:
            status, body, replica = 504, b'{"error": "timed out in the router"}', ""
        done = self.now_s()
        self._record(model, replica, done, done - arrival)
        return web.Response(
            status=status, body=body, content_type="application/json", headers={"X-Roma-Replica": replica}
        )

    def _record(self, model: ModelState, replica: str, done_s: float, latency_s: float) -> None:
        model.window.add(done_s, latency_s)
        model.requests += 1
        model.violations += latency_s > model.slo_s
        rep = self.replicas.get(replica)
        accelerator = rep.accelerator if rep else False
        model.served.append((done_s, accelerator))
        if replica:
            model.per_replica.setdefault(replica, LatencyWindow(model.window_s)).add(done_s, latency_s)
        if accelerator:
            self.dispatcher.profile(model.name).observe_response(latency_s)
        self._latency.labels(model.name).observe(latency_s)
        self._served.labels(model.name, "gpu" if accelerator else "cpu").inc()

    def _gpu_pick(self, rep: Replica) -> ModelState | None:
        now = self.now_s()
        views = [
            ModelQueueView(m.name, len(m.queue), now - m.queue[0].arrival_s if m.queue else 0.0, m.slo_s)
            for m in (self.models[n] for n in rep.models if n in self.models)
        ]
        chosen = self.dispatcher.choose(views)
        return self.models[chosen] if chosen else None

    def _has_work(self, rep: Replica) -> bool:
        return rep.stopping or any(self.models[n].queue for n in rep.models if n in self.models)

    async def _worker(self, rep: Replica) -> None:
        assert self._session is not None
        while True:
            async with self._cond:
                await self._cond.wait_for(lambda: self._has_work(rep))
                if rep.stopping:
                    return
                if rep.accelerator:
                    model = self._gpu_pick(rep)
                else:
                    model = next(self.models[n] for n in rep.models if n in self.models and self.models[n].queue)
                if model is None or not model.queue:
                    continue
                item = model.queue.popleft()
            started = time.monotonic()
            try:
                async with self._session.post(
                    rep.url + item.path, data=item.body, headers={"Content-Type": "application/json"}
                ) as resp:
                    result = (resp.status, await resp.read(), rep.name)
            except (aiohttp.ClientError, TimeoutError) as exc:
                result = (502, f'{{"error": "replica {rep.name}: {type(exc).__name__}"}}'.encode(), rep.name)
            if rep.accelerator:
                self.dispatcher.profile(model.name).observe_service(time.monotonic() - started)
            if not item.future.done():
                item.future.set_result(result)

    # -- replicas ---------------------------------------------------------------------
    async def _retire(self, rep: Replica) -> None:
        rep.stopping = True
        async with self._cond:
            self._cond.notify_all()
        await asyncio.gather(*rep.tasks, return_exceptions=True)

    def _refused(self, request: web.Request) -> web.Response | None:
        """401 for an admin request without the admin token (None: let it through)."""
        if self.admin_token_file is None:
            return None
        try:
            token = self.admin_token_file.read_text().strip()
        except (OSError, ValueError):  # not there yet, or not text: nothing is let through
            token = ""
        # Header bytes that are not UTF-8 come as surrogates: compared as they came, not an error.
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if token and hmac.compare_digest(given, f"Bearer {token}".encode()):
            return None
        return web.json_response(
            {"error": "the admin API needs the router's admin token (Authorization: Bearer ...)"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def _set_replicas(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        wanted: dict[str, Replica] = {}
        for r in body.get("replicas", []):
            rep = Replica(
                name=str(r["name"]),
                url=str(r["url"]).rstrip("/"),
                models=tuple(r.get("models") or [r["model"]]),
                accelerator=bool(r.get("accelerator", False)),
                slots=int(r.get("slots", 4)),
            )
            wanted[rep.name] = rep
        for name in [n for n in self.replicas if n not in wanted]:
            await self._retire(self.replicas.pop(name))
        for name, rep in wanted.items():
            if name not in self.replicas:
                rep.tasks = [asyncio.get_running_loop().create_task(self._worker(rep)) for _ in range(rep.slots)]
                self.replicas[name] = rep
        return self._replica_list()

    async def _get_replicas(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return self._replica_list()

    def _replica_list(self) -> web.Response:
        return web.json_response(
            {
                "replicas": [
                    {
                        "name": r.name,
                        "url": r.url,
                        "models": list(r.models),
                        "accelerator": r.accelerator,
                        "slots": r.slots,
                    }
                    for r in self.replicas.values()
                ]
            }
        )

    # -- status -----------------------------------------------------------------------
    async def _metadata(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        rep = next((r for r in self.replicas.values() if name in r.models), None)
        if rep is None or self._session is None:
            return web.json_response({"error": f"no replica serves {name!r} yet"}, status=503)
        async with self._session.get(f"{rep.url}/v2/models/{name}") as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    async def _ready(self, _: web.Request) -> web.Response:
        missing = [m for m in self.models if not any(m in r.models for r in self.replicas.values())]
        if missing:
            return web.json_response({"ready": False, "missing": missing}, status=503)
        return web.json_response({"ready": True})

    def stats(self) -> dict[str, Any]:
        """The JSON the control loop reads."""
        now = self.now_s()
        out: dict[str, Any] = {"t_s": now, "models": {}}
        for m in self.models.values():
            m.prune(now)
            span = min(m.window_s, max(now, 1e-6))
            pct = m.window.percentile_s(now, m.percentile)
            served = len(m.served)
            out["models"][m.name] = {
                "slo_ms": m.slo_s * 1000,
                "percentile": m.percentile,
                "window_s": m.window_s,
                "requests_per_second": len(m.arrivals) / span,
                "latency_ms": None if pct is None else pct * 1000,
                "latency_ms_p50": _ms(m.window.percentile_s(now, 50)),
                "latency_ms_p99": _ms(m.window.percentile_s(now, 99)),
                "requests_total": m.requests,
                "violations_total": m.violations,
                "queue_len": len(m.queue),
                "oldest_wait_ms": (now - m.queue[0].arrival_s) * 1000 if m.queue else 0.0,
                "gpu_share": (sum(1 for _, g in m.served if g) / served) if served else None,
                "replicas": {
                    name: {"latency_ms": _ms(w.percentile_s(now, m.percentile)), "count": w.count(now)}
                    for name, w in m.per_replica.items()
                    if name in self.replicas
                },
            }
        return out

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _queue_length(model: ModelState) -> Callable[[], float]:
    return lambda: float(len(model.queue))


def _ms(value_s: float | None) -> float | None:
    return None if value_s is None else value_s * 1000


def parse_model_arg(text: str, window_s: float) -> ModelState:
    """``NAME:SLO_MS[:PERCENTILE]`` → a model entry."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"--model {text!r}: use NAME:SLO_MS[:PERCENTILE], e.g. small-cnn:100:95")
    pct = float(parts[2]) if len(parts) == 3 else 95.0
    return ModelState(parts[0], float(parts[1]) / 1000.0, pct, window_s)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m roma.router``."""
    parser = argparse.ArgumentParser(prog="python -m roma.router", description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="NAME:SLO_MS[:PERCENTILE] (repeatable)")
    parser.add_argument("--window-s", type=float, default=4.0, help="latency window in seconds")
    parser.add_argument("--alpha", type=float, default=0.2, help="GPU dispatcher margin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (printed as LISTENING <port>)")
    args = parser.parse_args(argv)
    models = [parse_model_arg(m, args.window_s) for m in args.model]

    async def run() -> None:
        token_file = os.environ.get(ADMIN_TOKEN_FILE_ENV)
        router = Router(models, alpha=args.alpha, admin_token_file=Path(token_file) if token_file else None)
        await serve_app(router.app(), args.host, args.port, lambda p: print(f"LISTENING {p}", flush=True))

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
