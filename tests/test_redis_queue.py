"""RedisOrganicQueue beyond the shared contract: leases, acknowledgements, processes, outages.

The guarantees every organic queue gives run against this one in test_queue_contract.py,
on a real redis-server. Here each test has a server of its own (the ``redis_server``
fixture), so it can stop, kill and restart it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from organic_scoring import OrganicScoringError
from organic_scoring.errors import RedisUnavailable, SampleDecodeError, SampleUnreadable
from organic_scoring.intake import RedisNonceStore
from organic_scoring.organic_queue import LeasedQueueCounters, QueueCounters, RedisOrganicQueue
from organic_scoring.organic_queue._redis_link import masked
from support.loopback import free_port
from support.processes import finish, stop
from support.queue_contract import assert_no_loss_or_duplication, drain
from support.queue_workers import spawn, start_together
from support.redis_server import RedisServer, shared_redis
from support.waiting import WAIT, Counter, wait_until


class Turn(BaseModel):
    """A chat turn, nested inside Chat."""

    role: str
    content: str


class Chat(BaseModel):
    """An organic request as a validator's intake might queue it."""

    turns: list[Turn]
    temperature: float | None = None


@pytest.fixture
def queues(redis_url: str) -> Iterator[Any]:
    """Make queues on the test's server (name "q" unless asked otherwise); close them after."""
    made: list[RedisOrganicQueue] = []

    def make(**kwargs: Any) -> RedisOrganicQueue:
        kwargs.setdefault("name", "q")
        queue = RedisOrganicQueue(redis_url, **kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


def assert_balanced(counters: LeasedQueueCounters) -> None:
    """The rules every snapshot of a leasing queue obeys."""
    c = counters
    assert c.added == c.dropped + c.size + c.leased + c.acked, c
    assert c.sampled == c.acked + c.leased + c.redelivered, c
    assert c.acked == c.scored + c.failed, c


# -- storing -------------------------------------------------------------------------


def test_models_and_json_values_come_back_as_they_went_in(queues: Any) -> None:
    queue = queues()
    chat = Chat(turns=[Turn(role="user", content="héllo ✓")], temperature=0.5)
    value = {"prompt": "x", "n": [1, 2.5, None, True], "nested": {"a": []}}
    queue.add(chat)
    queue.add(value)
    out = drain(queue)
    assert sorted(out, key=lambda item: isinstance(item, dict)) == [chat, value]
    assert isinstance(next(item for item in out if not isinstance(item, dict)), Chat)


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ((1, 2), TypeError, "store a list"),
        ({"x": {1, 2}}, TypeError, "set"),
        ({1: "a"}, TypeError, "key"),
        (float("nan"), ValueError, "NaN"),
        (object(), TypeError, "stored samples are pydantic models and JSON values"),
    ],
)
def test_what_cannot_come_back_is_refused(
    queues: Any, bad: Any, error: type[Exception], words: str
) -> None:
    queue = queues()
    with pytest.raises(error, match=words):
        queue.add(bad)
    assert queue.counters().added == 0


def test_an_entry_that_no_longer_loads_is_reported_and_settled(queues: Any, redis_url: str) -> None:
    queue = queues()
    queue.add({"fine": True})
    with redis.Redis.from_url(redis_url) as client:  # a model class that has since gone away
        client.hset("organic-scoring:{q}:items", "1", b"mgone.module:Vanished\n{}")
    with pytest.raises(SampleDecodeError, match=r"gone\.module:Vanished") as caught:
        queue.take()
    assert isinstance(caught.value, SampleUnreadable)
    assert caught.value.body == "{}"
    counters = queue.counters()
    assert (counters.size, counters.leased, counters.acked, counters.failed) == (0, 0, 1, 1)
    assert_balanced(counters)


# -- leases and acknowledgements -------------------------------------------------------


def test_ack_deletes_the_lease_and_the_sample(queues: Any) -> None:
    queue = queues()
    queue.add({"n": 1})
    queue.add({"n": 2})
    taken, token = queue.take()
    assert queue.counters() == LeasedQueueCounters(
        added=2, sampled=1, dropped=0, size=1, max_size=10_000, leased=1, acked=0, redelivered=0
    )
    queue.ack(token)
    counters = queue.counters()
    assert (counters.leased, counters.acked, counters.size) == (0, 1, 1)
    assert (counters.scored, counters.failed) == (1, 0)
    queue.ack(queue.take()[1], failed=True)
    counters = queue.counters()
    assert (counters.scored, counters.failed, counters.acked) == (1, 1, 2)
    queue.ack(token)  # a second ack of the same lease: nothing left to do
    queue.ack("999:999:1@q")  # never handed out
    for not_a_token in (taken, None, "7", "999:999"):
        with pytest.raises(TypeError, match="lease token"):
            queue.ack(not_a_token)
    assert queue.counters() == counters
    assert_balanced(counters)


def test_any_process_holding_the_token_can_ack(queues: Any) -> None:
    first, second = queues(), queues()
    first.add({"n": 1})
    _, token = first.take()
    second.ack(token)
    assert (first.counters().leased, first.counters().acked) == (0, 1)


def test_a_lease_is_acked_by_its_token_not_by_its_sample(queues: Any, redis_url: str) -> None:
    # Small ints are one object in Python: two hand-outs of 7 are the same object, and
    # only their tokens say which iteration ended.
    queue = queues()
    queue.add(7)
    queue.add(7)
    (a, first), (b, second) = queue.take(), queue.take()
    assert a is b
    assert first != second
    queue.ack(second)
    with redis.Redis.from_url(redis_url) as client:
        assert client.zrange("organic-scoring:{q}:leases", 0, -1) == [
            first.removesuffix("@q").encode()
        ]
    queue.ack(first)
    assert (queue.counters().acked, queue.counters().leased) == (2, 0)


def test_an_expired_lease_puts_the_sample_back(
    queues: Any, caplog: pytest.LogCaptureFixture
) -> None:
    short = queues(lease=0.2)  # its hand-outs run out quickly
    steady = queues()  # the same queue, leasing for 30 s
    short.add({"n": 1})
    first, first_lease = short.take()
    assert steady.is_empty()
    assert steady.counters().leased == 1
    wait_until(lambda: steady.size == 1, "the lease to run out")  # counted as waiting at once
    assert not steady.is_empty()
    counters = steady.counters()
    assert (counters.leased, counters.redelivered, counters.size) == (0, 1, 1)
    assert_balanced(counters)

    with caplog.at_level(logging.DEBUG):
        short.ack(first_lease)  # too late: the sample is waiting again
    assert "after its 0.2s lease ran out" in caplog.text
    assert steady.counters() == counters

    second, second_lease = steady.take()
    assert second == first
    assert second_lease != first_lease
    steady.ack(second_lease)
    counters = steady.counters()
    assert counters == LeasedQueueCounters(
        added=1,
        sampled=2,
        dropped=0,
        size=0,
        max_size=10_000,
        leased=0,
        acked=1,
        redelivered=1,
        scored=1,
    )


def test_a_redelivered_sample_respects_the_bound(queues: Any) -> None:
    short = queues(lease=0.2, max_size=2)
    steady = queues(max_size=2)
    short.add("a")
    _, taken = short.take()
    steady.add("b")
    steady.add("c")
    wait_until(lambda: steady.counters().redelivered == 1, "the lease to run out")
    # "a" came back as the oldest of three waiting samples, and the bound dropped it.
    counters = steady.counters()
    assert (counters.size, counters.dropped, counters.leased) == (2, 1, 0)
    assert_balanced(counters)
    assert sorted(drain(steady)) == ["b", "c"]
    short.ack(taken)
    assert steady.counters().acked == 0


def test_counters_compare_with_the_plain_snapshot(queues: Any) -> None:
    queue = queues(max_size=3)
    for i in range(5):
        queue.add(i)
    queue.sample()
    snapshot = queue.counters()
    plain = QueueCounters(added=5, sampled=1, dropped=2, size=2, max_size=3)
    assert snapshot == plain
    assert hash(snapshot) == hash(plain)
    assert snapshot != LeasedQueueCounters(
        added=5, sampled=1, dropped=2, size=2, max_size=3, leased=0, acked=1
    )
    c = queue.counters()
    assert (c.leased, c.acked, c.redelivered) == (1, 0, 0)
    assert "leased=1" in repr(queue)


@settings(max_examples=60, deadline=None)
@given(
    max_size=st.integers(min_value=1, max_value=6),
    ops=st.lists(st.sampled_from(["add", "sample", "ack"]), max_size=60),
)
def test_counters_balance_after_any_operations(max_size: int, ops: list[str]) -> None:
    name = f"balance-{uuid.uuid4().hex}"
    with RedisOrganicQueue(shared_redis().url, name=name, max_size=max_size) as queue:
        held: list[Any] = []
        waiting: set[int] = set()
        acked = 0
        for n, op in enumerate(ops):
            if op == "add":
                queue.add({"n": n})
                waiting.add(n)
                if len(waiting) > max_size:
                    waiting.remove(min(waiting))
            elif op == "sample":
                taken = queue.take()
                assert (taken is None) == (not waiting)
                if taken is not None:
                    waiting.remove(taken[0]["n"])
                    held.append(taken[1])
            elif held:
                queue.ack(held.pop(0))
                acked += 1
            counters = queue.counters()
            assert_balanced(counters)
            assert (counters.size, counters.leased, counters.acked) == (
                len(waiting),
                len(held),
                acked,
            )


def test_scorers_sharing_a_queue_contend_for_one_lock(queues: Any) -> None:
    first, second, other = queues(), queues(), queues(name="other")
    lock = first.scorer_lock()
    assert lock is not None
    assert lock.period == 5.0
    assert lock.acquire()
    assert not second.scorer_lock().acquire()  # type: ignore[union-attr]
    assert other.scorer_lock().acquire()  # type: ignore[union-attr]
    assert queues(one_scorer=False).scorer_lock() is None
    assert queues(lock_period=0.5).scorer_lock().period == 0.5  # type: ignore[union-attr]


# -- processes -----------------------------------------------------------------------


def test_four_processes_add_while_two_sample(redis_url: str, tmp_path: Path) -> None:
    per_adder = 1_000
    adders = [
        spawn("add", redis_url, "fleet", worker=w, count=per_adder, max_size=64) for w in range(4)
    ]
    outs = [tmp_path / f"sampler-{k}.json" for k in range(2)]
    samplers = [spawn("sample", redis_url, "fleet", out=out, max_size=64) for out in outs]
    try:
        start_together(adders + samplers)
        for adder in adders:
            assert adder.wait(6 * WAIT) == 0
        for sampler in samplers:
            finish(sampler)
    finally:
        stop(adders + samplers)
    sampled = [tuple(item) for out in outs for item in json.loads(out.read_text())]
    assert len(sampled) > 0
    everything = {(w, i) for w in range(4) for i in range(per_adder)}
    with RedisOrganicQueue(redis_url, name="fleet", max_size=64) as queue:
        assert queue.counters().acked == len(sampled)  # each sampler acked what it took
        assert_no_loss_or_duplication(queue, sampled, everything)  # type: ignore[arg-type]
        counters = queue.counters()
        assert counters.redelivered == 0
        assert_balanced(counters)


def test_samples_held_by_a_killed_process_come_back(redis_url: str, queues: Any) -> None:
    queue = queues(name="crash")
    for i in range(10):
        queue.add(i)
    holder = spawn("hold", redis_url, "crash", count=4, lease=1.0)
    try:
        start_together([holder])
        assert holder.stdout is not None
        held = json.loads(holder.stdout.readline())
        counters = queue.counters()
        assert (counters.leased, counters.size) == (4, 6)
    finally:
        stop([holder])  # SIGKILL: no goodbye, no ack
    wait_until(lambda: queue.size == 10, "the killed process's leases to run out")
    counters = queue.counters()
    assert (counters.leased, counters.redelivered, counters.sampled) == (0, 4, 4)
    assert_balanced(counters)
    out = drain(queue)
    assert sorted(out) == list(range(10))
    assert set(held) <= set(out)


# -- failures ------------------------------------------------------------------------


def test_an_unreachable_server_is_named_with_its_password_masked() -> None:
    url = f"redis://scorer:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailable) as caught:
        RedisOrganicQueue(url)
    message = str(caught.value)
    assert f"redis://scorer:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert "hunter2" not in message
    assert "hunter2" not in caught.value.url
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value, OrganicScoringError)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:1/2", "redis://:***@host:1/2"),
        ("redis://user:pw@host", "redis://user:***@host"),
        ("rediss://user@host", "rediss://user@host"),
        ("redis://host/0?password=pw&db=1", "redis://host/0?password=***&db=1"),
        ("unix:///run/redis.sock?password=pw", "unix:///run/redis.sock?password=***"),
    ],
)
def test_masked_urls(url: str, shown: str) -> None:
    assert masked(url) == shown


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"url": "http://127.0.0.1:1/"}, "url must be a Redis URL"),
        ({"url": 6379}, "url must be a Redis URL"),
        ({"name": ""}, "name"),
        ({"name": "a{b}"}, "name"),
        ({"name": 3}, "name"),
        ({"lease": 0}, "lease"),
        ({"lease": float("inf")}, "lease"),
        ({"lease": "30"}, "lease"),
        ({"lease": True}, "lease"),
        ({"max_size": 0}, "max_size"),
        ({"one_scorer": 1}, "one_scorer"),
        ({"lock_period": 0}, "lock_period"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, Any], words: str) -> None:
    url = kwargs.pop("url", "redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match=words):
        RedisOrganicQueue.from_url(url, **kwargs)


def test_a_client_is_used_as_given_and_left_open(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        with RedisOrganicQueue(client, name="given") as queue:
            queue.add({"n": 1})
        assert client.zcard("organic-scoring:{given}:waiting") == 1  # still usable
    finally:
        client.close()
    with pytest.raises(TypeError, match="redis-py client"):
        RedisOrganicQueue(object())


def test_a_client_without_a_socket_timeout_is_warned_about(
    redis_url: str, library_log: list[str]
) -> None:
    with redis.Redis.from_url(redis_url) as client:
        RedisOrganicQueue(client, name="forever").close()
    assert any("has no socket_timeout" in line for line in library_log), library_log
    library_log.clear()
    with redis.Redis.from_url(redis_url, socket_timeout=1.0) as client:
        RedisOrganicQueue(client, name="bounded").close()
    assert not any("socket_timeout" in line for line in library_log), library_log


def test_scripts_are_registered_once_per_class(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        first = RedisOrganicQueue(client, name="a")
        second = RedisOrganicQueue(client, name="b")
        assert first._scripts is second._scripts
        client.script_flush()  # a restarted server: the script comes back with one call
        first.add(1)
        assert first.size == 1
        first.close()
        second.close()


def test_the_awaitable_forms_use_an_async_client_per_loop(redis_url: str) -> None:
    import redis.asyncio

    async def scenario(queue: RedisOrganicQueue) -> None:
        try:
            await queue.aadd({"n": 1})
            await queue.aadd({"n": 2})
            assert await queue.asize() == 2
            taken = await queue.atake()
            assert taken is not None
            await queue.arenew([taken[1]])
            await queue.aack(taken[1])
            await queue.acount_accepted()
            twin = queue._link._aclients[asyncio.get_running_loop()][0]
            assert isinstance(twin, redis.asyncio.Redis)
            counters = queue.counters()
            assert (counters.added, counters.acked, counters.accepted) == (2, 1, 1)
        finally:
            await queue.aclose()
        assert not queue._link._aclients

    with redis.Redis.from_url(redis_url) as client:
        queue = RedisOrganicQueue(client, name="async")
        asyncio.run(scenario(queue))
        # A loop that ended without closing its client: close() cannot reach it, so
        # the engine calls adetach() before its loop ends.
        other = RedisOrganicQueue(client, name="async")

        async def detach() -> None:
            assert await other.asize() == 1
            await other.adetach()

        asyncio.run(detach())
        other.close()


def test_without_the_redis_package_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from organic_scoring.organic_queue import RedisOrganicQueue\n"
        "try:\n"
        "    RedisOrganicQueue('redis://127.0.0.1:1/0')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'organic-scoring[redis]'" in out.stdout


def test_an_outage_raises_and_the_queue_recovers_by_itself(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=True)  # a restart keeps what was stored
    server.start()
    try:
        with RedisOrganicQueue(server.url) as queue:
            for i in range(3):
                queue.add({"n": i})
            _, taken = queue.take()
            server.kill()
            for call in (lambda: queue.add({"n": 9}), queue.sample, lambda: queue.size):
                with pytest.raises(RedisUnavailable, match="RedisOrganicQueue"):
                    call()
            with pytest.raises(RedisUnavailable):
                queue.ack(taken)  # the lease stays with us, so the ack can be repeated
            assert "unreachable" in repr(queue)
            server.start()  # same port, empty script cache, data from the append-only file
            queue.ack(taken)
            counters = queue.counters()
            assert (counters.added, counters.acked, counters.size, counters.leased) == (3, 1, 2, 0)
            queue.add({"n": 3})
            assert len(drain(queue)) == 3
    finally:
        server.stop()


def test_an_outage_on_the_worker_thread_path_raises_redis_unavailable(
    redis_server: RedisServer,
) -> None:
    """A client with no async twin (a BlockingConnectionPool here, a Sentinel's
    elsewhere) runs the awaitable forms on a worker thread; an outage there is still
    RedisUnavailable, which the intake answers 503 and the scorer falls back from."""
    pool = redis.BlockingConnectionPool.from_url(redis_server.url, socket_timeout=1.0)
    client = redis.Redis(connection_pool=pool)

    async def scenario(queue: RedisOrganicQueue, store: RedisNonceStore) -> list[Any]:
        await queue.aadd({"n": 1})
        assert queue._link._aclients[asyncio.get_running_loop()][0] is None  # no twin
        redis_server.kill()
        calls = [
            lambda: queue.aadd({"n": 2}),
            queue.atake,
            lambda: queue.asize(),
            queue.acount_accepted,
            lambda: store.acheck_and_store("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", 1),
        ]
        raised = []
        for call in calls:
            with pytest.raises(RedisUnavailable) as caught:
                await call()
            raised.append(caught.value)
        return raised

    try:
        queue = RedisOrganicQueue(client, name="threaded")
        store = RedisNonceStore(client)
        try:
            raised = asyncio.run(scenario(queue, store))
        finally:
            queue.close()
        assert all(redis_server.url in str(exc) for exc in raised)
    finally:
        client.close()


def test_the_worker_thread_path_answers_within_the_deadline(redis_server: RedisServer) -> None:
    """A Redis that hangs: the awaitable forms answer at the queue's deadline (0.5 s),
    not at the client's own socket timeout (5 s here)."""
    pool = redis.BlockingConnectionPool.from_url(redis_server.url, socket_timeout=5.0)
    client = redis.Redis(connection_pool=pool)

    async def scenario(queue: RedisOrganicQueue) -> float:
        await queue.asize()
        with redis_server.paused():
            began = time.monotonic()
            with pytest.raises(RedisUnavailable, match=r"no answer within 0\.5s"):
                await queue.asize()
            return time.monotonic() - began

    try:
        with RedisOrganicQueue(client, name="hangs", timeout=0.5) as queue:
            assert asyncio.run(scenario(queue)) < 5.0
    finally:
        client.close()


def test_a_closed_queue_refuses_calls(queues: Any) -> None:
    queue = queues()
    queue.close()
    queue.close()
    assert queue.closed
    for call in (lambda: queue.add(1), queue.sample, lambda: queue.size, queue.counters):
        with pytest.raises(ValueError, match="closed"):
            call()
    assert "closed" in repr(queue)


# -- listeners -----------------------------------------------------------------------


@pytest.mark.usefixtures("no_leaks")
def test_listeners_hear_the_adds_of_other_processes(queues: Any) -> None:
    scorer, intake = queues(), queues()
    heard = Counter()
    scorer.add_listener(heard.bump)
    wait_until(lambda: _following(scorer), "the scorer to follow the queue's adds")
    intake.add({"n": 1})
    heard.wait_for(1)
    scorer.add({"n": 2})  # its own add: heard once, at once, not again from the channel
    assert heard.value == 2
    intake.add({"n": 3})
    heard.wait_for(3)
    assert heard.value == 3
    scorer.remove_listener(heard.bump)  # the last listener: the thread stops
    assert not any(t.name.startswith("organic-scoring-queue") for t in threading.enumerate())
    intake.add({"n": 4})
    assert heard.value == 3


@pytest.mark.usefixtures("no_leaks")
def test_following_the_adds_survives_an_outage(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        with RedisOrganicQueue(server.url) as scorer, RedisOrganicQueue(server.url) as intake:
            heard = Counter()
            scorer.add_listener(heard.bump)
            wait_until(lambda: _following(scorer), "the scorer to follow the queue's adds")
            server.restart()
            wait_until(lambda: _following(scorer), "the scorer to follow the adds again", 3 * WAIT)
            intake.add({"n": 1})
            heard.wait_for(1)
        # closing the queue stopped its thread (no_leaks checks)
    finally:
        server.stop()


def _following(queue: RedisOrganicQueue) -> bool:
    """True when the server counts a subscriber on the queue's channel."""
    with redis.Redis.from_url(queue.url) as client:
        counts = dict(client.pubsub_numsub(f"organic-scoring:{{{queue.name}}}:added"))
    return bool(counts and next(iter(counts.values())) > 0)


def test_a_queue_closed_by_a_with_block_inside_a_coroutine_leaks_no_connection(
    redis_url: str,
) -> None:
    # close() (here from __exit__) runs on the loop's own thread, so it cannot await
    # the async client's close; asyncio.run then cancels what it scheduled. The client
    # must be closed all the same (pytest turns the unclosed-connection
    # ResourceWarning into an error).
    async def main() -> None:
        with RedisOrganicQueue.from_url(redis_url, name="inside") as queue:
            await queue.aadd({"n": 1})
            assert await queue.asize() == 1
        with RedisNonceStore.from_url(redis_url) as store:
            assert await store.acheck_and_store("hotkey", 1)

    asyncio.run(main())
    gc.collect()
