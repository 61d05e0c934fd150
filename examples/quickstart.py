"""Quick start: a complete organic scorer, wired into a validator's own loop.

Everything marked YOURS stands in for a part of your validator; replace it with
yours. As it is, the file runs anywhere (no chain, wallet or network), on every
bittensor major: python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from organic_scoring import OrganicScoringBase
from organic_scoring.synth_dataset import SynthDatasetEntry, default_dataset
from organic_scoring.weights import ScoreBook

# -- YOURS: stand-ins for your validator's own parts ---------------------------------------


class ChatRequest(BaseModel):
    """YOURS: an organic request (on bittensor 9/10, a bt.Synapse subclass for the axon)."""

    messages: list[str]
    completion: str = ""


class YourValidator:
    """YOURS: your validator; the scorer below uses only these parts of it."""

    def __init__(self) -> None:
        # Your bt.Metagraph; only its hotkeys are read.
        self.metagraph = SimpleNamespace(hotkeys=["miner-0", "miner-1", "miner-2"])

    def forward(self) -> None:
        time.sleep(0.01)  # one step of your validator's own work

    async def answer(self, messages: list[str]) -> str:
        return messages[-1].capitalize()  # answer the user, e.g. through your best miner

    async def ask_miners(self, messages: list[str]) -> dict[int, str]:
        prompt = messages[-1]
        return {0: prompt.capitalize(), 1: prompt.upper(), 2: ""}  # {uid: response}

    async def reference(self, messages: list[str]) -> str:
        return messages[-1].capitalize()  # what a good answer looks like


def your_score(response: str, reference: str) -> float:
    """YOURS: how good one response is, from 0 to 1."""
    return 1.0 if response == reference else 0.5 if response else 0.0


# -- the scorer ----------------------------------------------------------------------------


class MyScoring(OrganicScoringBase):
    def __init__(self, validator: YourValidator, **kwargs: Any) -> None:
        self.validator = validator  # your own attributes are yours
        self.book = ScoreBook.for_metagraph(validator.metagraph, alpha=0.1)
        super().__init__(**kwargs)  # required: it builds the loop

    async def _on_organic_entry(self, request: ChatRequest) -> ChatRequest:
        request.completion = await self.validator.answer(request.messages)
        # Queue what scoring needs. In the synthetic samples' shape, the hooks below
        # see one shape whichever kind of sample they get.
        roles = ["user"] * len(request.messages)
        entry = SynthDatasetEntry(roles=roles, messages=request.messages, organic=True)
        await self._organic_queue.aadd(entry)  # aadd: never blocks the event loop
        return request

    async def _query_miners(self, sample: SynthDatasetEntry) -> dict[int, str]:
        return await self.validator.ask_miners(sample.messages)

    async def _generate_reference(self, sample: SynthDatasetEntry) -> str:  # optional
        return await self.validator.reference(sample.messages)  # runs beside the query

    async def _generate_rewards(
        self, sample: SynthDatasetEntry, responses: dict[int, str], reference: Any = None
    ) -> dict[int, float]:
        return {uid: your_score(text, reference) for uid, text in responses.items()}

    async def _set_weights(self, rewards: dict[int, float]) -> None:
        self.book.update_from(rewards)  # a WeightSetter puts the book on chain


def main(iterations: int = 4) -> MyScoring:
    validator = YourValidator()
    scoring = MyScoring(
        validator,
        synth_dataset=default_dataset(),  # used when no organic request waits
        trigger="steps",  # or "seconds"
        trigger_frequency=5,  # an iteration every 5 steps, fewer as requests back up
    )
    # Organic requests come in through an intake: the axon (bittensor 9/10), the
    # signed-HTTP app or your own. Each calls receive_organic, as this line does.
    asyncio.run(scoring.receive_organic(ChatRequest(messages=["what is a subnet?"])))

    with scoring:  # start() now, stop() on the way out
        for _ in range(1000):  # your validator's loop (`while True:` in yours)
            validator.forward()
            scoring.increment_step()  # wakes the scoring loop at once
            if scoring.stats.iterations >= iterations:
                break
    print(scoring.stats)
    print("weights:", {uid: round(w, 2) for uid, w in scoring.book.as_dict().items()})
    return scoring


if __name__ == "__main__":
    main()
