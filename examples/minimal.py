"""The smallest complete organic scorer: four hooks, a synthetic dataset, a timer.

What it shows:

* the four hooks every scorer implements: ``_on_organic_entry`` (take in one
  organic request), ``_query_miners``, ``_generate_rewards`` and ``_set_weights``;
* ``trigger="seconds"``: an iteration starts every ``trigger_frequency`` seconds,
  sooner while organic requests back up;
* the fallback: with no organic request waiting, the loop scores a sample from
  the synthetic dataset (here the small conversation set shipped with the library);
* ``start()`` / ``stop()`` from plain synchronous code (the loop runs on a thread
  of its own).

The "miners" are three functions in this file and the task is a toy (answer in
capitals), so it runs anywhere, with no chain, wallet or network::

    python examples/minimal.py
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from organic_scoring import OrganicScoringBase
from organic_scoring.synth_dataset import SynthDatasetEntry, default_dataset
from organic_scoring.weights import ScoreBook

# Three pretend miners, by uid: one does the task, one echoes, one says nothing.
MINERS: dict[int, Callable[[str], str]] = {0: str.upper, 1: str, 2: lambda prompt: ""}


class ShoutScoring(OrganicScoringBase):
    """Scores the pretend miners on answering each prompt in capitals."""

    def __init__(self, iterations: int = 6, **kwargs: Any) -> None:
        self.book = ScoreBook(len(MINERS), alpha=0.3)
        self.remaining = iterations
        self.finished = threading.Event()
        super().__init__(**kwargs)

    async def _on_organic_entry(self, request: str) -> str:
        # An intake calls this for each organic request (see receive_organic below).
        # Queue what scoring needs, in the same shape as the synthetic samples.
        self._organic_queue.add(SynthDatasetEntry(roles=["user"], messages=[request], organic=True))
        return "queued"

    async def _query_miners(self, sample: SynthDatasetEntry) -> dict[int, str]:
        prompt = sample.messages[-1]
        return {uid: miner(prompt) for uid, miner in MINERS.items()}

    async def _generate_rewards(
        self, sample: SynthDatasetEntry, responses: dict[int, str], reference: Any = None
    ) -> dict[int, float]:
        # The share of characters in the right place: echoing the prompt earns a little.
        wanted = sample.messages[-1].upper()
        return {
            uid: sum(a == b for a, b in zip(answer, wanted, strict=False)) / max(len(wanted), 1)
            for uid, answer in responses.items()
        }

    async def _set_weights(self, rewards: dict[int, float]) -> None:
        self.book.update_from(rewards)  # a WeightSetter would put it on chain

    # Optional hook: called after every iteration with the stage timings.
    async def _log_results(self, logs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        source = "organic" if logs["is_organic_sample"] else "synthetic"
        print(f"iteration {logs['organic_iteration']}: {source} sample, weights {self.weights()}")
        self.remaining -= 1
        if self.remaining <= 0:
            self.finished.set()
        return logs

    def weights(self) -> dict[int, float]:
        """The current weights, rounded for printing."""
        return {uid: round(weight, 2) for uid, weight in self.book.as_dict().items()}


def main(iterations: int = 6) -> ShoutScoring:
    """Run ``iterations`` scoring iterations, two of them on organic requests; return the scorer."""
    scoring = ShoutScoring(
        iterations=iterations,
        synth_dataset=default_dataset(seed=7),
        trigger="seconds",
        trigger_frequency=0.2,
    )
    # Organic requests go in through an intake (an axon, the signed-HTTP app, or your
    # own); receive_organic is what every intake calls.
    for prompt in ("hello miners", "what is organic scoring?"):
        asyncio.run(scoring.receive_organic(prompt))

    scoring.start()
    try:
        if not scoring.finished.wait(timeout=60):
            raise RuntimeError("the scoring loop did not finish its iterations")
    finally:
        scoring.stop()
    print(f"final weights: {scoring.weights()}")
    return scoring


if __name__ == "__main__":
    main()
