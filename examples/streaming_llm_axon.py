"""An LLM-style streaming organic handler on a bittensor 9/10 axon.

What it shows: ``_on_organic_entry`` answering a ``bt.StreamingSynapse`` by returning
``synapse.create_streaming_response(streamer)``. The streamer sends the caller each
token as the (here, fake) language model produces it, and once the whole completion
has gone out it records prompt and completion in the organic queue, so the scoring
loop can later put the same prompt to the miners and compare.

The scoring hooks are deliberately small; see ``template_validator_axon.py`` for a
whole validator. Run it to watch a completion stream over a real axon and dendrite
on 127.0.0.1 (temporary wallets, no chain)::

    python examples/streaming_llm_axon.py "why is the sky blue?"
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar
from unittest import mock

import bittensor as bt

from organic_scoring import OrganicScoringBase
from organic_scoring.synth_dataset import SynthDatasetEntry
from organic_scoring.weights import ScoreBook

Send = Callable[[dict[str, Any]], Awaitable[None]]
"""The ASGI ``send`` a streamer writes its chunks to."""


class Chat(bt.StreamingSynapse):  # type: ignore[misc]
    """A chat request whose completion comes back as a stream of text chunks."""

    prompt: str = ""
    completion: str = ""
    required_hash_fields: ClassVar[tuple[str, ...]] = ("prompt",)

    async def process_streaming_response(self, response: Any) -> AsyncIterator[str]:
        """The caller's side: yield each chunk as it arrives (and keep the whole text)."""
        async for chunk in response.content.iter_any():
            text = chunk.decode()
            self.completion += text
            yield text

    def extract_response_json(self, response: Any) -> dict[str, Any]:
        """The caller's side: the final synapse's fields once the stream has ended."""
        return {"prompt": self.prompt, "completion": self.completion}


async def fake_llm(prompt: str) -> AsyncIterator[str]:
    """Stands in for a language model (or a miner's stream): yields a reply word by word."""
    for word in f"You asked: {prompt} Here is an answer, one token at a time.".split():
        await asyncio.sleep(0)  # a real model would be computing the next token here
        yield word + " "


class StreamingChatScoring(OrganicScoringBase):
    """Streams answers to organic chat requests and scores miners on the same prompts."""

    def __init__(self, **kwargs: Any) -> None:
        self.book = ScoreBook(n_uids=1)  # one pretend miner, uid 0
        super().__init__(**kwargs)

    async def _on_organic_entry(self, synapse: Chat) -> Any:
        async def streamer(send: Send) -> None:
            tokens: list[str] = []
            async for token in fake_llm(synapse.prompt):
                # Each body message with more_body=True reaches the caller as it is sent.
                await send(
                    {"type": "http.response.body", "body": token.encode(), "more_body": True}
                )
                tokens.append(token)
            # Recorded once the whole completion has gone out; bittensor ends the stream
            # after this returns, so the record is queued before the caller sees the end.
            # The quick start's sample, with what was served and to whom as extra fields.
            record = SynthDatasetEntry(
                roles=["user"],
                messages=[synapse.prompt],
                organic=True,
                completion="".join(tokens),
                caller=synapse.dendrite.hotkey,
            )
            self._organic_queue.add(record)

        return synapse.create_streaming_response(streamer)

    async def _query_miners(self, sample: SynthDatasetEntry) -> dict[int, str]:
        # A validator would stream the prompt to its miners here; one pretend miner.
        return {0: "".join([token async for token in fake_llm(sample.messages[-1])])}

    async def _generate_rewards(
        self, sample: SynthDatasetEntry, responses: dict[int, str], reference: Any = None
    ) -> dict[int, float]:
        return {uid: float(text == sample["completion"]) for uid, text in responses.items()}

    async def _set_weights(self, rewards: dict[int, float]) -> None:
        self.book.update_from(rewards)  # one moving average per uid
        print(f"rewards: {rewards}; weights: {self.book.as_dict()}")


# -- running it on 127.0.0.1 -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wallet(directory: str, name: str) -> Any:
    wallet = bt.Wallet(name=name, hotkey="default", path=directory)
    wallet.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    return wallet


async def chat(dendrite: Any, axon_info: Any, prompt: str) -> AsyncIterator[str]:
    """The caller's side: send ``prompt`` and yield the completion's chunks as they arrive."""
    async with dendrite:  # closes the dendrite's HTTP session at the end
        stream = await dendrite.forward(
            axons=axon_info, synapse=Chat(prompt=prompt), deserialize=False, streaming=True
        )
        async for item in stream:
            if isinstance(item, str):  # the final item is the filled-in synapse
                yield item


def main(prompt: str = "why is the sky blue?") -> None:
    """Serve the scorer on an axon on 127.0.0.1, stream one answer, then score it."""
    with tempfile.TemporaryDirectory() as directory:
        validator, user = _wallet(directory, "validator"), _wallet(directory, "user")
        axon = bt.Axon(wallet=validator, ip="127.0.0.1", external_ip="127.0.0.1", port=_free_port())
        axon.fast_config.host = "127.0.0.1"  # listen on this machine only
        scoring = StreamingChatScoring(axon=axon, allowed_hotkeys=[user.hotkey.ss58_address])
        # A dendrite looks up its public IP on the web when built; this one stays local.
        with mock.patch("bittensor.utils.networking.get_external_ip", return_value="127.0.0.1"):
            dendrite = bt.Dendrite(wallet=user)
        axon.start()
        try:
            deadline = time.monotonic() + 10
            while not axon.fast_server.started and time.monotonic() < deadline:
                time.sleep(0.01)
            # A fresh intake puts requests off for its first allowed_skew seconds (2 s):
            # it cannot yet tell them from ones a previous run accepted. Wait them out.
            time.sleep(2.0)

            async def show() -> None:
                async for chunk in chat(dendrite, axon.info(), prompt):
                    print(chunk, end="", flush=True)

            asyncio.run(show())
            print(f"\nqueued for scoring: {scoring.organic_queue.size} organic record(s)")
            asyncio.run(scoring.loop_iteration())  # score it now, without start()
        finally:
            axon.stop()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "why is the sky blue?")
