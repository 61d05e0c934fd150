"""A scorer on a RedisOrganicQueue: samples added elsewhere are scored and acknowledged,
a Redis outage falls back to synthetic samples and recovers by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from organic_scoring.organic_queue import RedisOrganicQueue
from support.redis_server import RedisServer
from support.scorers import Letters, Recorder
from support.waiting import WAIT, wait_until

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_samples_added_by_another_process_are_scored_and_acknowledged(redis_url: str) -> None:
    with (
        RedisOrganicQueue(redis_url, name="sn") as intake,
        RedisOrganicQueue(redis_url, name="sn") as queue,
    ):
        scorer = Recorder(organic_queue=queue, trigger_frequency=0.01)
        with scorer:
            for i in range(5):
                intake.add({"n": i})
            wait_until(lambda: scorer.stats.organic_scored == 5, "five organic samples scored")
        counters = intake.counters()
        assert (counters.acked, counters.leased, counters.size) == (5, 0, 0)
        assert sorted(s["n"] for s in scorer.samples) == list(range(5))


def test_an_outage_falls_back_to_synthetic_samples_and_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    try:
        with (
            RedisOrganicQueue(server.url, name="sn") as intake,
            RedisOrganicQueue(server.url, name="sn") as queue,
        ):
            scorer = Recorder(
                organic_queue=queue,
                synth_dataset=Letters("s"),
                trigger_frequency=0.01,
                backoff_initial=0.05,
                backoff_max=0.2,
            )
            with scorer:
                intake.add({"n": 0})
                wait_until(lambda: scorer.stats.organic_scored == 1, "the first organic sample")
                server.kill()
                before = len(scorer.samples)
                wait_until(
                    lambda: sum("synthetic" in s for s in scorer.samples[before:]) >= 3,
                    "synthetic samples during the outage",
                )
                assert any(stage == "sample" for _, stage, _ in scorer.errors)
                server.start()
                wait_until(lambda: _add(intake, {"n": 1}), "Redis to take adds again")
                wait_until(
                    lambda: scorer.stats.organic_scored == 2,
                    "organic scoring to resume by itself",
                    3 * WAIT,
                )
            assert intake.counters().acked == 2
    finally:
        server.stop()


def _add(queue: RedisOrganicQueue, sample: object) -> bool:
    try:
        queue.add(sample)
    except ConnectionError:
        return False
    return True
