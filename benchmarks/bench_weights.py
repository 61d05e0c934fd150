"""The score book against the bare numpy lines it replaces.

A subnet template validator folds rewards in by scattering them into a zero vector
and blending the whole vector (which decays every uid that was not queried), then
divides by the L1 norm before setting weights. This benchmark times
:meth:`ScoreBook.update` and :meth:`ScoreBook.weights` against those lines, for a
round of 50 scored uids on subnets of 256 and 4096 uids. The score book does more
per call (input checks, a lock, copies for readers), so the ratio is the price of
that safety.

Run ``python benchmarks/bench_weights.py`` for the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from organic_scoring.weights import ScoreBook

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


def main() -> None:
    """Print the benchmark as a table."""
    rows = run(quick=False)
    print(f"{'operation':<16}{'n_uids':>8}{'ours (us)':>12}{'bare (us)':>12}{'ratio':>8}")
    for row in rows:
        print(
            f"{row['name']:<16}{row['n_uids']:>8}{row['ours_ns'] / 1000:>12.2f}"
            f"{row['bare_ns'] / 1000:>12.2f}{row['ratio']:>8.2f}"
        )


if __name__ == "__main__":
    main()
