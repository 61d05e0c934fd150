"""The score book against the bare numpy lines it replaces.

A subnet template validator folds rewards in by scattering them into a zero vector
and blending the whole vector (which decays every uid that was not queried), then
divides by the L1 norm before setting weights. This benchmark times
:meth:`ScoreBook.update` and :meth:`ScoreBook.weights` against those lines, for a
round of 50 scored uids on subnets of 256 and 4096 uids. The score book does more
per call (input checks, a lock, copies for readers), so the ratio is the price of
that safety.

``run_detection`` measures the consistency check (:meth:`ScoreBook.consistency`): the
smallest organic/synthetic gap it flags in 9 miners out of 10 when it sees ``N``
rewards of each kind, at a false-flag rate (``gap_false_flag_rate``). Honest rewards
are Beta(7, 3) (mean 0.7, standard deviation 0.14); the gaming miner shirks a share
of the probes (reward 0 there, its usual reward elsewhere), so its gap is 0.7 times
that share. The floor beside it is what a z-test that knew the reward noise would
need at the same rate and power: no test on these rewards does better.

Run ``python benchmarks/bench_weights.py`` for the tables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from organic_scoring.weights import ScoreBook

TABLES = ("run", "run_detection")
ALPHA = 0.1
ROUND_SIZE = 50
SIZES = (256, 4096)


Round = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def _rounds(n_uids: int, count: int = 16) -> list[Round]:
    """``count`` rounds of distinct uids and rewards in [0, 1), fixed by the seed."""
    rng = np.random.default_rng(n_uids)
    size = min(ROUND_SIZE, n_uids)
    return [
        (rng.choice(n_uids, size=size, replace=False).astype(np.int64), rng.random(size))
        for _ in range(count)
    ]


class _Bare:
    """The template's lines: scatter, blend the whole vector, normalise by the L1 norm."""

    def __init__(self, n_uids: int) -> None:
        self.scores = np.zeros(n_uids, dtype=np.float32)

    def update(self, uids: np.ndarray[Any, Any], rewards: np.ndarray[Any, Any]) -> None:
        rewards = np.nan_to_num(rewards, nan=0)
        scattered = np.zeros_like(self.scores)
        scattered[uids] = rewards
        self.scores = ALPHA * scattered + (1 - ALPHA) * self.scores

    def weights(self) -> np.ndarray[Any, Any]:
        norm = np.linalg.norm(self.scores, ord=1, axis=0, keepdims=True)
        if np.any(norm == 0) or np.isnan(norm).any():
            norm = np.ones_like(norm)
        weights: np.ndarray[Any, Any] = self.scores / norm
        return weights


def _time_ns(step: Callable[[int], object], number: int, repeat: int) -> float:
    """Best-of-``repeat`` mean time of one ``step`` call, in nanoseconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for i in range(number):
            step(i)
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best


Step = Callable[[int], object]


def _cases(book: ScoreBook, bare: _Bare, rounds: list[Round]) -> list[tuple[str, Step, Step]]:
    """(operation, ours, bare) triples; step ``i`` uses round ``i`` modulo the rounds."""
    count = len(rounds)

    def ours_update(i: int) -> None:
        book.update(*rounds[i % count])

    def bare_update(i: int) -> None:
        bare.update(*rounds[i % count])

    def ours_both(i: int) -> None:
        book.update(*rounds[i % count])
        book.weights()

    def bare_both(i: int) -> None:
        bare.update(*rounds[i % count])
        bare.weights()

    return [
        ("update", ours_update, bare_update),
        ("weights", lambda i: book.weights(), lambda i: bare.weights()),
        ("update+weights", ours_both, bare_both),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time each operation on each subnet size; one row per (operation, size)."""
    number, repeat = (50, 2) if quick else (5_000, 7)
    rows: list[dict[str, Any]] = []
    for n_uids in SIZES:
        rounds = _rounds(n_uids)
        book = ScoreBook(n_uids, alpha=ALPHA)
        bare = _Bare(n_uids)
        for uids, rewards in rounds:  # warm up, and give the weights something to weigh
            book.update(uids, rewards)
            bare.update(uids, rewards)
        for name, ours, baseline in _cases(book, bare, rounds):
            ours_ns = _time_ns(ours, number, repeat)
            bare_ns = _time_ns(baseline, number, repeat)
            rows.append(
                {
                    "name": name,
                    "n_uids": n_uids,
                    "ours_ns": ours_ns,
                    "bare_ns": bare_ns,
                    "ratio": ours_ns / bare_ns,
                }
            )
    return rows


HONEST_MEAN = 0.7
POWER = 0.9
DETECTION_RATES = (1e-4, 1e-2)
"""The default ``gap_false_flag_rate`` and a looser one."""
DETECTION_WINDOWS = (32, 64, 256, 1024)
"""Rewards of each kind the check sees (``gap_window``; 64 is the default)."""


def flagged_share(rate: float, per_kind: int, shirk: float, miners: int, seed: int) -> float:
    """The share of ``miners`` gaming miners flagged after ``per_kind`` rewards of each
    kind, shirking a share ``shirk`` of the probes."""
    rng = np.random.default_rng(seed)
    book = ScoreBook(miners, gap_false_flag_rate=rate, gap_window=per_kind)
    everyone = np.arange(miners)
    for i in range(2 * per_kind):
        organic = bool(i % 2)
        rewards = rng.beta(7.0, 3.0, miners)
        if not organic:
            rewards[rng.random(miners) < shirk] = 0.0
        book.update(everyone, rewards, organic=organic)
    return len(book.consistency().flagged()) / miners


def smallest_gap(rate: float, per_kind: int, miners: int, seed: int = 1) -> float:
    """The smallest gap (0.7 times the shirked share) flagged in :data:`POWER` of the
    miners, by bisection on the shirked share to within 0.0025."""
    low, high = 0.0, 1.0
    while high - low > 0.0025:
        middle = (low + high) / 2
        if flagged_share(rate, per_kind, middle, miners, seed) >= POWER:
            high = middle
        else:
            low = middle
    return HONEST_MEAN * high


def _normal_quantile(p: float) -> float:
    """``z`` with ``P(Z > z) = p`` for a standard normal ``Z``, by bisection."""
    low, high = -40.0, 40.0
    for _ in range(200):
        middle = (low + high) / 2
        if math.erfc(middle / math.sqrt(2)) / 2 > p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def oracle_gap(rate: float, per_kind: int) -> float:
    """The gap a two-sided z-test that knew the noise flags with :data:`POWER` at
    ``rate``: solves ``gap = (z(rate / 2) + z(1 - POWER)) * sqrt(var_o / N + var_s / N)``
    with the shirker's variance growing with its shirked share."""
    z = _normal_quantile(rate / 2) + _normal_quantile(1 - POWER)
    honest_var = 7 * 3 / (10**2 * 11)  # Beta(7, 3)
    second = honest_var + HONEST_MEAN**2
    low, high = 0.0, 1.0
    for _ in range(60):
        share = (low + high) / 2
        mean = (1 - share) * HONEST_MEAN
        shirker_var = (1 - share) * second - mean**2
        if HONEST_MEAN - mean >= z * math.sqrt((honest_var + shirker_var) / per_kind):
            high = share
        else:
            low = share
    return HONEST_MEAN * high


def run_detection(quick: bool = False) -> list[dict[str, Any]]:
    """The consistency check's smallest flagged gap; one row per (rate, window)."""
    miners = 200 if quick else 2000
    windows = (64,) if quick else DETECTION_WINDOWS
    rows: list[dict[str, Any]] = []
    for rate in DETECTION_RATES:
        for per_kind in windows:
            gap = smallest_gap(rate, per_kind, miners)
            floor = oracle_gap(rate, per_kind)
            rows.append({
                "name": f"smallest gap flagged 9 in 10, rate {rate:g}, {per_kind} of each kind",
                "ours_gap": gap,
                "bare_gap": floor,
                "ratio": gap / floor,
                "shirked_share": gap / HONEST_MEAN,
            })  # fmt: skip
    return rows


def main() -> None:
    """Print the benchmark as tables."""
    rows = run(quick=False)
    print(f"{'operation':<16}{'n_uids':>8}{'ours (us)':>12}{'bare (us)':>12}{'ratio':>8}")
    for row in rows:
        print(
            f"{row['name']:<16}{row['n_uids']:>8}{row['ours_ns'] / 1000:>12.2f}"
            f"{row['bare_ns'] / 1000:>12.2f}{row['ratio']:>8.2f}"
        )
    print(f"\n{'consistency check':<62}{'gap':>7}{'floor':>7}{'shirked':>9}")
    for row in run_detection(quick=False):
        print(
            f"{row['name']:<62}{row['ours_gap']:>7.3f}{row['bare_gap']:>7.3f}"
            f"{row['shirked_share']:>9.1%}"
        )


if __name__ == "__main__":
    main()
