"""The coordinator's progress over HTTP, the one thing the operator reads of a running federation.

The coordinator publishes the status that :func:`hyperfl.loop.run_rounds` hands to its
``on_round`` callback (and the final one when the run ends); ``GET /status`` answers it as the
resource's status document (camelCase, as ``kubectl`` shows it), ``GET /healthz`` answers ``ok``.
The operator copies new rounds into the FederatedTraining's status each period.

Standard library and the API models only: importing this module never imports TensorFlow, so
the operator may use :func:`parse_status_document` and tests may serve a scripted coordinator
with :class:`StatusPublisher`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hyperfl.api import FederatedTrainingStatus

STATUS_PATH = "/status"
"""Where the coordinator answers its status."""
HEALTH_PATH = "/healthz"
"""Where the coordinator answers ``ok`` while it serves."""
DEFAULT_PORT = 8000
"""Port of the coordinator's status server in a pod."""


def status_document(status: FederatedTrainingStatus) -> dict[str, Any]:
    """The status as ``GET /status`` answers it (camelCase, JSON-safe, no nulls)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_status_document(document: Mapping[str, Any]) -> FederatedTrainingStatus:
    """Read an answer of ``GET /status``.

    Raises:
        pydantic.ValidationError: When the document is not a FederatedTraining status.
    """
    return FederatedTrainingStatus.model_validate(dict(document))


class StatusPublisher:
    """Serves the latest published status on ``GET /status`` from a background thread.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> None:
        """Bind the server and start answering (a fresh ``Pending`` status until the first publish).

        Args:
            host: Address to bind (``127.0.0.1`` on one machine, all addresses in a pod).
            port: Port to bind (0 lets the kernel choose; see :attr:`url`).
        """
        self._lock = threading.Lock()
        self._body = json.dumps(status_document(FederatedTrainingStatus())).encode()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the server as seen from this machine."""
        host = str(self._server.server_address[0])
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"

    def publish(self, status: FederatedTrainingStatus) -> None:
        """Make ``status`` the answer of ``GET /status``."""
        body = json.dumps(status_document(status)).encode()
        with self._lock:
            self._body = body

    def current(self) -> bytes:
        """The JSON body ``GET /status`` answers now."""
        with self._lock:
            return self._body

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StatusPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        publisher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == STATUS_PATH:
                    self._reply(200, publisher.current(), "application/json")
                elif self.path == HEALTH_PATH:
                    self._reply(200, b"ok", "text/plain")
                else:
                    self._reply(404, b"not found", "text/plain")

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader gave up; the next poll asks again

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
