"""Benchmarks: each module measures one part of the library against the bare code it replaces.

Every module has ``run(quick: bool) -> list[dict]``; a row has a ``name``, the
library's figure under a key starting with ``ours``, the bare floor's under a key
starting with ``bare``, and their ``ratio`` (ours / bare, except where a row says
otherwise). ``python -m benchmarks`` runs them all and prints one table each (a module
whose ``TABLES`` names more functions of that shape gets one table per function).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

MODULES = (
    "bench_engine",
    "bench_queue",
    "bench_sqlite_queue",
    "bench_redis_queue",
    "bench_fleet_intake",
    "bench_weights",
    "bench_axon",
    "bench_http",
    "bench_distinguisher",
    "bench_metrics",
)


def best_ns(step: Callable[[], object], number: int, repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``number`` calls of ``step``, in ns per call."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            step()
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best


def _label(row: dict[str, Any]) -> str:
    extra = [f"{k}={row[k]:,}" for k in ("size", "n_uids") if k in row]
    if "synchronous" in row:
        extra.append(f"synchronous={row['synchronous']}")
    return " ".join([str(row["name"]), *extra])


def _figure(row: dict[str, Any], prefix: str) -> str:
    for key, value in row.items():
        if key.startswith(prefix) and isinstance(value, (int, float)):
            unit = key[len(prefix) :].lstrip("_")
            shown = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
            return shown + (f" {unit}" if unit else "")
    return "-"


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """Print benchmark rows as one aligned table under ``title``."""
    print(f"\n## {title}")
    if not rows:
        print("(nothing measured on this bittensor)")
        return
    width = max(len(_label(row)) for row in rows)
    print(f"{'measurement':<{width}}  {'ours':>16}  {'bare':>16}  {'ratio':>7}")
    for row in rows:
        print(
            f"{_label(row):<{width}}  {_figure(row, 'ours'):>16}  {_figure(row, 'bare'):>16}  "
            f"{row['ratio']:>7.2f}"
        )
