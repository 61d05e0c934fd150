"""``/metrics`` as an ASGI endpoint, to serve beside the signed-HTTP intake.

::

    app = create_app(scoring, hotkey_ss58=hotkey)          # POST /organic
    app.router.routes.append(metrics_route(metrics))       # GET /metrics

:func:`metrics_app` is the bare ASGI callable (for ``Mount`` or another framework);
:func:`metrics_route` wraps it in a Starlette ``Route`` (needs the ``http`` extra).
The endpoint has no authentication: expose it only where your Prometheus can reach
it and the public cannot, or put it on its own port with
:func:`~organic_scoring.metrics.serve_metrics`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from organic_scoring.metrics._exporter import PrometheusMetrics
from organic_scoring.metrics._server import exposition, registry_of

__all__ = ["metrics_app", "metrics_route"]


class _MetricsApp:
    """ASGI: ``GET``/``HEAD`` answer with the registry's metrics, other methods 405."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _send(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        accept = ",".join(
            value.decode("latin-1") for key, value in scope["headers"] if key.lower() == b"accept"
        )
        # Collecting reads the organic queue, which may be a round trip to a file or a
        # server (SQLite, Redis): off the event loop that serves the intake.
        body, content_type = await asyncio.to_thread(exposition, self._registry, accept)
        headers = [(b"content-type", content_type.encode())]
        await _send(send, 200, body, headers, with_body=method == "GET")


async def _send(
    send: Any,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    with_body: bool = True,
) -> None:
    if not any(key == b"content-type" for key, _ in headers):
        headers = [*headers, (b"content-type", b"text/plain; charset=utf-8")]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body if with_body else b""})


def metrics_app(metrics: PrometheusMetrics | CollectorRegistry) -> Any:
    """An ASGI app answering ``GET`` with ``metrics``' exposition (any path it is given)."""
    return _MetricsApp(registry_of(metrics))


def metrics_route(metrics: PrometheusMetrics | CollectorRegistry, path: str = "/metrics") -> Any:
    """A Starlette ``Route`` serving ``metrics`` at ``path`` (``GET`` and ``HEAD``).

    Add it to the intake's app (``app.router.routes.append(...)``) or list it in
    ``Starlette(routes=[...])``. Needs starlette (the ``http`` extra).
    """
    try:
        from starlette.routing import Route
    except ImportError as exc:  # pragma: no cover - starlette ships with the http extra
        raise ImportError(
            "metrics_route needs starlette (the 'http' extra): "
            "pip install 'organic-scoring[http]'; or mount metrics_app(metrics) yourself"
        ) from exc
    return Route(path, metrics_app(metrics), methods=["GET", "HEAD"])
