"""The fleet under faults, against a real redis-server: slow and hung iterations,
samples that never get acknowledged, a scorer that lost its role, Redis refusing
writes or losing its data."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from organic_scoring.errors import SampleUnreadable
from organic_scoring.metrics import PrometheusMetrics
from organic_scoring.organic_queue import RedisOrganicQueue
from support.redis_server import RedisServer
from support.scorers import Letters, Recorder
from support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("no_leaks")


class Held(Recorder):
    """A scorer whose query waits until the test lets it go (``release``)."""

    def __init__(self, **kwargs: Any) -> None:
        self.release = threading.Event()
        self.started = 0
        super().__init__(**kwargs)

    async def _query_miners(self, sample: Any) -> Any:
        self.started += 1
        while not self.release.is_set():  # noqa: ASYNC110 (set from the test's thread)
            await asyncio.sleep(0.01)
        return await super()._query_miners(sample)


def _metrics(scorer: Recorder) -> dict[str, float]:
    """One scrape of ``scorer``'s metrics: sample name to value (unlabelled ones)."""
    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        text = generate_latest(metrics.registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


# -- finding 1: slow iterations, dead letters, stuck slots ------------------------------


def test_a_slow_iteration_keeps_its_sample(redis_url: str) -> None:
    # The iteration outlives its lease several times over: the loop renews the
    # lease, so the sample is neither put back nor handed to another slot.
    with RedisOrganicQueue(redis_url, name="sn", lease=0.6) as queue:
        scorer = Held(organic_queue=queue, trigger_frequency=0.01, max_concurrent_iterations=2)
        with scorer:
            queue.add({"n": 1})
            wait_until(lambda: scorer.started == 1, "the iteration to start")
            time.sleep(4 * queue.lease)  # a lower bound: a slower machine only waits longer
            counters = queue.counters()
            assert (counters.redelivered, counters.leased, scorer.started) == (0, 1, 1)
            scorer.release.set()
            wait_until(lambda: queue.counters().acked == 1, "the sample to be acknowledged")
        counters = queue.counters()
        assert (counters.scored, counters.redelivered, scorer.stats.organic_scored) == (1, 0, 1)


def test_a_sample_never_acknowledged_is_dead_lettered_and_reported(redis_url: str) -> None:
    with RedisOrganicQueue(redis_url, name="sn", lease=0.05) as queue:
        assert queue.max_deliveries == 3
        queue.add({"n": 7})
        queue.count_accepted()
        for _ in range(3):  # three scorers took it and died: nobody acknowledged it
            assert queue.sample() == {"n": 7}
            wait_until(lambda: queue.counters().leased == 0, "the lease to run out")
        scorer = Recorder(organic_queue=queue, trigger_frequency=0.01)
        with scorer:
            wait_until(lambda: scorer.errors, "the dead letter to be reported")
        sample, stage, error = scorer.errors[0]
        assert (sample, stage) == ({"n": 7}, "sample")
        assert isinstance(error, SampleUnreadable)
        assert "handed out 3 times" in str(error)
        assert scorer.samples == []  # never scored a fourth time
        counters = queue.counters()
        assert (counters.dead_lettered, counters.acked, counters.failed) == (1, 1, 1)
        assert (counters.size, counters.leased, counters.sampled) == (0, 0, 4)
        assert queue.dead_letters() == [{"n": 7}]
        stats = scorer.stats
        assert (stats.organic_failed, stats.organic_unaccounted) == (1, 0)
        assert _metrics(scorer)["organic_scoring_organic_dead_lettered_total"] == 1


def test_a_scorer_whose_slots_are_stuck_says_so_and_hands_over(
    redis_url: str, library_log: list[str]
) -> None:
    queues = [RedisOrganicQueue(redis_url, name="sn", lock_period=0.6) for _ in range(3)]
    intake, mine, theirs = queues
    stuck = Held(
        organic_queue=mine,
        trigger_frequency=0.01,
        stuck_after=0.2,
        release_when_stuck=True,
    )
    standby = Recorder(organic_queue=theirs, trigger_frequency=0.01)
    try:
        stuck.start()
        wait_until(lambda: stuck.stats.active_scorer, "the first scorer to take the role")
        standby.start()
        intake.add({"n": 1})
        wait_until(lambda: stuck.stats.stuck_iterations == 1, "the iteration to count as stuck")
        wait_until(lambda: any("slot is stuck" in m for m in library_log), "the warning")
        metrics = _metrics(stuck)
        assert metrics["organic_scoring_stuck_iterations"] == 1
        assert metrics["organic_scoring_oldest_iteration_seconds"] >= 0.2
        assert metrics["organic_scoring_organic_leased"] == 1
        wait_until(lambda: standby.stats.active_scorer, "the standby to take over")
        assert _metrics(standby)["organic_scoring_active_scorer"] == 1
        intake.add({"n": 2})
        wait_until(lambda: standby.stats.organic_scored == 1, "the standby to score")
        assert not stuck.stats.active_scorer
        stuck.release.set()
        wait_until(lambda: stuck.stats.stuck_iterations == 0, "the stuck iteration to end")
    finally:
        stuck.release.set()
        stuck.stop()
        standby.stop()
        for queue in queues:
            queue.close()


def test_max_deliveries_is_checked(redis_url: str) -> None:
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="max_deliveries"):
            RedisOrganicQueue(redis_url, name="sn", max_deliveries=bad)  # type: ignore[arg-type]


# -- finding 4: fencing ---------------------------------------------------------------


class HeldRewards(Recorder):
    """A scorer whose rewards stage waits until the test lets it go (``release``)."""

    def __init__(self, **kwargs: Any) -> None:
        self.release = threading.Event()
        self.started = 0
        super().__init__(**kwargs)

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        self.started += 1
        while not self.release.is_set():  # noqa: ASYNC110 (set from the test's thread)
            await asyncio.sleep(0.01)
        return await super()._generate_rewards(sample, responses, reference)


def test_every_acquisition_of_the_role_gets_a_greater_fence(redis_url: str) -> None:
    with RedisOrganicQueue(redis_url, name="sn", lock_period=5.0) as queue:
        first, second = queue.scorer_lock(), queue.scorer_lock()
        assert first is not None
        assert second is not None
        assert first.acquire()
        fence = first.fence
        assert fence is not None
        assert first.check(fence)
        assert first.acquire()  # a renewal keeps the fence
        assert first.fence == fence
        first.release()
        assert not first.check(fence)
        assert second.acquire()
        assert second.fence is not None
        assert second.fence > fence
        second.release()
        assert first.acquire()  # the same holder again: a new tenure, a new fence
        assert first.fence is not None
        assert first.fence > second.fence
        assert not first.check(fence)
        first.release()


def test_a_scorer_that_lost_the_role_sets_no_weights(redis_url: str) -> None:
    # The active scorer stalls mid-iteration for longer than its lock lasts (its
    # keeper does not get to notice in time); another process takes the role. When
    # the iteration resumes, its weights are refused and reported.
    with (
        RedisOrganicQueue(redis_url, name="sn", lock_period=30.0) as queue,
        RedisOrganicQueue(redis_url, name="sn", lock_period=30.0) as other,
    ):
        scorer = HeldRewards(organic_queue=queue, trigger_frequency=0.01)
        with scorer:
            wait_until(lambda: scorer.stats.active_scorer, "the scorer to take the role")
            queue.add({"n": 1})
            wait_until(lambda: scorer.started == 1, "the iteration to reach the rewards")
            lock = queue.scorer_lock()
            assert lock is not None
            queue._link.client.delete(lock.key)  # as if it expired while the scorer stalled
            usurper = other.scorer_lock()
            assert usurper is not None
            assert usurper.acquire()
            scorer.release.set()
            wait_until(lambda: scorer.errors or scorer.weights_set, "the iteration to end")
            assert scorer.weights_set == []
            from organic_scoring.errors import ScorerRoleLost

            _, stage, error = scorer.errors[0]
            assert (stage, type(error)) == ("weights", ScorerRoleLost)
            assert queue.counters().acked == 0  # left for the active scorer
            usurper.release()


def test_a_scorer_that_loses_the_role_cancels_its_iterations(redis_url: str) -> None:
    with (
        RedisOrganicQueue(redis_url, name="sn", lock_period=0.6, lease=30.0) as queue,
        RedisOrganicQueue(redis_url, name="sn", lock_period=0.6) as other,
    ):
        scorer = HeldRewards(organic_queue=queue, trigger_frequency=0.01)
        standby = Recorder(organic_queue=other, trigger_frequency=0.01)
        try:
            with scorer:
                wait_until(lambda: scorer.stats.active_scorer, "the scorer to take the role")
                standby.start()
                queue.add({"n": 1})
                wait_until(lambda: scorer.started == 1, "the iteration to reach the rewards")
                lock = queue.scorer_lock()
                assert lock is not None
                # The key vanishes (a Redis restart, say): the standby, or the scorer
                # itself, takes the lock anew, and the iteration begun under the old
                # tenure is cancelled either way.
                queue._link.client.delete(lock.key)
                wait_until(lambda: scorer.errors, "the cancelled iteration to be reported")
                from organic_scoring.errors import ScorerRoleLost

                _, stage, error = scorer.errors[0]
                assert (stage, type(error)) == ("rewards", ScorerRoleLost)
                assert scorer.weights_set == []
                wait_until(lambda: scorer.stats.in_flight == 0, "the iteration to end")
        finally:
            scorer.release.set()
            standby.stop()


# -- finding 6: Redis at maxmemory ---------------------------------------------------


def _fill(queue: RedisOrganicQueue) -> None:
    """Hold the server above ``maxmemory`` (``noeviction``): it refuses every write."""
    client = queue._link.client
    for n in range(20):
        client.set(f"filler:{n}", b"x" * 65536)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", used - 500_000)
    with pytest.raises(Exception, match="maxmemory"):
        client.set("one-more", b"x")


def test_the_scorer_role_changes_hands_while_redis_refuses_writes(redis_url: str) -> None:
    with (
        RedisOrganicQueue(redis_url, name="sn", lock_period=5.0) as queue,
        RedisOrganicQueue(redis_url, name="sn", lock_period=5.0) as other,
    ):
        active, standby = queue.scorer_lock(), other.scorer_lock()
        assert active is not None
        assert standby is not None
        assert active.acquire()
        queue.add({"n": 1})
        queue.add({"n": 2})
        _fill(queue)
        with pytest.raises(ConnectionError, match="maxmemory"):
            queue.add({"n": 3})  # refused: the queue does not grow
        _, lease = queue.take()  # but it drains
        queue.renew([lease])
        queue.ack(lease)
        assert (queue.counters().acked, queue.size) == (1, 1)
        assert active.acquire()  # renewed
        fence = active.fence
        assert fence is not None
        assert active.check(fence)
        active.release()
        assert standby.acquire()  # taken: a standby can take over
        assert standby.holder() == standby.token
        standby.release()


# -- finding 2: Redis loses its data ----------------------------------------------------


def test_a_redis_that_lost_its_data_is_reported(
    redis_server: RedisServer, library_log: list[str]
) -> None:
    with RedisOrganicQueue(redis_server.url, name="sn") as queue:
        assert any("neither an append-only file nor RDB" in m for m in library_log)
        scorer = Recorder(organic_queue=queue)  # not started: its stats read the ledger
        for n in range(3):
            queue.add({"n": n})
            queue.count_accepted()
        assert scorer.stats.organic_unaccounted == 0
        redis_server.restart()  # no persistence: everything is gone
        wait_until(lambda: _answers(queue), "Redis to answer again")
        counters = queue.counters()
        assert (counters.data_losses, counters.lost, counters.accepted) == (1, 3, 0)
        assert any("lost its data" in m and "3 sample(s)" in m for m in library_log)
        assert scorer.stats.organic_unaccounted == 3
        assert queue.counters().data_losses == 1  # reported once


def test_a_redis_that_persists_is_not_warned_about(tmp_path: Path, library_log: list[str]) -> None:
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    try:
        with RedisOrganicQueue(server.url, name="sn") as queue:
            queue.add({"n": 1})
            server.restart()  # kill -9: the append-only file brings it all back
            wait_until(lambda: _answers(queue), "Redis to answer again")
            counters = queue.counters()
            assert (counters.data_losses, counters.size) == (0, 1)
        assert not any("neither an append-only" in m for m in library_log)
        assert not any("lost its data" in m for m in library_log)
    finally:
        server.stop()


def _answers(queue: RedisOrganicQueue) -> bool:
    try:
        queue.size  # noqa: B018 (a round trip)
    except ConnectionError:
        return False
    return True


def test_a_weight_setter_sends_only_while_this_process_holds_the_fenced_role(
    redis_url: str,
) -> None:
    """holds_scorer_role() is the scorer lock checked in Redis under the current fence:
    True while held, False once another acquisition took the lock."""
    import redis

    queue = RedisOrganicQueue(redis_url, name="fenced-setter", lock_period=0.6)
    scorer = Recorder(synth_dataset=Letters("a"), organic_queue=queue, trigger_frequency=0.05)
    try:
        assert not scorer.holds_scorer_role()  # not running
        with scorer:
            wait_until(lambda: scorer.stats.active_scorer, "the scorer to take the lock")
            assert scorer.holds_scorer_role()
            client = redis.Redis.from_url(redis_url)
            try:  # another process takes the role: the lock key now holds its token
                key = "organic-scoring:{fenced-setter}:scorer"
                client.set(key, "someone-else", px=60_000)
                client.incr(key + ":fence")
            finally:
                client.close()
            assert not scorer.holds_scorer_role()
    finally:
        queue.close()


def test_a_token_from_before_a_data_loss_does_not_ack_a_new_lease(
    redis_server: RedisServer,
) -> None:
    # An iteration holds a lease while Redis restarts without persistence; after the
    # restart the queue's ids and hand-out numbers start over. The old iteration's
    # late ack must not settle the lease of a new sample held by another iteration.
    with RedisOrganicQueue(redis_server.url, name="epoch") as queue:
        queue.add({"old": 1})
        _, stale = queue.take()
        redis_server.restart()
        wait_until(lambda: _answers(queue), "Redis to answer again")
        queue.add({"new": 1})
        sample, fresh = queue.take()
        assert sample == {"new": 1}
        queue.ack(stale)  # the old iteration ends
        counters = queue.counters()
        assert (counters.leased, counters.acked) == (1, 0), (stale, fresh)
        queue.ack(fresh)
        assert queue.counters().acked == 1


def test_a_token_of_another_queue_does_not_ack_this_queues_lease(redis_url: str) -> None:
    with (
        RedisOrganicQueue(redis_url, name="left") as left,
        RedisOrganicQueue(redis_url, name="right") as right,
    ):
        left.add({"side": "left"})
        right.add({"side": "right"})
        (_, theirs), (_, mine) = left.take(), right.take()
        with pytest.raises(ValueError, match="another queue"):
            right.ack(theirs)
        assert right.counters().leased == 1
        right.ack(mine)
        left.ack(theirs)
        assert (left.counters().acked, right.counters().acked) == (1, 1)
