"""Every intake on Redis: a Redis outage answers 503 (never 500, never "accepted"
without the request being stored) and the intake recovers by itself.

Parametrised over the transports the installed bittensor has, each served for real on
127.0.0.1 and called by real signed clients; the queue and the nonce store each have
a redis-server of their own, so each can fail alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from organic_scoring.intake import Quota, RedisNonceStore, _gate
from organic_scoring.organic_queue import RedisOrganicQueue
from support.axons import BITTENSOR_WARNINGS
from support.redis_server import RedisServer, running_redis
from support.signed_http import Wallets, wallets  # noqa: F401 (fixture)
from support.transports import TRANSPORTS, intake
from support.waiting import wait_until

pytestmark = [pytest.mark.usefixtures("no_leaks"), BITTENSOR_WARNINGS]


@pytest.fixture
def nonce_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A second redis-server, for the nonce store alone."""
    directory = tmp_path / "nonces"
    directory.mkdir()
    with running_redis(directory) as server:
        yield server


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_queue_outage_answers_503_then_recovers(
    transport: str,
    redis_server: RedisServer,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with (
        RedisOrganicQueue(redis_server.url) as queue,
        intake(transport, wallets, monkeypatch, organic_queue=queue) as driver,
    ):
        client = wallets.client

        async def scenario() -> None:
            assert await driver.send(client, "before") == 200
            redis_server.kill()
            assert await driver.send(client, "during") == 503
            redis_server.start()
            assert await driver.send(client, "after") == 200

        asyncio.run(scenario())
        answers = driver.answers_after(3)
        assert answers == {200: 2, 503: 1}
        stats = driver.scorer.stats
        assert stats.organic_accepted == 2  # the refused request was never accepted
        assert stats.organic_handler_errors == 1
        counters = queue.counters()
        assert counters.added == 1  # "before" went with the old server (no persistence)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_nonce_store_outage_answers_503_then_recovers(
    transport: str,
    nonce_server: RedisServer,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with (
        RedisNonceStore(nonce_server.url) as store,
        intake(transport, wallets, monkeypatch, nonce_store=store) as driver,
    ):
        client = wallets.client

        async def scenario() -> None:
            assert await driver.send(client, "before") == 200
            nonce_server.kill()
            assert await driver.send(client, "during") == 503
            nonce_server.start()
            assert await driver.send(client, "after") == 200
            assert await driver.send_twice(client, "twice") == (200, 401)

        asyncio.run(scenario())
        assert driver.answers_after(5) == {200: 3, 503: 1, 401: 1}
        assert driver.scorer.handled == ["before", "after", "twice"]


def _outage_lines(records: list[logging.LogRecord], store: str) -> list[logging.LogRecord]:
    return [r for r in records if f"{store} failed, answering 503" in r.getMessage()]


@pytest.mark.parametrize("store", ["the nonce store", "the organic queue", "the quota store"])
def test_an_outage_logs_a_line_per_store_not_a_traceback_per_request(
    store: str,
    redis_server: RedisServer,
    nonce_server: RedisServer,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    library_records: list[logging.LogRecord],
    tmp_path: Path,
) -> None:
    redis = pytest.importorskip("redis")
    (tmp_path / "quotas").mkdir()
    with (
        running_redis(tmp_path / "quotas") as quota_server,
        RedisOrganicQueue(redis_server.url) as queue,
        RedisNonceStore(nonce_server.url) as nonces,
        contextlib.closing(redis.Redis.from_url(quota_server.url)) as quota_client,
        intake(
            "epistula",  # on every major
            wallets,
            monkeypatch,
            organic_queue=queue,
            nonce_store=nonces,
            quota=Quota(rate=100, burst=100, redis=quota_client),
        ) as driver,
    ):
        failing = {
            "the nonce store": nonce_server,
            "the organic queue": redis_server,
            "the quota store": quota_server,
        }[store]
        client = wallets.client

        async def scenario() -> None:
            assert await driver.send(client, "before") == 200
            failing.kill()
            for n in range(5):
                assert await driver.send(client, f"during {n}") == 503
            lines = _outage_lines(library_records, store)
            assert len(lines) == 1, [r.getMessage() for r in lines]
            # Past the interval, the next refusal logs again with what went unlogged.
            monkeypatch.setattr(_gate, "_OUTAGE_LOG_INTERVAL", 0.0)
            assert await driver.send(client, "later") == 503
            lines = _outage_lines(library_records, store)
            assert len(lines) == 2
            assert "4 more refused since the last line" in lines[1].getMessage()
            failing.start()
            assert await driver.send(client, "after") == 200

        asyncio.run(scenario())
    lines = _outage_lines(library_records, store)
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
    messages = [r.getMessage() for r in library_records]
    recovered = [m for m in messages if f"{store} answers again" in m]
    assert len(recovered) == 1
    assert "after 6 request(s) refused" in recovered[0]
    assert not any(r.exc_info for r in library_records if r.levelno >= logging.WARNING)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_hung_nonce_store_holds_a_bounded_number_of_requests(
    transport: str,
    nonce_server: RedisServer,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # max_concurrent + max_backlog requests may wait on a nonce store that does not
    # answer (SIGSTOP); the others are answered 429 at once, without reaching it.
    with (
        RedisNonceStore(nonce_server.url) as store,
        intake(
            transport, wallets, monkeypatch, nonce_store=store, max_concurrent=1, max_backlog=1
        ) as driver,
    ):
        client = wallets.client
        process = nonce_server.process
        assert process is not None

        async def scenario() -> list[int]:
            assert await driver.send(client, "before") == 200
            process.send_signal(signal.SIGSTOP)
            try:
                sent = [asyncio.ensure_future(driver.send(client, f"n{n}")) for n in range(6)]
                done, _ = await asyncio.wait(sent, timeout=3, return_when=asyncio.FIRST_COMPLETED)
                quick = [task.result() for task in done]
                # The first answers came before the store answered anything.
                assert quick
                assert set(quick) == {429}
            finally:
                process.send_signal(signal.SIGCONT)
            return sorted(await asyncio.gather(*sent))

        statuses = asyncio.run(scenario())
    assert statuses == [200, 200, 429, 429, 429, 429]
    assert driver.scorer.handled[0] == "before"
    assert len(driver.scorer.handled) == 3  # the two the store remembered, once resumed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_hung_queue_answers_503_within_the_deadline_and_keeps_nothing(
    transport: str,
    redis_server: RedisServer,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Redis paused (SIGSTOP) while an add is on its way: the intake answers 503 within
    # the queue's deadline, and the add that runs once Redis resumes is taken back
    # (or refused), so the client's retry is the only sample scored.
    with (
        RedisOrganicQueue.from_url(redis_server.url, timeout=0.5) as queue,
        intake(transport, wallets, monkeypatch, organic_queue=queue) as driver,
    ):
        client = wallets.client

        async def scenario() -> float:
            assert await driver.send(client, "before") == 200
            with redis_server.paused():
                began = asyncio.get_running_loop().time()
                assert await driver.send(client, "during") == 503
                took = asyncio.get_running_loop().time() - began
            await asyncio.sleep(1.0)  # past the fail-fast second after a timeout
            assert await driver.send(client, "retried") == 200
            return took

        took = asyncio.run(scenario())
        assert took < 2.0, took
        wait_until(lambda: not queue._withdrawals, "the withdrawal to reach Redis")
        counters = queue.counters()
        assert (counters.added, counters.size, counters.late) == (2, 2, 0)
        assert sorted(drain_texts(queue)) == ["before", "retried"]


def drain_texts(queue: RedisOrganicQueue) -> list[str]:
    out = []
    while (taken := queue.take()) is not None:
        out.append(taken[0]["text"])
        queue.ack(taken[1])
    return out
