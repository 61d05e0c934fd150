"""Real bittensor 9/10 axons and dendrites on 127.0.0.1, for tests, demos and load tests.

Nothing here touches a chain or the internet: wallets are made without a password
in a temp directory, the axon listens on 127.0.0.1 only, and the dendrite's lookup
of its own external IP (a web request) is patched to answer ``127.0.0.1``.

Run a scorer behind a real axon and query it::

    from support.axons import Ask, make_wallet, query, serve_scorer

    server, client = make_wallet(tmp, "server"), make_wallet(tmp, "client")
    with serve_scorer(server, lambda axon: MyScoring(axon=axon)) as (axon, scoring):
        reply = query(axon, client, Ask(prompt="hi"))   # a real signed request
        scoring.start()                                 # optional: run the loop too

:func:`serve_scorer` stops the scorer's loop (if it was started) and the axon on
the way out and waits for the axon's server threads, so nothing outlives the
block. :func:`running_axon` is the same without a scorer, for a bare handler;
:func:`aquery` and :func:`astream` are the async forms of :func:`query` for
callers already inside an event loop; :func:`offline_dendrite` is the dendrite
they use.

:func:`make_wallets` makes the three wallets most tests need (the axon's, a
trusted caller's and a stranger's) for a module-scoped fixture.

bittensor 9 and 10 read ``model_fields`` on a pydantic instance, which pydantic
2.11+ deprecates; :data:`BITTENSOR_WARNINGS` is the ``filterwarnings`` mark that
lets that (and only that) through ``filterwarnings = error``, on the client and
in the axon's server thread alike.

Everything that needs an axon raises on bittensor 11; a test module skips itself
there with ``pytest.mark.skipif(not HAS_AXON, ...)``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from unittest import mock

import bittensor as bt
import pytest

from organic_scoring import OrganicScoringBase
from organic_scoring._compat import HAS_AXON, axon_class, dendrite_class, streaming_synapse_class
from support.loopback import free_port, make_wallet
from support.waiting import WAIT

BITTENSOR_WARNINGS = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_fields' attribute on the instance is deprecated:DeprecationWarning"
)

_S = TypeVar("_S", bound=OrganicScoringBase)


# -- synapses ------------------------------------------------------------------------

if HAS_AXON:

    class Ask(bt.Synapse):
        """A plain organic request: a prompt in, a completion out."""

        prompt: str = ""
        completion: str = ""
        required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt",)

    class StreamAsk(streaming_synapse_class()):  # type: ignore[misc]
        """A streamed organic request: the completion comes back as text chunks."""

        prompt: str = ""
        completion: str = ""
        required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt",)

        async def process_streaming_response(self, response: Any) -> AsyncIterator[str]:
            async for chunk in response.content.iter_any():
                text = chunk.decode()
                self.completion += text
                yield text

        def extract_response_json(self, response: Any) -> dict[str, Any]:
            return {"prompt": self.prompt, "completion": self.completion}


# -- wallets, ports, dendrites -------------------------------------------------------


@dataclass(frozen=True)
class Wallets:
    """The wallets a test needs: the axon's, a trusted caller's and a stranger's."""

    server: Any
    client: Any
    stranger: Any


def make_wallets(directory: Path | str) -> Wallets:
    """The axon's, a trusted caller's and a stranger's wallet, made under ``directory``."""
    return Wallets(*(make_wallet(directory, name) for name in ("server", "client", "stranger")))


def offline_dendrite(wallet: Any) -> Any:
    """A dendrite signing with ``wallet``'s hotkey, built without the external-IP lookup.

    Close it with ``await dendrite.aclose_session()`` or use it as ``async with``.
    """
    with mock.patch("bittensor.utils.networking.get_external_ip", return_value="127.0.0.1"):
        return dendrite_class()(wallet=wallet)


@asynccontextmanager
async def _dendrite(who: Any) -> AsyncIterator[Any]:
    """``who`` is a wallet (a dendrite is made and closed here) or a dendrite."""
    if isinstance(who, dendrite_class()):
        yield who
        return
    dendrite = offline_dendrite(who)
    try:
        yield dendrite
    finally:
        await dendrite.aclose_session()
        # bittensor's Dendrite.__del__ calls close_session(), which warns whenever an
        # event loop is running, even with nothing left to close; this one is
        # collected inside the loop, so make that a no-op.
        dendrite.close_session = lambda *args, **kwargs: None


# -- axons ---------------------------------------------------------------------------


@contextmanager
def running_axon(wallet: Any, setup: Callable[[Any], None] | None = None) -> Iterator[Any]:
    """A started axon on 127.0.0.1; ``setup(axon)`` runs before it starts.

    On exit the axon is stopped and its server threads and worker pool are waited
    for.
    """
    port = free_port()
    axon = axon_class()(wallet=wallet, ip="127.0.0.1", external_ip="127.0.0.1", port=port)
    # bittensor binds 0.0.0.0 whatever ``ip`` says; keep the tests on loopback.
    axon.fast_config.host = "127.0.0.1"
    threads: list[threading.Thread] = []
    try:
        if setup is not None:
            setup(axon)
        before = set(threading.enumerate())
        axon.start()
        deadline = time.monotonic() + WAIT
        while not axon.fast_server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the axon did not start on 127.0.0.1:{port}")
            time.sleep(0.005)
        threads = [
            t
            for t in set(threading.enumerate()) - before
            if t.name.endswith(("(_wrapper_run)", "(run)"))
        ]
        yield axon
    finally:
        axon.stop()
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive(), f"axon thread {thread.name} outlived its block"
        axon.thread_pool.shutdown(wait=True)


def attacher(scorer_class: Callable[[], _S], allowed: Any, **settings: Any) -> Callable[[Any], _S]:
    """A ``build`` for :func:`serve_scorer`: a fresh ``scorer_class()`` attached to the
    axon with ``allowed`` as its allow-list and ``allowed_skew=0`` besides ``settings``."""
    from organic_scoring.axon import attach_axon
    from organic_scoring.intake import IntakeSettings

    def attach(axon: Any) -> _S:
        scorer = scorer_class()
        intake = IntakeSettings(allowed_skew=0, **settings)
        attach_axon(scorer, axon, allowed_hotkeys=allowed, settings=intake)
        return scorer

    return attach


@contextmanager
def serve_scorer(wallet: Any, build: Callable[[Any], _S]) -> Iterator[tuple[Any, _S]]:
    """A started axon and the scorer ``build(axon)`` attached to it.

    The scorer's loop is not started here; on exit it is stopped if it runs.
    """
    scorers: list[_S] = []
    with running_axon(wallet, lambda axon: scorers.append(build(axon))) as axon:
        settled(axon)
        try:
            yield axon, scorers[0]
        finally:
            scorers[0].stop()


def settled(axon: Any) -> None:
    """Wait out the first ``allowed_skew`` seconds of every intake on ``axon``: with an
    in-memory nonce store a fresh intake puts requests off (503) until then."""
    routes = getattr(axon, "_organic_scoring_screens", {})
    for route in routes.values():
        wait = (route.gate.freshness.not_before_ns - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)


# -- queries -------------------------------------------------------------------------


async def aquery(axon: Any, who: Any, synapse: Any, timeout: float = WAIT) -> Any:
    """Send ``synapse`` to ``axon`` signed by ``who`` (a wallet or a dendrite).

    Returns the response synapse (not deserialized); its ``dendrite.status_code``
    says how the axon answered.
    """
    async with _dendrite(who) as dendrite:
        return await dendrite.forward(
            axons=axon.info(), synapse=synapse, timeout=timeout, deserialize=False
        )


def query(axon: Any, who: Any, synapse: Any, timeout: float = WAIT) -> Any:
    """:func:`aquery` from synchronous code."""
    return asyncio.run(aquery(axon, who, synapse, timeout))


async def astream(
    axon: Any,
    who: Any,
    synapse: Any,
    on_chunk: Callable[[Any], None] | None = None,
    timeout: float = WAIT,
) -> tuple[list[Any], Any]:
    """Send a streaming ``synapse``; return the chunks received and the final synapse.

    ``on_chunk`` is called with each chunk as it arrives.
    """
    chunks: list[Any] = []
    final = None
    async with _dendrite(who) as dendrite:
        stream = await dendrite.forward(
            axons=axon.info(), synapse=synapse, timeout=timeout, deserialize=False, streaming=True
        )
        async for item in stream:
            if isinstance(item, bt.Synapse):
                final = item
                continue
            chunks.append(item)
            if on_chunk is not None:
                on_chunk(item)
    return chunks, final
