"""Serving the metrics: on a port of their own, or as a route beside the signed-HTTP intake
(neither authenticates its callers)."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import start_http_server as _start_http_server

from organic_scoring._compat import require_extra
from organic_scoring.metrics._exporter import PrometheusMetrics

__all__ = ["metrics_route", "serve_metrics"]

_REQUEST_TIMEOUT = 10.0
"""Seconds a client of ``serve_metrics`` may take to send its request."""


class _MetricsServer:
    """A running :func:`serve_metrics`; :meth:`stop` (or leaving ``with``) ends it."""

    def __init__(self, server: Any, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self._host = host
        self._lock = threading.Lock()
        self._stopped = False
        self.port: int = server.server_port
        """The port listened on (the chosen one when 0 was asked for)."""

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop accepting, wait for the answers being sent, close the socket and join
        the server's thread. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.shutdown()
        self._server.server_close()  # joins the threads answering requests
        self._thread.join()

    def __enter__(self) -> _MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_metrics(
    metrics: PrometheusMetrics | CollectorRegistry, host: str = "127.0.0.1", port: int = 0
) -> _MetricsServer:
    """Serve ``metrics`` (its registry, or a registry) over HTTP from a background thread.

    prometheus_client's ``start_http_server``: ``GET`` on any path answers with the
    metrics, in the format the ``Accept`` header asks for. The socket is bound before
    this returns, so a taken port raises ``OSError`` here, and ``port=0`` picks a free
    port (``server.port``). Returns a handle with ``port``, ``url`` and ``stop()``
    (also a context manager); call ``stop()`` at shutdown.

    Raises:
        TypeError: ``metrics`` is neither a :class:`PrometheusMetrics` nor a registry.
        ValueError: ``port`` is not an integer from 0 to 65535.
        OSError: The address could not be bound.
    """
    registry = _registry_of(metrics)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, got {port!r}")
    # A ThreadingMixIn server, though typed as a plain WSGIServer.
    started: tuple[Any, threading.Thread] = _start_http_server(port, host, registry)
    server, thread = started
    # Answers run on threads of their own: make them threads that closing the server
    # joins, and give a client that sends nothing a deadline.
    server.daemon_threads = False
    server.block_on_close = True
    server.RequestHandlerClass = type(
        "_TimedHandler", (server.RequestHandlerClass,), {"timeout": _REQUEST_TIMEOUT}
    )
    thread.name = f"organic-scoring-metrics-{server.server_port}"
    return _MetricsServer(server, thread, host)


def metrics_route(metrics: PrometheusMetrics | CollectorRegistry, path: str = "/metrics") -> Any:
    """A Starlette ``Route`` answering ``GET`` (and ``HEAD``) at ``path`` with the metrics.

    Add it to the intake's app (``app.router.routes.append(...)``). Collects on a worker
    thread, off the event loop. Needs starlette (the ``http`` extra).
    """
    require_extra("starlette", "http", "metrics_route")
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    registry = _registry_of(metrics)

    async def endpoint(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Route(path, endpoint, methods=["GET"])


def _registry_of(metrics: PrometheusMetrics | CollectorRegistry) -> CollectorRegistry:
    if isinstance(metrics, PrometheusMetrics):
        return metrics.registry
    if isinstance(metrics, CollectorRegistry):
        return metrics
    raise TypeError(
        f"metrics must be a PrometheusMetrics or a CollectorRegistry, got {type(metrics).__name__}"
    )
