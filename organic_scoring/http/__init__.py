"""Organic intake over signed HTTP: btauth/1 (bittensor 11) and Epistula v2 (any).

The validator serves :func:`create_app` (an ASGI app on Starlette, over the intake gate);
callers use :class:`OrganicClient`, or any ``httpx`` client with :class:`OrganicAuth`.
Needs the ``http`` extra (``pip install 'organic-scoring[http]'``).
"""

from __future__ import annotations

from organic_scoring._compat import require_extra

require_extra("httpx", "http", "organic_scoring.http")
require_extra("starlette", "http", "organic_scoring.http")

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
