"""The axon's wire format, and the gate's steps up to the body (plus the synapse's
parse and body hash) as pure ASGI middleware in front of bittensor's own app. A
refusal is JSON ``{"message": ...}`` with bittensor's ``bt_header_axon_status_*``
headers."""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from organic_scoring.intake._body import ClientGone
from organic_scoring.intake._gate import Claim, Gate, Received, Refused, Wire

if TYPE_CHECKING:  # starlette comes with bittensor 9/10's axon
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AxonScreen", "AxonWire", "Route", "current_wire"]

_HOTKEY = b"hotkey"
_NONCE = b"nonce"
_SIGNATURE = b"signature"
_AUTH_PREFIX = b"bt_header_dendrite_"
_AXON_PREFIX = b"bt_header_axon_"  # bittensor tests for it first


@dataclass(frozen=True)
class Route:
    """One attached synapse type: its gate and its class."""

    gate: Gate
    synapse_type: type[Any]


class AxonWire(Wire):
    """One axon request: read by the screen, then answered through bittensor's hooks."""

    def __init__(self, route: Route, scope: Scope, receive: Receive) -> None:
        self.route = route
        self.scope = scope
        self.receive = receive
        self.began = time.perf_counter()
        self.received: Received | None = None
        """Set once the screen passed; its ``caller`` once bittensor verified it."""
        self.synapse: Any = None
        """The synapse bittensor built, set by the handler before :meth:`proceed`."""
        self.response: Any = None
        self._headers: dict[bytes, bytes] = {}

    def claim(self) -> Claim:
        seen = self._headers
        dendrite: dict[bytes, bytes] = {}
        for name, value in self.scope["headers"]:
            key = name.lower()
            if key == b"content-type" and key in seen:
                # The screen and bittensor's app would each read one of them (the app
                # the first): one body, judged JSON by one and not by the other.
                raise Refused(400, "the content-type header is repeated")
            seen[key] = value
            # Read the dendrite's fields as bittensor does: from any header whose name
            # *contains* the prefix (the last one winning there), so a second spelling
            # cannot carry another hotkey past the screen.
            if _AXON_PREFIX in key or _AUTH_PREFIX not in key:
                continue
            field = key.split(_AUTH_PREFIX)[1]
            if field in dendrite:
                name = (_AUTH_PREFIX + field).decode("latin-1")
                raise Refused(400, f"the {name} header is repeated")
            dendrite[field] = value
        hotkey, nonce = dendrite.get(_HOTKEY), dendrite.get(_NONCE)
        if not hotkey or not dendrite.get(_SIGNATURE) or nonce is None:
            raise Refused(401, "the request is not signed")
        try:
            signed_at = int(nonce)
        except ValueError:
            raise Refused(401, "the request's nonce is not a number") from None
        return Claim(hotkey=hotkey.decode("latin-1"), signed_at_ns=signed_at, nonce=signed_at)

    def content_length(self) -> str | None:
        length = self._headers.get(b"content-length")
        return None if length is None else length.decode("latin-1")

    def check(self, claim: Claim, body: bytes) -> Any:
        # The body must be the synapse: bittensor answers one that is not with a 500.
        # bittensor parses it again itself (it takes no parsed synapse from outside).
        synapse_type = self.route.synapse_type
        if not _is_json(self._headers.get(b"content-type")):
            raise Refused(415, "the body must be JSON (Content-Type: application/json)")
        try:
            synapse = synapse_type.model_validate_json(body or b"{}")
        except ValidationError as exc:
            errors = exc.errors()
            if any(error["type"] == "json_invalid" for error in errors):
                raise Refused(400, "request body is not valid JSON") from None
            fields = ", ".join(".".join(map(str, e["loc"])) for e in errors[:5])
            name = synapse_type.__name__
            raise Refused(422, f"request body does not match {name}: {fields}") from None
        except Exception as exc:  # a validator's own bug (pydantic wraps only ValueError)
            name = f"{synapse_type.__name__}'s validation"
            raise self.route.gate.hook_failed(name, claim.hotkey, exc) from exc
        # bittensor builds the synapse from the (unsigned) headers too, and compares the
        # body's hash with the computed_body_hash header; it answers 500 to a failure of
        # either, so they are refused here first.
        from starlette.datastructures import Headers  # with bittensor 9/10's axon

        headers = Headers(scope=self.scope)
        try:
            synapse_type.from_headers(headers)
        except Exception:
            raise Refused(400, "the bittensor headers do not describe the synapse") from None
        if synapse.body_hash != headers.get("computed_body_hash", ""):
            raise Refused(400, "the body's hash is not its computed_body_hash header")
        return None  # the caller: bittensor's verified dendrite, set by the verify hook

    def entered(self, claim: Claim, caller: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext(self.synapse)  # ``_blacklist_fn`` sees the synapse

    def parse(self, body: bytes) -> Any:
        return self.synapse

    async def respond(self, result: Any) -> int:
        self.response = self.synapse if result is None else result
        return 200


_current: contextvars.ContextVar[AxonWire | None] = contextvars.ContextVar(
    "organic_scoring_axon_wire", default=None
)


def current_wire() -> AxonWire | None:
    """The request the screen passed on to bittensor, inside the axon's hooks."""
    return _current.get()


class AxonScreen:
    """ASGI middleware: the gate's steps up to the body for each route in ``routes``
    (``"/MySynapse"`` to its :class:`Route`, filled by attach_axon)."""

    def __init__(self, app: ASGIApp, routes: dict[str, Route]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(_synapse_path(scope)) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        ended: list[bool] = []
        wire = AxonWire(route, scope, _tracked(receive, ended))
        try:
            received = await route.gate.receive(wire)
        except Refused as refused:
            # A body left unread would be discarded by bittensor's server for as long
            # as the caller sends it, each byte putting the keep-alive timeout off:
            # close the connection with the refusal instead.
            await _refuse(send, refused, close=not ended)
            route.gate.record(refused.status, wire.began)
            return
        except ClientGone:
            return
        wire.received = received
        token = _current.set(wire)
        try:  # the verify hook releases the body's budget once the signature is checked
            await self.app(scope, _replay(received.body, receive), send)
        finally:
            received.release()
            _current.reset(token)


def _synapse_path(scope: Scope) -> str:
    """``"/"`` and the path's first segment: the synapse name bittensor reads from it."""
    from starlette.datastructures import URL  # with bittensor 9/10's axon

    parts = URL(scope=scope).path.split("/")
    return "/" + parts[1] if len(parts) > 1 else ""


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


def _is_json(content_type: bytes | None) -> bool:
    """Whether a ``Content-Type`` says JSON, as FastAPI reads it (bittensor answers any
    other body with a 500)."""
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def _tracked(receive: Receive, ended: list[bool]) -> Receive:
    """``receive``, appending to ``ended`` once the body's last part arrived."""

    async def tracked() -> Message:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            ended.append(True)
        return message

    return tracked


async def _refuse(send: Send, refused: Refused, *, close: bool = False) -> None:
    body = json.dumps({"message": refused.message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"bt_header_axon_status_code", str(refused.status).encode()),
        (b"bt_header_axon_status_message", refused.message.encode("latin-1", "replace")),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in refused.headers.items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
