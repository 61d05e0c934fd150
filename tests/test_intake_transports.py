"""The same scorer behaves the same through every transport the installed bittensor has:
statuses, what the hooks see, priority order, replay protection, accounting.

One suite, parametrised over the axon (9/10), btauth/1 (11) and Epistula (all), each
served for real on 127.0.0.1 and called by real signed clients.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from organic_scoring.intake import InMemoryNonceStore, Quota
from support.axons import BITTENSOR_WARNINGS
from support.signed_http import Wallets, wallets  # noqa: F401 (fixture)
from support.transports import TRANSPORTS, Driver, intake
from support.waiting import until

pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks"), BITTENSOR_WARNINGS]


@pytest.fixture(params=TRANSPORTS)
def driver(
    request: pytest.FixtureRequest,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Driver]:
    with intake(request.param, wallets, monkeypatch) as served:
        yield served


@pytest.fixture(params=TRANSPORTS)
def guarded(
    request: pytest.FixtureRequest,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Driver]:
    """An intake whose scorer allows only the client's hotkey."""
    with intake(
        request.param, wallets, monkeypatch, allowed_hotkeys=[wallets.client_hotkey]
    ) as served:
        yield served


@pytest.fixture(params=TRANSPORTS)
def narrow(
    request: pytest.FixtureRequest,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Driver]:
    """An intake handling one request at a time, with room for three to wait."""
    with intake(request.param, wallets, monkeypatch, max_concurrent=1, max_backlog=3) as served:
        yield served


@pytest.fixture(params=TRANSPORTS)
def full(
    request: pytest.FixtureRequest,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Driver]:
    """An intake handling one request at a time, with no room to wait."""
    with intake(request.param, wallets, monkeypatch, max_concurrent=1, max_backlog=0) as served:
        yield served


def test_a_signed_request_is_accepted_queued_and_counted(driver: Driver) -> None:
    status = asyncio.run(driver.send(driver.wallets.client, "hello"))
    assert status == 200
    assert driver.scorer.handled == ["hello"]
    assert driver.scorer.blacklist_seen == [driver.wallets.client_hotkey]
    stats = driver.scorer.stats
    assert (stats.organic_accepted, stats.queue_size, stats.organic_unaccounted) == (1, 1, 0)
    assert driver.answers_after(1) == {200: 1}
    assert driver.store.calls == 1


def test_hook_refusals_and_failures_answer_alike(driver: Driver) -> None:
    scorer, w = driver.scorer, driver.wallets
    scorer.blocked.add(w.other_hotkey)
    scorer.rejected.add("unwelcome")
    scorer.failing.add("boom")

    async def main() -> list[int]:
        return [
            await driver.send(w.other, "from a blocked hotkey"),
            await driver.send(w.client, "unwelcome"),
            await driver.send(w.client, "boom"),
            await driver.send(w.client, "fine"),
        ]

    assert asyncio.run(main()) == [403, 403, 500, 200]
    assert scorer.handled == ["boom", "fine"]
    stats = scorer.stats
    assert (stats.organic_accepted, stats.organic_handler_errors) == (1, 1)
    assert stats.queue_size == 1
    assert driver.answers_after(4) == {403: 2, 500: 1, 200: 1}


def test_an_outsider_costs_no_signature_check_and_leaves_no_nonce(guarded: Driver) -> None:
    w = guarded.wallets
    assert asyncio.run(guarded.send(w.other, "let me in")) == 403
    assert guarded.verifications[0] == 0  # refused on its claimed hotkey alone
    assert guarded.store.calls == 0
    assert guarded.scorer.blacklist_seen == []  # the user's hook never ran either
    assert asyncio.run(guarded.send(w.client, "welcome")) == 200
    assert guarded.verifications[0] == 1
    assert guarded.answers_after(2) == {403: 1, 200: 1}


def test_the_same_signed_request_twice_is_refused_the_second_time(driver: Driver) -> None:
    first, second = asyncio.run(driver.send_twice(driver.wallets.client, "once"))
    assert (first, second) == (200, 401)
    assert driver.scorer.handled == ["once"]
    assert driver.scorer.stats.organic_accepted == 1


def test_waiting_requests_are_served_highest_priority_first(narrow: Driver) -> None:
    scorer, client = narrow.scorer, narrow.wallets.client
    release = threading.Event()
    scorer.holds["hold"] = release

    async def main() -> list[int]:
        holder = asyncio.ensure_future(narrow.send(client, "hold"))
        await until(lambda: narrow.gate.in_flight == 1, "the slot to be taken")
        waiting = []
        for text, priority in (("low", 1.0), ("high", 3.0), ("mid", 2.0)):
            waiting.append(asyncio.ensure_future(narrow.send(client, text, priority)))
            count = len(waiting)
            await until(lambda count=count: narrow.gate.waiting == count, f"{text} to wait")
        release.set()
        return [await holder, *(await asyncio.gather(*waiting))]

    assert asyncio.run(main()) == [200, 200, 200, 200]
    assert scorer.handled == ["hold", "high", "mid", "low"]


def test_a_full_backlog_answers_429_and_queues_nothing(full: Driver) -> None:
    release = threading.Event()
    full.scorer.holds["hold"] = release
    client = full.wallets.client

    async def main() -> tuple[int, int]:
        holder = asyncio.ensure_future(full.send(client, "hold"))
        await until(lambda: full.gate.in_flight == 1, "the slot to be taken")
        refused = await full.send(client, "no room")
        release.set()
        return await holder, refused

    assert asyncio.run(main()) == (200, 429)
    assert full.scorer.handled == ["hold"]
    assert full.answers_after(2) == {200: 1, 429: 1}


def test_accounting_balances_whatever_the_transport(driver: Driver) -> None:
    scorer, client = driver.scorer, driver.wallets.client
    scorer.failing.add("boom")

    async def main() -> None:
        for n in range(5):
            await driver.send(client, f"ok {n}")
        await driver.send(client, "boom")
        await driver.send_twice(client, "twice")
        for _ in range(3):
            await scorer.loop_iteration()

    asyncio.run(main())
    stats = scorer.stats
    assert stats.organic_accepted == 6
    assert stats.organic_scored == 3
    assert stats.queue_size == 3
    assert stats.organic_unaccounted == 0
    assert driver.answers_after(8) == {200: 6, 500: 1, 401: 1}


class _ThreadNotingStore(InMemoryNonceStore):
    """A nonce store that notes, per call, whether an event loop runs on its thread."""

    def __init__(self, blocking: bool) -> None:
        super().__init__()
        self.blocking = blocking
        self.on_loop: list[bool] = []

    def check_and_store(self, hotkey_ss58: str, nonce: int | str, /) -> bool:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return super().check_and_store(hotkey_ss58, nonce)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("blocking", [True, False])
def test_a_blocking_nonce_store_is_called_off_the_event_loop(
    transport: str,
    blocking: bool,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A shared store (Redis) is a network round trip per request: on the server's
    # event loop it would stall every other request. An in-memory one stays inline.
    store = _ThreadNotingStore(blocking)
    with intake(transport, wallets, monkeypatch, nonce_store=store) as served:
        first, second = asyncio.run(served.send_twice(wallets.client, "once"))
    assert (first, second) == (200, 401)
    # (bittensor's axon refuses the replay itself, before asking the gate)
    assert store.on_loop
    assert set(store.on_loop) == {not blocking}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_each_caller_is_held_to_its_own_quota(
    transport: str,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quota = Quota(rate=0.01, burst=2)  # two at once, then one every 100 s
    with intake(transport, wallets, monkeypatch, quota=quota) as served:

        async def scenario() -> list[int]:
            statuses = [await served.send(wallets.other, "other")]  # allowed: ANY_HOTKEY
            for text in ("one", "two", "three"):
                statuses.append(await served.send(wallets.client, text))
            return statuses

        statuses = asyncio.run(scenario())
    # The other caller's request spends its own share; the client's third is over.
    assert statuses == [200, 200, 200, 429]
    assert served.scorer.handled == ["other", "one", "two"]
