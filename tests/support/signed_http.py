"""Wallets, models, scorers and helpers shared by the signed-HTTP intake tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import bittensor as bt
import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field

from organic_scoring.http import RequestInfo, caller_hotkey, current_request
from support.loopback import make_wallet
from support.scorers import Recorder
from support.waiting import Counter, until


class Prompt(BaseModel):
    """The request model of the test scorers."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=200)
    priority: float = 0.0
    chunks: int = Field(default=0, ge=0, le=20)


class Echo(BaseModel):
    """What the test handler answers: the text, and who the intake said was calling."""

    text: str
    hotkey: str | None


class Wallets:
    """Throwaway wallets in a temp directory: the validator, a client and a stranger."""

    def __init__(self, root: Path) -> None:
        self.validator = make_wallet(root, "validator")
        self.client = make_wallet(root, "client")
        self.other = make_wallet(root, "other")

    @property
    def validator_hotkey(self) -> str:
        return str(self.validator.hotkey.ss58_address)

    @property
    def client_hotkey(self) -> str:
        return str(self.client.hotkey.ss58_address)

    @property
    def other_hotkey(self) -> str:
        return str(self.other.hotkey.ss58_address)


@pytest.fixture(scope="session")
def wallets(tmp_path_factory: pytest.TempPathFactory) -> Wallets:
    """Wallets shared by every test of the session."""
    return Wallets(tmp_path_factory.mktemp("wallets"))


def sign(
    wallet: Any,
    path: str,
    body: bytes,
    receiver: str | None,
    *,
    nonce_ns: int | None = None,
    method: str = "POST",
) -> dict[str, str]:
    """btauth/1 headers for one request, as a hand-built client would make them."""
    headers: dict[str, str] = bt.http_auth.sign(
        wallet.hotkey,
        method=method,
        path=path,
        body=body,
        receiver_ss58=receiver,
        nonce_ns=nonce_ns,
    )
    return headers


class HttpScorer(Recorder):
    """A scorer with every intake hook, each recording what it saw.

    ``blacklisted`` hotkeys are refused, texts in ``rejected`` fail ``_verify_fn``
    (a plain function, to show sync hooks work), texts in ``failing`` make the
    handler raise, and a text in ``holds`` keeps its handler waiting until that
    event is set. A request with ``chunks > 0`` is answered with a stream whose
    chunk ``i + 1`` is produced only once ``acked`` has reached ``i + 1``.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.blacklisted: set[str] = set()
        self.rejected: set[str] = set()
        self.failing: set[str] = set()
        self.holds: dict[str, threading.Event] = {}
        self.handled: list[str] = []
        self.entered = Counter()
        self.acked = 0
        self.seen: list[tuple[str, str | None]] = []
        self.blacklist_info: list[RequestInfo] = []
        super().__init__(**kwargs)

    def reset(self) -> None:
        """Forget what earlier tests configured and recorded."""
        self.blacklisted.clear()
        self.rejected.clear()
        self.failing.clear()
        self.holds.clear()
        self.handled.clear()
        self.seen.clear()
        self.blacklist_info.clear()
        self.acked = 0
        self.entered = Counter()

    async def _blacklist_fn(self, synapse: RequestInfo) -> tuple[bool, str]:
        self.seen.append(("blacklist", caller_hotkey()))
        self.blacklist_info.append(synapse)
        if synapse.hotkey in self.blacklisted:
            return True, "this hotkey is blacklisted here"
        return False, ""

    def _verify_fn(self, synapse: Prompt) -> bool:
        self.seen.append(("verify", caller_hotkey()))
        return synapse.text not in self.rejected

    async def _priority_fn(self, synapse: Prompt) -> float:
        self.seen.append(("priority", caller_hotkey()))
        return synapse.priority

    async def _on_organic_entry(self, synapse: Prompt) -> Any:
        self.seen.append(("handler", caller_hotkey()))
        self.entered.bump()
        hold = self.holds.get(synapse.text)
        if hold is not None:
            await until(hold.is_set, f"the hold on {synapse.text!r}")
        self.handled.append(synapse.text)
        if synapse.text in self.failing:
            raise RuntimeError("secret internals: /etc/validator/keys")
        self._organic_queue.add(synapse)
        if synapse.chunks:
            return self._stream(synapse.chunks)
        return Echo(text=synapse.text, hotkey=caller_hotkey())

    async def _stream(self, n: int) -> AsyncIterator[str]:
        request = current_request()
        for i in range(n):
            if i:
                await until(lambda i=i: self.acked >= i, f"the client to ack chunk {i}")
            yield f"chunk {i} for {caller_hotkey()} via {request.path if request else None}\n"


class QueueingScorer(Recorder):
    """Queues every request and echoes it, by the request's priority (for property tests)."""

    async def _on_organic_entry(self, synapse: Prompt) -> Any:
        self._organic_queue.add(synapse)
        return synapse

    async def _priority_fn(self, synapse: Prompt) -> float:
        return synapse.priority


def asgi_client(app: Any, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """An httpx client that calls ``app`` in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for a whole test, for property tests that run many examples."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
