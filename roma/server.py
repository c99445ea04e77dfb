"""The model server: one replica serving a Keras/TensorFlow model over HTTP.

Run as ``python -m roma.server --name NAME (--builder module:function | --uri PATH)``.
It speaks KServe v2 (``/v2/health/ready``, ``/v2/models/{name}``, ``/v2/models/{name}/infer``)
and TF Serving REST (``/v1/models/{name}:predict``), batches concurrent requests, and
exports Prometheus metrics on ``/metrics``. ``--accelerator`` (or ``ROMA_ACCELERATOR=1``)
makes the replica declare itself a GPU replica, so the router's GPU paths can be exercised
on a machine without a GPU. With ``--port 0`` it picks a free port and prints
``LISTENING <port>`` on standard output once ready.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web
from numpy.typing import NDArray
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from roma.batching import BatchRecord, DynamicBatcher
from roma.protocol import (
    ProtocolError,
    decode_tfserving_request,
    decode_v2_request,
    encode_tfserving_response,
    encode_v2_response,
)


@dataclass
class LoadedModel:
    """A model ready to run.

    Attributes:
        infer: Batch in, batch out.
        input_shape: Input shape without the batch axis.
        output_shape: Output shape without the batch axis.
        input_name: Name reported in the metadata.
        output_name: Name of the output tensor.
    """

    infer: Callable[[NDArray[Any]], NDArray[Any]]
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    input_name: str
    output_name: str


def load_model(builder: str | None, uri: str | None, threads: int | None) -> LoadedModel:
    """Build the model from ``module:function`` or load a SavedModel, and warm it up.

    Args:
        builder: ``module:function`` returning a Keras model.
        uri: SavedModel directory (used when ``builder`` is None).
        threads: TensorFlow intra-op threads (None: TensorFlow's default).
    """
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if builder:
        module_name, _, func_name = builder.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        model = getattr(importlib.import_module(module_name), func_name)()
    elif uri:
        model = tf.keras.models.load_model(uri, compile=False)
    else:
        raise ValueError("give a builder (module:function) or a SavedModel uri")
    input_shape = tuple(model.input_shape[1:])
    output_shape = tuple(model.output_shape[1:])
    fn = tf.function(model, reduce_retracing=True)

    def infer(batch: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(fn(tf.constant(batch, dtype=tf.float32), training=False))

    warm = np.zeros((1, *[d or 1 for d in input_shape]), dtype=np.float32)
    infer(warm)
    infer(np.repeat(warm, 2, axis=0))
    output_name = model.output_names[0] if getattr(model, "output_names", None) else "output"
    input_name = model.input_names[0] if getattr(model, "input_names", None) else "input"
    return LoadedModel(infer, input_shape, output_shape, input_name, output_name)


class ModelServer:
    """HTTP front of one loaded model."""

    def __init__(
        self, name: str, model: LoadedModel, max_batch_size: int, max_delay_ms: float, accelerator: bool
    ) -> None:
        """Create the server (the batcher starts with the app)."""
        self.name = name
        self.model = model
        self.accelerator = accelerator
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total: what the operator reads to learn the CPU a request costs.
        ProcessCollector(registry=self.registry)
        self._requests = Counter(
            "roma_server_requests", "Inference requests served", ["protocol", "outcome"], registry=self.registry
        )
        self._batch_size = Histogram(
            "roma_server_batch_size", "Rows per model batch", buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry
        )
        self._compute = Histogram("roma_server_compute_seconds", "Model time per batch", registry=self.registry)
        Gauge(
            "roma_server_accelerator", "1 when this replica declares itself an accelerator", registry=self.registry
        ).set(1 if accelerator else 0)
        self.batcher = DynamicBatcher(model.infer, max_batch_size, max_delay_ms / 1000.0, self._record)

    def _record(self, rec: BatchRecord) -> None:
        self._batch_size.observe(rec.size)
        self._compute.observe(rec.compute_s)

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_get("/v2/health/ready", self._ready)
        app.router.add_get("/v2/health/live", self._ready)
        app.router.add_get("/v2/models/{name}", self._metadata)
        app.router.add_get("/v2/models/{name}/ready", self._model_ready)
        app.router.add_post("/v2/models/{name}/infer", self._infer_v2)
        app.router.add_post("/v1/models/{tail}", self._predict_v1)
        app.router.add_get("/metrics", self._metrics)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _: web.Application) -> None:
        self.batcher.start()

    async def _on_cleanup(self, _: web.Application) -> None:
        await self.batcher.stop()

    def _check_name(self, name: str) -> None:
        if name != self.name:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"model {name!r} not served here; this replica serves {self.name!r}"}),
                content_type="application/json",
            )

    async def _ready(self, _: web.Request) -> web.Response:
        return web.json_response({"ready": True, "accelerator": self.accelerator})

    async def _model_ready(self, request: web.Request) -> web.Response:
        self._check_name(request.match_info["name"])
        return web.json_response({"name": self.name, "ready": True})

    async def _metadata(self, request: web.Request) -> web.Response:
        self._check_name(request.match_info["name"])
        return web.json_response(
            {
                "name": self.name,
                "versions": ["1"],
                "platform": "tensorflow_keras",
                "inputs": [
                    {
                        "name": self.model.input_name,
                        "datatype": "FP32",
                        "shape": [-1, *[d or -1 for d in self.model.input_shape]],
                    }
                ],
                "outputs": [
                    {
                        "name": self.model.output_name,
                        "datatype": "FP32",
                        "shape": [-1, *[d or -1 for d in self.model.output_shape]],
                    }
                ],
                "parameters": {"accelerator": self.accelerator, "max_batch_size": self.batcher.max_batch_size},
            }
        )

    async def _infer_v2(self, request: web.Request) -> web.Response:
        self._check_name(request.match_info["name"])
        try:
            batch, request_id = decode_v2_request(await request.json(), self.model.input_shape)
        except (ProtocolError, json.JSONDecodeError) as exc:
            self._requests.labels("v2", "bad_request").inc()
            return web.json_response({"error": str(exc)}, status=400)
        outputs = await self.batcher.submit(batch)
        self._requests.labels("v2", "ok").inc()
        return web.json_response(encode_v2_response(self.name, outputs, self.model.output_name, request_id))

    async def _predict_v1(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        name, sep, verb = tail.partition(":")
        if not sep or verb != "predict":
            return web.json_response({"error": "only POST /v1/models/{name}:predict is served"}, status=404)
        self._check_name(name)
        try:
            batch, form = decode_tfserving_request(await request.json(), self.model.input_shape)
        except (ProtocolError, json.JSONDecodeError) as exc:
            self._requests.labels("v1", "bad_request").inc()
            return web.json_response({"error": str(exc)}, status=400)
        outputs = await self.batcher.submit(batch)
        self._requests.labels("v1", "ok").inc()
        return web.json_response(encode_tfserving_response(outputs, form))

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve_app(app: web.Application, host: str, port: int, ready: Callable[[int], None]) -> None:
    """Serve ``app`` until SIGTERM/SIGINT; call ``ready(port)`` once listening."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server_obj = site._server
    sockets = getattr(server_obj, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    ready(bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m roma.server``."""
    parser = argparse.ArgumentParser(prog="python -m roma.server", description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="model name in the URLs")
    parser.add_argument("--builder", help="module:function returning a Keras model")
    parser.add_argument("--uri", help="SavedModel directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (printed as LISTENING <port>)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow intra-op threads")
    parser.add_argument(
        "--accelerator",
        action="store_true",
        default=os.environ.get("ROMA_ACCELERATOR") == "1",
        help="declare this replica an accelerator (GPU) replica",
    )
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        parser.error("--host must be a loopback address (or 0.0.0.0 inside a container)")
    started = time.monotonic()
    model = load_model(args.builder, args.uri, args.threads)
    server = ModelServer(args.name, model, args.max_batch_size, args.max_delay_ms, args.accelerator)

    def ready(port: int) -> None:
        print(f"LISTENING {port} load_s={time.monotonic() - started:.1f}", flush=True)

    asyncio.run(serve_app(server.app(), args.host, args.port, ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
