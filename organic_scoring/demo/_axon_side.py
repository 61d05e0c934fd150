"""The demo's intake on bittensor 9/10: a real axon, and a real dendrite as the user."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import ClassVar
from unittest import mock

import bittensor as bt

from organic_scoring._compat import axon_class, dendrite_class
from organic_scoring.demo._loopback import free_port
from organic_scoring.demo._scorer import Ask, DemoScorer, Opener
from organic_scoring.wallet import throwaway_wallet as make_wallet

__all__ = ["axon_intake"]

_START_WAIT = 10.0


class DemoAsk(bt.Synapse):  # type: ignore[misc]
    prompt: str = ""
    completion: str = ""
    required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt",)


class AxonDemoScorer(DemoScorer):
    async def _on_organic_entry(self, synapse: DemoAsk) -> DemoAsk:
        synapse.completion = await self.answer_organic(synapse.prompt)
        return synapse


@contextlib.contextmanager
def axon_intake(
    directory: str, build: Callable[..., DemoScorer]
) -> Iterator[tuple[DemoScorer, Opener, str]]:
    """Serve a scorer behind an axon on 127.0.0.1; yield it, a user opener (a dendrite
    signing as a user wallet) and a description."""
    validator, user = make_wallet(directory, "validator"), make_wallet(directory, "user")
    port = free_port()
    axon = axon_class()(wallet=validator, ip="127.0.0.1", external_ip="127.0.0.1", port=port)
    axon.fast_config.host = "127.0.0.1"  # bittensor would bind every interface
    scorer = build(AxonDemoScorer, axon=axon, allowed_hotkeys=[user.hotkey.ss58_address])
    before = set(threading.enumerate())
    axon.start()
    server_threads: set[threading.Thread] = set()
    try:
        deadline = time.monotonic() + _START_WAIT
        while not axon.fast_server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the axon did not start on 127.0.0.1:{port}")
            time.sleep(0.01)
        server_threads = set(threading.enumerate()) - before

        @contextlib.asynccontextmanager
        async def open_user() -> AsyncIterator[Ask]:
            # A 9/10 dendrite looks up its external IP on the web when built; this
            # subnet is all loopback.
            with mock.patch("bittensor.utils.networking.get_external_ip", return_value="127.0.0.1"):
                dendrite = dendrite_class()(wallet=user)

            async def ask(prompt: str) -> str:
                reply = await dendrite.forward(
                    axons=axon.info(),
                    synapse=DemoAsk(prompt=prompt),
                    timeout=5.0,
                    deserialize=False,
                )
                return str(reply.completion)

            try:
                yield ask
            finally:
                await dendrite.aclose_session()
                # Dendrite.__del__ would call close_session() again inside a running
                # loop, which only warns; there is nothing left to close.
                dendrite.close_session = lambda *args, **kwargs: None

        yield scorer, open_user, f"bittensor {bt.__version__}, axon on 127.0.0.1:{port}"
    finally:
        scorer.stop()
        axon.stop()
        axon.thread_pool.shutdown(wait=True)
        for thread in server_threads:
            thread.join(_START_WAIT)
