"""The demo validator's scoring, transport-neutral: each intake subclasses it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from organic_scoring import OrganicScoringBase
from organic_scoring.demo._miners import SimulatedMiner, ideal_answer, similarity
from organic_scoring.synth_dataset import SynthDatasetEntry
from organic_scoring.weights import ScoreBook

__all__ = ["MINER_TIMEOUT", "SETTINGS", "Ask", "DemoScorer", "Opener"]

MINER_TIMEOUT = 0.3  # seconds the validator waits for one miner's answer

SETTINGS: dict[str, Any] = {
    "trigger": "seconds",
    "trigger_frequency": 1.0,
    "trigger_frequency_min": 0.1,
    "trigger_scaling_factor": 4,
    "max_concurrent_iterations": 3,
    "query_timeout": 2.0,
}
"""The loop settings of every demo scorer, single-process or fleet."""

Ask = Callable[[str], Any]
Opener = Callable[[], contextlib.AbstractAsyncContextManager[Ask]]
"""Opens a user: ``ask(prompt)`` sends one organic request and returns the completion."""


def prompt_of(sample: Any) -> str:
    if isinstance(sample, SynthDatasetEntry):
        return sample.messages[-1]
    return str(sample["prompt"])


class DemoScorer(OrganicScoringBase):
    def __init__(self, miners: list[SimulatedMiner], book: ScoreBook, **kwargs: Any) -> None:
        self.miners = miners
        self.book = book
        self._received_lock = threading.Lock()
        self.received = 0
        super().__init__(**kwargs)

    async def answer_organic(self, prompt: str) -> str:
        """Answer a user's prompt with the currently best-weighted miner; queue it for scoring."""
        with self._received_lock:
            self.received += 1
        await self._organic_queue.aadd({"prompt": prompt})
        best = self.book.top(1)
        miner = self.miners[best[0][0]] if best else self.miners[0]
        return await miner.answer(prompt)

    async def _query_miners(self, sample: Any) -> dict[int, str | None]:
        prompt = prompt_of(sample)

        async def ask(miner: SimulatedMiner) -> str | None:
            try:
                return await asyncio.wait_for(miner.answer(prompt), MINER_TIMEOUT)
            except asyncio.TimeoutError:
                return None

        answers = await asyncio.gather(*(ask(m) for m in self.miners))
        return {m.uid: a for m, a in zip(self.miners, answers, strict=True)}

    async def _generate_reference(self, sample: Any) -> str:
        return ideal_answer(prompt_of(sample))

    async def _generate_rewards(
        self, sample: Any, responses: dict[int, str | None], reference: Any = None
    ) -> dict[int, float]:
        return {
            uid: 0.0 if answer is None else similarity(answer, str(reference))
            for uid, answer in responses.items()
        }

    async def _set_weights(self, rewards: dict[int, float]) -> None:
        self.book.update_from(rewards)
