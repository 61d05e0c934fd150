"""The scorer lease lock: one holder at a time, renewals, release, takeover after kill -9."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from organic_scoring._defaults import DEFAULT_LOCK_PERIOD as DEFAULT_PERIOD
from organic_scoring.errors import RedisUnavailable
from organic_scoring.organic_queue import _lock as _leader
from organic_scoring.organic_queue._lock import LeaseKeeper, LeaseLock
from organic_scoring.organic_queue._redis_link import RedisLink
from support.processes import read_line, spawn_module, stop
from support.redis_server import RedisServer
from support.waiting import wait_until

KEY = "organic-scoring:{organic}:scorer"


@pytest.fixture
def link(redis_url: str) -> Iterator[RedisLink]:
    made = RedisLink.from_url(redis_url, "test", timeout=1.0)
    yield made
    made.close()


def test_the_default_period_is_at_most_five_seconds() -> None:
    assert 0 < DEFAULT_PERIOD <= 5


def test_one_holder_at_a_time(link: RedisLink) -> None:
    a, b = LeaseLock(link, KEY), LeaseLock(link, KEY)
    assert a.token != b.token
    assert a.acquire()
    assert a.held
    assert not b.acquire()
    assert not b.held
    assert a.acquire()  # renewing
    assert b.holder() == a.token
    a.release()
    assert not a.held
    assert b.acquire()
    assert not a.acquire()
    assert a.holder() == b.token


def test_a_lock_not_renewed_passes_to_the_next(link: RedisLink) -> None:
    a, b = LeaseLock(link, KEY, period=0.3), LeaseLock(link, KEY, period=0.3)
    assert a.acquire()
    wait_until(b.acquire, "the lock to expire")
    # By the time the server let it go, the old holder had stopped believing it held it.
    assert not a.held
    assert not a.acquire()  # its renewal finds someone else's token


def test_renewals_keep_the_lock(link: RedisLink) -> None:
    a, b = LeaseLock(link, KEY, period=0.3), LeaseLock(link, KEY, period=0.3)
    assert a.acquire()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        assert a.acquire()
        assert not b.acquire()


def test_a_late_renewal_keeps_a_lock_nobody_took(link: RedisLink) -> None:
    # The holder's own deadline passes (a slow tick) while the key is still its own.
    lock, other = LeaseLock(link, KEY, period=0.5), LeaseLock(link, KEY, period=0.5)
    assert lock.acquire()
    wait_until(lambda: not lock.held, "the holder's own deadline to pass")
    assert lock.acquire()  # renewed: the key still held its token
    assert not other.acquire()


def test_release_leaves_someone_elses_lock_alone(link: RedisLink) -> None:
    a, b = LeaseLock(link, KEY, period=0.2), LeaseLock(link, KEY)
    assert a.acquire()
    wait_until(b.acquire, "the lock to expire")
    a.release()
    assert b.holder() == b.token


def test_an_outage_ends_the_belief_after_one_period(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    link = RedisLink.from_url(server.url, "test", timeout=1.0)
    try:
        lock = LeaseLock(link, KEY, period=0.5)
        assert lock.acquire()
        server.kill()
        with pytest.raises(RedisUnavailable, match="scorer lock"):
            lock.acquire()
        wait_until(lambda: not lock.held, "the lock's period to pass")
        server.start()
        assert lock.acquire()
    finally:
        link.close()
        server.stop()


@pytest.mark.parametrize("bad", [0, -1, "5", True, None])
def test_bad_period_is_named(link: RedisLink, bad: object) -> None:
    with pytest.raises(ValueError, match="period"):
        LeaseLock(link, KEY, period=bad)  # type: ignore[arg-type]


class Said:
    """Stands in for the library's log in one module: keeps what was said, on any major."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, msg: str, exc_info: object = None) -> None:
        self.lines.append(msg)

    debug = info = warning = error = say

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.usefixtures("no_leaks")
def test_keepers_hand_over_on_stop(link: RedisLink, monkeypatch: pytest.MonkeyPatch) -> None:
    said = Said()
    monkeypatch.setattr(_leader, "log", said)
    changes: list[tuple[str, bool]] = []
    first = LeaseKeeper(
        LeaseLock(link, KEY, period=0.6), on_change=lambda a: changes.append(("first", a))
    )
    second = LeaseKeeper(
        LeaseLock(link, KEY, period=0.6), on_change=lambda a: changes.append(("second", a))
    )
    try:
        first.start()
        wait_until(lambda: first.active, "the first keeper to take the lock")
        second.start()
        wait_until(lambda: "stands by" in said.text, "the second keeper to stand by")
        assert not second.active
        time.sleep(0.5)  # a few renewals go by without a change
        assert changes == [("first", True)]
        first.stop()
        assert not first.active
        wait_until(lambda: second.active, "the standby to take over")
        assert changes == [("first", True), ("first", False), ("second", True)]
    finally:
        first.stop()
        second.stop()
    assert f"took over from {first.lock.token}" in said.text
    assert f"held by {first.lock.token}; this process ({second.lock.token}) stands by" in said.text


@pytest.mark.usefixtures("no_leaks")
def test_the_holder_keeps_the_role_through_an_outage(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    link = RedisLink.from_url(server.url, "test", timeout=1.0)
    changes: list[bool] = []
    holder = LeaseKeeper(LeaseLock(link, KEY, period=0.3), on_change=changes.append)
    standby = LeaseKeeper(LeaseLock(link, KEY, period=0.3))
    try:
        holder.start()
        wait_until(lambda: holder.active, "the lock to be taken")
        standby.start()
        server.kill()
        time.sleep(1.0)  # several periods: nobody can take the lock meanwhile
        assert holder.active
        assert not standby.active
        server.start()  # empty: the lock expired with the old server
        time.sleep(0.5)
        wait_until(lambda: holder.lock.held, "the holder to take the lock again")
        assert holder.active
        assert not standby.active
        assert changes == [True]
    finally:
        holder.stop()
        standby.stop()
        link.close()
        server.stop()


def test_a_standby_takes_over_within_two_periods_of_a_kill(redis_url: str, link: RedisLink) -> None:
    period = 1.5
    active = spawn_module("support.lease_workers", redis_url, KEY, period)
    standby = None
    try:
        assert read_line(active) == "ready"
        assert json.loads(read_line(active))["active"]
        standby = spawn_module("support.lease_workers", redis_url, KEY, period)
        assert read_line(standby) == "ready"
        lock = LeaseLock(link, KEY)
        holder = lock.holder() or ""
        assert holder.startswith(f"{socket.gethostname()}:{active.pid}:")

        active.kill()  # SIGKILL: no release
        killed_at = time.time()
        took = json.loads(read_line(standby))
        assert took["active"]
        assert took["at"] - killed_at <= 2 * period
        holder = lock.holder() or ""
        assert holder.startswith(f"{socket.gethostname()}:{standby.pid}:")
    finally:
        stop([active] if standby is None else [active, standby])


def test_a_standby_scorer_takes_over_within_a_period_of_a_kill(
    redis_url: str, link: RedisLink, tmp_path: Path
) -> None:
    """With the default lock period, measured on scorer processes: a standby takes over
    within the documented bound (a period, plus a round trip) of a kill -9, since it
    looks again just after the dead holder's key expires."""
    period = DEFAULT_PERIOD
    lock = LeaseLock(link, "organic-scoring:{takeover}:scorer")
    args = (redis_url, "takeover")
    active = spawn_module("support.scorer_worker", *args, tmp_path / "a.jsonl", period, 60)
    standby = None
    try:
        assert read_line(active) == "ready"
        assert json.loads(read_line(active))["active"]
        standby = spawn_module("support.scorer_worker", *args, tmp_path / "b.jsonl", period, 60)
        assert read_line(standby) == "ready"
        wait_until(lambda: (lock.holder() or "").split(":")[1] == str(active.pid), "a holder")
        active.kill()  # SIGKILL: no release
        killed_at = time.time()
        _, left = lock.holder_and_expiry()
        assert left is not None
        expires_at = killed_at + left
        took = json.loads(read_line(standby))
        assert took["active"]
        # The documented bound, with half a second for a loaded machine.
        assert took["at"] - killed_at <= period + 0.5
        # What makes it true: the standby tries just after the key expires, not up to a
        # third of a period later.
        assert took["at"] - expires_at <= 0.5
        assert (lock.holder() or "").split(":")[1] == str(standby.pid)
    finally:
        stop([active] if standby is None else [active, standby])
