"""Can a miner tell synthetic probes from organic traffic? A classifier plays the miner.

The real engine runs (an :class:`OrganicScoringBase` subclass with the real trigger)
while simulated users send organic requests through ``receive_organic`` at a rate
that rises and falls (:mod:`benchmarks._traffic`: their own vocabulary and lengths,
nothing like the bundled dataset). ``_query_miners`` records what a miner receives
and when; ``_log_results`` labels it organic or synthetic. Then a miner's classifier
is trained on what it could see:

* **text**: length in characters and words, mean word length, capitals, digits,
  punctuation, a question mark, repeated words; hashed word 1-, 2- and 3-grams;
  whether the exact text was seen before in the run;
* **timing**: the gap since the previous query (raw, logarithm, and one-hot in ten
  quantile bins so a non-monotone relation can be learnt).

Three L2-regularised logistic regressions (all features, text only, timing only;
numpy only, :mod:`benchmarks._logistic`) are scored by 5-fold cross-validated ROC
AUC, each tuning its regularisation strength on its training folds; the best of the
three is the miner's figure. 0.5 is a coin flip, 1.0 a perfect distinguisher.

Scenarios (time scaled down: the period is 20 ms instead of seconds; the annealing
settings are the defaults' proportions, ``trigger_frequency_min`` = 2/15 of
``trigger_frequency``):

* **(a)** the bundled dataset at a fixed period, the library's out-of-the-box probes;
* **(b)** :class:`OrganicReplayDataset` (holding earlier traffic, as if loaded from
  yesterday's file, and fed by the scorer as it runs) through a transform that
  splices two stored prompts at a shared word run (:func:`splice_words`), with
  ``trigger_jitter=0.5`` and default annealing.

``--all`` adds (c) the replay without jitter (the old timing) and (d) the replay
with jitter but no transform (byte-exact replays). The goal is (b) <= 0.6. One run
of a scenario sees about 700 queries, so its AUC moves by a few hundredths from seed
to seed; ``--seeds N`` repeats the runs and sums them up.

Run ``python -m benchmarks.bench_distinguisher [--all] [--seeds N]`` for the table.
"""

from __future__ import annotations

import os

# The classifier's matrices are small: BLAS threads only fight over the cores (and
# with the engine under test). Effective when this module is the first to load numpy.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import asyncio
import random
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks._logistic import cross_validated_auc
from benchmarks._traffic import Users, arrival_rate
from organic_scoring import OrganicScoringBase
from organic_scoring.synth_dataset import (
    OrganicReplayDataset,
    SynthDatasetBase,
    SynthDatasetEntry,
    default_dataset,
    splice_words,
)

PERIOD = 0.02
"""``trigger_frequency`` in seconds: a fiftieth of a second stands in for 15 s."""
ORGANIC_PER_PERIOD = 0.8
"""Mean organic arrivals per unannealed period."""
LOAD_SWING = 0.5
"""The organic load rises to 1.5 times its mean and falls to half of it, over and over."""
LOAD_CYCLE = 150 * PERIOD
"""Seconds per rise and fall of the organic load."""
SECONDS, QUICK_SECONDS = 14.0, 1.5
HASH_BUCKETS = 256
REGULARISATION = (1.0, 10.0, 100.0)
GOAL = 0.6


@dataclass
class Query:
    """What a miner saw: when, and what text; and what only the validator knows."""

    at: float
    text: str
    organic: bool | None = None


@dataclass
class Scenario:
    name: str
    dataset: Callable[[int], SynthDatasetBase]
    settings: dict[str, Any] = field(default_factory=dict)


class _Validator(OrganicScoringBase):
    """Records every query a miner receives and, after it, whether it was organic."""

    def __init__(self, **kwargs: Any) -> None:
        self.queries: list[Query] = []
        self._pending: dict[int, Query] = {}
        super().__init__(**kwargs)

    async def _on_organic_entry(self, request: Any) -> None:
        self._organic_queue.add(request)

    async def _query_miners(self, sample: Any) -> dict[int, str]:
        query = Query(time.monotonic(), prompt_of(sample))
        self.queries.append(query)
        self._pending[id(sample)] = query
        return {}

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return {}

    async def _set_weights(self, rewards: Any) -> None:
        return None

    async def _log_results(self, logs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._pending.pop(id(kwargs["sample"])).organic = bool(logs["is_organic_sample"])
        return logs


def prompt_of(sample: Any) -> str:
    """The text a miner receives for an organic request or a dataset entry."""
    if isinstance(sample, SynthDatasetEntry):
        return sample.messages[-1]
    return str(sample["prompt"])


# -- scenarios ------------------------------------------------------------------------


def _annealing(jitter: float) -> dict[str, Any]:
    """The default annealing settings (15 s, 2 s, 5 per second), scaled to ``PERIOD``."""
    return {
        "trigger_frequency": PERIOD,
        "trigger_frequency_min": PERIOD * 2 / 15,
        "trigger_scaling_factor": 5 * 15 / PERIOD,
        "trigger_jitter": jitter,
    }


def _bundled(seed: int) -> SynthDatasetBase:
    return default_dataset(seed=seed)


def _replay(seed: int, transform: bool = True) -> SynthDatasetBase:
    """A replay dataset seeded with earlier traffic, as if loaded from yesterday's file."""
    replay = OrganicReplayDataset(
        1000,
        transform=(lambda sample, rng: _splice(replay, sample, rng)) if transform else None,
        fallback=default_dataset(seed=seed),
        seed=seed,
    )
    earlier = Users(seed + 1000)
    for _ in range(500):
        replay.offer({"prompt": earlier.prompt()})
    return replay


def _splice(replay: OrganicReplayDataset, sample: Any, rng: random.Random) -> Any:
    """Splice the prompt with another stored one; a few tries, else hand it out as is."""
    for _ in range(5):
        other = replay.peek()
        if other is None:
            break
        spliced = splice_words(sample["prompt"], other["prompt"], rng)
        if spliced:
            return {**sample, "prompt": spliced}
    return sample


SCENARIOS = {
    "a": Scenario(
        "(a) bundled dataset, fixed period",
        _bundled,
        {"trigger_frequency": PERIOD, "trigger_frequency_min": PERIOD},
    ),
    "b": Scenario("(b) replay + splice, jitter 0.5, default annealing", _replay, _annealing(0.5)),
    "c": Scenario("(c) replay + splice, no jitter, default annealing", _replay, _annealing(0.0)),
    "d": Scenario(
        "(d) replay without transform, jitter 0.5",
        lambda seed: _replay(seed, transform=False),
        _annealing(0.5),
    ),
}


# -- one run ------------------------------------------------------------------------------


def simulate(scenario: Scenario, seconds: float, seed: int = 1) -> list[Query]:
    """Run the engine under organic load for ``seconds``; the labelled queries, in order."""
    validator = _Validator(synth_dataset=scenario.dataset(seed), seed=seed, **scenario.settings)
    users = Users(seed)
    stop = threading.Event()
    pace = random.Random(seed)

    async def send() -> None:
        began = time.monotonic()
        while not stop.is_set():
            elapsed = time.monotonic() - began
            rate = arrival_rate(ORGANIC_PER_PERIOD / PERIOD, elapsed, LOAD_CYCLE, LOAD_SWING)
            await asyncio.sleep(pace.expovariate(rate))
            await validator.receive_organic({"prompt": users.prompt()})

    producer = threading.Thread(target=asyncio.run, args=(send(),), name="bench-users")
    validator.start()
    producer.start()
    try:
        time.sleep(seconds)
    finally:
        stop.set()
        producer.join()
        validator.stop()
    return [q for q in validator.queries if q.organic is not None]


# -- what a miner sees --------------------------------------------------------------------

_WORD = re.compile(r"\S+")


def text_features(queries: list[Query]) -> np.ndarray[Any, Any]:
    """Text statistics, hashed word n-grams and "seen this exact text before"."""
    rows = []
    seen: set[str] = set()
    for query in queries:
        text = query.text
        words = _WORD.findall(text)
        n = max(len(words), 1)
        stats = [
            np.log1p(len(text)),
            np.log1p(len(words)),
            sum(len(w) for w in words) / n,
            sum(w[:1].isupper() for w in words) / n,
            sum(c.isdigit() for c in text) / max(len(text), 1),
            sum(c in ",.;:!'\"()-" for c in text) / max(len(text), 1),
            float(text.rstrip().endswith("?")),
            float(text[:1].isupper()),
            len({w.lower() for w in words}) / n,
            float(text in seen),
        ]
        seen.add(text)
        grams = np.zeros(HASH_BUCKETS)
        lowered = [w.lower() for w in words]
        for size in (1, 2, 3):
            for i in range(len(lowered) - size + 1):
                gram = " ".join(lowered[i : i + size]).encode()
                grams[zlib.crc32(gram) % HASH_BUCKETS] = 1.0
        rows.append(np.concatenate([stats, grams]))
    return np.array(rows)


def timing_features(queries: list[Query]) -> np.ndarray[Any, Any]:
    """The gap since the previous query: raw, logarithm, and ten quantile bins."""
    times = np.array([q.at for q in queries])
    gaps = np.diff(times, prepend=times[0])
    gaps[0] = np.median(gaps[1:]) if len(gaps) > 1 else 0.0
    edges = np.quantile(gaps, np.linspace(0, 1, 11)[1:-1])
    bins = np.zeros((len(gaps), 10))
    bins[np.arange(len(gaps)), np.searchsorted(edges, gaps)] = 1.0
    return np.column_stack([gaps, np.log(np.maximum(gaps, 1e-6)), bins])


def distinguish(queries: list[Query], seed: int = 0) -> dict[str, float]:
    """The best cross-validated AUC of each classifier: all, text only, timing only."""
    y = np.array([1.0 if q.organic else 0.0 for q in queries])
    text, timing = text_features(queries), timing_features(queries)
    features = {"all": np.hstack([text, timing]), "text": text, "timing": timing}
    if y.min() == y.max():
        return dict.fromkeys(features, float("nan"))
    return {
        name: cross_validated_auc(x, y, REGULARISATION, seed=seed) for name, x in features.items()
    }


def measure(scenario: Scenario, seconds: float, seed: int = 1) -> dict[str, Any]:
    """Run one scenario and play the miner; one benchmark row."""
    queries = simulate(scenario, seconds, seed)
    queries = queries[len(queries) // 10 :]  # the first tenth: the load estimate warming up
    aucs = distinguish(queries, seed)
    best = max(aucs.values())
    organic = sum(1 for q in queries if q.organic)
    return {
        "name": scenario.name,
        "ours_auc": best,
        "bare_auc": 0.5,
        "ratio": best / 0.5,
        "auc_all": aucs["all"],
        "auc_text": aucs["text"],
        "auc_timing": aucs["timing"],
        "queries": len(queries),
        "organic_share": organic / len(queries) if queries else float("nan"),
    }


def run(quick: bool = False, scenarios: str = "ab", seed: int = 1) -> list[dict[str, Any]]:
    """Each scenario's row; ``quick`` runs them briefly, for a smoke test."""
    seconds = QUICK_SECONDS if quick else SECONDS
    return [measure(SCENARIOS[key], seconds, seed) for key in scenarios]


def _print(rows: list[dict[str, Any]]) -> None:
    width = max(len(row["name"]) for row in rows)
    print(f"{'scenario':<{width}}  {'best':>5}  {'all':>5}  {'text':>5}  {'timing':>6}  "
          f"{'queries':>7}  {'organic':>7}")  # fmt: skip
    for row in rows:
        print(
            f"{row['name']:<{width}}  {row['ours_auc']:5.3f}  {row['auc_all']:5.3f}  "
            f"{row['auc_text']:5.3f}  {row['auc_timing']:6.3f}  {row['queries']:7d}  "
            f"{row['organic_share']:7.2f}"
        )


def _summary(runs: list[list[dict[str, Any]]]) -> None:
    print(f"\nbest AUC over {len(runs)} seeds: mean (min - max)")
    for rows in zip(*runs, strict=True):
        best = [row["ours_auc"] for row in rows]
        print(f"{rows[0]['name']}: {np.mean(best):.3f} ({min(best):.3f} - {max(best):.3f})")


def _goal_met(runs: list[list[dict[str, Any]]]) -> bool:
    """Say whether the replay scenario's best AUC, averaged over the seeds, is at most
    :data:`GOAL`."""
    best = [row["ours_auc"] for rows in runs for row in rows if row["name"] == SCENARIOS["b"].name]
    if not best:
        return True  # scenario (b) was not run
    mean = float(np.mean(best))
    verdict = "met" if mean <= GOAL else "NOT MET"
    print(f"\ngoal: scenario (b) best AUC at most {GOAL}: {verdict} ({mean:.3f})")
    return mean <= GOAL


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_distinguisher")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--all", action="store_true", help="also run scenarios (c) and (d)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat with seeds 1..N")
    args = parser.parse_args()
    runs = []
    for seed in range(1, args.seeds + 1):
        rows = run(quick=args.quick, scenarios="abcd" if args.all else "ab", seed=seed)
        print(f"\nseed {seed}")
        _print(rows)
        runs.append(rows)
    if args.seeds > 1:
        _summary(runs)
    if not args.quick and not _goal_met(runs):
        sys.exit(1)
