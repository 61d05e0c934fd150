"""One scorer behind every intake transport, driven the same way, for parity tests.

:func:`intake` serves a :class:`ParityScorer` through one transport on 127.0.0.1:
``"axon"`` (bittensor 9/10), ``"btauth/1"`` (11) or ``"epistula"`` (all), and yields a
:class:`Driver` that sends organic requests through it and says what the gate did.
The scorer's hooks behave the same whichever transport calls them, so a test written
against the driver checks that every transport answers alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import bittensor as bt
import httpx
import pytest
from pydantic import BaseModel

from organic_scoring import ANY_HOTKEY
from organic_scoring._compat import HAS_AXON, HAS_HTTP_AUTH
from organic_scoring.intake import InMemoryNonceStore, IntakeSettings
from organic_scoring.intake._gate import Gate
from support.scorers import Recorder
from support.signed_http import Wallets
from support.waiting import WAIT, wait_until

TRANSPORTS = [
    pytest.param(name, id=name, marks=pytest.mark.bittensor)
    for name, available in (
        ("axon", HAS_AXON),
        ("btauth/1", HAS_HTTP_AUTH),
        ("epistula", True),
    )
    if available
]
"""The transports the installed bittensor has, as parameters: a test over them is marked
``bittensor``, so it runs on every major (see tests/conftest.py)."""


class Job(BaseModel):
    """The organic request over signed HTTP."""

    text: str
    priority: float = 0.0


if HAS_AXON:

    class JobSynapse(bt.Synapse):
        """The same request through the axon."""

        text: str = ""
        priority: float = 0.0
        required_hash_fields: ClassVar[tuple[str, ...]] = ("text", "priority")


class CountingStore(InMemoryNonceStore):
    """The default nonce store, counting what it was asked to remember."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def check_and_store(self, hotkey_ss58: str, nonce: int | str, /) -> bool:
        self.calls += 1
        return super().check_and_store(hotkey_ss58, nonce)


class ParityScorer(Recorder):
    """Hooks that behave alike on every transport; each records what it saw.

    Hotkeys in ``blocked`` are refused by ``_blacklist_fn``, texts in ``rejected`` by
    ``_verify_fn`` (a plain function), texts in ``failing`` make the handler raise,
    and a text in ``holds`` keeps its handler waiting until that event is set.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.blocked: set[str] = set()
        self.rejected: set[str] = set()
        self.failing: set[str] = set()
        self.holds: dict[str, threading.Event] = {}
        self.handled: list[str] = []
        self.blacklist_seen: list[str] = []
        super().__init__(**kwargs)

    async def _blacklist_fn(self, subject: Any) -> tuple[bool, str]:
        # The axon hands over the (verified) synapse, signed HTTP a RequestInfo.
        hotkey = (
            subject.hotkey
            if isinstance(getattr(subject, "hotkey", None), str)
            else (subject.dendrite.hotkey)
        )
        self.blacklist_seen.append(hotkey)
        return hotkey in self.blocked, "this hotkey is blocked here"

    def _verify_fn(self, request: Any) -> bool:
        return request.text not in self.rejected

    async def _priority_fn(self, request: Any) -> float:
        return float(request.priority)

    async def entry(self, request: Any) -> Any:
        hold = self.holds.get(request.text)
        if hold is not None:
            await asyncio.to_thread(hold.wait, WAIT)
        self.handled.append(request.text)
        if request.text in self.failing:
            raise RuntimeError("secret internals")
        await self._organic_queue.aadd({"text": request.text})
        return request


def parity_scorer(request_type: type[Any], **kwargs: Any) -> ParityScorer:
    """A :class:`ParityScorer` whose handler takes ``request_type``."""

    async def _on_organic_entry(self: ParityScorer, request: Any) -> Any:
        return await self.entry(request)

    _on_organic_entry.__annotations__ = {"request": request_type, "return": Any}
    cls = type(f"ParityScorer{request_type.__name__}", (ParityScorer,), {})
    cls._on_organic_entry = _on_organic_entry  # type: ignore[attr-defined]
    return cls(**kwargs)  # type: ignore[no-any-return]


@dataclass
class Driver:
    """Sends requests through one transport and tells what the gate saw."""

    transport: str
    scorer: ParityScorer
    gate: Gate
    store: Any  # a CountingStore unless the test brought its own
    wallets: Wallets
    send_one: Any
    replay_one: Any
    verifications: list[int] = field(default_factory=lambda: [0])

    async def send(self, wallet: Any, text: str, priority: float = 0.0) -> int:
        """Send one freshly signed request; its HTTP status."""
        status: int = await self.send_one(wallet, text, priority)
        return status

    async def send_twice(self, wallet: Any, text: str) -> tuple[int, int]:
        """Send one signed request, then the very same bytes again; both statuses."""
        statuses: tuple[int, int] = await self.replay_one(wallet, text)
        return statuses

    @property
    def answers(self) -> dict[int, int]:
        """The intake's answers so far, by status, as ``stats`` counts them."""
        return dict(self.scorer.stats.intake_requests.get(self.transport, {}))

    def answers_after(self, n: int) -> dict[int, int]:
        """:attr:`answers`, once ``n`` have been counted (an answer is counted just
        after it was sent, so a client may see it a moment before)."""
        wait_until(lambda: sum(self.answers.values()) >= n, f"{n} answers counted")
        return self.answers


@contextlib.contextmanager
def intake(
    transport: str,
    wallets: Wallets,
    monkeypatch: pytest.MonkeyPatch,
    **options: Any,
) -> Iterator[Driver]:
    """Serve a :class:`ParityScorer` through ``transport``; ``options`` go to the gate
    (:class:`IntakeSettings` fields such as ``max_concurrent``, ``max_backlog``;
    ``nonce_store``: default a :class:`CountingStore`) and the scorer
    (``allowed_hotkeys``, ``synth_dataset``, ``redact``, ``organic_queue``)."""
    scorer_options = {
        k: options.pop(k)
        for k in ("allowed_hotkeys", "synth_dataset", "redact", "organic_queue")
        if k in options
    }
    scorer_options.setdefault("allowed_hotkeys", ANY_HOTKEY)
    limits = {k: options.pop(k) for k in list(options) if k in IntakeSettings.model_fields}
    limits.setdefault("allowed_skew", 0)  # one host, one clock: nothing to settle
    options["settings"] = IntakeSettings(**limits)
    store = options.pop("nonce_store", None)
    if store is None:
        store = CountingStore()
    if transport == "axon":
        with _axon(wallets, store, scorer_options, options) as driver:
            yield driver
    else:
        with _http(transport, wallets, store, monkeypatch, scorer_options, options) as driver:
            yield driver


@contextlib.contextmanager
def _http(
    transport: str,
    wallets: Wallets,
    store: Any,
    monkeypatch: pytest.MonkeyPatch,
    scorer_options: dict[str, Any],
    gate_options: dict[str, Any],
) -> Iterator[Driver]:
    from organic_scoring.http import OrganicClient, _epistula, create_app, serve_in_thread

    scorer = parity_scorer(Job, **scorer_options)
    app = create_app(
        scorer,
        hotkey_ss58=wallets.validator_hotkey,
        protocol=transport,
        nonce_store=store,
        **gate_options,
    )
    counted = [0]
    if transport == "epistula":
        real = _epistula.sr25519_verify

        def counting(*args: Any) -> bool:
            counted[0] += 1
            return real(*args)

        monkeypatch.setattr(_epistula, "sr25519_verify", counting)
    else:
        real_verify = bt.http_auth.verify

        def counting_verify(*args: Any, **kwargs: Any) -> Any:
            counted[0] += 1
            return real_verify(*args, **kwargs)

        monkeypatch.setattr(bt.http_auth, "verify", counting_verify)

    with serve_in_thread(app) as server:
        url = server.url + "/organic"

        async def send_one(wallet: Any, text: str, priority: float) -> int:
            async with OrganicClient(  # retries=0: every answer of the gate is seen
                wallet, url, wallets.validator_hotkey, protocol=transport, timeout=WAIT, retries=0
            ) as client:
                return (await client.send(Job(text=text, priority=priority))).status_code

        async def replay_one(wallet: Any, text: str) -> tuple[int, int]:
            async with OrganicClient(
                wallet, url, wallets.validator_hotkey, protocol=transport, timeout=WAIT
            ) as client:
                body = Job(text=text).model_dump_json().encode()
                headers = client.signed(body)
                async with httpx.AsyncClient(timeout=WAIT) as plain:
                    first = await plain.post(url, content=body, headers=headers)
                    second = await plain.post(url, content=body, headers=headers)
                return first.status_code, second.status_code

        yield Driver(
            transport,
            scorer,
            app.state.organic_intake.gate,
            store,
            wallets,
            send_one,
            replay_one,
            counted,
        )


@contextlib.contextmanager
def _axon(
    wallets: Wallets,
    store: Any,
    scorer_options: dict[str, Any],
    gate_options: dict[str, Any],
) -> Iterator[Driver]:
    from organic_scoring.axon import attach_axon
    from support.axons import aquery, offline_dendrite, running_axon

    scorer = parity_scorer(JobSynapse, **scorer_options)
    counted = [0]
    gates: list[Gate] = []

    def setup(axon: Any) -> None:
        real = axon.default_verify

        async def counting(synapse: Any) -> None:
            counted[0] += 1
            await real(synapse)

        axon.default_verify = counting
        gates.append(attach_axon(scorer, axon, nonce_store=store, **gate_options))

    with running_axon(wallets.validator, setup) as axon:

        async def send_one(wallet: Any, text: str, priority: float) -> int:
            reply = await aquery(axon, wallet, JobSynapse(text=text, priority=priority))
            return int(reply.dendrite.status_code)

        async def replay_one(wallet: Any, text: str) -> tuple[int, int]:
            dendrite = offline_dendrite(wallet)
            try:
                synapse = dendrite.preprocess_synapse_for_request(
                    axon.info(), JobSynapse(text=text), timeout=WAIT
                )
            finally:
                await dendrite.aclose_session()
                dendrite.close_session = lambda *args, **kwargs: None
            url = f"http://127.0.0.1:{axon.port}/{JobSynapse.__name__}"
            headers, body = synapse.to_headers(), synapse.model_dump()
            async with httpx.AsyncClient(timeout=WAIT) as plain:
                first = await plain.post(url, json=body, headers=headers)
                second = await plain.post(url, json=body, headers=headers)
            return first.status_code, second.status_code

        try:
            yield Driver("axon", scorer, gates[0], store, wallets, send_one, replay_one, counted)
        finally:
            scorer.stop()
