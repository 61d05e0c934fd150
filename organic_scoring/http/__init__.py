"""Organic intake over signed HTTP: btauth/1 (bittensor 11) and Epistula v2 (any).

The validator serves :func:`create_app` (an ASGI app on Starlette, over the intake gate);
callers use :class:`OrganicClient`, or any ``httpx`` client with :class:`OrganicAuth`.
Needs the ``http`` extra (``pip install 'organic-scoring[http]'``).
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    if (exc.name or "").partition(".")[0] not in {"httpx", "starlette"}:
        raise
    raise ImportError(
        "organic_scoring.http needs the 'http' extra (starlette, httpx, uvicorn): "
        "pip install 'organic-scoring[http]'",
        name=exc.name,
    ) from exc

from organic_scoring.http._app import create_app
from organic_scoring.http._client import OrganicClient, OrganicStream
from organic_scoring.http._context import RequestInfo, caller_hotkey, current_request
from organic_scoring.http._epistula import EpistulaCaller
from organic_scoring.http._server import OrganicServer, serve_in_thread
from organic_scoring.http._signing import OrganicAuth

__all__ = [
    "EpistulaCaller",
    "OrganicAuth",
    "OrganicClient",
    "OrganicServer",
    "OrganicStream",
    "RequestInfo",
    "caller_hotkey",
    "create_app",
    "current_request",
    "serve_in_thread",
]
