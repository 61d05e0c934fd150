"""The caller's side: signed organic requests to a validator's intake, over httpx."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel

from organic_scoring.errors import OrganicRequestError
from organic_scoring.http._signing import OrganicAuth

__all__ = ["OrganicClient", "OrganicRequestError", "OrganicStream"]

_RETRY_AFTER_LIMIT = 5.0
"""The longest ``Retry-After`` (seconds) the client waits out by itself."""

_M = TypeVar("_M", bound=BaseModel)
_C = TypeVar("_C", bound="OrganicClient")


def encode_payload(payload: Any) -> bytes:
    """The bytes to send for ``payload``: a pydantic model or JSON value as JSON;
    bytes and str (already JSON, presumably) as they are."""
    if isinstance(payload, BaseModel):
        return payload.model_dump_json().encode()
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, (Mapping, Sequence)) or payload is None:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    raise TypeError(f"cannot send {type(payload).__name__}; send a pydantic model or JSON")


class OrganicClient:
    """Sends signed organic requests to a validator's intake (async, httpx; an async
    context manager).

    Args:
        wallet: Whose hotkey signs: a ``bt.Wallet``, a keypair, or a ``bt.Signer``.
        url: The intake's full URL, e.g. ``"http://10.0.0.5:8091/organic"``.
        receiver_hotkey: The validator's hotkey the requests are signed for.
        protocol: ``"btauth/1"`` or ``"epistula"``, as the intake was built with;
            default ``"btauth/1"`` where ``bt.http_auth`` exists (11), else
            ``"epistula"``.
        timeout: Seconds for connecting, each read and each write.
        transport: An httpx transport to use instead of the network, e.g.
            ``httpx.ASGITransport(app)`` to call an app in-process.
        headers: Extra headers sent with every request (not signed).
        retries: How many times a request answered 503 with a ``Retry-After`` of at
            most 5 s (an intake that just started, a queue briefly unavailable) is
            sent again, signed afresh, after that wait.
        max_in_flight: Requests sent at once; the rest wait, unsigned, for a slot.

    Raises:
        RuntimeError: ``protocol="btauth/1"`` on bittensor 9 or 10.
        ValueError: ``url`` is not http(s), or ``protocol`` is unknown.
    """

    def __init__(
        self,
        wallet: Any,
        url: str,
        receiver_hotkey: str,
        *,
        protocol: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        retries: int = 2,
        max_in_flight: int = 100,
    ) -> None:
        if retries < 0 or max_in_flight < 1:
            raise ValueError(
                f"retries must be >= 0 and max_in_flight >= 1, got {retries}, {max_in_flight}"
            )
        self.auth = OrganicAuth(wallet, receiver_hotkey, protocol)
        self.retries = retries
        self._slots = anyio.Semaphore(max_in_flight)
        self.url = httpx.URL(url)
        if self.url.scheme not in ("http", "https"):
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        if not self.url.query:
            # A bare trailing "?" reaches no ASGI app, so it must not be signed either.
            self.url = self.url.copy_with(query=None)
        self.receiver_hotkey = receiver_hotkey
        # What the server will see as the request target, and so what is signed.
        self._target = self.url.raw_path.decode("ascii")
        self._client = httpx.AsyncClient(
            auth=self.auth,
            timeout=timeout,
            transport=transport,
            headers=headers,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_in_flight),
        )

    @property
    def hotkey(self) -> str:
        """The ss58 hotkey that signs this client's requests."""
        return self.auth.hotkey

    @property
    def protocol(self) -> str:
        """The signing protocol: ``"btauth/1"`` or ``"epistula"``."""
        return self.auth.protocol.name

    def signed(self, body: bytes) -> dict[str, str]:
        """The headers for one request carrying ``body``: signature and content type."""
        headers = self.auth.protocol.sign(
            self.auth.signer, target=self._target, body=body, receiver=self.receiver_hotkey
        )
        headers["Content-Type"] = "application/json"
        return headers

    async def send(self, payload: Any) -> httpx.Response:
        """POST ``payload`` signed; return the response whatever its status (after the
        retries a 503 with a short ``Retry-After`` gets)."""
        body = encode_payload(payload)
        for attempt in range(self.retries + 1):
            async with self._slots:  # signed by the auth flow once it holds a slot
                response = await self._client.post(self.url, content=body, headers=_JSON)
            wait = _retry_after(response)
            if wait is None or attempt == self.retries:
                return response
            await anyio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def call(self, payload: Any, response_model: type[_M] | None = None) -> Any:
        """POST ``payload`` signed and return the answer: ``response_model`` if given,
        else the parsed JSON (None for an empty answer).

        Raises:
            OrganicRequestError: The intake answered with an error status.
        """
        response = await self.send(payload)
        if response.is_error:
            raise OrganicRequestError.from_body(response.status_code, response.content)
        if response_model is not None:
            return response_model.model_validate_json(response.content)
        return response.json() if response.content else None

    def stream(self, payload: Any) -> OrganicStream:
        """POST ``payload`` signed and read the answer as it arrives.

        ``async with client.stream(request) as chunks: async for chunk in chunks``;
        entering raises :class:`OrganicRequestError` for an error status.
        """
        body = encode_payload(payload)
        request = self._client.build_request("POST", self.url, content=body, headers=_JSON)
        return OrganicStream(self._client, request, self._slots, self.retries)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class OrganicStream:
    """A streamed answer from the intake; iterate it for byte chunks as they arrive.

    Made by :meth:`OrganicClient.stream`; use it as an async context manager so the
    connection is released even when the loop stops early.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        request: httpx.Request,
        slots: anyio.Semaphore | None = None,
        retries: int = 0,
    ) -> None:
        self._client = client
        self._request = request
        self._slots = slots
        self._retries = retries
        self._response: httpx.Response | None = None

    @property
    def response(self) -> httpx.Response:
        """The response (status and headers); available once entered."""
        if self._response is None:
            raise RuntimeError("enter the stream first: async with client.stream(...)")
        return self._response

    async def __aenter__(self) -> OrganicStream:
        if self._slots is not None:
            await self._slots.acquire()  # held while the answer streams
        try:
            response = await self._client.send(self._request, stream=True)
            for _ in range(self._retries):  # signed afresh by the auth flow each time
                wait = _retry_after(response)
                if wait is None:
                    break
                await response.aclose()
                await anyio.sleep(wait)
                response = await self._client.send(self._request, stream=True)
            if response.is_error:
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
                raise OrganicRequestError.from_body(response.status_code, body)
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        self._response = response
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            try:
                await self._response.aclose()
            finally:
                self._response = None
                if self._slots is not None:
                    self._slots.release()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.response.aiter_bytes()

    def text(self) -> AsyncIterator[str]:
        """The chunks decoded as text (UTF-8 unless the response says otherwise)."""
        return self.response.aiter_text()


_JSON = {"Content-Type": "application/json"}


def _retry_after(response: httpx.Response) -> float | None:
    """The wait a 503 asks for, when it is short enough to wait out; else None."""
    if response.status_code != 503:
        return None
    try:
        wait = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    if not 0 <= wait <= _RETRY_AFTER_LIMIT or math.isnan(wait):
        return None
    return wait
