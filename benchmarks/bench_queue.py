"""OrganicQueue against the least code that does the same job, at growing sizes.

Two workloads, each at 100, 1,000, 10,000 and 100,000 waiting entries:

* ``add+sample``: the queue holds N entries; one ``add`` then one ``sample`` keeps
  it at N. The floor is a bare list: ``append``, then swap a random slot with the
  last one and ``pop`` it, with no lock, no counters and no drop bookkeeping.
* ``add (full)``: the queue is at ``max_size = N``, so every ``add`` drops the
  oldest entry. The floor is ``collections.deque(maxlen=N).append``, which drops
  the oldest for free but cannot hand out a random entry.

The ratio is the price of the lock, the counters and keeping both orders (random
and oldest) at once; the per-operation cost should not grow with N.

Run ``python -m benchmarks.bench_queue`` for the table.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

from benchmarks import best_ns
from organic_scoring.organic_queue import OrganicQueue

SIZES = (100, 1_000, 10_000, 100_000)


def _add_sample_cases(size: int) -> tuple[Callable[[], object], Callable[[], object]]:
    queue = OrganicQueue(max_size=2 * size, seed=0)
    for i in range(size):
        queue.add(i)

    def ours() -> object:
        queue.add(0)
        return queue.sample()

    items = list(range(size))
    randrange = random.Random(0).randrange

    def bare() -> object:
        items.append(0)
        index = randrange(len(items))
        items[index], items[-1] = items[-1], items[index]
        return items.pop()

    return ours, bare


def _add_full_cases(size: int) -> tuple[Callable[[], object], Callable[[], object]]:
    queue = OrganicQueue(max_size=size, seed=0)
    for i in range(size):
        queue.add(i)
    ring: deque[int] = deque(range(size), maxlen=size)

    def ours() -> None:
        queue.add(0)

    def bare() -> None:
        ring.append(0)

    return ours, bare


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time each workload at each size; one row per (workload, size).

    Each row holds ``name``, ``size``, ``ours_ns`` and ``bare_ns`` (nanoseconds per
    operation, best of several runs) and ``ratio`` (ours / bare). ``quick`` runs a
    few thousand operations instead of hundreds of thousands, for smoke tests.
    """
    number, repeat = (2_000, 2) if quick else (200_000, 5)
    workloads = {"add+sample": _add_sample_cases, "add (full)": _add_full_cases}
    rows: list[dict[str, Any]] = []
    for name, make in workloads.items():
        for size in SIZES:
            ours, bare = make(size)
            ours_ns = best_ns(ours, number, repeat)
            bare_ns = best_ns(bare, number, repeat)
            rows.append(
                {
                    "name": name,
                    "size": size,
                    "ours_ns": ours_ns,
                    "bare_ns": bare_ns,
                    "ratio": ours_ns / bare_ns,
                }
            )
    return rows


def main() -> None:
    """Print the benchmark as a table, with how much the cost moves across sizes."""
    rows = run(quick=False)
    print(f"{'workload':<12}{'size':>9}{'ours (ns)':>12}{'bare (ns)':>12}{'ratio':>8}")
    for row in rows:
        print(
            f"{row['name']:<12}{row['size']:>9,}{row['ours_ns']:>12.0f}"
            f"{row['bare_ns']:>12.0f}{row['ratio']:>8.2f}"
        )
    for name in dict.fromkeys(row["name"] for row in rows):
        costs = [row["ours_ns"] for row in rows if row["name"] == name]
        print(f"{name}: slowest size / fastest size = {max(costs) / min(costs):.2f}")


if __name__ == "__main__":
    main()
