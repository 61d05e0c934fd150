"""Scorers and synchronisation helpers shared by the engine tests."""

from __future__ import annotations

import asyncio
from typing import Any

from organic_scoring import OrganicScoringBase
from organic_scoring.synth_dataset import SynthDatasetBase
from support.waiting import Counter


class Letters(SynthDatasetBase):
    """A synthetic dataset that always returns its letter."""

    def __init__(self, letter: str) -> None:
        self.letter = letter

    def sample(self) -> Any:
        return {"synthetic": self.letter}


class Recorder(OrganicScoringBase):
    """A scorer whose hooks record what they saw; each iteration bumps ``done``."""

    def __init__(self, **kwargs: Any) -> None:
        self.done = Counter()
        self.samples: list[Any] = []
        self.logs: list[dict[str, Any]] = []
        self.errors: list[tuple[Any, str, BaseException]] = []
        self.weights_set: list[Any] = []
        super().__init__(**kwargs)

    async def _on_organic_entry(self, synapse: Any) -> Any:
        self._organic_queue.add(synapse)
        return synapse

    async def _query_miners(self, sample: Any) -> Any:
        self.samples.append(sample)
        return {0: sample, 1: sample}

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return {uid: 1.0 for uid in responses}

    async def _set_weights(self, rewards: Any) -> None:
        self.weights_set.append(rewards)

    async def _log_results(self, logs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.logs.append(logs)
        self.done.bump()
        return logs

    async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
        self.errors.append((sample, stage, exc))
        self.done.bump()


async def forever() -> None:
    """Hang until cancelled."""
    await asyncio.Event().wait()
