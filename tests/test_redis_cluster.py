"""The fleet's Redis pieces on a local three-node Redis Cluster: the queue (its keys
share a hash tag, so every script touches one slot), the nonce store, the scorer lock
with its fence, the ledger, and a scorer running on them; sync and async clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from organic_scoring.intake import RedisNonceStore
from organic_scoring.organic_queue import RedisOrganicQueue
from support.redis_cluster import running_cluster
from support.scorers import Letters, Recorder
from support.waiting import wait_until

HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with running_cluster() as nodes:
        client = RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes])
        try:
            yield client
        finally:
            client.close()


@pytest.mark.parametrize("name", ["sn1", "sn2", "another"])  # names hashing to several slots
def test_the_queue_works_on_a_cluster(cluster: RedisCluster, name: str) -> None:
    with RedisOrganicQueue(cluster, name=name, lease=30.0, max_deliveries=1) as queue:
        queue.add({"n": 1}, key=f"{HOTKEY}:1")
        queue.add({"n": 1}, key=f"{HOTKEY}:1")
        queue.add({"n": 2})
        queue.count_accepted()
        sample, token = queue.take()
        queue.renew([token])
        queue.ack(token)
        counters = queue.counters()
        assert (counters.added, counters.acked, counters.size, counters.accepted) == (2, 1, 1, 1)
        slots = {cluster.keyslot(key) for key in queue._keys}
        assert len(slots) == 1
        assert sample in ({"n": 1}, {"n": 2})


def test_the_awaitable_forms_work_on_a_cluster(cluster: RedisCluster) -> None:
    queue = RedisOrganicQueue(cluster, name="async-sn")
    store = RedisNonceStore(cluster, namespace="async-sn")

    async def scenario() -> None:
        try:
            await queue.aadd({"n": 1})
            assert await queue.asize() == 1
            taken = await queue.atake()
            assert taken is not None
            await queue.aack(taken[1])
            await queue.acount_accepted()
            assert await store.acheck_and_store(HOTKEY, 1)
            assert not await store.acheck_and_store(HOTKEY, 1)
            twin = queue._link._aclients[asyncio.get_running_loop()][0]
            assert isinstance(twin, redis.asyncio.RedisCluster)
        finally:
            await queue.aclose()
            await store.aclose()

    asyncio.run(scenario())
    with RedisOrganicQueue(cluster, name="async-sn") as again:
        counters = again.counters()
        assert (counters.acked, counters.accepted) == (1, 1)


def test_the_nonce_store_works_on_a_cluster(cluster: RedisCluster) -> None:
    with RedisNonceStore(cluster, namespace="sync-sn") as store:
        for nonce in range(20):  # keys on every node
            assert store.check_and_store(HOTKEY, nonce)
            assert not store.check_and_store(HOTKEY, nonce)


def test_the_fenced_scorer_lock_works_on_a_cluster(cluster: RedisCluster) -> None:
    with RedisOrganicQueue(cluster, name="lock-sn", lock_period=1.0) as queue:
        first, second = queue.scorer_lock(), queue.scorer_lock()
        assert first is not None
        assert second is not None
        assert first.acquire()
        assert not second.acquire()
        fence = first.fence
        assert fence is not None
        assert first.check(fence)
        assert first.holder() == first.token
        first.release()
        assert second.acquire()
        assert not first.check(fence)
        assert second.fence == fence + 1
        second.release()


def test_a_scorer_runs_on_a_cluster(cluster: RedisCluster) -> None:
    queue = RedisOrganicQueue(cluster, name="scorer-sn", lock_period=1.0)
    scorer = Recorder(organic_queue=queue, synth_dataset=Letters("s"), trigger_frequency=0.05)
    try:
        with scorer:
            wait_until(scorer.holds_scorer_role, "the scorer role")
            for n in range(5):
                queue.add({"n": n})
                queue.count_accepted()
            wait_until(lambda: queue.counters().scored == 5, "the samples to be scored")
            assert scorer.weights_set
        assert scorer.stats.organic_unaccounted == 0
    finally:
        queue.close()
