"""The axon's cheap refusals, as pure ASGI middleware in front of bittensor's own app.

bittensor's axon (9/10) builds a synapse, logs and answers for every request it
refuses, however cheap the reason. :class:`AxonScreen` sits outermost on the axon's
FastAPI app and answers, before any of that runs, what needs no signature check:
repeated authentication headers (400), an unsigned request (401), a claimed hotkey
that is not canonical (400) or not allowed (403), a stale or early nonce (401, or 503
while a restarted intake settles), a declared body over the limit (413), a body that
is too slow (408) or too long (413), and a body that is not the synapse (400, 422).
Everything else goes on to bittensor with the body it sent, unchanged.

A refusal is JSON ``{"message": ...}`` with bittensor's ``bt_header_axon_status_code``
and ``bt_header_axon_status_message`` headers, which its dendrite reads into
``synapse.dendrite.status_code`` and ``status_message``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from organic_scoring.intake._body import (
    BodyTooLarge,
    BodyTooSlow,
    ClientGone,
    InvalidLength,
    check_declared_length,
    read_body,
)
from organic_scoring.intake._gate import Gate, Refused

if TYPE_CHECKING:  # starlette comes with bittensor 9/10's axon
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AxonScreen", "Route"]

_HOTKEY = b"bt_header_dendrite_hotkey"
_NONCE = b"bt_header_dendrite_nonce"
_SIGNATURE = b"bt_header_dendrite_signature"
_AUTH_PREFIX = b"bt_header_dendrite_"


@dataclass(frozen=True)
class Route:
    """One attached synapse type: its gate, its class and its body limits."""

    gate: Gate
    synapse_type: type[Any]
    max_body_bytes: int
    body_timeout: float


class AxonScreen:
    """ASGI middleware: the gate's cheap steps for each attached synapse's route.

    ``routes`` maps a path (``"/MySynapse"``) to its :class:`Route`; attach_axon adds
    to it after the middleware is installed, before the axon serves.
    """

    def __init__(self, app: ASGIApp, routes: dict[str, Route]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        try:
            body = await _screen(route, scope, receive)
        except Refused as refused:
            await _refuse(send, refused)
            route.gate.record(refused.status, began)
            return
        except ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)


async def _screen(route: Route, scope: Scope, receive: Receive) -> bytes:
    """Every cheap step; the body, read and checked. Raises :class:`Refused`."""
    gate = route.gate
    seen: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        key = name.lower()
        if key in seen and key.startswith(_AUTH_PREFIX):
            raise Refused(400, f"the {key.decode('latin-1')} header is repeated")
        seen[key] = value
    hotkey, nonce = seen.get(_HOTKEY), seen.get(_NONCE)
    if not hotkey or not seen.get(_SIGNATURE) or nonce is None:
        raise Refused(401, "the request is not signed")
    gate.screen(gate.identify(hotkey.decode("latin-1")))
    try:
        signed_at = int(nonce)
    except ValueError:
        raise Refused(401, "the request's nonce is not a number") from None
    gate.check_fresh(signed_at)
    limit = route.max_body_bytes
    try:
        length = seen.get(b"content-length")
        declared = check_declared_length(None if length is None else length.decode(), limit)
        body = await read_body(receive, limit, route.body_timeout, declared)
    except InvalidLength:
        raise Refused(400, "invalid Content-Length") from None
    except BodyTooLarge:
        raise Refused(413, f"request body exceeds {limit} bytes") from None
    except BodyTooSlow:
        raise Refused(408, f"the body did not arrive within {route.body_timeout:g}s") from None
    try:
        route.synapse_type.model_validate_json(body or b"{}")
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise Refused(400, "request body is not valid JSON") from None
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
        name = route.synapse_type.__name__
        raise Refused(422, f"request body does not match {name}: {fields}") from None
    return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` once, then what the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(send: Send, refused: Refused) -> None:
    body = json.dumps({"message": refused.message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"bt_header_axon_status_code", str(refused.status).encode()),
        (b"bt_header_axon_status_message", refused.message.encode("latin-1", "replace")),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in refused.headers.items()]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
