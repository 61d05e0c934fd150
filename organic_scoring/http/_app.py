"""The organic intake as an ASGI app: btauth/1-signed HTTP in, ``_on_organic_entry`` out.

Protocol: a caller POSTs a JSON body to the intake's path, signed for the
validator's hotkey with ``bt.http_auth.sign`` (the ``X-Bittensor-*`` headers of
``btauth/1``). Every request goes through these steps, in this order, and stops at
the first that refuses it:

1. **Size**: a declared ``Content-Length`` above ``max_body_bytes``, or a body that
   grows past it while being read, gets 413; nothing more is buffered.
2. **Signature**: ``bt.http_auth.verify`` over the exact body bytes, the method and
   the request target as the client sent it (path and ``?query``, mount prefix
   included), against the validator's hotkey, with a replay-protecting nonce store.
   Missing or bad signature, stale or replayed nonce, wrong receiver: 401.
   From here on the caller's hotkey is known (:func:`caller_hotkey`).
3. **Who**: a hotkey outside the scorer's ``allowed_hotkeys``, or refused by
   ``_blacklist_fn(RequestInfo)``: 403.
4. **Body**: parsed into the pydantic model that ``_on_organic_entry``'s first
   parameter names. Not JSON: 400; JSON that does not fit: 422 with the errors.
5. **Verify hook**: ``_verify_fn(request)`` returning False or raising: 403.
6. **Admission**: ``max_concurrent`` requests are handled at once; the rest wait,
   highest ``_priority_fn(request)`` first, at most ``max_backlog`` of them; beyond
   that: 429. A caller that hangs up while waiting gives up its place.
7. **Handler**: ``_on_organic_entry(request)``; its return value is the response
   (see :mod:`organic_scoring.http._responses`). If it raises: 500, logged here,
   with nothing of the exception in the answer.

Every refusal is a JSON ``{"error": "..."}``. Bad input is always a 4xx; a 5xx
means a hook failed (500) or the nonce store did (503).

The app runs on an asyncio server (uvicorn, hypercorn on asyncio) and serves one
event loop at a time. ``verify`` and the nonce store are called synchronously, as
bittensor defines them; a store backed by a remote service should answer fast.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from organic_scoring._log import log
from organic_scoring._tasks import TaskGroup
from organic_scoring.base import OrganicScoringBase
from organic_scoring.http._admission import AdmissionGate, BacklogFull
from organic_scoring.http._auth import (
    GuardedNonceStore,
    NonceStoreFailure,
    http_auth,
    request_target,
)
from organic_scoring.http._body import (
    BodyTooLarge,
    ClientGone,
    InvalidLength,
    check_declared_length,
    read_body,
)
from organic_scoring.http._context import RequestInfo, _current
from organic_scoring.http._hooks import ScorerIntakeHooks, request_model_of
from organic_scoring.http._responses import error_response, response_for, stream_response
from organic_scoring.http._settings import DEFAULT_MAX_BODY_BYTES, IntakeSettings

__all__ = ["OrganicIntake", "create_app"]

_MAX_REPORTED_ERRORS = 50


def create_app(
    scoring: OrganicScoringBase,
    *,
    hotkey_ss58: str,
    path: str = "/organic",
    model: type[BaseModel] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_concurrent: int = 32,
    max_backlog: int = 256,
    max_age: float = 10.0,
    allowed_skew: float = 2.0,
    nonce_store: Any = None,
) -> Starlette:
    """Build the signed-HTTP organic intake for ``scoring`` as a Starlette app.

    Serve it alone (:func:`~organic_scoring.http.serve_in_thread`, or any ASGI
    server), or mount it in an existing Starlette or FastAPI app
    (``Mount("/prefix", app)`` / ``app.mount(...)``); callers then sign the full path,
    prefix included. It answers ``POST path`` only (other methods: 405).
    ``app.state.organic_intake`` is the :class:`OrganicIntake` behind the route.

    Args:
        scoring: The scorer whose ``_on_organic_entry`` handles each request.
        hotkey_ss58: The validator's hotkey; requests must be signed for it.
        path: The route of the intake.
        model: The request model; by default the annotation of
            ``_on_organic_entry``'s first parameter.
        max_body_bytes: Longer bodies get 413 (default 1 MiB).
        max_concurrent: Requests handled at once.
        max_backlog: Requests allowed to wait for a slot; more get 429.
        max_age: Seconds a signed request stays fresh.
        allowed_skew: Seconds a caller's clock may run ahead of ours.
        nonce_store: Where seen nonces are kept (a ``bt.http_auth.NonceStore``);
            default: a new ``InMemoryNonceStore`` for this app. Share one store, e.g.
            backed by Redis, between processes serving the same hotkey.

    Raises:
        RuntimeError: This bittensor has no ``bt.http_auth`` (9 and 10).
        TypeError: ``scoring`` is not a scorer, or no request model can be found.
        ValueError: An option is out of range (the message names it), or the nonce
            store forgets nonces before they go stale.
    """
    intake = OrganicIntake(
        scoring,
        hotkey_ss58=hotkey_ss58,
        path=path,
        model=model,
        max_body_bytes=max_body_bytes,
        max_concurrent=max_concurrent,
        max_backlog=max_backlog,
        max_age=max_age,
        allowed_skew=allowed_skew,
        nonce_store=nonce_store,
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
        path: str = "/organic",
        model: type[BaseModel] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_concurrent: int = 32,
        max_backlog: int = 256,
        max_age: float = 10.0,
        allowed_skew: float = 2.0,
        nonce_store: Any = None,
    ) -> None:
        """Check the options and look up the scorer's hooks; see :func:`create_app`."""
        auth = http_auth("organic_scoring.http.create_app")
        if not isinstance(scoring, OrganicScoringBase):
            raise TypeError(f"scoring must be an OrganicScoringBase, got {type(scoring).__name__}")
        self.settings = IntakeSettings(
            hotkey_ss58=hotkey_ss58,
            path=path,
            max_body_bytes=max_body_bytes,
            max_concurrent=max_concurrent,
            max_backlog=max_backlog,
            max_age=max_age,
            allowed_skew=allowed_skew,
        )
        if model is None:
            model = request_model_of(scoring)
        elif not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"model must be a pydantic model class, got {model!r}")
        self.model: type[BaseModel] = model
        # Read the settings through the base class's descriptor, not ``scoring.config``:
        # a subclass may use the name ``config`` for something of its own.
        config = OrganicScoringBase.__dict__["config"].__get__(scoring, type(scoring))
        self._allowed: frozenset[str] | None = config.allowed_hotkeys
        self._hooks = ScorerIntakeHooks(scoring)
        self._gate = AdmissionGate(self.settings.max_concurrent, self.settings.max_backlog)
        self.nonce_store = _nonce_store(auth, nonce_store, self.settings)
        self._auth_error: type[Exception] = auth.AuthError
        self._verify: Callable[..., Any] = functools.partial(
            auth.verify,
            self_hotkey_ss58=self.settings.hotkey_ss58,
            max_age=self.settings.max_age,
            allowed_skew=self.settings.allowed_skew,
            nonce_store=GuardedNonceStore(self.nonce_store),
        )

    @property
    def in_flight(self) -> int:
        """Requests holding a handler slot now."""
        return self._gate.active

    @property
    def waiting(self) -> int:
        """Requests waiting for a handler slot now."""
        return self._gate.waiting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request (ASGI)."""
        if scope["type"] != "http":
            return  # only HTTP is served; a router never sends anything else here
        if scope["method"] != "POST":
            await error_response(405, "method not allowed", headers={"Allow": "POST"})(
                scope, receive, send
            )
            return
        response = await self._authenticate(scope, receive)
        if response is None:
            return  # the caller hung up while sending its body
        if isinstance(response, Response):
            await response(scope, receive, send)
            return
        info, body = response
        token = _current.set(info)
        try:
            await self._serve(info, body, scope, receive, send)
        finally:
            _current.reset(token)

    async def _authenticate(
        self, scope: Scope, receive: Receive
    ) -> Response | tuple[RequestInfo, bytes] | None:
        """Steps 1 and 2: the body within its limit, and a valid signature.

        Returns the refusal, the authenticated request, or None if the client left.
        """
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        limit = self.settings.max_body_bytes
        try:
            check_declared_length(headers.get("content-length"), limit)
            body = await read_body(receive, limit)
        except BodyTooLarge:
            # The server discards whatever of the body is still coming; closing the
            # connection now instead would reset it under a client still writing.
            return error_response(413, f"request body exceeds {limit} bytes")
        except InvalidLength:
            return error_response(400, "invalid Content-Length")
        except ClientGone:
            return None
        target = request_target(scope)
        try:
            caller = self._verify(headers, body, method="POST", path=target)
        except NonceStoreFailure as exc:
            log.error(f"organic intake: the nonce store failed: {exc}", exc_info=exc.__cause__)
            return error_response(503, "replay protection is unavailable, try again later")
        except Exception as exc:
            if not isinstance(exc, self._auth_error):
                # bittensor refused input it did not expect; still the caller's fault.
                log.debug(f"organic intake: verify raised {exc!r}")
                return error_response(401, "malformed authentication headers")
            return error_response(401, str(exc))
        client = scope.get("client")
        info = RequestInfo(
            hotkey=caller.hotkey_ss58,
            method="POST",
            path=target,
            headers=headers,
            client=None if client is None else (str(client[0]), int(client[1])),
            caller=caller,
        )
        return info, body

    async def _serve(
        self, info: RequestInfo, body: bytes, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Steps 3 to 7, with the caller known."""
        response = await self._admissible(info, body)
        if isinstance(response, Response):
            await response(scope, receive, send)
            return
        request, priority = response
        try:
            admitted = await self._admit(priority, receive)
        except BacklogFull:
            log.debug(f"organic intake: backlog full, refused {info.hotkey}")
            await error_response(
                429,
                "too many organic requests waiting, try again later",
                headers={"Retry-After": "1"},
            )(scope, receive, send)
            return
        if not admitted:
            return
        try:
            await self._handle(request, scope, receive, send)
        finally:
            self._gate.leave()

    async def _admissible(
        self, info: RequestInfo, body: bytes
    ) -> Response | tuple[BaseModel, float]:
        """Steps 3 to 5: the request and its priority, or the refusal."""
        if self._allowed is not None and info.hotkey not in self._allowed:
            return error_response(403, "this hotkey may not send organic requests")
        try:
            reason = await self._hooks.blacklisted(info)
        except Exception as exc:
            return _hook_failed("_blacklist_fn", info, exc)
        if reason is not None:
            return error_response(403, reason)
        try:
            request = self.model.model_validate_json(body)
        except ValidationError as exc:
            return _invalid_body(exc)
        except Exception as exc:
            return _hook_failed(f"{self.model.__name__} validation", info, exc)
        try:
            reason = await self._hooks.rejected(request)
        except Exception as exc:
            log.debug(f"organic intake: _verify_fn raised {exc!r} for {info.hotkey}")
            reason = "rejected by the validator"
        if reason is not None:
            return error_response(403, reason)
        try:
            priority = await self._hooks.priority(request)
        except Exception as exc:
            return _hook_failed("_priority_fn", info, exc)
        return request, priority

    async def _admit(self, priority: float, receive: Receive) -> bool:
        """Step 6: wait for a slot; False if the client hung up first.

        Raises:
            BacklogFull: Too many requests are waiting already.
        """
        gate = self._gate
        if gate.try_enter():
            return True
        waiter = gate.queue(priority)
        try:
            async with TaskGroup() as group:
                watcher = group.start_soon(_until_gone(receive))
                await asyncio.wait((waiter, watcher), return_when=asyncio.FIRST_COMPLETED)
                gone = watcher.done()
                watcher.cancel()
        except BaseException:
            gate.withdraw(waiter)
            raise
        if gone:
            gate.withdraw(waiter)  # passes the slot on if it had just been granted
            return False
        return True

    async def _handle(self, request: BaseModel, scope: Scope, receive: Receive, send: Send) -> None:
        """Step 7: run the handler and send what it returned."""
        chunks = None
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            try:
                result = await self._hooks.handle(request)
                response = response_for(result)
                if response is None:
                    streamed = await stream_response(result)
                    if streamed is None:
                        response = Response(b"", media_type="text/plain; charset=utf-8")
                    else:
                        response, chunks = streamed
            except Exception as exc:
                response = _hook_failed("_on_organic_entry", _current.get(), exc)
            try:
                await response(scope, receive, tracked_send)
            except (ClientDisconnect, OSError):
                pass  # the caller left; there is no one to answer
            except Exception as exc:
                log.error(f"organic intake: sending the response failed: {exc!r}", exc_info=exc)
                if not started:
                    await error_response(500, "internal error")(scope, receive, send)
        finally:
            if chunks is not None:
                await chunks.aclose()


async def _until_gone(receive: Receive) -> None:
    """Return once the client has hung up (or reading from it fails, which is the same)."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception as exc:
        log.debug(f"organic intake: reading from a waiting client failed: {exc!r}")


def _invalid_body(exc: ValidationError) -> Response:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if any(error["type"] == "json_invalid" for error in errors):
        return error_response(400, "request body is not valid JSON")
    detail = [
        {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
        for error in errors[:_MAX_REPORTED_ERRORS]
    ]
    return error_response(422, "request body does not match the schema", detail=detail)


def _hook_failed(hook: str, info: RequestInfo | None, exc: Exception) -> Response:
    who = "an unknown caller" if info is None else info.hotkey
    log.error(f"organic intake: {hook} raised for {who}: {exc!r}", exc_info=exc)
    return error_response(500, "internal error")


def _nonce_store(auth: Any, store: Any, settings: IntakeSettings) -> Any:
    window = settings.max_age + settings.allowed_skew
    if store is None:
        return auth.InMemoryNonceStore(retention=max(60.0, window))
    if not callable(getattr(store, "check_and_store", None)):
        raise TypeError(
            "nonce_store must have a check_and_store(hotkey_ss58, nonce_ns) method, "
            f"got {type(store).__name__}"
        )
    retention = getattr(store, "retention", None)
    if isinstance(retention, (int, float)) and retention < window:
        raise ValueError(
            f"nonce_store keeps nonces for {retention:g}s but requests stay fresh for "
            f"{window:g}s (max_age + allowed_skew); replays in the gap would be accepted"
        )
    return store
