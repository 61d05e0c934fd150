"""A scorer in the shape the prompting subnet wrote for the original package runs unchanged.

Its traits: positional-or-keyword constructor arguments passed through, the validator
kept in ``self._val``, dict samples with ``roles``/``messages``/``organic``, responses
keyed by uid, a rewards dict with ``reward`` and ``uids``, a ``_set_weights`` whose
parameter is called ``reward``, a ``_log_results`` that adds keys and returns the logs,
a blocking ``_generate_reference``, and the steps trigger driven by the validator's
own synchronous loop calling ``increment_step()`` once per step.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pytest

from organic_scoring import OrganicScoringBase
from organic_scoring.synth_dataset import SynthDatasetBase
from support.waiting import WAIT, Counter

pytestmark = [pytest.mark.python_version, pytest.mark.usefixtures("no_leaks")]


class PromptSynapse:
    """Stands in for the subnet's synapse: a conversation plus the caller's hotkey."""

    def __init__(self, roles: list[str], messages: list[str]) -> None:
        self.roles = roles
        self.messages = messages
        self.completion = ""


class ChatDataset(SynthDatasetBase):
    def __init__(self) -> None:
        self.n = 0

    def sample(self) -> dict[str, Any]:
        self.n += 1
        return {"roles": ["user"], "messages": [f"synthetic question {self.n}"], "organic": False}


class Validator:
    """The parts of a template validator the scorer touches."""

    def __init__(self, n_uids: int) -> None:
        self.step = 0
        self.block = 100
        self.scores = np.zeros(n_uids, dtype=np.float32)
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.logged = Counter()

    def update_scores(self, rewards: Sequence[float], uids: Sequence[int]) -> None:
        with self.lock:
            scattered = np.zeros_like(self.scores)
            scattered[list(uids)] = rewards
            self.scores = 0.1 * scattered + 0.9 * self.scores

    def sync(self) -> None:
        self.block += 1


class OrganicScoringPrompting(OrganicScoringBase):
    def __init__(
        self,
        axon: Any,
        synth_dataset: SynthDatasetBase | Sequence[SynthDatasetBase],
        trigger_frequency: float | int,
        trigger: Literal["seconds", "steps"],
        validator: Validator,
    ):
        super().__init__(
            axon=axon,
            synth_dataset=synth_dataset,
            trigger_frequency=trigger_frequency,
            trigger=trigger,
        )
        self._val = validator

    async def _priority_fn(self, synapse: PromptSynapse) -> float:
        return 1000000.0

    async def _blacklist_fn(self, synapse: PromptSynapse) -> tuple[bool, str]:
        return False, ""

    async def _on_organic_entry(self, synapse: PromptSynapse) -> PromptSynapse:
        completions: dict[int, dict[str, Any]] = {
            uid: {"completed": True, "text": f"miner {uid} says hi"} for uid in (1, 2, 3)
        }
        self._organic_queue.add(
            {
                "roles": synapse.roles,
                "messages": synapse.messages,
                "organic": True,
                "synapse": synapse,
                "uids": [1, 2, 3],
                "completions": completions,
            }
        )
        synapse.completion = completions[1]["text"]
        return synapse

    async def _query_miners(self, sample: dict[str, Any]) -> dict[int, Any]:
        if sample.get("organic", False):
            return {uid: sample["completions"][uid]["text"] for uid in sample["uids"]}
        return {uid: f"answer to {sample['messages'][-1]}" for uid in (0, 4)}

    async def _generate_rewards(
        self, sample: dict[str, Any], responses: dict[int, Any], reference: dict[str, Any]
    ) -> dict[str, Any]:
        assert reference is not None
        uids = list(responses)
        rewards = [1.0 if reference["text"] in str(r) else 0.5 for r in responses.values()]
        return {"reward": rewards, "uids": uids, "organic": sample.get("organic", False)}

    async def _set_weights(self, reward: dict[str, Any]):  # type: ignore[no-untyped-def]
        self._val.update_scores(reward["reward"], reward["uids"])
        self._val.sync()

    async def _log_results(
        self,
        logs: dict[str, Any],
        reference: dict[str, Any],
        responses: dict[int, Any],
        rewards: dict[str, Any],
        sample: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ):  # type: ignore[no-untyped-def]
        logs["block"] = self._val.block
        logs["step"] = self._val.step
        logs["uids"] = rewards["uids"]
        self._val.events.append(logs)
        self._val.logged.bump()
        return logs

    async def _generate_reference(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {"text": "hi" if sample.get("organic") else "answer"}


def test_prompting_style_subclass_runs_in_a_synchronous_validator_loop() -> None:
    import asyncio

    validator = Validator(n_uids=8)
    scoring = OrganicScoringPrompting(
        axon=None,
        synth_dataset=ChatDataset(),
        trigger_frequency=2,
        trigger="steps",
        validator=validator,
    )
    scoring.start()
    try:
        # Two organic requests arrive through the handler, as the axon would deliver them.
        for text in ("hello there", "how are you"):
            asyncio.run(scoring._on_organic_entry(PromptSynapse(["user"], [text])))
        # The validator's own loop: one step at a time, on the main thread.
        for _ in range(8):
            validator.step += 1
            scoring.increment_step()
        validator.logged.wait_for(4, WAIT)
    finally:
        scoring.stop()

    events = validator.events
    assert len(events) == 8 // 2
    assert [e["is_organic_sample"] for e in events[:2]] == [True, True]
    assert [e["is_organic_sample"] for e in events[2:]] == [False, False]
    assert events[0]["uids"] == [1, 2, 3]
    assert events[-1]["uids"] == [0, 4]
    assert all(validator.scores[uid] > 0 for uid in (0, 1, 2, 3, 4))
    assert validator.scores[5:].sum() == 0
