"""Load and faults: no accepted organic request is lost, whatever the hooks and restarts do.

Clients send bursts of concurrent signed requests through the installed bittensor's
intake, on 127.0.0.1, while the scorer's hooks raise, hang past their timeouts or are
slow, and the scorer is stopped (cancelling hanging iterations) and restarted several
times. At rest, every request the intake accepted is scored, reported as failed,
dropped by the queue's bound, or still queued; the queue and the sample objects alive
stayed within the bound; and nothing of ours outlived ``stop()``.

The quick run is part of the test command; the long one is left out by default::

    pytest -m slow tests/test_load.py

The scenario itself is in :mod:`support.load`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from organic_scoring import IterationError
from organic_scoring.errors import QueueUnavailable
from organic_scoring.organic_queue import OrganicQueue, OrganicQueueBase, SQLiteOrganicQueue
from support.axons import BITTENSOR_WARNINGS
from support.load import (
    MEMORY_GROWTH_BOUND,
    QUEUE_BOUND,
    QUICK,
    SLOW,
    Size,
    live_bound,
    open_intake,
    run_scenario,
)
from support.scorers import Recorder

pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks"), BITTENSOR_WARNINGS]

SEED = 20240611


def check_load_and_faults(tmp_path: Path, size: Size, queue: OrganicQueueBase) -> None:
    """Run the scenario at ``size`` around ``queue`` and check the books balance."""
    with open_intake(tmp_path, size, queue, SEED) as intake:
        outcome = asyncio.run(run_scenario(intake, size, SEED))
    scorer = intake.scorer
    stats = scorer.stats
    statuses = dict(outcome.statuses)
    books = {
        **stats.as_dict(),
        "statuses": statuses,
        "other answers": dict(outcome.other_answers),
        "reported": dict(scorer.reported),
    }
    del books["stage_times"]

    print(
        f"accepted {stats.organic_accepted}, scored {stats.organic_scored}, "
        f"failed {stats.organic_failed}, dropped {stats.queue_counters['dropped']}, "
        f"queued {stats.queue_size}, handler errors {stats.organic_handler_errors}, "
        f"cancelled by stop {sum(outcome.cancelled_per_stop)}, "
        f"live records {max(outcome.live_records)} (bound {live_bound()}), "
        f"memory {outcome.memory}"
    )

    # Every request got an answer the intake meant: accepted, refused by the handler,
    # or (on 9/10) refused as a replay. A timeout or lost connection would leave it
    # unknown whether the intake accepted the request.
    assert sum(statuses.values()) == outcome.sent, books
    assert set(statuses) <= {200, 500} | intake.refusals, books

    # The invariant, and that it is not vacuous.
    assert stats.organic_unaccounted == 0, books
    assert stats.organic_accepted == statuses.get(200, 0), books
    assert stats.organic_handler_errors == statuses.get(500, 0), books
    assert stats.queue_counters["added"] == stats.organic_accepted, books
    assert stats.in_flight == 0, books
    assert stats.organic_in_flight == 0, books
    assert stats.organic_scored > 0, books
    assert stats.organic_failed > 0, books
    assert stats.queue_counters["dropped"] > 0, books

    # Every organic failure counted was handed to _on_iteration_error, and each
    # forced stop cancelled (and reported) at least one hanging iteration.
    assert scorer.reported_organic == stats.organic_failed, books
    assert all(n > 0 for n in outcome.cancelled_per_stop), outcome.cancelled_per_stop
    assert len(outcome.cancelled_per_stop) >= size.cycles

    # Memory: the queue never exceeded its bound, and the organic samples alive at
    # any checkpoint are bounded by it too, not by the traffic.
    assert scorer.max_queue <= QUEUE_BOUND, books
    assert stats.queue_size <= QUEUE_BOUND, books
    assert max(outcome.live_records) <= live_bound(), (outcome.live_records, books)
    if size.trace_memory:
        warm, end = outcome.memory
        assert end - warm <= MEMORY_GROWTH_BOUND, (outcome.memory, books)

    # Nothing of ours outlived stop(): no loop thread, no task running our code.
    assert outcome.leftovers == [], outcome.leftovers
    assert not scorer.is_running
    assert not [t for t in threading.enumerate() if t.name.startswith("organic-scoring")]


def test_load_and_faults_quick(tmp_path: Path) -> None:
    check_load_and_faults(tmp_path, QUICK, OrganicQueue(max_size=QUEUE_BOUND, seed=SEED))


def test_load_and_faults_quick_with_a_sqlite_queue(tmp_path: Path) -> None:
    path = tmp_path / "organic.sqlite"
    with SQLiteOrganicQueue(path, max_size=QUEUE_BOUND, seed=SEED, synchronous="NORMAL") as queue:
        check_load_and_faults(tmp_path, QUICK, queue)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_load_and_faults_long(tmp_path: Path) -> None:
    check_load_and_faults(tmp_path, SLOW, OrganicQueue(max_size=QUEUE_BOUND, seed=SEED))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_load_and_faults_long_with_a_sqlite_queue(tmp_path: Path) -> None:
    path = tmp_path / "organic.sqlite"
    with SQLiteOrganicQueue(path, max_size=QUEUE_BOUND, seed=SEED, synchronous="NORMAL") as queue:
        check_load_and_faults(tmp_path, SLOW, queue)


def test_a_sample_that_cannot_be_loaded_back_is_an_organic_failure(tmp_path: Path) -> None:
    path = tmp_path / "organic.sqlite"
    with SQLiteOrganicQueue(path, synchronous="NORMAL") as queue:
        scorer = Recorder(organic_queue=queue)
        asyncio.run(scorer.receive_organic({"prompt": "hi"}))
        with sqlite3.connect(path) as raw:  # as if the file were damaged since
            raw.execute("UPDATE organic_queue_entry SET body = '{not json'")
        raw.close()
        with pytest.raises(IterationError):
            asyncio.run(scorer.loop_iteration())
        stats = scorer.stats
        assert scorer.errors[0][1] == "sample"
        assert stats.queue_counters["sampled"] == 1
        assert stats.organic_accepted == 1
        assert stats.organic_failed == 1
        assert stats.organic_unaccounted == 0


def test_a_queue_that_fails_before_removing_anything_keeps_the_books(tmp_path: Path) -> None:
    path = tmp_path / "organic.sqlite"
    with SQLiteOrganicQueue(path, synchronous="NORMAL", timeout=0) as queue:
        scorer = Recorder(organic_queue=queue)
        asyncio.run(scorer.receive_organic({"prompt": "hi"}))
        other = sqlite3.connect(path, isolation_level=None)  # another process, say
        try:
            other.execute("BEGIN IMMEDIATE")  # holds the file's write lock
            # Reported, then nothing synthetic to fall back to.
            assert asyncio.run(scorer.loop_iteration()) == {}
        finally:
            other.close()
        stats = scorer.stats
        assert isinstance(scorer.errors[0][2], QueueUnavailable)
        assert isinstance(scorer.errors[0][2].__cause__, sqlite3.OperationalError)
        assert stats.queue_size == 1  # nothing left the queue
        assert stats.organic_unaccounted == 0
