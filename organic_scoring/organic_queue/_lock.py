"""One active scorer among many: a lease lock in Redis, and the thread that keeps it.

:class:`LeaseLock` is redis-py's :class:`redis.lock.Lock` plus a fence counter bumped
on each acquisition; :meth:`LeaseLock.check` tells atomically whether the key still
holds our token under our fence. A holder counts its ``period`` (less a drift margin)
from before the acquiring request, so two holders never overlap unless clock rates
differ by more than the margin. :class:`LeaseKeeper` renews (or a standby retries)
every third of a period.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from organic_scoring._compat import require_extra
from organic_scoring._defaults import DEFAULT_LOCK_PERIOD
from organic_scoring._log import log
from organic_scoring.errors import RedisUnavailable
from organic_scoring.organic_queue._redis_link import (
    ALLOW_OOM,
    RedisLink,
    check_seconds,
)

__all__ = ["LeaseKeeper", "LeaseLock"]

# KEYS: the lock, its fence counter. ARGV: token, expiry (ms). Takes a free lock and
# returns the fence number of this acquisition; nil when the lock is held.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return fence
"""

# KEYS: the lock, its fence counter. ARGV: token, fence number. 1 when both are ours.
_CHECK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
return 1
"""


@functools.cache
def _fenced_lock_class(allow_oom: bool) -> type:
    """redis-py's Lock, taken with a fence number, its scripts flagged ``allow-oom`` or not."""
    base = require_extra("redis", "redis", "the scorer lock").lock.Lock
    flags = ALLOW_OOM if allow_oom else ""  # a standby must take over at maxmemory

    class FencedLock(base):  # type: ignore[misc,valid-type]
        # None: redis-py registers this class's scripts rather than reuse the parent's.
        LUA_RELEASE_SCRIPT = flags + base.LUA_RELEASE_SCRIPT.lstrip()
        LUA_EXTEND_SCRIPT = flags + base.LUA_EXTEND_SCRIPT.lstrip()
        LUA_REACQUIRE_SCRIPT = flags + base.LUA_REACQUIRE_SCRIPT.lstrip()
        lua_release = lua_extend = lua_reacquire = None
        lua_acquire: Any = None
        lua_check: Any = None
        fence_key = ""
        fence: int | None = None

        def register_scripts(self) -> None:
            super().register_scripts()
            cls = type(self)
            if cls.lua_acquire is None:
                cls.lua_acquire = self.redis.register_script(flags + _ACQUIRE.lstrip())
            if cls.lua_check is None:
                cls.lua_check = self.redis.register_script(flags + _CHECK.lstrip())

        def do_acquire(self, token: Any) -> bool:
            fence = self.lua_acquire(
                keys=[self.name, self.fence_key],
                args=[token, int(self.timeout * 1000)],
                client=self.redis,
            )
            if fence is None:
                return False
            self.fence = int(fence)
            return True

        def is_current(self, fence: int) -> bool:
            token = self.local.token
            if token is None:
                return False
            return bool(
                self.lua_check(
                    keys=[self.name, self.fence_key], args=[token, fence], client=self.redis
                )
            )

    return FencedLock


_EXPIRY_SLACK = 0.01  # seconds after the holder's key expires that a standby tries

_DRIFT = 0.05  # the share of a period a holder gives up, for clocks that run at different rates


def _token() -> str:
    """Who holds the lock, readable in a log: host, process id, and a random tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseLock:
    """A lock that one holder at a time keeps by renewing it within ``period`` seconds.

    Thread-safe. Calls raise :class:`~organic_scoring.errors.RedisUnavailable` during
    an outage.

    Args:
        link: The server.
        key: The lock's key, the same for every contender.
        period: Seconds the lock lasts unless renewed; at least 0.001.
    """

    def __init__(self, link: RedisLink, key: str, *, period: float = DEFAULT_LOCK_PERIOD) -> None:
        self.key = key
        self.period = check_seconds("period", period, 0.001)
        self.token = _token()
        """This holder's identity, stored in the key while it holds the lock."""
        self._link = link
        self.fence_key = key + ":fence"
        """The counter of acquisitions, beside the lock's key (same hash tag)."""
        # thread_local=False: the keeper's thread takes the lock, stop() may release it.
        self._redis_lock = _fenced_lock_class(link.script_flags)(
            link.client, key, timeout=self.period, blocking=False, thread_local=False
        )
        self._redis_lock.fence_key = self.fence_key
        self._lock_error: type[Exception] = require_extra(
            "redis", "redis", "the scorer lock"
        ).exceptions.LockError
        # The key's expiry as the server gets it: redis-py sends whole milliseconds, cut down.
        self._ttl = int(self.period * 1000) / 1000
        self._lock = threading.Lock()
        self._valid_until = 0.0

    @property
    def fence(self) -> int | None:
        """The fence number of our latest acquisition; None before the first."""
        fence: int | None = self._redis_lock.fence
        return fence

    def check(self, fence: int) -> bool:
        """True when we hold the lock now, under the acquisition numbered ``fence``
        (one atomic script).

        Raises:
            RedisUnavailable: The server did not answer.
        """
        with self._link.failures("cannot check the scorer lock"):
            return bool(self._redis_lock.is_current(fence))

    @property
    def held(self) -> bool:
        """True while a successful acquire or renew is less than a period old (less drift)."""
        return time.monotonic() < self._valid_until

    def acquire(self) -> bool:
        """Take the lock if it is free, renew it if it is ours; True if we hold it now.

        Raises:
            RedisUnavailable: The server did not answer; :attr:`held` keeps its
                deadline from the last success.
        """
        with self._lock:
            sent = time.monotonic()
            with self._link.failures("cannot take or renew the scorer lock"):
                # Our token still there, even past our deadline: nobody held it meanwhile.
                ours: bool
                try:
                    ours = self._redis_lock.reacquire()
                except self._lock_error:  # never taken (no request sent), or not ours now
                    ours = bool(self._redis_lock.acquire(blocking=False, token=self.token))
            self._valid_until = sent + self._ttl * (1 - _DRIFT) if ours else 0.0
            return ours

    def release(self) -> None:
        """Give the lock up if we hold it, so a standby takes over at once.

        Raises:
            RedisUnavailable: The server did not answer; the key expires by itself.
        """
        with self._lock:
            self._valid_until = 0.0
            with (
                self._link.failures("cannot release the scorer lock"),
                contextlib.suppress(self._lock_error),
            ):
                self._redis_lock.release()

    def holder(self) -> str | None:
        """The token of whoever holds the lock now, or None."""
        return self.holder_and_expiry()[0]

    def holder_and_expiry(self) -> tuple[str | None, float | None]:
        """The token of whoever holds the lock now (or None) and the seconds until
        its key expires unless renewed (None when not known)."""
        with self._link.failures("cannot read the scorer lock"):
            pipe = self._link.client.pipeline(transaction=False)
            pipe.get(self.key)
            pipe.pttl(self.key)
            value, pttl = pipe.execute()
        left = pttl / 1000 if isinstance(pttl, int) and pttl >= 0 else None
        if value is None:
            return None, None
        token = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return token, left


class LeaseKeeper:
    """Keeps a :class:`LeaseLock` on a thread of its own: renews it, or waits to take it.

    Every change is logged and passed to ``on_change(active)`` from that thread. During
    an outage the holder stays active; back from it, a standby waits a period first.

    Args:
        lock: The lock to keep.
        what: Names the role in log messages, e.g. ``"scorer"``.
        on_change: Called with True on taking the lock, False on losing it.
    """

    def __init__(
        self,
        lock: LeaseLock,
        *,
        what: str = "scorer",
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.lock = lock
        self.what = what
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_active = False
        self._other: str | None = None
        self._failing = False
        self._holding_through_outage = False
        self._defer_until = 0.0
        self._fence: int | None = None
        self._next_tick = lock.period / 3
        self.willing = True
        """False: give the lock up (at the next renewal) and do not take it again."""

    @property
    def active(self) -> bool:
        """True while this process holds the lock (or held it when Redis went away)."""
        return self._holding_through_outage or self.lock.held

    def start(self) -> None:
        """Start keeping the lock on the keeper's thread, which tries at once (not
        waited for). Idempotent."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"organic-scoring-{self.what}-lock", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread and release the lock. Idempotent; safe from any thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout)
        self._give_up("stopped")

    def _give_up(self, why: str) -> None:
        self._holding_through_outage = False
        try:
            self.lock.release()
        except RedisUnavailable as exc:
            log.warning(f"{self.what} lock {self.lock.key}: {exc}; it expires by itself")
        self._changed(False, why)

    def _run(self) -> None:
        self._tick()
        while not self._stop.wait(self._next_tick):
            self._tick()

    def _tick(self) -> None:
        if not self.willing:
            if self._was_active:
                self._give_up("giving it up")
            return
        # A standby also looks again just after the holder's key expires.
        self._next_tick = self.lock.period / 3
        try:
            active = (
                self._was_active or time.monotonic() >= self._defer_until
            ) and self.lock.acquire()
            other, left = (None, None) if active else self.lock.holder_and_expiry()
        except RedisUnavailable as exc:
            if not self._failing:
                kept = "; keeping the role until it answers" if self._was_active else ""
                log.warning(f"{self.what} lock {self.lock.key}: {exc}; retrying{kept}")
            self._failing = True
            self._holding_through_outage = self._was_active
            if not self._was_active:
                self._defer_until = math.inf
            return
        self._holding_through_outage = False
        if left is not None and time.monotonic() >= self._defer_until:
            self._next_tick = min(self._next_tick, left + _EXPIRY_SLACK)
        if self._failing:
            log.info(f"{self.what} lock {self.lock.key}: Redis answers again")
            self._failing = False
        if self._defer_until == math.inf:
            # Back from an outage on standby: leave the last holder a period to take
            # the lock again, so the role does not change hands for nothing.
            self._defer_until = time.monotonic() + self.lock.period
        if active:
            fence = self.lock.fence
            if self._was_active and fence != self._fence:
                log.warning(
                    f"{self.what} lock {self.lock.key}: this process ({self.lock.token}) "
                    f"lost the lock and took it again; work begun before is void"
                )
                if self._on_change is not None:
                    self._on_change(True)
            self._fence = fence
            self._changed(True, f"took over from {self._other}" if self._other else "")
            self._other = None
        else:
            if other is not None and other != self._other:
                log.info(
                    f"{self.what} lock {self.lock.key}: held by {other}; this process "
                    f"({self.lock.token}) stands by"
                )
            self._other = other or self._other
            self._changed(False, f"now held by {other}" if other else "")

    def _changed(self, active: bool, why: str) -> None:
        if active == self._was_active:
            return
        self._was_active = active
        detail = f" ({why})" if why else ""
        if active:
            log.info(
                f"{self.what} lock {self.lock.key}: this process ({self.lock.token}) is now "
                f"the active {self.what}{detail}"
            )
        else:
            (log.info if why == "stopped" else log.warning)(
                f"{self.what} lock {self.lock.key}: this process ({self.lock.token}) is no "
                f"longer the active {self.what}{detail}"
            )
        if self._on_change is not None:
            self._on_change(active)
