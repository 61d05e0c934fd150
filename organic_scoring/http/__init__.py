"""Organic intake over signed HTTP: btauth/1 (bittensor 11) and Epistula v2 (any).

The validator side is an ASGI app built on Starlette, :func:`create_app`, a thin
adapter over the intake gate (:mod:`organic_scoring.intake`): it checks each
request's signature before any hook runs and hands the parsed request to the
scorer's ``_on_organic_entry``. Serve it standalone with :func:`serve_in_thread`, or
mount it in an existing Starlette or FastAPI app. Callers (gateways, tests, demos)
use :class:`OrganicClient`, or any ``httpx`` client with :class:`OrganicAuth`.

Hooks learn who is calling from :func:`caller_hotkey` and :func:`current_request`
(whose ``caller`` is the protocol's record of the caller); ``_blacklist_fn`` receives
a :class:`RequestInfo`.

Needs the ``http`` extra (``pip install 'organic-scoring[http]'``), on every
bittensor major; ``protocol="btauth/1"`` needs bittensor 11's ``bt.http_auth`` and
says so clearly on 9 and 10.
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
