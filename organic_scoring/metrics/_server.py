"""``serve_metrics``: ``GET /metrics`` from a background thread, stopped cleanly.

A small threading HTTP server from the standard library. Unlike
``prometheus_client.start_http_server`` it can be stopped: :meth:`MetricsServer.stop`
ends the accept loop, waits for requests being answered, closes the socket and joins
the thread, so nothing of it outlives the call. The socket is bound in the caller's
thread, so a taken port fails at once and port 0 yields the chosen port.

The endpoint has no authentication: bind it to loopback or a private interface, and
let only your Prometheus reach it.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from organic_scoring._log import log
from organic_scoring.metrics._exporter import PrometheusMetrics

__all__ = ["MetricsServer", "serve_metrics"]

_REQUEST_TIMEOUT = 10.0
"""Seconds a client may take to send its request before the connection is dropped."""


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The registry's metrics in the format ``accept`` asks for, and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def registry_of(metrics: PrometheusMetrics | CollectorRegistry) -> CollectorRegistry:
    """The registry behind ``metrics`` (a :class:`PrometheusMetrics` or a registry)."""
    if isinstance(metrics, PrometheusMetrics):
        return metrics.registry
    if isinstance(metrics, CollectorRegistry):
        return metrics
    raise TypeError(
        f"metrics must be a PrometheusMetrics or a CollectorRegistry, got {type(metrics).__name__}"
    )


class MetricsServer:
    """Serves a registry's metrics at ``/metrics`` on a background thread.

    Use :func:`serve_metrics`, or build one and :meth:`start` it; :meth:`stop` (or
    leaving the ``with`` block) shuts it down. Not restartable: build a new one.

    Args:
        metrics: A :class:`PrometheusMetrics` (its registry is served) or a registry.
        host: The address to listen on: ``"127.0.0.1"`` for this machine only.
        port: The port; 0 lets the system choose (see :attr:`port`).
        path: The path served; anything else gets 404.
    """

    def __init__(
        self,
        metrics: PrometheusMetrics | CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str = "/metrics",
    ) -> None:
        self._registry = registry_of(metrics)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        self.host = host
        self.path = path
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when 0 was asked for)."""
        return self._port

    @property
    def url(self) -> str:
        """The full URL of the metrics endpoint."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    @property
    def is_running(self) -> bool:
        """True while the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> MetricsServer:
        """Bind and start serving on a background thread.

        Raises:
            RuntimeError: Already started.
            OSError: The address could not be bound.
        """
        with self._lock:
            if self._thread is not None or self._stopped:
                raise RuntimeError("this metrics server was already started; build a new one")
            server = _Server(self.host, self._port, _handler(self._registry, self.path))
            self._server = server
            self._port = server.server_address[1]
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.5},
                name=f"organic-scoring-metrics-{self._port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish the requests being answered, close and join. Idempotent.

        Raises:
            RuntimeError: The server thread did not end within ``timeout`` seconds.
        """
        with self._lock:
            self._stopped = True
            server, thread = self._server, self._thread
            self._server = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()  # joins the threads answering requests
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the metrics server thread did not stop within {timeout:g}s")

    def __enter__(self) -> MetricsServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_metrics(
    metrics: PrometheusMetrics | CollectorRegistry,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    path: str = "/metrics",
) -> MetricsServer:
    """Serve ``metrics`` at ``http://host:port/metrics`` from a background thread.

    Returns the running :class:`MetricsServer`; call its ``stop()`` at shutdown (or
    use it as a context manager). ``port=0`` picks a free port (``server.port``).
    """
    return MetricsServer(metrics, host, port, path=path).start()


class _Server(ThreadingHTTPServer):
    # Requests are answered on threads the server joins when it closes.
    daemon_threads = False
    block_on_close = True

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-answer is not worth a traceback on stderr.
        log.debug(f"metrics: a request from {client_address} failed")


def _handler(registry: CollectorRegistry, path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = _REQUEST_TIMEOUT
        server_version = "organic-scoring-metrics"

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            if self.path.partition("?")[0] != path:
                self._reply(404, b"not found; metrics are at " + path.encode() + b"\n", send_body)
                return
            try:
                body, content_type = exposition(registry, self.headers.get("Accept"))
            except Exception as exc:
                log.error(f"metrics: collecting failed: {exc!r}", exc_info=exc)
                self._reply(500, b"collecting the metrics failed\n", send_body)
                return
            self._reply(200, body, send_body, content_type)

        def _reply(
            self,
            status: int,
            body: bytes,
            send_body: bool,
            content_type: str = "text/plain; charset=utf-8",
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no access log on stderr

    return Handler
