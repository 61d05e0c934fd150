"""A Redis that hangs (SIGSTOP) rather than one that is down: every call is bounded by
the deadline, an add that arrives late is taken back or counted, retries are stored
once, and the scorer goes on with synthetic samples (issue 22, finding 3)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from organic_scoring.errors import RedisUnavailable
from organic_scoring.intake import RedisNonceStore
from organic_scoring.organic_queue import RedisOrganicQueue
from organic_scoring.organic_queue._base import request_key
from support.redis_server import RedisServer
from support.scorers import Letters, Recorder
from support.waiting import wait_until

HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


def test_an_add_by_request_key_is_stored_once(redis_url: str) -> None:
    with RedisOrganicQueue.from_url(redis_url, name="once") as queue:
        queue.add({"n": 1}, key=f"{HOTKEY}:1")
        queue.add({"n": 1}, key=f"{HOTKEY}:1")  # the same request, retried
        queue.add({"n": 1}, key=f"{HOTKEY}:2")
        token = request_key.set(f"{HOTKEY}:3")  # what the intake sets for a request
        try:
            asyncio.run(queue.aadd({"n": 3}))
            asyncio.run(queue.aadd({"n": 3}))
        finally:
            request_key.reset(token)
        queue.add({"n": 4})
        queue.add({"n": 4})  # no key: two samples
        counters = queue.counters()
        assert (counters.added, counters.size) == (5, 5)


def test_a_retried_request_is_not_taken_for_a_forgotten_await(
    redis_url: str, library_log: list[str]
) -> None:
    """The handler did add the retry; Redis stored it once already. Neither is a
    handler that returned without adding (organic_not_queued, the forgotten-await
    message)."""
    with RedisOrganicQueue.from_url(redis_url, name="retried") as queue:
        scorer = Recorder(organic_queue=queue)

        async def request() -> None:
            request_key.set(f"{HOTKEY}:7")  # in this task's context, as the intake does
            await scorer.receive_organic({"n": 7})

        asyncio.run(request())
        asyncio.run(request())  # the client's retry of the same request
        assert (scorer.stats.organic_accepted, queue.size) == (2, 1)
        assert scorer.stats.organic_not_queued == 0
        assert not [m for m in library_log if "_on_organic_entry" in m]


def test_every_awaited_call_answers_within_the_deadline_while_redis_hangs(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    queue = RedisOrganicQueue(client, name="stall", timeout=0.5)
    store = RedisNonceStore(client, timeout=0.5)

    async def scenario() -> list[float]:
        await queue.asize()  # connected before the stall
        await store.acheck_and_store(HOTKEY, 1)
        took = []
        calls = [
            lambda: queue.aadd({"n": 1}),
            queue.atake,
            queue.asize,
            queue.acount_accepted,
            lambda: store.acheck_and_store(HOTKEY, 2),
        ]
        with redis_server.paused():
            for call in calls:
                began = time.monotonic()
                with pytest.raises(RedisUnavailable, match=r"no answer within 0\.5s"):
                    await call()
                took.append(time.monotonic() - began)
        await queue.aclose()
        await store.aclose()
        return took

    try:
        took = asyncio.run(scenario())
    finally:
        client.close()
    assert max(took) < 1.5, took


def test_an_add_that_reaches_redis_after_its_answer_is_taken_back(
    redis_server: RedisServer,
) -> None:
    # The intake answered 503 because Redis stalled past the deadline; the add was on
    # its way and runs when Redis resumes. It must not be scored silently.
    queue = RedisOrganicQueue.from_url(redis_server.url, name="late", timeout=0.3)

    async def add_during_a_stall() -> None:
        await queue.asize()
        with redis_server.paused():
            with pytest.raises(RedisUnavailable):
                await queue.aadd({"n": 1}, key=f"{HOTKEY}:7")
            await asyncio.sleep(0.2)
        await queue.adetach()

    try:
        asyncio.run(add_during_a_stall())
        wait_until(lambda: not queue._withdrawals, "the withdrawal to reach Redis")
        counters = queue.counters()
        assert (counters.size, counters.added, counters.leased) == (0, 0, 0)
        with redis.Redis.from_url(redis_server.url) as client:
            marker = client.get(f"organic-scoring:{{late}}:request:{HOTKEY}:7")
        # The add ran first (taken back, counted) or not at all (refused when it comes).
        assert (counters.withdrawn, marker) in ((1, b"counted"), (0, b"withdrawn"))
        queue.add({"n": 1}, key=f"{HOTKEY}:7")  # arriving after the withdrawal
        counters = queue.counters()
        assert (counters.size, counters.withdrawn) == (0, 1)
    finally:
        queue.close()


def test_a_withdrawal_of_a_sample_already_handed_out_is_counted_late(redis_url: str) -> None:
    with RedisOrganicQueue.from_url(redis_url, name="handed") as queue:
        keys = [*queue._keys, queue._request_prefix + "k"]
        queue.add({"n": 1}, key="k")
        queue.take()
        assert queue._scripts["withdraw"](queue._link, keys, [60_000]) == 2
        counters = queue.counters()
        assert (counters.late, counters.withdrawn, counters.leased) == (1, 0, 1)


def test_the_scorer_falls_back_to_synthetic_samples_within_a_second(
    redis_server: RedisServer,
) -> None:
    queue = RedisOrganicQueue.from_url(redis_server.url, name="fallback", one_scorer=False)
    scorer = Recorder(
        organic_queue=queue,
        synth_dataset=Letters("s"),
        trigger_frequency=0.05,
        trigger_frequency_min=0.05,
    )
    try:
        with scorer:
            wait_until(lambda: len(scorer.samples) >= 2, "synthetic iterations")
            with redis_server.paused():
                stalled = time.monotonic()
                seen = len(scorer.samples)
                wait_until(lambda: len(scorer.samples) > seen, "an iteration during the stall")
                first = time.monotonic() - stalled
                assert scorer.samples[-1] == {"synthetic": "s"}
    finally:
        queue.close()
    assert first < 1.6, first


def test_a_late_sample_scored_without_an_accepted_request_keeps_the_ledger_at_zero(
    redis_url: str,
) -> None:
    # The intake answered 503, so the request was never counted as accepted; its add
    # reached Redis and was handed out (and scored) before the withdrawal came. The
    # ledger counts it as late: organic_unaccounted must not go below 0 for it.
    with RedisOrganicQueue.from_url(redis_url, name="ledger") as queue:
        scorer = Recorder(organic_queue=queue)  # not started: its stats read the ledger
        queue.add({"n": 0})
        queue.count_accepted()  # one request accepted and stored as usual
        keys = [*queue._keys, queue._request_prefix + f"{HOTKEY}:9"]
        queue.add({"n": 1}, key=f"{HOTKEY}:9")  # the 503'd request's add
        while (taken := queue.take()) is not None:
            queue.ack(taken[1])
        assert queue._scripts["withdraw"](queue._link, keys, [60_000]) == 2
        assert queue.counters().late == 1
        assert scorer.stats.organic_unaccounted == 0


def test_a_handler_that_adds_several_samples_for_one_request_stores_each(
    redis_url: str,
) -> None:
    # The intake sets the request's key for _on_organic_entry; a handler that queues
    # one sample per item of a batch request must not lose all but the first.
    with RedisOrganicQueue.from_url(redis_url, name="batch") as queue:

        async def handler() -> None:
            request_key.set(f"{HOTKEY}:11")  # as the intake does for the request
            for item in ("a", "b", "c"):
                await queue.aadd({"item": item})
            await queue.aadd({"item": "a"})  # the same sample again: a retry, once

        asyncio.run(handler())
        assert (queue.counters().added, queue.size) == (3, 3)


def test_a_queue_closed_with_withdrawals_pending_says_so(
    redis_server: RedisServer, library_log: list[str]
) -> None:
    # Closed while Redis still hangs: the withdrawal of a 503'd add cannot be made, and
    # the add may still land and be scored uncounted. That must not pass in silence.
    queue = RedisOrganicQueue.from_url(redis_server.url, name="closing", timeout=0.3)

    async def add_during_a_stall() -> None:
        await queue.asize()
        redis_server.pause()
        with pytest.raises(RedisUnavailable):
            await queue.aadd({"n": 1}, key=f"{HOTKEY}:12")
        await queue.adetach()

    try:
        asyncio.run(add_during_a_stall())
        queue.close()
    finally:
        redis_server.resume()
    assert any("not withdrawn" in m and "1 sample" in m for m in library_log), library_log
