"""Client worker: an HTTP server on 127.0.0.1 that runs the client update of FedAvg with TensorFlow.

``python -m hyperfl.worker --builder examples.hyperfl.models:digits_mlp --clients 10`` rebuilds the
same data partitions as the coordinator (same seed), then answers ``POST /update`` with a JSON
body ``{client, round, epochs, batch_size, learning_rate, weights}`` by training that client's
partition for ``epochs`` local epochs from ``weights`` and returning ``{weights, examples}``.
``GET /healthz`` answers ``ok``. The first line on standard output is ``listening on URL``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np

from hyperfl.checkpoint import Weights
from hyperfl.data import FederatedData, load_federated_digits


class ClientTrainer:
    """Runs client updates for any client of the federation, one at a time."""

    def __init__(self, builder: str, data: FederatedData, delay_s: float = 0.0) -> None:
        """Create a trainer.

        Args:
            builder: ``module:function`` of the Keras model.
            data: The federation's partitions (this worker uses the client's own only).
            delay_s: Extra seconds before each answer (to play a slow client in tests).
        """
        from hyperfl.model_builder import build_model

        self.model, self.loss = build_model(builder)
        self.data = data
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def update(self, request: dict[str, Any]) -> dict[str, Any]:
        """Train one client's partition from the given weights; return the new weights and examples seen."""
        import tensorflow as tf

        client = int(request["client"])
        x, y = self.data.clients[client]
        epochs = int(request["epochs"])
        with self.lock:
            self.model.set_weights([np.asarray(w, dtype=np.float32) for w in request["weights"]])
            self.model.compile(optimizer=tf.keras.optimizers.SGD(float(request["learning_rate"])), loss=self.loss)
            self.model.fit(x, y, epochs=epochs, batch_size=int(request["batch_size"]), shuffle=True, verbose=0)
            weights = [w.tolist() for w in self.model.get_weights()]
        if self.delay_s:
            time.sleep(self.delay_s)
        return {"weights": weights, "examples": len(y) * epochs, "client": client}


def _handler(trainer: ClientTrainer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._reply(200, b"ok" if self.path == "/healthz" else b"not found")

        def do_POST(self) -> None:
            if self.path != "/update":
                self._reply(404, b"not found")
                return
            try:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body = json.dumps(trainer.update(request)).encode()
            except (KeyError, ValueError, IndexError) as exc:
                self._reply(400, str(exc).encode())
                return
            self._reply(200, body)

        def _reply(self, code: int, body: bytes) -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the coordinator gave up on this straggler

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def request_update(url: str, body: dict[str, Any], timeout_s: float | None) -> tuple[Weights, int]:
    """POST a client update request to a worker.

    Returns:
        ``(weights, examples)``.

    Raises:
        OSError: When the worker is unreachable, fails, or misses ``timeout_s``.
    """
    data = json.dumps(body).encode()
    request = urllib.request.Request(url + "/update", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        answer = json.loads(response.read())
    return [np.asarray(w, dtype=np.float32) for w in answer["weights"]], int(answer["examples"])


def main(argv: list[str] | None = None) -> int:
    """Serve client updates until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--builder", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--partition", choices=["iid", "dirichlet"], default="iid")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--evaluation-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a pod, behind its Service)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    data = load_federated_digits(args.clients, args.partition, args.alpha, args.evaluation_fraction, args.seed)
    trainer = ClientTrainer(args.builder, data, args.delay_s)
    server = HTTPServer((args.host, args.port), _handler(trainer))
    shown = "127.0.0.1" if args.host == "0.0.0.0" else args.host
    print(f"listening on http://{shown}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
