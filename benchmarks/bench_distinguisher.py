"""Can a miner tell synthetic probes from organic traffic? A classifier with a memory
plays the miner.

The real engine runs (an :class:`OrganicScoringBase` subclass with the real trigger)
while simulated users send organic requests through ``receive_organic`` at a rate
that rises and falls (:mod:`benchmarks._traffic`: their own vocabulary and lengths,
nothing like the bundled dataset). ``_query_miners`` records what a miner receives
and when; ``_log_results`` labels it organic or synthetic. Then a miner's classifier
is trained on what it could see:

* **text**: length in characters and words, mean word length, capitals, digits,
  punctuation, a question mark, repeated words; hashed word 1-, 2- and 3-grams;
* **memory** (:class:`Memory`, everything the miner received before): seen before,
  exactly and with case and whitespace normalised; the share of the request's word
  3-grams it has seen; the longest remembered start and end; a splice (the start of
  one remembered request glued to the end of another); a history seen before;
* **timing**: the gap since the previous query (raw, logarithm, and one-hot in ten
  quantile bins so a non-monotone relation can be learnt).

L2-regularised logistic regressions (numpy only, :mod:`benchmarks._logistic`) on
content (text and memory), timing, both, and memory alone are scored by 5-fold
cross-validated ROC AUC, each tuning its regularisation on its training folds. 0.5 is
a coin flip, 1.0 a perfect distinguisher. Two views: **every** query (a coalition, or
a validator querying all miners), and **one of 16** (each query goes to one of 16
miners at random; each miner's memory and gaps are its own, one classifier is
trained on all of them). Each row also gives the share of probes that repeat,
exactly or normalised, a request that miner received before.

Scenarios (time scaled down: the period is 20 ms instead of seconds; the annealing
settings are the defaults' proportions, ``trigger_frequency_min`` = 2/15 of
``trigger_frequency``):

* **(a)** the defaults: the bundled dataset, default annealing;
* **(b)** :class:`OrganicReplayDataset` (holding earlier traffic, as if loaded from
  yesterday's file, and fed by the scorer as it runs) through a transform that
  splices two stored prompts at a shared word run (:func:`splice_words`), with
  ``trigger_jitter=0.5`` and default annealing;
* **(c)** :class:`GeneratedDataset` with a stand-in generator (a fresh simulated
  user: a model that writes exactly like the users) on ``trigger="poisson"``.

``--all`` adds (d) the replay without jitter, (e) the replay with jitter but no
transform (it falls back to the bundled dataset) and (f) the bundled dataset at a
fixed period. Goals, every query: (b) hands out no exact or normalised repeat; (c)
keeps content AUC <= 0.6 and timing AUC <= 0.55; the run prints whether each was met
(and exits 1 when one was not, outside ``--quick``). One run of a scenario sees 500 to
700 queries, so its AUC moves by about 0.05 from seed to seed: the runs are repeated
over seeds 1..N (``--seeds``, 12 by default) and the goals judged on the means.

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
    GeneratedDataset,
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
MINERS = 16
"""The single-miner view: each query goes to one of this many miners at random."""
GOAL_CONTENT, GOAL_TIMING = 0.6, 0.55
"""The generator configuration's goals (every query, with memory)."""


@dataclass
class Query:
    """What a miner saw: when, and what text; and what only the validator knows."""

    at: float
    text: str
    organic: bool | None = None
    history: tuple[str, ...] = ()


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
        query = Query(time.monotonic(), prompt_of(sample), history=history_of(sample))
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


def history_of(sample: Any) -> tuple[str, ...]:
    """The earlier turns a miner receives with the request (none for a single prompt)."""
    if isinstance(sample, SynthDatasetEntry):
        return tuple(sample.messages[:-1])
    return tuple(str(turn) for turn in sample.get("history", ()))


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


def _generated(seed: int) -> SynthDatasetBase:
    """A generated dataset with a stand-in generator: a fresh user of the same traffic.

    The stand-in writes as well as a model that matched the users perfectly would;
    the figure measures what the engine adds (repeats, timing), not a model's style.
    """
    reservoir = OrganicReplayDataset(1000, fallback=default_dataset(seed=seed), seed=seed)
    earlier = Users(seed + 1000)
    for _ in range(500):
        reservoir.offer({"prompt": earlier.prompt()})
    writer = Users(seed + 2000)
    return GeneratedDataset(
        lambda brief: {"prompt": writer.prompt()},
        reservoir=reservoir,
        fallback=default_dataset(seed=seed),
        seed=seed,
    )


SCENARIOS = {
    "a": Scenario("(a) defaults: bundled dataset, default annealing", _bundled, _annealing(0.0)),
    "b": Scenario("(b) replay + splice, jitter 0.5, default annealing", _replay, _annealing(0.5)),
    "c": Scenario(
        "(c) generator (stand-in), trigger='poisson'",
        _generated,
        {"trigger": "poisson", "trigger_frequency": PERIOD, "trigger_frequency_min": PERIOD},
    ),
    "d": Scenario("(d) replay + splice, no jitter, default annealing", _replay, _annealing(0.0)),
    "e": Scenario(
        "(e) replay without transform, jitter 0.5",
        lambda seed: _replay(seed, transform=False),
        _annealing(0.5),
    ),
    "f": Scenario(
        "(f) bundled dataset, fixed period",
        _bundled,
        {"trigger_frequency": PERIOD, "trigger_frequency_min": PERIOD},
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


def normalised(text: str) -> str:
    """Case folded, runs of whitespace made one space, ends stripped."""
    return " ".join(text.casefold().split())


class Memory:
    """What a miner remembers of the queries it received, and what it asks of a new one."""

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.normal: set[str] = set()
        self.trigrams: set[tuple[str, ...]] = set()
        self.prefixes: set[tuple[str, ...]] = set()
        self.suffixes: set[tuple[str, ...]] = set()
        self.histories: set[tuple[str, ...]] = set()

    def features(self, query: Query) -> list[float]:
        """Seen before (exact, normalised), coverage by remembered word 3-grams, the
        longest remembered start and end (share of words), a splice (a remembered
        start and a remembered end, of at least three words each, covering the text
        that is itself new), and a non-empty history seen before."""
        words = normalised(query.text).split()
        n = max(len(words), 1)
        grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        coverage = sum(g in self.trigrams for g in grams) / len(grams) if grams else 0.0
        start = max((k for k in range(1, len(words) + 1) if tuple(words[:k]) in self.prefixes),
                    default=0)  # fmt: skip
        end = max((k for k in range(1, len(words) + 1) if tuple(words[-k:]) in self.suffixes),
                  default=0)  # fmt: skip
        normal = " ".join(words)
        new = normal not in self.normal
        splice = new and start >= 3 and end >= 3 and start + end >= len(words)
        history = tuple(normalised(turn) for turn in query.history)
        return [
            float(query.text in self.exact),
            float(not new),
            coverage,
            start / n,
            end / n,
            float(splice),
            float(bool(history) and history in self.histories),
        ]

    def add(self, query: Query) -> None:
        words = normalised(query.text).split()
        self.exact.add(query.text)
        self.normal.add(" ".join(words))
        self.trigrams.update(tuple(words[i : i + 3]) for i in range(len(words) - 2))
        self.prefixes.update(tuple(words[:k]) for k in range(1, len(words) + 1))
        self.suffixes.update(tuple(words[-k:]) for k in range(1, len(words) + 1))
        history = tuple(normalised(turn) for turn in query.history)
        if history:
            self.histories.add(history)
        self.histories.add((*history, " ".join(words)))


def memory_features(queries: list[Query]) -> np.ndarray[Any, Any]:
    """:meth:`Memory.features` of each query, remembering every earlier one."""
    memory = Memory()
    rows = []
    for query in queries:
        rows.append(memory.features(query))
        memory.add(query)
    return np.array(rows)


def distinguish(queries: list[Query], seed: int = 0) -> dict[str, float]:
    """The memoryless miner's cross-validated AUCs: all, text only, timing only."""
    y = np.array([1.0 if q.organic else 0.0 for q in queries])
    text, timing = text_features(queries), timing_features(queries)
    features = {"all": np.hstack([text, timing]), "text": text, "timing": timing}
    if y.min() == y.max():
        return dict.fromkeys(features, float("nan"))
    return {
        name: cross_validated_auc(x, y, REGULARISATION, seed=seed) for name, x in features.items()
    }


def views(queries: list[Query], seed: int) -> dict[str, list[list[Query]]]:
    """What miners received: ``every`` query (one stream); ``one of 16``, each query
    sent to one of :data:`MINERS` miners at random (one stream per miner)."""
    pick = random.Random(seed)
    streams: list[list[Query]] = [[] for _ in range(MINERS)]
    for query in queries:
        streams[pick.randrange(MINERS)].append(query)
    return {"every": [queries], f"one of {MINERS}": [s for s in streams if s]}


def attack(streams: list[list[Query]], seed: int = 0) -> dict[str, float]:
    """The miner with a memory: AUCs of content (text and memory), timing, both, and
    memory alone, each feature computed within its stream (its own memory and gaps)
    and one classifier trained on all streams; and the probes' repeat rates."""
    blocks: dict[str, list[np.ndarray[Any, Any]]] = {"text": [], "memory": [], "timing": []}
    labels = []
    for stream in streams:
        blocks["text"].append(text_features(stream))
        blocks["memory"].append(memory_features(stream))
        blocks["timing"].append(timing_features(stream))
        labels.extend(1.0 if q.organic else 0.0 for q in stream)
    y = np.array(labels)
    text, memory, timing = (np.vstack(blocks[k]) for k in ("text", "memory", "timing"))
    synthetic = y == 0.0
    row = {
        "exact_repeats": float(memory[synthetic, 0].mean()) if synthetic.any() else float("nan"),
        "normalised_repeats": (
            float(memory[synthetic, 1].mean()) if synthetic.any() else float("nan")
        ),
    }
    features = {
        "content": np.hstack([text, memory]),
        "timing": timing,
        "both": np.hstack([text, memory, timing]),
        "memory": memory,
    }
    both_kinds = y.min() < y.max()
    for name, x in features.items():
        auc = cross_validated_auc(x, y, REGULARISATION, seed=seed) if both_kinds else float("nan")
        row[f"auc_{name}"] = auc
    return row


def measure(scenario: Scenario, seconds: float, seed: int = 1) -> list[dict[str, Any]]:
    """Run one scenario and play the miner in each view; one benchmark row per view."""
    queries = simulate(scenario, seconds, seed)
    queries = queries[len(queries) // 10 :]  # the first tenth: the load estimate warming up
    organic = sum(1 for q in queries if q.organic)
    rows = []
    for view, streams in views(queries, seed).items():
        row = attack(streams, seed)
        best = max(row["auc_content"], row["auc_timing"], row["auc_both"])
        rows.append({
            "name": f"{scenario.name}, {view}",
            "scenario": scenario.name,
            "view": view,
            "ours_auc": best,
            "bare_auc": 0.5,
            "ratio": best / 0.5,
            **row,
            "queries": len(queries),
            "organic_share": organic / len(queries) if queries else float("nan"),
        })  # fmt: skip
    return rows


def run(quick: bool = False, scenarios: str = "abc", seed: int = 1) -> list[dict[str, Any]]:
    """Each scenario's rows (two views each); ``quick`` runs them briefly, for a smoke test."""
    seconds = QUICK_SECONDS if quick else SECONDS
    return [row for key in scenarios for row in measure(SCENARIOS[key], seconds, seed)]


def _print(rows: list[dict[str, Any]]) -> None:
    width = max(len(row["name"]) for row in rows)
    print(f"{'scenario, view':<{width}}  {'exact':>6}  {'normal':>6}  {'content':>7}  "
          f"{'timing':>6}  {'both':>5}  {'memory':>6}  {'queries':>7}  {'organic':>7}")  # fmt: skip
    for row in rows:
        print(
            f"{row['name']:<{width}}  {row['exact_repeats']:6.1%}  "
            f"{row['normalised_repeats']:6.1%}  {row['auc_content']:7.3f}  "
            f"{row['auc_timing']:6.3f}  {row['auc_both']:5.3f}  {row['auc_memory']:6.3f}  "
            f"{row['queries']:7d}  {row['organic_share']:7.2f}"
        )


def _summary(runs: list[list[dict[str, Any]]]) -> None:
    print(f"\nover {len(runs)} seeds: mean (min - max)")
    for rows in zip(*runs, strict=True):
        parts = []
        for key in ("auc_content", "auc_timing", "auc_both"):
            values = [row[key] for row in rows]
            parts.append(f"{key[4:]} {np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        print(f"{rows[0]['name']}: " + ", ".join(parts))


def goals(runs: list[list[dict[str, Any]]]) -> list[tuple[str, bool, float]]:
    """Each goal (every query, with memory) for the scenarios that ran, as
    ``(goal, met, measured)``, means over the seeds: the replay hands out no exact or
    normalised repeat; the generator on ``trigger="poisson"`` keeps the content AUC at
    most :data:`GOAL_CONTENT` and the timing AUC at most :data:`GOAL_TIMING`."""
    every = [row for rows in runs for row in rows if row["view"] == "every"]

    def mean(scenario: str, key: str) -> float | None:
        values = [row[key] for row in every if row["scenario"] == SCENARIOS[scenario].name]
        return float(np.mean(values)) if values else None

    checks = [
        ("replay (b): exact repeats 0 %", "b", "exact_repeats", 0.0),
        ("replay (b): normalised repeats 0 %", "b", "normalised_repeats", 0.0),
        (f"generator (c): content AUC <= {GOAL_CONTENT}", "c", "auc_content", GOAL_CONTENT),
        (f"generator (c): timing AUC <= {GOAL_TIMING}", "c", "auc_timing", GOAL_TIMING),
    ]
    found = []
    for goal, scenario, key, bound in checks:
        value = mean(scenario, key)
        if value is not None:
            found.append((goal, value <= bound, value))
    return found


def _print_goals(runs: list[list[dict[str, Any]]]) -> bool:
    """Print whether each goal was met; True when all were."""
    found = goals(runs)
    print()
    for goal, met, value in found:
        print(f"goal: {goal}: {'met' if met else 'NOT MET'} ({value:.3f})")
    return all(met for _, met, _ in found)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_distinguisher")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--all", action="store_true", help="also run scenarios (d) to (f)")
    parser.add_argument("--seeds", type=int, default=12, help="repeat with seeds 1..N")
    args = parser.parse_args()
    runs = []
    for seed in range(1, args.seeds + 1):
        rows = run(quick=args.quick, scenarios="abcdef" if args.all else "abc", seed=seed)
        print(f"\nseed {seed}")
        _print(rows)
        runs.append(rows)
    if args.seeds > 1:
        _summary(runs)
    met = _print_goals(runs)
    if not args.quick and not met:
        sys.exit(1)
