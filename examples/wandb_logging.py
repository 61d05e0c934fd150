"""Log every iteration to Weights & Biases: timings and rewards, never prompts.

Validators log to wandb, and organic samples are real users' prompts: logging the
sample, the reference or the miners' responses publishes them (subnets have had to
strip organic prompts and raw chunks from their wandb runs by hand). This
``_log_results`` logs what an operator needs to follow the loop and the miners, and
nothing a user wrote:

* the stage times (``organic_time_*``, seconds), the queue size, whether the sample
  was organic and where it came from, the iteration's running number;
* the rewards, one value per uid (``reward/<uid>``), with their mean and maximum.

Add the mixin in front of your scorer and hand it a run::

    import wandb
    from examples.wandb_logging import WandbLogging

    class MyScoring(WandbLogging, OrganicScoringBase):
        ...

    scoring = MyScoring(...)
    scoring.wandb_run = wandb.init(project="my-subnet-validator", job_type="organic")

This module imports without wandb installed (``open_run`` imports it when called), so
a validator can keep wandb optional. Run it for a demonstration with a small local
scorer and an offline run (``pip install wandb`` first)::

    python examples/wandb_logging.py
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from organic_scoring import OrganicScoringBase
from organic_scoring.synth_dataset import SynthDatasetEntry, default_dataset

TIMINGS = (
    "organic_time_sample",
    "organic_time_responses",
    "organic_time_query",
    "organic_time_reference",
    "organic_time_rewards",
    "organic_time_weights",
    "organic_time_total",
)
FACTS = ("organic_queue_size", "is_organic_sample", "organic_iteration", "organic_sample_source")


def wandb_row(logs: Mapping[str, Any], rewards: Any) -> dict[str, Any]:
    """One iteration as a wandb row: timings, facts and rewards, and no sample content.

    ``rewards`` may be a mapping ``{uid: reward}`` or a sequence (a list, a numpy
    array, a tensor) indexed by uid; values that are not finite numbers are left out.
    """
    row: dict[str, Any] = {key: logs[key] for key in (*TIMINGS, *FACTS) if key in logs}
    per_uid = _per_uid(rewards)
    for uid, reward in per_uid.items():
        row[f"reward/{uid}"] = reward
    if per_uid:
        values = list(per_uid.values())
        row["reward_mean"] = sum(values) / len(values)
        row["reward_max"] = max(values)
    return row


def _per_uid(rewards: Any) -> dict[int, float]:
    if rewards is None:
        return {}
    items = rewards.items() if isinstance(rewards, Mapping) else enumerate(_as_list(rewards))
    result = {}
    for uid, reward in items:
        try:
            value = float(reward)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            result[int(uid)] = value
    return result


def _as_list(rewards: Any) -> list[Any]:
    tolist = getattr(rewards, "tolist", None)  # numpy arrays and torch tensors
    if callable(tolist):
        values = tolist()
        return values if isinstance(values, list) else [values]
    try:
        return list(rewards)
    except TypeError:
        return []


class WandbLogging:
    """A mixin whose ``_log_results`` sends :func:`wandb_row` to ``self.wandb_run``.

    ``wandb_run`` is anything with a ``log(dict)`` method (``wandb.init()``'s run);
    while it is None, nothing is logged. Put the mixin before ``OrganicScoringBase``.
    """

    wandb_run: Any = None

    async def _log_results(
        self,
        logs: dict[str, Any],
        reference: Any,
        responses: Any,
        rewards: Any,
        sample: Any,
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, Any]:
        run = self.wandb_run
        if run is not None:
            # wandb's log() does file and network work: keep it off the event loop.
            await asyncio.to_thread(run.log, wandb_row(logs, rewards))
        return logs


def open_run(**options: Any) -> Any:
    """``wandb.init(**options)``; wandb is imported here, only when a run is opened."""
    try:
        import wandb
    except ImportError as exc:
        raise ImportError("this example logs to Weights & Biases: pip install wandb") from exc
    return wandb.init(**options)


class _Demo(WandbLogging, OrganicScoringBase):
    """Scores three pretend miners on echoing the prompt, with the wandb mixin."""

    async def _on_organic_entry(self, request: str) -> None:
        self._organic_queue.add(SynthDatasetEntry(roles=["user"], messages=[request], organic=True))

    async def _query_miners(self, sample: SynthDatasetEntry) -> dict[int, str]:
        prompt = sample.messages[-1]
        return {0: prompt, 1: prompt[::-1], 2: ""}

    async def _generate_rewards(
        self, sample: SynthDatasetEntry, responses: dict[int, str], reference: Any = None
    ) -> dict[int, float]:
        prompt = sample.messages[-1]
        return {uid: float(answer == prompt) for uid, answer in responses.items()}

    async def _set_weights(self, rewards: dict[int, float]) -> None:
        return None


async def _main() -> None:
    scoring = _Demo(synth_dataset=default_dataset(seed=0))
    scoring.wandb_run = open_run(project="organic-scoring-example", mode="offline")
    await scoring.receive_organic("what a user typed, which must not reach wandb")
    for _ in range(3):
        await scoring.loop_iteration()
    scoring.wandb_run.finish()


if __name__ == "__main__":
    asyncio.run(_main())
