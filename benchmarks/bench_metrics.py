"""What the Prometheus metrics cost the hot paths: the same work with and without them.

- **engine**: iterations per second of ``loop_iteration()`` with no-op hooks (the
  worst case: nothing but the engine's own work) for a scorer exported by a
  :class:`~organic_scoring.metrics.PrometheusMetrics`, against the same scorer
  without one. Prometheus scrapes between runs, as it does in life (every few
  seconds, on the metrics server's thread): counters and gauges are read then, and
  the stage times recorded during the run are counted into their buckets then. The
  ratio is *with / without* in throughput (higher is better; 0.97 means 3 %).
- **histogram**: what recording one iteration's seven stage times costs in all,
  counting into buckets included, against ``prometheus_client.Histogram``'s
  ``labels(stage).observe(value)`` for the same values (lower is better).

Runs alternate between the two sides and the best of each is kept, so a busy machine
slows both alike. Run ``python -m benchmarks.bench_metrics`` for the table.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from benchmarks.bench_engine import _Noop
from organic_scoring._stats import TIMED
from organic_scoring.metrics import STAGE_BUCKETS, TIMED_STAGES, PrometheusMetrics
from organic_scoring.metrics._histogram import BufferedHistogram

_TIMES = (0.00002, 0.31, 0.00001, 0.3101, 0.0004, 0.0002, 0.00003, 0.311)
"""One iteration's durations in ``TIMED`` order: microsecond hooks, a slow query."""


def _iterations_per_second(scorer: _Noop, n: int) -> float:
    async def run() -> float:
        begun = time.perf_counter()
        for _ in range(n):
            await scorer.loop_iteration()
        return time.perf_counter() - begun

    return n / asyncio.run(run())


def _engine(n: int, repeat: int) -> dict[str, Any]:
    bare, measured = _Noop(), _Noop()
    metrics = PrometheusMetrics(measured, CollectorRegistry())
    try:
        with_metrics = without = 0.0
        for turn in range(repeat):
            for side in (0, 1) if turn % 2 else (1, 0):  # each side goes first half the time
                if side:
                    with_metrics = max(with_metrics, _iterations_per_second(measured, n))
                    generate_latest(metrics.registry)  # a scrape
                else:
                    without = max(without, _iterations_per_second(bare, n))
        seen = metrics.registry.get_sample_value(
            "organic_scoring_stage_seconds_count", {"stage": "total"}
        )
        assert seen == measured.stats.iterations, "the histogram saw every iteration"
    finally:
        metrics.close()
    return {
        "name": "engine iterations/s with metrics vs without (higher is better)",
        "ours_per_s": with_metrics,
        "bare_per_s": without,
        "ratio": with_metrics / without,
    }


def _histogram(n: int, repeat: int) -> dict[str, Any]:
    stages = [TIMED.index(stage) for stage in TIMED_STAGES]

    def ours() -> float:
        histogram = BufferedHistogram(
            STAGE_BUCKETS, TIMED_STAGES, accept=TIMED_STAGES, row_keys=TIMED
        )
        record = histogram.record_row
        begun = time.perf_counter_ns()
        for _ in range(n):
            record(_TIMES)
        histogram.read()
        return (time.perf_counter_ns() - begun) / n

    def bare() -> float:
        histogram = Histogram(
            "stage_seconds", "", ["stage"], buckets=STAGE_BUCKETS, registry=CollectorRegistry()
        )
        begun = time.perf_counter_ns()
        for _ in range(n):
            for index in stages:
                histogram.labels(TIMED[index]).observe(_TIMES[index])
        return (time.perf_counter_ns() - begun) / n

    ours_ns = bare_ns = float("inf")
    for _ in range(repeat):
        ours_ns = min(ours_ns, ours())
        bare_ns = min(bare_ns, bare())
    return {
        "name": "7 stage times into the histogram, per iteration (lower is better)",
        "ours_ns": ours_ns,
        "bare_ns": bare_ns,
        "ratio": ours_ns / bare_ns,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Run every measurement; ``quick`` shrinks them to a smoke test."""
    return [
        _engine(200 if quick else 5000, 3 if quick else 12),
        _histogram(200 if quick else 10000, 3 if quick else 7),
    ]


if __name__ == "__main__":
    from benchmarks import print_table

    print_table("metrics", run())
