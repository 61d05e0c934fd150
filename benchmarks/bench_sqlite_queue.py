"""SQLiteOrganicQueue against the least SQLite code that keeps the same samples on disk.

One workload, ``add+sample``: the queue holds N samples; one ``add`` then one
``sample`` keeps it at N, each its own committed transaction. The sample is a small
chat request as a JSON dict (about 300 bytes).

The floor is bare :mod:`sqlite3` on a file in WAL mode with the same ``synchronous``
setting: ``json.dumps`` and an autocommitted ``INSERT``, then one transaction that
selects the oldest row, deletes it and ``json.loads`` its text. No lock, no counters,
no random choice, no checks on what is stored.

The ratio is the price of uniform random sampling (the dense slot column), the
persisted counters, the drop bookkeeping and the storability checks. Under ``FULL``
both sides pay an fsync per commit, which usually dominates. The per-operation cost
should barely move with N (each step is a B-tree lookup).

Run ``python -m benchmarks.bench_sqlite_queue`` for the table.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import best_ns
from organic_scoring.organic_queue import SQLiteOrganicQueue

SIZES = (1_000, 100_000)
QUICK_SIZES = (100, 1_000)
MODES = ("NORMAL", "FULL")

SAMPLE: dict[str, Any] = {
    "uid": 17,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarise the following paragraph in one sentence. " * 3},
    ],
    "temperature": 0.7,
    "max_tokens": 256,
}


def _ours(path: Path, size: int, mode: str) -> tuple[Callable[[], object], Callable[[], None]]:
    queue = SQLiteOrganicQueue(path, max_size=2 * size, seed=0, synchronous="NORMAL")
    for _ in range(size):
        queue.add(SAMPLE)
    queue.close()
    queue = SQLiteOrganicQueue(path, max_size=2 * size, seed=0, synchronous=mode)

    def step() -> object:
        queue.add(SAMPLE)
        return queue.sample()

    return step, queue.close


def _bare(path: Path, size: int, mode: str) -> tuple[Callable[[], object], Callable[[], None]]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE entry (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO entry (body) VALUES (?)", ((json.dumps(SAMPLE),) for _ in range(size))
    )
    conn.execute("COMMIT")
    conn.execute(f"PRAGMA synchronous = {mode}")

    def step() -> object:
        conn.execute("INSERT INTO entry (body) VALUES (?)", (json.dumps(SAMPLE),))
        conn.execute("BEGIN IMMEDIATE")
        row_id, body = conn.execute("SELECT id, body FROM entry ORDER BY id LIMIT 1").fetchone()
        conn.execute("DELETE FROM entry WHERE id = ?", (row_id,))
        conn.execute("COMMIT")
        return json.loads(body)

    return step, conn.close


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Time ``add+sample`` at each size and ``synchronous`` mode; one row per pair.

    Each row holds ``name``, ``synchronous``, ``size``, ``ours_ns`` and ``bare_ns``
    (nanoseconds per add+sample pair, best of several runs) and ``ratio`` (ours /
    bare). ``quick`` uses small queues and a few hundred operations, for smoke tests.
    """
    sizes, number, repeat = (QUICK_SIZES, 200, 1) if quick else (SIZES, 5_000, 3)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            for size in sizes:
                timings = {}
                for side, make in (("ours", _ours), ("bare", _bare)):
                    step, close = make(Path(tmp) / f"{side}-{mode}-{size}.db", size, mode)
                    try:
                        timings[side] = best_ns(step, number, repeat)
                    finally:
                        close()
                rows.append(
                    {
                        "name": "add+sample",
                        "synchronous": mode,
                        "size": size,
                        "ours_ns": timings["ours"],
                        "bare_ns": timings["bare"],
                        "ratio": timings["ours"] / timings["bare"],
                    }
                )
    return rows


def main() -> None:
    """Print the benchmark as a table (microseconds per add+sample pair)."""
    rows = run(quick=False)
    print(f"{'workload':<12}{'sync':>8}{'size':>10}{'ours (us)':>12}{'bare (us)':>12}{'ratio':>8}")
    for row in rows:
        print(
            f"{row['name']:<12}{row['synchronous']:>8}{row['size']:>10,}"
            f"{row['ours_ns'] / 1000:>12.1f}{row['bare_ns'] / 1000:>12.1f}{row['ratio']:>8.2f}"
        )


if __name__ == "__main__":
    main()
