"""``/metrics`` and ``/healthz`` for a daemon, on 127.0.0.1 only (never reachable from another host).

Put a reverse proxy or the Prometheus agent on the same host in front of it to scrape from
elsewhere; the daemon itself never listens beyond loopback.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from faults import FedLedgerError
from fedledger.ops.metrics import ServiceMetrics

LOOPBACK = "127.0.0.1"


class MetricsPortUnavailable(FedLedgerError):
    """The metrics port cannot be bound."""


class MetricsServer:
    """Serves ``metrics`` over HTTP on ``127.0.0.1:port`` in a daemon thread; use as a context manager."""

    def __init__(self, metrics: ServiceMetrics, port: int) -> None:
        if not 0 <= port <= 65535:
            raise MetricsPortUnavailable(f"--metrics-port {port} is not a TCP port", hint="use a port between 1024 and 65535")
        self.metrics = metrics
        self.started = time.time()
        handler = type("Handler", (_Handler,), {"server_state": self})
        try:
            self.httpd = ThreadingHTTPServer((LOOPBACK, port), handler)
        except OSError as exc:
            raise MetricsPortUnavailable(
                f"cannot serve metrics on {LOOPBACK}:{port}: {exc.strerror}",
                hint="pick a free port for --metrics-port",
            ) from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fedledger-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def health(self) -> dict:
        return {"status": "ok", "role": self.metrics.role, "uptime_seconds": round(time.time() - self.started, 3)}

    def __enter__(self) -> MetricsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server_state: MetricsServer

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, self.server_state.metrics.exposition())
        elif path == "/healthz":
            self._send(200, "application/json", json.dumps(self.server_state.health()).encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # scrapes every few seconds would drown the daemon's own log
