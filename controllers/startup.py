"""Operator start-up: every kopf setting in one place, shared clients in ``memo``, metrics and health."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from controllers.metrics import StatusCollector, StatusStore
from controllers.sparkpods import meter_port

FINALIZER = "mlscale.dev/finalizer"
ANNOTATION_PREFIX = "mlscale.dev"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def configure(settings: kopf.OperatorSettings) -> None:
    """Apply every kopf setting the operator relies on."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # Peering makes an operator pause while another one with a higher priority runs (e.g. during a
    # rollout or a debugging session); the chart runs one replica and enables it on request.
    peering = os.environ.get("MLSCALE_PEERING", "")
    settings.peering.standalone = peering == ""
    settings.peering.name = peering or "mlscale"
    settings.peering.mandatory = peering != ""
    settings.watching.server_timeout = _env_int("MLSCALE_WATCH_SERVER_TIMEOUT", 300)
    settings.watching.client_timeout = settings.watching.server_timeout + 30
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 30
    settings.posting.level = logging.INFO
    settings.posting.enabled = True
    settings.queueing.error_delays = (1, 2, 4, 8, 16, 30, 60)
    settings.execution.max_workers = _env_int("MLSCALE_MAX_WORKERS", 8)


async def _serve_metrics(registry: CollectorRegistry, host: str, port: int) -> tuple[web.AppRunner, int]:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return await _start(app, host, port)


async def _serve_health(memo: kopf.Memo, host: str, port: int) -> tuple[web.AppRunner, int]:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "resources": len(memo["status_store"].statuses)})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    return await _start(app, host, port)


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the bound port, when 0 asked the kernel to choose
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """Authenticate in-cluster with the ServiceAccount, else from the kubeconfig file.

    The kubeconfig is read when the operator logs in (``KUBECONFIG`` at that moment); exec and
    auth-provider plugins are handled by the Kubernetes client library as a fallback.
    """
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        info = kopf.login_with_service_account(**kwargs)
    else:
        info = kopf.login_with_kubeconfig(**kwargs)
        if info is None or not (info.token or info.certificate_path or info.certificate_data or info.username):
            info = kopf.login_via_client(**kwargs) or info
    # The controllers' own client (controllers.kube) uses the same credentials.
    memo["connection"] = info
    memo.pop("kube_api", None)
    return info


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Configure kopf, create the shared status store, serve /metrics and /healthz."""
    configure(settings)
    try:
        port = meter_port()  # a bad setting stops the operator here, not each DeadlineJob later
    except ValueError as exc:
        raise kopf.PermanentError(str(exc)) from exc
    logger.info("executors' CPU meter: %s", "off" if port is None else f"port {port}")
    store = StatusStore()
    memo["status_store"] = store
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StatusCollector(store))
    memo["metrics_registry"] = registry
    host = os.environ.get("MLSCALE_BIND_ADDRESS", "0.0.0.0")
    metrics_runner, metrics_port = await _serve_metrics(registry, host, _env_int("MLSCALE_METRICS_PORT", 8080))
    health_runner, health_port = await _serve_health(memo, host, _env_int("MLSCALE_HEALTH_PORT", 8081))
    memo["runners"] = [metrics_runner, health_runner]
    memo["metrics_port"] = metrics_port
    memo["health_port"] = health_port
    logger.info("metrics on :%d/metrics, liveness on :%d/healthz", metrics_port, health_port)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the metrics and health servers."""
    for runner in memo.get("runners", []):
        await runner.cleanup()
    api = memo.get("kube_api")
    if api is not None:
        await api.close()
