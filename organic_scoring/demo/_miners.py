"""Simulated miners for the demo: each answers a prompt with its own quality and latency.

The demo's task is a toy with a checkable answer: the ideal response to a prompt is
its words in reverse order, lower-cased (:func:`ideal_answer`). A miner of quality q
gets each word right with probability q, and answers after its latency plus jitter.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

__all__ = ["SimulatedMiner", "default_miners", "ideal_answer", "similarity"]


def ideal_answer(prompt: str) -> str:
    return " ".join(reversed(prompt.lower().split()))


def similarity(answer: str, reference: str) -> float:
    """The share of the reference's words the answer has in the right place, in [0, 1]."""
    want = reference.split()
    if not want:
        return 1.0 if not answer.split() else 0.0
    got = answer.split()
    hits = sum(1 for a, b in zip(got, want, strict=False) if a == b)
    return hits / max(len(want), len(got))


@dataclass
class SimulatedMiner:
    """A miner with a fixed quality (0..1) and latency (seconds), living in-process."""

    uid: int
    quality: float
    latency: float
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed or self.uid)

    async def answer(self, prompt: str) -> str:
        await asyncio.sleep(self.latency * (0.5 + self._random.random()))
        words = ideal_answer(prompt).split()
        return " ".join(w if self._random.random() < self.quality else "?" for w in words)


def default_miners() -> list[SimulatedMiner]:
    return [
        SimulatedMiner(uid=0, quality=0.95, latency=0.02),
        SimulatedMiner(uid=1, quality=0.85, latency=0.05),
        SimulatedMiner(uid=2, quality=0.70, latency=0.03),
        SimulatedMiner(uid=3, quality=0.50, latency=0.08),
        SimulatedMiner(uid=4, quality=0.30, latency=0.01),
        SimulatedMiner(uid=5, quality=0.99, latency=0.40),  # right, but too slow
    ]
