"""The organic intake as an ASGI app over the intake gate: signed HTTP in,
``_on_organic_entry`` out. Serves one asyncio event loop at a time."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from organic_scoring._log import log
from organic_scoring.base import OrganicScoringBase
from organic_scoring.http._context import RequestInfo, _current
from organic_scoring.http._protocol import SigningProtocol, header_map
from organic_scoring.http._responses import error_response, response_for, stream_response
from organic_scoring.http._signing import protocol_named
from organic_scoring.intake import IntakeSettings, NonceStore, Quota
from organic_scoring.intake._gate import GONE, Claim, Gate, Refused, Wire
from organic_scoring.intake._request_type import request_type_of

__all__ = ["OrganicIntake", "create_app"]

_MAX_REPORTED_ERRORS = 50


def create_app(
    scoring: OrganicScoringBase,
    *,
    hotkey_ss58: str,
    protocol: str | None = None,
    path: str = "/organic",
    model: type[BaseModel] | None = None,
    settings: IntakeSettings | None = None,
    nonce_store: NonceStore | None = None,
    allowed_hotkeys: Any = None,
    quota: Quota | None = None,
) -> Starlette:
    """Build the signed-HTTP organic intake for ``scoring`` as a Starlette app, to serve
    alone or mount. It answers ``POST path`` only (other methods: 405);
    ``app.state.organic_intake`` is the :class:`OrganicIntake` behind the route.

    Args:
        scoring: The scorer whose ``_on_organic_entry`` handles each request.
        hotkey_ss58: The validator's hotkey; requests must be signed for it.
        protocol: ``"btauth/1"`` (bittensor 11) or ``"epistula"`` (any bittensor).
            Default: ``"btauth/1"`` where ``bt.http_auth`` exists, else ``"epistula"``.
        path: The route of the intake.
        model: The request model; by default the annotation of
            ``_on_organic_entry``'s first parameter.
        settings: The limits (:class:`~organic_scoring.intake.IntakeSettings`);
            default ``IntakeSettings()``.
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
        TypeError: ``scoring`` is not a scorer, ``settings`` not an
            ``IntakeSettings``, or no request model can be found.
        ValueError: ``hotkey_ss58``, ``protocol`` or ``path`` is invalid (the message
            names it), the nonce store forgets nonces before they go stale, or nobody
            said who may call (``allowed_hotkeys``).
    """
    intake = OrganicIntake(
        scoring,
        hotkey_ss58=hotkey_ss58,
        protocol=protocol,
        path=path,
        model=model,
        settings=settings,
        nonce_store=nonce_store,
        allowed_hotkeys=allowed_hotkeys,
        quota=quota,
    )
    app = Starlette(
        routes=[Route(intake.path, intake, methods=["POST"])],
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
        settings: IntakeSettings | None = None,
        nonce_store: NonceStore | None = None,
        allowed_hotkeys: Any = None,
        quota: Quota | None = None,
    ) -> None:
        """Check the options and look up the scorer's hooks; see :func:`create_app`."""
        if not isinstance(scoring, OrganicScoringBase):
            raise TypeError(f"scoring must be an OrganicScoringBase, got {type(scoring).__name__}")
        if not isinstance(hotkey_ss58, str) or not hotkey_ss58:
            raise ValueError(
                f"hotkey_ss58 must be the validator's SS58 hotkey, got {hotkey_ss58!r}"
            )
        if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(
                f"path must be an absolute path such as '/organic', without a query; got {path!r}"
            )
        self.hotkey_ss58 = hotkey_ss58
        self.path = path
        self.protocol: SigningProtocol = protocol_named(protocol)
        if model is None:
            model = request_type_of(scoring, BaseModel, "; or pass model= to create_app")
        elif not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"model must be a pydantic model class, got {model!r}")
        self.model: type[BaseModel] = model
        self.gate = Gate(
            scoring,
            self.protocol.name,
            settings,
            nonce_store=nonce_store,
            allowed_hotkeys=allowed_hotkeys,
            quota=quota,
        )

    @property
    def settings(self) -> IntakeSettings:
        """The intake's limits."""
        return self.gate.settings

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
        if scope["method"] != "POST":
            began = time.perf_counter()
            await error_response(405, "method not allowed", headers={"Allow": "POST"})(
                scope, receive, send
            )
            self.gate.record(405, began)
            return
        await self.gate.serve(_HttpWire(self, scope, receive, send))


class _HttpWire(Wire):
    """One signed HTTP request, as the gate reads and answers it."""

    def __init__(self, intake: OrganicIntake, scope: Scope, receive: Receive, send: Send) -> None:
        self.intake = intake
        self.scope = scope
        self.receive = receive
        self.send = send
        self.gone = functools.partial(_until_gone, receive)
        self.target = request_target(scope)
        self.headers: dict[str, str] = {}
        self.hotkey = ""  # the verified caller's, once known

    def claim(self) -> Claim:
        intake = self.intake
        self.headers = header_map(self.scope["headers"], intake.protocol)
        return intake.protocol.claim(self.headers, intake.hotkey_ss58)

    def content_length(self) -> str | None:
        return self.headers.get("content-length")

    def check(self, claim: Claim, body: bytes) -> Any:
        intake = self.intake
        return intake.protocol.verify(
            claim,
            self.headers,
            body,
            target=self.target,
            receiver=intake.hotkey_ss58,
            gate=intake.gate,
        )

    @contextlib.contextmanager
    def entered(self, claim: Claim, caller: Any) -> Iterator[RequestInfo]:
        self.hotkey = claim.hotkey
        client = self.scope.get("client")
        info = RequestInfo(
            hotkey=claim.hotkey,
            protocol=self.intake.protocol.name,
            method="POST",
            path=self.target,
            headers=self.headers,
            client=None if client is None else (str(client[0]), int(client[1])),
            caller=caller,
        )
        token = _current.set(info)
        try:
            yield info
        finally:
            _current.reset(token)

    def parse(self, body: bytes) -> BaseModel:
        try:
            return self.intake.model.model_validate_json(body)
        except ValidationError as exc:
            raise _invalid_body(exc) from None
        except Exception as exc:  # a validator's own bug (pydantic wraps only ValueError)
            model = self.intake.model.__name__
            raise self.intake.gate.hook_failed(f"{model}'s validation", self.hotkey, exc) from exc

    async def refuse(self, refused: Refused) -> None:
        response = error_response(
            refused.status, refused.message, headers=refused.headers, detail=refused.detail
        )
        await response(self.scope, self.receive, self.send)

    async def respond(self, result: Any) -> int:
        """Send what the handler returned; the status sent."""
        scope, receive, send = self.scope, self.receive, self.send
        chunks = None
        sent: list[int] = []

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent.append(int(message["status"]))
            await send(message)

        try:
            try:
                response = response_for(result)
                if response is None:
                    streamed = await stream_response(result)
                    if streamed is None:
                        response = Response(b"", media_type="text/plain; charset=utf-8")
                    else:
                        response, chunks = streamed
            except Exception as exc:  # a stream that fails before its first chunk
                raise self.intake.gate.hook_failed("_on_organic_entry", self.hotkey, exc) from exc
            try:
                await response(scope, receive, tracked_send)
            except (ClientDisconnect, OSError):
                return sent[0] if sent else GONE  # the caller left; no one to answer
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


def request_target(scope: Scope) -> str:
    """The request target the client signed: the path as sent (``raw_path``, escapes
    kept), plus ``?query``; a mount prefix a server stripped (``root_path``) is put back."""
    raw = scope.get("raw_path")
    path: str = bytes(raw).split(b"?", 1)[0].decode("latin-1") if raw else scope.get("path", "")
    root = scope.get("root_path", "")
    if root and not (path == root or path.startswith(root.rstrip("/") + "/")):
        path = root.rstrip("/") + path
    query = scope.get("query_string", b"")
    if query:
        path = f"{path}?{bytes(query).decode('latin-1')}"
    return path
