"""An LLM-style streaming organic handler over signed HTTP (bittensor 11).

What it shows: ``_on_organic_entry`` returning an async iterator of ``str`` chunks,
which the signed-HTTP intake streams to the caller chunk by chunk. The chunks come
from a (here, fake) language model; once the whole completion has been sent, the
handler records prompt, completion and caller in the organic queue, so the scoring
loop can later put the same prompt to the miners and compare. The caller reads the
stream with ``OrganicClient.stream``.

The scoring hooks are deliberately small; see ``template_validator_http.py`` for a
whole validator. Run it to watch a completion stream through the real intake on
127.0.0.1 (temporary wallets, no chain; ``pip install 'organic-scoring[http]'``)::

    python examples/streaming_llm_http.py "why is the sky blue?"
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import bittensor as bt
from pydantic import BaseModel, Field

from organic_scoring import OrganicScoringBase
from organic_scoring.http import OrganicClient, caller_hotkey, create_app, serve_in_thread
from organic_scoring.synth_dataset import SynthDatasetEntry
from organic_scoring.weights import ScoreBook


class Chat(BaseModel):
    """A chat request; the answer is streamed back as plain text."""

    prompt: str = Field(min_length=1, max_length=4096)


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

    async def _on_organic_entry(self, request: Chat) -> AsyncIterator[str]:
        caller = caller_hotkey()  # who signed the request, checked by the intake

        async def stream() -> AsyncIterator[str]:
            tokens: list[str] = []
            async for token in fake_llm(request.prompt):
                yield token  # each chunk goes out as it is produced
                tokens.append(token)
            # Recorded once the whole completion has gone out, before the caller sees the
            # end. A caller that hangs up early stops this generator at a yield: no record.
            # The quick start's sample, with what was served and to whom as extra fields.
            record = SynthDatasetEntry(
                roles=["user"],
                messages=[request.prompt],
                organic=True,
                completion="".join(tokens),
                caller=caller,
            )
            self._organic_queue.add(record)

        return stream()

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


def _wallet(directory: str, name: str) -> Any:
    wallet = bt.Wallet(name, "default", path=directory)
    wallet.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    return wallet


async def chat(client: OrganicClient, prompt: str) -> AsyncIterator[str]:
    """The caller's side: send ``prompt`` and yield the completion's chunks as they arrive."""
    async with client.stream(Chat(prompt=prompt)) as response:
        async for chunk in response.text():
            yield chunk


def main(prompt: str = "why is the sky blue?") -> None:
    """Serve the scorer's intake on 127.0.0.1, stream one answer, then score it."""
    with tempfile.TemporaryDirectory() as directory:
        validator, user = _wallet(directory, "validator"), _wallet(directory, "user")
        hotkey = validator.hotkey.ss58_address
        scoring = StreamingChatScoring()
        # Requests must be signed for hotkey, by a hotkey the intake allows.
        app = create_app(scoring, hotkey_ss58=hotkey, allowed_hotkeys=[user.hotkey.ss58_address])
        with serve_in_thread(app, host="127.0.0.1", port=0) as server:

            async def show() -> None:
                async with OrganicClient(user, f"{server.url}/organic", hotkey) as client:
                    async for chunk in chat(client, prompt):
                        print(chunk, end="", flush=True)

            asyncio.run(show())
        print(f"\nqueued for scoring: {scoring.organic_queue.size} organic record(s)")
        asyncio.run(scoring.loop_iteration())  # score it now, without start()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "why is the sky blue?")
