"""Who is calling: the authenticated request, visible to hooks while it is handled."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestInfo", "caller_hotkey", "current_request"]


@dataclass(frozen=True)
class RequestInfo:
    """An authenticated request before its body is parsed.

    This is what ``_blacklist_fn`` receives on the signed-HTTP intake (the body has
    not been parsed yet when it runs), and what :func:`current_request` returns.

    Attributes:
        hotkey: The caller's ss58 hotkey, proven by its signature.
        protocol: How it was signed: ``"btauth/1"`` or ``"epistula"``.
        method: The HTTP method, upper case.
        path: The request target the caller signed: path plus ``?query`` if any.
        headers: The request headers, names lower-cased (for a repeated name other
            than an authentication header, the last value).
        client: The peer's ``(host, port)`` as the server saw it, or None.
        caller: The protocol's record of the caller: bittensor's ``http_auth.Caller``
            (``hotkey_ss58``, ``nonce_ns``, ``crypto_type``) for btauth/1, an
            :class:`~organic_scoring.http.EpistulaCaller` (``hotkey_ss58``, ``uuid``,
            ``timestamp_ms``) for Epistula.
    """

    hotkey: str
    protocol: str
    method: str
    path: str
    headers: Mapping[str, str]
    client: tuple[str, int] | None
    caller: Any


_current: ContextVar[RequestInfo | None] = ContextVar("organic_scoring_http_request", default=None)


def current_request() -> RequestInfo | None:
    """The authenticated request being handled, or None outside the intake.

    Set once the signature verified, before any hook runs, until the response (streamed
    too) has been sent.
    """
    return _current.get()


def caller_hotkey() -> str | None:
    """The ss58 hotkey of the authenticated caller being handled, or None."""
    info = _current.get()
    return None if info is None else info.hotkey
