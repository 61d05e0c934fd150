"""The organic intake as an ASGI app: signed HTTP in, ``_on_organic_entry`` out.

A thin adapter over the intake gate (:mod:`organic_scoring.intake`); the steps and
their statuses are in ``docs/intake.md``. Every refusal is a JSON
``{"error": "..."}``. Serves one asyncio event loop at a time.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from organic_scoring._defaults import (
    DEFAULT_ALLOWED_SKEW,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_UNVERIFIED_BYTES,
    DEFAULT_UNVERIFIED_BYTES_PER_HOTKEY,
)
from organic_scoring._log import log
from organic_scoring.base import OrganicScoringBase
from organic_scoring.http._context import RequestInfo, _current
from organic_scoring.http._protocol import header_map
from organic_scoring.http._responses import error_response, response_for, stream_response
from organic_scoring.http._settings import IntakeSettings
from organic_scoring.http._signing import default_protocol, protocol_named
from organic_scoring.http._target import request_target
from organic_scoring.intake import NonceStore, Quota
from organic_scoring.intake._body import (
    BodyBudget,
    BodyTooLarge,
    BodyTooSlow,
    ClientGone,
    InvalidLength,
    OverBudget,
    check_declared_length,
    read_body,
)
from organic_scoring.intake._gate import Gate, Refused
from organic_scoring.intake._request_type import request_type_of

__all__ = ["OrganicIntake", "create_app"]

_MAX_REPORTED_ERRORS = 50
_GONE = 499  # counted, never sent: nginx's "client closed request"


def create_app(
    scoring: OrganicScoringBase,
    *,
    hotkey_ss58: str,
    protocol: str | None = None,
    path: str = "/organic",
    model: type[BaseModel] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_concurrent: int = 32,
    max_backlog: int = 256,
    max_unverified_bytes: int = DEFAULT_UNVERIFIED_BYTES,
    max_unverified_bytes_per_hotkey: int = DEFAULT_UNVERIFIED_BYTES_PER_HOTKEY,
    max_age: float = DEFAULT_MAX_AGE,
    allowed_skew: float = DEFAULT_ALLOWED_SKEW,
    nonce_store: NonceStore | None = None,
    allowed_hotkeys: Any = None,
    quota: Quota | None = None,
) -> Starlette:
    """Build the signed-HTTP organic intake for ``scoring`` as a Starlette app.

    Serve it alone (:func:`~organic_scoring.http.serve_in_thread`, or any ASGI
    server), or mount it in an existing Starlette or FastAPI app
    (``Mount("/prefix", app)`` / ``app.mount(...)``); btauth/1 callers then sign the
    full path, prefix included. It answers ``POST path`` only (other methods: 405).
    ``app.state.organic_intake`` is the :class:`OrganicIntake` behind the route.

    Args:
        scoring: The scorer whose ``_on_organic_entry`` handles each request.
        hotkey_ss58: The validator's hotkey; requests must be signed for it.
        protocol: ``"btauth/1"`` (bittensor 11) or ``"epistula"`` (any bittensor).
            Default: ``"btauth/1"`` where ``bt.http_auth`` exists, else ``"epistula"``.
        path: The route of the intake.
        model: The request model; by default the annotation of
            ``_on_organic_entry``'s first parameter.
        max_body_bytes: Longer bodies get 413 (default 1 MiB).
        body_timeout: Seconds to receive the whole body; slower ones get 408.
        max_concurrent: Requests handled at once.
        max_backlog: Requests allowed to wait for a slot; more get 429.
        max_unverified_bytes: Body bytes read at once before their signatures are
            checked, over all callers (16 MiB); more get 503.
        max_unverified_bytes_per_hotkey: The same per claimed hotkey (4 MiB); more
            get 429.
        max_age: Seconds a signed request stays fresh.
        allowed_skew: Seconds a caller's clock may run ahead of ours.
        nonce_store: Where accepted nonces are kept
            (:class:`~organic_scoring.intake.NonceStore`); default: in memory, for
            this app. Share one (Redis) between processes serving the same hotkey.
        allowed_hotkeys: Who may call: SS58 hotkeys, a callable ``(hotkey) -> bool``
            (e.g. :func:`~organic_scoring.intake.permitted_validators`) or
            :data:`~organic_scoring.ANY_HOTKEY`. Default: the scorer's
            ``allowed_hotkeys``; one of the two must say.
        quota: Each hotkey's share (:class:`~organic_scoring.intake.Quota`); past
            it, 429 with ``Retry-After``. None: no per-caller limit.

    Raises:
        RuntimeError: ``protocol="btauth/1"`` on bittensor 9 or 10.
        TypeError: ``scoring`` is not a scorer, or no request model can be found.
        ValueError: An option is out of range (the message names it), the nonce
            store forgets nonces before they go stale, or nobody said who may call
            (``allowed_hotkeys``).
    """
    intake = OrganicIntake(
        scoring,
        hotkey_ss58=hotkey_ss58,
        protocol=protocol,
        path=path,
        model=model,
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
        max_concurrent=max_concurrent,
        max_backlog=max_backlog,
        max_unverified_bytes=max_unverified_bytes,
        max_unverified_bytes_per_hotkey=max_unverified_bytes_per_hotkey,
        max_age=max_age,
        allowed_skew=allowed_skew,
        nonce_store=nonce_store,
        allowed_hotkeys=allowed_hotkeys,
        quota=quota,
    )
    app = Starlette(
        routes=[Route(intake.settings.path, intake, methods=["POST"])],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.organic_intake = intake
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (404, 405) as JSON errors, headers kept."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail).lower(), headers=exc.headers)


class OrganicIntake:
    """The ASGI endpoint behind :func:`create_app`: one signed request in, one response out.

    Route it yourself when :func:`create_app` does not fit; it takes the same
    arguments. :attr:`in_flight` and :attr:`waiting` are there for metrics.
    """

    def __init__(
        self,
        scoring: OrganicScoringBase,
        *,
        hotkey_ss58: str,
        protocol: str | None = None,
        path: str = "/organic",
        model: type[BaseModel] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_concurrent: int = 32,
        max_backlog: int = 256,
        max_unverified_bytes: int = DEFAULT_UNVERIFIED_BYTES,
        max_unverified_bytes_per_hotkey: int = DEFAULT_UNVERIFIED_BYTES_PER_HOTKEY,
        max_age: float = DEFAULT_MAX_AGE,
        allowed_skew: float = DEFAULT_ALLOWED_SKEW,
        nonce_store: NonceStore | None = None,
        allowed_hotkeys: Any = None,
        quota: Quota | None = None,
    ) -> None:
        """Check the options and look up the scorer's hooks; see :func:`create_app`."""
        if not isinstance(scoring, OrganicScoringBase):
            raise TypeError(f"scoring must be an OrganicScoringBase, got {type(scoring).__name__}")
        self.settings = IntakeSettings(
            hotkey_ss58=hotkey_ss58,
            protocol=default_protocol() if protocol is None else protocol,  # type: ignore[arg-type]
            path=path,
            max_body_bytes=max_body_bytes,
            body_timeout=body_timeout,
            max_concurrent=max_concurrent,
            max_backlog=max_backlog,
            max_age=max_age,
            allowed_skew=allowed_skew,
            max_unverified_bytes=max_unverified_bytes,
            max_unverified_bytes_per_hotkey=max_unverified_bytes_per_hotkey,
        )
        self.budget = BodyBudget(
            self.settings.max_unverified_bytes, self.settings.max_unverified_bytes_per_hotkey
        )
        self.protocol = protocol_named(self.settings.protocol)
        if model is None:
            model = request_type_of(scoring, BaseModel, "; or pass model= to create_app")
        elif not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"model must be a pydantic model class, got {model!r}")
        self.model: type[BaseModel] = model
        self.gate = Gate(
            scoring,
            self.settings.protocol,
            max_concurrent=self.settings.max_concurrent,
            max_backlog=self.settings.max_backlog,
            max_age=self.settings.max_age,
            allowed_skew=self.settings.allowed_skew,
            nonce_store=nonce_store,
            allowed_hotkeys=allowed_hotkeys,
            quota=quota,
        )

    @property
    def nonce_store(self) -> NonceStore:
        """Where this intake keeps accepted nonces."""
        return self.gate.nonce_store

    @property
    def in_flight(self) -> int:
        """Requests holding a handler slot now."""
        return self.gate.in_flight

    @property
    def waiting(self) -> int:
        """Requests waiting for a handler slot now."""
        return self.gate.waiting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request (ASGI)."""
        if scope["type"] != "http":
            return  # only HTTP is served; a router never sends anything else here
        began = time.perf_counter()
        gate = self.gate
        if scope["method"] != "POST":
            await error_response(405, "method not allowed", headers={"Allow": "POST"})(
                scope, receive, send
            )
            gate.record(405, began)
            return
        try:
            status = await self._serve(scope, receive, send)
        except Refused as refused:
            response = error_response(
                refused.status, refused.message, headers=refused.headers, detail=refused.detail
            )
            await response(scope, receive, send)
            status = refused.status
        except ClientGone:
            status = _GONE
        gate.record(status, began)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Every step; returns the status sent, or raises :class:`Refused`."""
        settings, gate, protocol = self.settings, self.gate, self.protocol
        receiver = settings.hotkey_ss58
        headers = header_map(scope["headers"], protocol)
        claim = protocol.claim(headers, receiver)
        gate.screen(gate.identify(claim.hotkey))
        gate.check_fresh(claim.signed_at_ns, claim.resolution_ns)
        limit = settings.max_body_bytes
        try:
            declared = check_declared_length(headers.get("content-length"), limit)
        except InvalidLength:
            raise Refused(400, "invalid Content-Length") from None
        except BodyTooLarge:
            # The server discards whatever of the body is still coming; closing the
            # connection now instead would reset it under a client still writing.
            raise Refused(413, f"request body exceeds {limit} bytes") from None
        target = request_target(scope)
        try:
            # Held until the signature is checked: unverified bodies share a budget.
            with self.budget.hold(claim.hotkey, limit if declared is None else declared):
                body = await read_body(receive, limit, settings.body_timeout, declared)
                caller = protocol.verify(
                    claim, headers, body, target=target, receiver=receiver, gate=gate
                )
        except OverBudget as over:
            raise Refused(
                429 if over.per_hotkey else 503,
                "too many request bodies are being read for this hotkey, try again later"
                if over.per_hotkey
                else "too many request bodies are being read, try again later",
                headers={"Retry-After": "1"},
            ) from None
        except BodyTooLarge:
            raise Refused(413, f"request body exceeds {limit} bytes") from None
        except BodyTooSlow:
            raise Refused(
                408, f"the request body did not arrive within {settings.body_timeout:g}s"
            ) from None
        await gate.remember(claim.hotkey, claim.nonce, claim.signed_at_ns, claim.resolution_ns)
        await gate.charge(claim.hotkey)
        client = scope.get("client")
        info = RequestInfo(
            hotkey=claim.hotkey,
            protocol=protocol.name,
            method="POST",
            path=target,
            headers=headers,
            client=None if client is None else (str(client[0]), int(client[1])),
            caller=caller,
        )
        token = _current.set(info)
        try:
            request, priority = await gate.pass_through(
                info, lambda: self._parse(body), claim.hotkey
            )
            async with gate.admitted(priority, lambda: _until_gone(receive)) as admitted:
                if not admitted:
                    return _GONE
                return await self._handle(request, info, scope, receive, send)
        finally:
            _current.reset(token)

    def _parse(self, body: bytes) -> BaseModel:
        try:
            return self.model.model_validate_json(body)
        except ValidationError as exc:
            raise _invalid_body(exc) from None

    async def _handle(
        self, request: BaseModel, info: RequestInfo, scope: Scope, receive: Receive, send: Send
    ) -> int:
        """Run the handler and send what it returned; the status sent."""
        chunks = None
        sent: list[int] = []

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent.append(int(message["status"]))
            await send(message)

        try:
            try:
                result = await self.gate.handle(request)
                response = response_for(result)
                if response is None:
                    streamed = await stream_response(result)
                    if streamed is None:
                        response = Response(b"", media_type="text/plain; charset=utf-8")
                    else:
                        response, chunks = streamed
            except Refused:
                raise  # the organic queue is unavailable: 503
            except Exception as exc:
                self.gate.hook_failed("_on_organic_entry", info.hotkey, exc)
                response = error_response(500, "internal error")
            try:
                await response(scope, receive, tracked_send)
            except (ClientDisconnect, OSError):
                return sent[0] if sent else _GONE  # the caller left; no one to answer
            except Exception as exc:
                log.error(f"organic intake: sending the response failed: {exc!r}", exc_info=exc)
                if not sent:
                    await error_response(500, "internal error")(scope, receive, send)
                    return 500
        finally:
            if chunks is not None:
                await chunks.aclose()
        return sent[0] if sent else 500


async def _until_gone(receive: Receive) -> None:
    """Return once the client has hung up (or reading from it fails, which is the same)."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception as exc:
        log.debug(f"organic intake: reading from a waiting client failed: {exc!r}")


def _invalid_body(exc: ValidationError) -> Refused:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if any(error["type"] == "json_invalid" for error in errors):
        return Refused(400, "request body is not valid JSON")
    detail = [
        {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
        for error in errors[:_MAX_REPORTED_ERRORS]
    ]
    return Refused(422, "request body does not match the schema", detail=detail)
