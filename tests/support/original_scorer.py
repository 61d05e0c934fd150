# Written in the original package's era and style, on purpose:
# ruff: noqa: UP006, UP007, UP035, UP045, SIM401
"""A scorer written for the original organic-scoring package, kept as such.

It is what a validator built on the original package brings along (modelled on the
prompting subnet's ``OrganicScoringPrompting``), and ``tests/test_original_package.py``
runs it without changing a line: the original's import paths, the original
constructor's arguments passed on by position, a ``trigger_frequency_min`` above the
frequency the validator reads from its settings, hooks that index every sample
(organic or synthetic) as a dict, a ``Tuple`` blacklist, ``is_overridden`` and
``SynthDatasetConversation`` checked through its ``exception`` attribute.

Importing it warns (DeprecationWarning) about the original import paths.
"""

from typing import Any, Literal, Optional, Sequence, Tuple, Union

import bittensor as bt
from pydantic import BaseModel

from organic_scoring import OrganicQueue
from organic_scoring.organic_queue.organic_queue_base import OrganicQueueBase
from organic_scoring.organic_scoring_base import OrganicScoringBase
from organic_scoring.synth_dataset.synth_dataset_base import SynthDatasetBase
from organic_scoring.synth_dataset.synth_dataset_conversation import SynthDatasetConversation
from organic_scoring.utils import is_overridden

__all__ = [
    "OrganicQueue",
    "PromptSynapse",
    "PromptingScorer",
    "SynthDatasetConversation",
    "is_overridden",
]


# The subnet's protocol. bittensor 11 has no bt.Synapse; there the same fields
# arrive as a pydantic model, through the signed-HTTP intake or receive_organic.
class PromptSynapse(getattr(bt, "Synapse", BaseModel)):
    roles: list = []
    messages: list = []
    completion: str = ""


class PromptingScorer(OrganicScoringBase):
    def __init__(
        self,
        axon: Any,
        synth_dataset: Optional[Union[SynthDatasetBase, Sequence[SynthDatasetBase]]],
        trigger_frequency: Union[float, int],
        trigger: Literal["seconds", "steps"],
        validator: Any,
        trigger_frequency_min: Union[float, int] = 5,
        trigger_scaling_factor: Union[float, int] = 50,
        organic_queue: Optional[OrganicQueueBase] = None,
    ):
        super().__init__(
            axon,
            synth_dataset,
            trigger_frequency,
            trigger,
            trigger_frequency_min,
            trigger_scaling_factor,
            organic_queue,
        )
        self._val = validator

    async def _priority_fn(self, synapse: PromptSynapse) -> float:
        return 1000000.0

    async def _blacklist_fn(self, synapse: PromptSynapse) -> Tuple[bool, str]:
        # ! DO NOT CHANGE `Tuple` return type to `tuple` (bittensor's signature checks).
        return synapse.dendrite.hotkey != self._val.organic_whitelist_hotkey, ""

    async def _on_organic_entry(self, synapse: PromptSynapse) -> PromptSynapse:
        uids = self._val.organic_uids
        completions = {uid: self._val.miner_answer(uid, synapse.messages[-1]) for uid in uids}
        self._organic_queue.add(
            {
                "roles": synapse.roles,
                "messages": synapse.messages,
                "organic": True,
                "uids": uids,
                "completions": completions,
            }
        )
        synapse.completion = completions[uids[0]]
        return synapse

    async def _query_miners(self, sample: dict[str, Any]) -> dict[str, Any]:
        if sample.get("organic", False):
            return {uid: sample["completions"][uid] for uid in sample["uids"]}
        uids = self._val.synthetic_uids
        return {uid: self._val.miner_answer(uid, sample["messages"][-1]) for uid in uids}

    async def _generate_reference(self, sample: dict[str, Any]) -> dict[str, Any]:
        return self._val.reference(sample["roles"], sample["messages"])

    async def _generate_rewards(
        self,
        sample: dict[str, Any],
        responses: dict[str, Any],
        reference: dict[str, Any],
    ) -> dict[str, Any]:
        assert reference is not None
        uids = list(responses.keys())
        rewards = [1.0 if responses[uid] == reference else 0.1 for uid in uids]
        return {"reward": rewards, "uids": uids, "organic": sample.get("organic", False)}

    async def _set_weights(self, reward: dict[str, Any]):
        self._val.update_scores(reward["reward"], reward["uids"])

    async def _log_results(
        self,
        logs: dict[str, Any],
        reference: dict[str, Any],
        responses: dict[str, Any],
        rewards: dict[str, Any],
        sample: dict[str, Any],
        *args,
        **kwargs,
    ):
        logs["block"] = self._val.block
        logs["source"] = sample["source"] if "source" in sample else None
        logs["turns"] = len(sample["messages"])
        logs["keys"] = sorted(sample.keys())
        self._val.log_event(logs)
        return logs
