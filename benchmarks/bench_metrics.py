"""What the Prometheus metrics cost the hot paths: the same work with and without them.

- **engine**: iterations per second of ``loop_iteration()`` with no-op hooks (the
  worst case: nothing but the engine's own work) for a scorer exported by a
  :class:`~organic_scoring.metrics.PrometheusMetrics`, against the same scorer
  without one. Prometheus scrapes between runs, as it does in life (every few
  seconds, on the metrics server's thread): counters and gauges are read then; the
  stage-time histogram is observed as each iteration ends. The ratio is *with /
  without* in throughput (higher is better; 0.97 means 3 %). No-op hooks make this
  the worst case: a real iteration, hundreds of milliseconds of miner queries, does
  not notice the few microseconds of the histogram.
- **intake**: signed organic requests per second through the Epistula intake
  (``create_app``, in-process through ``httpx.ASGITransport``, one at a time, so the
  app's own cost stands out), with the scorer exported by a ``PrometheusMetrics``
  (which records each answer's duration) against without (higher is better).
- **histogram**: what the exporter's recording of one iteration's seven stage times
  costs (``observe`` on series it looked up once), against
  ``Histogram.labels(stage).observe(value)`` for the same values (lower is better).

Runs alternate between the two sides and the best of each is kept, so a busy machine
slows both alike. Run ``python -m benchmarks.bench_metrics`` for the table.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from benchmarks.bench_engine import _Noop
from organic_scoring import ANY_HOTKEY
from organic_scoring._loop.stats import TIMED
from organic_scoring.intake import IntakeSettings
from organic_scoring.metrics import PrometheusMetrics
from organic_scoring.metrics._exporter import _STAGE_BUCKETS, _TIMED_STAGES

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


def _intake(n: int, rounds: int) -> dict[str, Any]:
    import httpx

    from benchmarks.bench_http import MAX_AGE, QUEUE_SIZE, BenchPrompt, _Intake, _send
    from organic_scoring.http import OrganicClient, create_app
    from organic_scoring.organic_queue import OrganicQueue
    from organic_scoring.wallet import throwaway_wallet

    async def measure(receiver: str, signer: OrganicClient) -> tuple[float, float]:
        apps, exporters = [], []
        for with_metrics in (False, True):
            scorer = _Intake(organic_queue=OrganicQueue(max_size=QUEUE_SIZE))
            apps.append(
                create_app(
                    scorer,
                    hotkey_ss58=receiver,
                    protocol="epistula",
                    # allowed_skew=0: one host, one clock, nothing to settle after start
                    settings=IntakeSettings(max_age=MAX_AGE, allowed_skew=0),
                    allowed_hotkeys=ANY_HOTKEY,
                )
            )
            if with_metrics:
                exporters.append(PrometheusMetrics(scorer, CollectorRegistry()))
        clients = [
            httpx.AsyncClient(base_url="http://intake", transport=httpx.ASGITransport(app=app))
            for app in apps
        ]
        batches = iter(range(1 << 30))

        def sign(count: int) -> list[tuple[bytes, dict[str, str]]]:
            tag = next(batches)
            bodies = [
                BenchPrompt(prompt=f"{tag} {i}").model_dump_json().encode() for i in range(count)
            ]
            return [(body, signer.signed(body)) for body in bodies]

        try:
            for client in clients:  # warm both paths
                await _send(client, sign(20), 1)
            best = [0.0, 0.0]
            for turn in range(rounds):
                for side in (0, 1) if turn % 2 else (1, 0):
                    best[side] = max(best[side], await _send(clients[side], sign(n), 1))
                generate_latest(exporters[0].registry)  # a scrape
            return best[1], best[0]
        finally:
            for client in clients:
                await client.aclose()
            for exporter in exporters:
                exporter.close()
            await signer.aclose()

    with tempfile.TemporaryDirectory() as directory:
        validator = throwaway_wallet(directory, "validator")
        caller = throwaway_wallet(directory, "caller")
        receiver = validator.hotkey.ss58_address
        signer = OrganicClient(caller, "http://intake/organic", receiver, protocol="epistula")
        with_metrics, without = asyncio.run(measure(receiver, signer))
    return {
        "name": "intake requests/s with metrics vs without, Epistula (higher is better)",
        "ours_per_s": with_metrics,
        "bare_per_s": without,
        "ratio": with_metrics / without,
    }


def _histogram(n: int, repeat: int) -> dict[str, Any]:
    stages = [TIMED.index(stage) for stage in _TIMED_STAGES]

    def ours() -> float:
        metrics = PrometheusMetrics(_Noop(), CollectorRegistry())
        try:
            record = metrics._observe_stages  # what the scorer's stats call
            begun = time.perf_counter_ns()
            for _ in range(n):
                record(_TIMES)
            return (time.perf_counter_ns() - begun) / n
        finally:
            metrics.close()

    def bare() -> float:
        histogram = Histogram(
            "stage_seconds", "", ["stage"], buckets=_STAGE_BUCKETS, registry=CollectorRegistry()
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
        _intake(20 if quick else 1000, 2 if quick else 8),
        _histogram(200 if quick else 10000, 3 if quick else 7),
    ]


if __name__ == "__main__":
    from benchmarks import print_table

    print_table("metrics", run())
