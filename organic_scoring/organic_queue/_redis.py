"""An organic queue in Redis, shared across processes and hosts; one Lua script per operation.

Keys of a queue named ``N`` start with ``organic-scoring:{N}:`` (a Cluster hash tag):

* ``waiting``: sorted set of waiting sample ids, scored by id (oldest = lowest).
* ``items``: hash, id to stored sample, for waiting and leased samples.
* ``leases``: sorted set of ``"id:token"`` scored by lease expiry (server ms); the
  token is the hand-out's number.
* ``meta``: hash with ``seq`` and the counters ``added``, ``sampled``, ``acked``,
  ``redelivered``, ``dropped``, ``scored``, ``failed``, ``accepted``, ``dead``.
* ``tries``: hash, id to how many times the sample was handed out.
* ``dead``: list of dead letters (stored samples handed out more than
  ``max_deliveries`` times), newest first, at most ``max_size`` long.
* ``marker``: set when a queue object first meets the server; its absence later means
  Redis lost its data (a restart without persistence, a flush).
* ``added``: pub/sub channel announcing each add (payload: the adder's origin).

Every script first puts expired leases back among the waiting (``redelivered``).
A dead letter counts as acked and failed. Invariants: ``added == dropped + size +
leased + acked``, ``sampled == acked + leased + redelivered``.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

from organic_scoring._defaults import (
    DEFAULT_LEASE,
    DEFAULT_LOCK_PERIOD,
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_QUEUE_SIZE,
)
from organic_scoring._log import log
from organic_scoring.errors import SampleUnreadable
from organic_scoring.organic_queue._base import OrganicQueueBase
from organic_scoring.organic_queue._codec import SampleDecodeError, decode, encode
from organic_scoring.organic_queue._lock import LeaseLock
from organic_scoring.organic_queue._memory import QueueCounters
from organic_scoring.organic_queue._redis_link import ALLOW_OOM, RedisLink

__all__ = ["LeasedQueueCounters", "RedisOrganicQueue"]


@dataclass(frozen=True, eq=False)
class LeasedQueueCounters(QueueCounters):
    """A consistent snapshot of a leasing queue's counters (see :class:`RedisOrganicQueue`).

    ``acked == scored + failed`` besides the invariants of :class:`RedisOrganicQueue`.
    Compared with a plain :class:`QueueCounters`, only the shared fields count.
    """

    leased: int = 0
    """Samples handed out whose lease has neither been acknowledged nor run out."""
    acked: int = 0
    """Samples acknowledged (their iteration ended) and deleted."""
    redelivered: int = 0
    """Leases that ran out unacknowledged; each put its sample back to wait again."""
    scored: int = 0
    """Acknowledged samples whose iteration succeeded."""
    failed: int = 0
    """Acknowledged samples whose iteration failed (and was reported)."""
    accepted: int = 0
    """Requests the intakes accepted (:meth:`RedisOrganicQueue.count_accepted`), counted
    apart from ``added``: each should have stored one sample."""
    lost: int = 0
    """Samples waiting or leased when this object last looked before Redis lost its
    data (see :attr:`data_losses`); counted by ``stats.organic_unaccounted``."""
    data_losses: int = 0
    """Times this object found that Redis had lost its data (the queue's marker key
    vanished): logged at ERROR."""
    dead_lettered: int = 0
    """Samples handed out more than ``max_deliveries`` times, moved to the dead-letter
    list instead of being handed out again (each also counted as acked and failed)."""

    def __eq__(self, other: object) -> bool:
        if type(other) is QueueCounters:
            return astuple(self)[: len(fields(QueueCounters))] == astuple(other)
        if isinstance(other, LeasedQueueCounters):
            return astuple(self) == astuple(other)
        return NotImplemented

    __hash__ = QueueCounters.__hash__


# -- the scripts ---------------------------------------------------------------------
# KEYS: waiting, items, leases, meta, tries, dead. Every script opens with _PRELUDE,
# which reads the server clock and defines trim() and reap().

_PRELUDE = """
local waiting, items, leases, meta, tries = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- Drop the oldest waiting samples until at most `limit` wait; return how many went.
local function trim(limit)
  local over = redis.call('ZCARD', waiting) - limit
  if over <= 0 then return 0 end
  local gone = redis.call('ZPOPMIN', waiting, over)
  for i = 1, #gone, 2 do
    redis.call('HDEL', items, gone[i])
    redis.call('HDEL', tries, gone[i])
  end
  redis.call('HINCRBY', meta, 'dropped', over)
  return over
end

-- Put expired leases back among the waiting (under their original age), then
-- hold the bound; return how many samples were dropped doing so.
local function reap(max_size)
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
  if #expired == 0 then return 0 end
  for _, member in ipairs(expired) do
    local id = string.match(member, '^(%d+):')
    redis.call('ZADD', waiting, id, id)
  end
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  redis.call('HINCRBY', meta, 'redelivered', #expired)
  return trim(max_size)
end
"""

# ARGV: stored sample, max_size, channel, origin. Announces the add on the channel with
# the adding object's origin. Returns how many samples were dropped.
_ADD = (
    _PRELUDE
    + """
local max_size = tonumber(ARGV[2])
local dropped = reap(max_size) + trim(max_size - 1)
local id = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('ZADD', waiting, id, id)
redis.call('HSET', items, id, ARGV[1])
redis.call('HINCRBY', meta, 'added', 1)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return dropped
"""
)

# ARGV: a random number in [0, 1), lease (ms), max_size, max_deliveries.
# Returns nil when nothing waits, else {lease member, stored sample}, or
# {lease member, stored sample, deliveries} for a sample that was handed out
# max_deliveries times already: it went to the dead letters instead.
_SAMPLE = (
    _PRELUDE
    + """
local max_size = tonumber(ARGV[3])
reap(max_size)
local count = redis.call('ZCARD', waiting)
if count == 0 then return false end
local rank = math.min(math.floor(tonumber(ARGV[1]) * count), count - 1)
local id = redis.call('ZRANGE', waiting, rank, rank)[1]
redis.call('ZREM', waiting, id)
local token = redis.call('HINCRBY', meta, 'sampled', 1)
local member = id .. ':' .. token
local stored = redis.call('HGET', items, id)
local delivered = redis.call('HINCRBY', tries, id, 1)
if delivered > tonumber(ARGV[4]) then
  redis.call('HDEL', items, id)
  redis.call('HDEL', tries, id)
  redis.call('LPUSH', KEYS[6], stored)
  redis.call('LTRIM', KEYS[6], 0, max_size - 1)
  redis.call('HINCRBY', meta, 'acked', 1)
  redis.call('HINCRBY', meta, 'failed', 1)
  redis.call('HINCRBY', meta, 'dead', 1)
  return {member, stored, delivered - 1}
end
redis.call('ZADD', leases, now + tonumber(ARGV[2]), member)
return {member, stored}
"""
)

# ARGV: lease (ms), max_size, lease members... Pushes back the expiry of each lease
# still live. Returns how many were.
_RENEW = (
    _PRELUDE
    + """
reap(tonumber(ARGV[2]))
local live = 0
for i = 3, #ARGV do
  if redis.call('ZSCORE', leases, ARGV[i]) then
    redis.call('ZADD', leases, now + tonumber(ARGV[1]), ARGV[i])
    live = live + 1
  end
end
return live
"""
)

# ARGV: lease member, max_size, outcome ('scored' or 'failed'). Returns 1 when the lease
# was live and is now acked (and its outcome counted), else 0.
_ACK = (
    _PRELUDE
    + """
reap(tonumber(ARGV[2]))
if redis.call('ZREM', leases, ARGV[1]) == 0 then return 0 end
local id = string.match(ARGV[1], '^(%d+):')
redis.call('HDEL', items, id)
redis.call('HDEL', tries, id)
redis.call('HINCRBY', meta, 'acked', 1)
redis.call('HINCRBY', meta, ARGV[3], 1)
return 1
"""
)

# ARGV: max_size. Returns {added, sampled, acked, redelivered, dropped, scored, failed,
# accepted, dead, size, leased, whether the marker exists}.
_COUNTERS = (
    _PRELUDE
    + """
reap(tonumber(ARGV[1]))
local m = redis.call('HMGET', meta, 'added', 'sampled', 'acked', 'redelivered', 'dropped',
                     'scored', 'failed', 'accepted', 'dead')
local out = {}
for i = 1, 9 do out[i] = tonumber(m[i]) or 0 end
out[10] = redis.call('ZCARD', waiting)
out[11] = redis.call('ZCARD', leases)
out[12] = redis.call('EXISTS', KEYS[7])
return out
"""
)

# ARGV: max_size. Returns the number of waiting samples.
_SIZE = (
    _PRELUDE
    + """
reap(tonumber(ARGV[1]))
return redis.call('ZCARD', waiting)
"""
)


class _DeadLetter(SampleUnreadable):
    """A sample handed out ``max_deliveries`` times without an ack: it went to the
    dead-letter list instead of a fourth (or later) iteration."""

    def __init__(self, message: str, sample: Any) -> None:
        super().__init__(message)
        self._sample = sample

    @property
    def raw(self) -> Any:
        """The dead-lettered sample (its stored text when it no longer decodes)."""
        return self._sample


class _Lease:
    """One hand-out this process has not acknowledged yet."""

    __slots__ = ("done", "expires", "member", "sample")

    def __init__(self, sample: Any, member: bytes, expires: float) -> None:
        self.sample = sample
        self.member = member
        self.expires = expires
        self.done = False


class RedisOrganicQueue(OrganicQueueBase):
    """A bounded organic queue in Redis, shared by every process that names it.

    The contract of :class:`OrganicQueue` (oldest dropped at ``max_size``, uniform
    ``sample``), with at-least-once delivery: ``sample`` leases for ``lease``
    seconds, :meth:`ack` with the very object ``sample`` returned (not an equal
    copy) deletes it, and an expired lease puts the sample back (:attr:`redelivered`).
    A late ack does nothing and is logged. Only the sampling process can ack.
    Stores what :class:`SQLiteOrganicQueue` stores. Counters are fleet-wide;
    ``max_size`` is enforced per object on its adds. Listeners hear adds from every
    process (other processes' via a channel-following thread). During an outage
    every call raises :class:`~organic_scoring.errors.RedisUnavailable`; an ``add``
    that raised may or may not have stored. With ``one_scorer``, scorers sharing the
    queue coordinate through :meth:`scorer_lock`; a standby takes over within two
    ``lock_period``. Call :meth:`close` (or use it as a context manager) when done.

    While an iteration runs, the scoring loop renews its sample's lease
    (:meth:`renew`), so a slow iteration keeps its sample. A sample handed out
    ``max_deliveries`` times without an ack (its scorers died or hung each time) is
    not handed out again: :meth:`sample` moves it to the dead letters
    (:meth:`dead_letters`) and raises :class:`~organic_scoring.errors.SampleUnreadable`
    with it, which the loop reports as a failed organic sample.

    Args:
        url: The server: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://``
            for TLS, ``unix:///path``.
        name: The queue's name; every process using the same ``url`` and ``name``
            shares the queue. Any non-empty string without braces.
        max_size: The most samples kept waiting; an int, at least 1.
        lease: Seconds a handed-out sample stays leased before it is put back.
        seed: Seeds this object's random generator, so a test can replay the order
            in which samples come out. None draws a fresh seed.
        one_scorer: Let only one of the scorers sharing this queue run at a time (see
            *One active scorer*); False lets every scorer sample.
        lock_period: Seconds the active scorer's lock lasts unless renewed; a standby
            takes over within one period (and a round trip) of the active scorer dying.
        max_deliveries: How many times a sample may be handed out; at least 1.

    Raises:
        ValueError: A parameter is out of range (the message names it).
        ImportError: The ``redis`` package is missing (install ``organic-scoring[redis]``).
        RedisUnavailable: The server cannot be reached; the message names the URL
            with its password masked.
    """

    blocking = True  # every call is a round trip to the server

    def __init__(
        self,
        url: str,
        *,
        name: str = "organic",
        max_size: int = DEFAULT_QUEUE_SIZE,
        lease: float = DEFAULT_LEASE,
        seed: int | None = None,
        one_scorer: bool = True,
        lock_period: float = DEFAULT_LOCK_PERIOD,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        if (
            isinstance(max_deliveries, bool)
            or not isinstance(max_deliveries, int)
            or max_deliveries < 1
        ):
            raise ValueError(f"max_deliveries must be an int of at least 1, got {max_deliveries!r}")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be an int of at least 1, got {max_size!r}")
        if (
            isinstance(lease, bool)
            or not isinstance(lease, (int, float))
            or not math.isfinite(lease)
            or lease < 0.001
        ):
            raise ValueError(f"lease must be a number of seconds, at least 0.001, got {lease!r}")
        if not isinstance(name, str) or not name or "{" in name or "}" in name:
            raise ValueError(f"name must be a non-empty string without braces, got {name!r}")
        if not isinstance(one_scorer, bool):
            raise ValueError(f"one_scorer must be True or False, got {one_scorer!r}")
        if (
            isinstance(lock_period, bool)
            or not isinstance(lock_period, (int, float))
            or not math.isfinite(lock_period)
            or lock_period < 0.01
        ):
            raise ValueError(
                f"lock_period must be a number of seconds, at least 0.01, got {lock_period!r}"
            )
        self._one_scorer = one_scorer
        self._max_deliveries = max_deliveries
        self._lock_period = float(lock_period)
        self._name = name
        self._max_size = max_size
        self._lease = float(lease)
        self._lease_ms = max(1, round(self._lease * 1000))
        self._random = random.Random(seed)
        self._link = RedisLink(url, f"RedisOrganicQueue(name={name!r})")
        try:
            # Every script but the add may run while Redis refuses writes at maxmemory:
            # the scorer keeps draining the queue (which frees memory) meanwhile.
            oom = ALLOW_OOM if self._link.script_flags else ""
            self._add_script = self._link.script(_ADD)
            self._sample_script = self._link.script(oom + _SAMPLE)
            self._ack_script = self._link.script(oom + _ACK)
            self._counters_script = self._link.script(oom + _COUNTERS)
            self._size_script = self._link.script(oom + _SIZE)
            self._renew_script = self._link.script(oom + _RENEW)
        except BaseException:
            self._link.close()
            raise
        prefix = f"organic-scoring:{{{name}}}:"
        self._keys = [
            prefix + part
            for part in ("waiting", "items", "leases", "meta", "tries", "dead", "marker")
        ]
        self._channel = prefix + "added"
        self._origin = uuid.uuid4().hex.encode()
        self._watcher: _AddWatcher | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._leases: dict[int, list[_Lease]] = {}
        self._handed: deque[_Lease] = deque()
        self._warned_full = False
        self._warned_late = False
        self._lost = 0
        self._data_losses = 0
        self._last_held = 0  # samples waiting or leased at the last look
        self._run_id: str | None = None
        self._run_id_checked = 0.0
        try:
            with self._link.failures("cannot mark the queue"):
                self._link.client.set(self._keys[6], self._origin, nx=True)
            self._check_server(at_start=True)
        except BaseException:
            self._link.close()
            raise

    # -- the queue ---------------------------------------------------------------

    def add(self, sample: Any) -> None:
        """Store ``sample``; in a full queue, drop the oldest waiting sample first.

        Returns once the server has stored it.

        Raises:
            ValueError: ``sample`` is None (``sample()`` uses None to mean empty).
            SampleNotStorable: (a ``ValueError``, and a ``TypeError``) ``sample``
                could not be read back: see :class:`SQLiteOrganicQueue`, which stores
                the same kinds of samples. The message names the part.
            RedisUnavailable: The server did not answer; the sample may or may not
                have been stored.
        """
        if sample is None:
            raise ValueError("cannot add None: RedisOrganicQueue.sample() returns None for 'empty'")
        kind, model, body = encode(sample)
        stored = body if model is None else f"{model}\n{body}"
        self._check_open()
        with self._link.failures("cannot add a sample"):
            dropped = self._add_script(
                self._keys, [kind[0] + stored, self._max_size, self._channel, self._origin]
            )
        if dropped and not self._warned_full:
            self._warned_full = True
            log.warning(
                f"organic queue {self._name!r} is full (max_size={self._max_size}); dropping "
                "the oldest samples to make room, see RedisOrganicQueue.counters()"
            )
        self._notify_added()

    def sample(self) -> Any:
        """Lease and return a uniformly random waiting sample, or None when none waits.

        Acknowledge it with :meth:`ack` (the same object) when done with it.

        Raises:
            SampleDecodeError: The stored sample could not be loaded back; it has left
                the queue (counted as acked) and the error carries what was stored.
            RedisUnavailable: The server did not answer; nothing was handed out.
        """
        self._check_open()
        draw = self._random.random()
        started = time.monotonic()
        with self._link.failures("cannot sample"):
            reply = self._sample_script(
                self._keys, [repr(draw), self._lease_ms, self._max_size, self._max_deliveries]
            )
        if reply is None:
            return None
        member, stored, *dead = reply
        if dead:
            try:
                item = _load(stored)
            except SampleUnreadable as unreadable:
                item = unreadable.raw
            raise _DeadLetter(
                f"organic queue {self._name!r}: a sample was handed out {int(dead[0])} "
                "times and never acknowledged (its iterations hung, or their scorers "
                "died); it was moved to the dead letters, see dead_letters()",
                item,
            )
        try:
            item = _load(stored)
        except SampleUnreadable:
            # It has been handed out, and it will never decode: settle it now rather
            # than have it come back after every lease.
            with self._link.failures("cannot acknowledge an unreadable sample"):
                self._ack_script(self._keys, [member, self._max_size, "failed"])
            raise
        lease = _Lease(item, member, started + self._lease)
        with self._lock:
            self._forget_old(started)
            self._leases.setdefault(id(item), []).append(lease)
            self._handed.append(lease)
        return item

    def ack(self, sample: Any, *, failed: bool = False) -> None:
        """The iteration that took ``sample`` has ended: delete its lease and the sample.

        ``sample`` must be the object :meth:`sample` returned; others are ignored, and
        an ack after the lease ran out does nothing (logged). ``failed`` is counted
        with the ack, atomically.

        Raises:
            RedisUnavailable: The server did not answer; the lease stays, so the call
                can be repeated (or the sample comes back when the lease runs out).
        """
        self._check_open()
        lease = self._take(sample)
        if lease is None:
            return
        try:
            with self._link.failures("cannot acknowledge a sample"):
                outcome = "failed" if failed else "scored"
                live = self._ack_script(self._keys, [lease.member, self._max_size, outcome])
        except BaseException:
            self._put_back(lease)
            raise
        if not live:
            level = log.debug if self._warned_late else log.warning
            self._warned_late = True
            level(
                f"organic queue {self._name!r}: a sample was acknowledged after its "
                f"{self._lease:g}s lease ran out; it was put back and will be scored again. "
                "Make lease= longer than the longest iteration."
            )

    def renew(self, samples: Sequence[Any]) -> None:
        """Their iterations still run: give each of ``samples`` (objects :meth:`sample`
        returned) a fresh ``lease``, in one round trip. Others are ignored.

        Raises:
            RedisUnavailable: The server did not answer; the leases run as they were.
        """
        self._check_open()
        with self._lock:
            held = [
                lease
                for sample in samples
                for lease in self._leases.get(id(sample), ())
                if lease.sample is sample
            ]
        if not held:
            return
        started = time.monotonic()
        with self._link.failures("cannot renew leases"):
            self._renew_script(
                self._keys, [self._lease_ms, self._max_size, *(lease.member for lease in held)]
            )
        for lease in held:
            lease.expires = started + self._lease

    def dead_letters(self, limit: int = 100) -> list[Any]:
        """Up to ``limit`` dead letters, newest first (a stored text where one no
        longer decodes). They stay in the list, which keeps the newest ``max_size``.

        Raises:
            RedisUnavailable: The server did not answer.
        """
        self._check_open()
        with self._link.failures("cannot read the dead letters"):
            stored = self._link.client.lrange(self._keys[5], 0, max(0, limit - 1))
        out = []
        for one in stored:
            try:
                out.append(_load(one if isinstance(one, bytes) else one.encode()))
            except SampleUnreadable as unreadable:
                out.append(unreadable.raw)
        return out

    def count_accepted(self) -> None:
        """Count one request accepted by an intake, in the fleet's ledger (one round trip).

        Raises:
            RedisUnavailable: The server did not answer.
        """
        self._check_open()
        with self._link.failures("cannot count an accepted request"):
            self._link.client.hincrby(self._keys[3], "accepted", 1)

    @property
    def size(self) -> int:
        """How many samples are waiting, those whose lease ran out included."""
        self._check_open()
        with self._link.failures("cannot read the size"):
            return int(self._size_script(self._keys, [self._max_size]))

    def counters(self) -> LeasedQueueCounters:
        """All counters and the size, read together in one atomic script."""
        self._check_open()
        self._check_server()
        with self._link.failures("cannot read the counters"):
            reply = self._counters_script(self._keys, [self._max_size])
        if not int(reply[11]):
            self._data_lost()
            with self._link.failures("cannot read the counters"):
                reply = self._counters_script(self._keys, [self._max_size])
        self._last_held = int(reply[9]) + int(reply[10])
        (added, sampled, acked, redelivered, dropped, scored, failed, accepted, dead) = (
            int(v) for v in reply[:9]
        )
        size, leased = int(reply[9]), int(reply[10])
        return LeasedQueueCounters(
            added=added,
            sampled=sampled,
            dropped=dropped,
            size=size,
            max_size=self._max_size,
            leased=leased,
            acked=acked,
            redelivered=redelivered,
            scored=scored,
            failed=failed,
            accepted=accepted,
            dead_lettered=dead,
            lost=self._lost,
            data_losses=self._data_losses,
        )

    def scorer_lock(self) -> LeaseLock | None:
        """A new lock on this queue's scorer role; None when ``one_scorer`` is False.

        Every scorer that samples this queue contends for the same lock; the scoring
        loop keeps one for each run and runs iterations only while it holds it.
        """
        self._check_open()
        if not self._one_scorer:
            return None
        key = f"organic-scoring:{{{self._name}}}:scorer"
        return LeaseLock(self._link, key, period=self._lock_period)

    @property
    def max_size(self) -> int:
        """The most samples kept waiting before the oldest is dropped."""
        return self._max_size

    @property
    def name(self) -> str:
        """The queue's name on the server."""
        return self._name

    @property
    def url(self) -> str:
        """The server's URL, password masked."""
        return self._link.url

    @property
    def lease(self) -> float:
        """Seconds a handed-out sample stays leased."""
        return self._lease

    @property
    def max_deliveries(self) -> int:
        """How many times a sample may be handed out before it is dead-lettered."""
        return self._max_deliveries

    @property
    def added(self) -> int:
        """Samples stored by every process's ``add``."""
        return self.counters().added

    @property
    def sampled(self) -> int:
        """Hand-outs, redeliveries included."""
        return self.counters().sampled

    @property
    def acked(self) -> int:
        """Samples acknowledged and deleted."""
        return self.counters().acked

    @property
    def redelivered(self) -> int:
        """Leases that ran out and put their sample back."""
        return self.counters().redelivered

    @property
    def dropped(self) -> int:
        """Samples dropped, oldest first, because the queue was full."""
        return self.counters().dropped

    @property
    def leased(self) -> int:
        """Samples handed out and neither acknowledged nor put back yet."""
        return self.counters().leased

    # -- listeners ---------------------------------------------------------------

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every add by any process (see the class notes)."""
        super().add_listener(listener)
        with self._lock:
            if self._watcher is None and not self._closed:
                self._watcher = _AddWatcher(self)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``; the last one removed stops following the channel."""
        super().remove_listener(listener)
        if not self._listeners:
            self._stop_watching()

    def _stop_watching(self) -> None:
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def close(self) -> None:
        """Close the connections. Idempotent; the queue cannot be used afterwards.

        Samples this object leased and did not acknowledge come back when their
        leases run out.
        """
        self._closed = True
        self._stop_watching()
        self._link.close()

    def __enter__(self) -> RedisOrganicQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"RedisOrganicQueue({self._link.url!r}, name={self._name!r}"
        if self._closed:
            return where + ", closed)"
        try:
            c = self.counters()
        except ConnectionError:
            return where + ", unreachable)"
        return (
            f"{where}, size={c.size}, max_size={c.max_size}, added={c.added}, "
            f"sampled={c.sampled}, leased={c.leased}, acked={c.acked}, "
            f"redelivered={c.redelivered}, dropped={c.dropped})"
        )

    # -- internals ---------------------------------------------------------------

    _SERVER_CHECK = 5.0  # seconds between looks at the server's run id

    def _check_server(self, *, at_start: bool = False) -> None:
        """Note a restart of the server (a new run id), at most every few seconds; at
        start, warn when it persists nothing."""
        now = time.monotonic()
        if not at_start and now - self._run_id_checked < self._SERVER_CHECK:
            return
        self._run_id_checked = now
        try:
            info = self._link.client.info("server")
            run_id = str(info.get("run_id", ""))
            if at_start:
                persistence = self._link.client.info("persistence")
                saves = self._link.client.config_get("save").get("save", "")
                if not int(persistence.get("aof_enabled", 0)) and not saves:
                    log.warning(
                        f"organic queue {self._name!r}: Redis at {self._link.url} keeps "
                        "neither an append-only file nor RDB snapshots: a restart loses "
                        "every waiting sample. Run it with appendonly yes."
                    )
        except self._link.errors:
            return  # CONFIG may be disabled (a managed server); an outage shows elsewhere
        if self._run_id is not None and run_id != self._run_id:
            log.warning(
                f"organic queue {self._name!r}: Redis at {self._link.url} restarted "
                "(its run id changed)"
            )
        self._run_id = run_id

    def _data_lost(self) -> None:
        """The marker vanished: Redis lost its data. Report it, count what was known to
        be waiting, and mark the queue again."""
        lost = self._last_held
        self._lost += lost
        self._data_losses += 1
        self._last_held = 0
        log.error(
            f"organic queue {self._name!r}: Redis at {self._link.url} lost its data (a "
            f"restart without persistence, or a flush): {lost} sample(s) waiting or "
            "leased at the last look are gone, and the fleet's ledger restarts from 0. "
            "Run Redis with appendonly yes."
        )
        with self._link.failures("cannot mark the queue"):
            self._link.client.set(self._keys[6], self._origin, nx=True)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"RedisOrganicQueue(name={self._name!r}) is closed")

    def _take(self, sample: Any) -> _Lease | None:
        """Remove and return the oldest outstanding lease of this very object."""
        with self._lock:
            held = self._leases.get(id(sample))
            if not held:
                return None
            for index, lease in enumerate(held):
                if lease.sample is sample:
                    del held[index]
                    if not held:
                        del self._leases[id(sample)]
                    lease.done = True
                    return lease
        return None

    def _put_back(self, lease: _Lease) -> None:
        """An ack failed: hold the lease again (and let it be forgotten in time)."""
        with self._lock:
            lease.done = False
            self._leases.setdefault(id(lease.sample), []).insert(0, lease)
            self._handed.append(lease)

    def _forget_old(self, now: float) -> None:
        """Forget hand-outs whose lease ran out long ago. Caller holds the lock.

        The server has put those samples back; an ack now would be a no-op anyway.
        Kept for one more lease period, so a scorer whose clock runs slow still acks.
        """
        handed = self._handed
        while handed and (handed[0].done or handed[0].expires + self._lease < now):
            lease = handed.popleft()
            if lease.done:
                continue
            held = self._leases.get(id(lease.sample))
            if held and lease in held:
                held.remove(lease)
                if not held:
                    del self._leases[id(lease.sample)]


class _AddWatcher:
    """Thread that relays other processes' adds (from the channel) to the queue's listeners."""

    _POLL = 0.2  # seconds between checks of the stop flag
    _RETRY = 1.0  # seconds between attempts to follow the channel again after a failure

    def __init__(self, queue: RedisOrganicQueue) -> None:
        self._queue = queue
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"organic-scoring-queue-{queue.name}-adds", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        queue = self._queue
        client: Any = queue._link.client
        failing = False
        while not self._stopping.is_set():
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(queue._channel)
                if failing:
                    log.info(f"organic queue {queue.name!r}: following its adds again")
                    failing = False
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=self._POLL)
                    if message is not None and message.get("data") != queue._origin:
                        queue._notify_added()
            except Exception as exc:
                if not failing:
                    log.warning(
                        f"organic queue {queue.name!r}: cannot follow the adds of other "
                        f"processes ({type(exc).__name__}: {exc}); retrying"
                    )
                failing = True
                self._stopping.wait(self._RETRY)
            finally:
                pubsub.close()


def _load(stored: bytes) -> Any:
    """The sample stored as ``kind letter + [model path + newline] + JSON``."""
    try:
        text = stored.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = stored.decode("utf-8", "replace")
        raise SampleDecodeError(f"a stored sample is not UTF-8: {exc}", "json", None, raw) from exc
    kind, rest = text[:1], text[1:]
    if kind == "m":
        model, _, body = rest.partition("\n")
        return decode("model", model, body)
    return decode("json" if kind == "j" else kind, None, rest)
