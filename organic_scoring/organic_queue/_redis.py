"""An organic queue in Redis, shared across processes and hosts; one Lua script per operation.

Keys of a queue named ``N`` start with ``organic-scoring:{N}:`` (a Cluster hash tag):

* ``waiting``: sorted set of waiting sample ids, scored by id (oldest = lowest).
* ``items``: hash, id to stored sample, for waiting and leased samples.
* ``leases``: sorted set of ``"id:number:epoch"`` scored by lease expiry (server
  ms): the hand-out's number, and the server time (µs) of the first hand-out since
  the data began, so that ids and numbers reused after a data loss do not match.
* ``meta``: hash with ``seq`` and the counters ``added``, ``sampled``, ``acked``,
  ``redelivered``, ``dropped``, ``scored``, ``failed``, ``accepted``, ``dead``, and
  ``epoch``.
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

import asyncio
import contextlib
import hashlib
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any, ClassVar

from organic_scoring._defaults import (
    DEFAULT_LEASE,
    DEFAULT_LOCK_PERIOD,
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_QUEUE_SIZE,
)
from organic_scoring._log import log
from organic_scoring.errors import RedisUnavailable, SampleUnreadable
from organic_scoring.organic_queue._base import (
    OrganicQueueBase,
    adds_seen,
    check_count,
    request_key,
)
from organic_scoring.organic_queue._codec import SampleDecodeError, decode, encode
from organic_scoring.organic_queue._lock import LeaseLock
from organic_scoring.organic_queue._memory import QueueCounters
from organic_scoring.organic_queue._redis_link import (
    ALLOW_OOM,
    COMMAND_TIMEOUT,
    LuaScript,
    RedisLink,
    check_seconds,
    check_timeout,
)

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
    """Leases that ran out unacknowledged, each putting its sample back."""
    scored: int = 0
    """Acknowledged samples whose iteration succeeded."""
    failed: int = 0
    """Acknowledged samples whose iteration failed (dead letters included)."""
    accepted: int = 0
    """Requests the intakes accepted (:meth:`RedisOrganicQueue.count_accepted`)."""
    lost: int = 0
    """Samples waiting or leased at this object's last look before Redis lost its data."""
    data_losses: int = 0
    """Times this object found that Redis had lost its data (logged at ERROR)."""
    dead_lettered: int = 0
    """Samples moved to the dead letters after ``max_deliveries`` hand-outs."""
    withdrawn: int = 0
    """Adds whose request was answered with an error: taken back, or refused on arrival."""
    late: int = 0
    """Like ``withdrawn``, but the sample had already been handed out (or dropped)."""

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

# ARGV: stored sample, max_size, channel, origin, and for an add by request key the
# key's memory (ms), its key KEYS[8]. Announces the add on the channel with the adding
# object's origin. Returns how many samples were dropped; -1 when the request key was
# seen before (a retry: nothing stored), -2 when its add had been withdrawn (counted).
_ADD = (
    _PRELUDE
    + """
local request = KEYS[8]
if request then
  local seen = redis.call('GET', request)
  if seen == 'withdrawn' then
    redis.call('HINCRBY', meta, 'withdrawn', 1)
    redis.call('SET', request, 'counted', 'PX', ARGV[5])
    return -2
  end
  if seen then return -1 end
end
local max_size = tonumber(ARGV[2])
local dropped = reap(max_size) + trim(max_size - 1)
local id = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('ZADD', waiting, id, id)
redis.call('HSET', items, id, ARGV[1])
redis.call('HINCRBY', meta, 'added', 1)
if request then redis.call('SET', request, id, 'PX', ARGV[5]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return dropped
"""
)

# KEYS: as the add's, KEYS[8] the request key. ARGV: the key's memory (ms). The intake
# answered that request with an error: take back a sample it stored (counted as
# withdrawn), count one already handed out as late, or mark the key so that an add
# arriving later is refused (and counted). Returns 1, 2 or 0 respectively.
_WITHDRAW = """
local request = KEYS[8]
local seen = redis.call('GET', request)
if not seen then
  redis.call('SET', request, 'withdrawn', 'PX', ARGV[1])
  return 0
end
if seen == 'withdrawn' or seen == 'counted' then return 0 end
redis.call('SET', request, 'counted', 'PX', ARGV[1])
if redis.call('ZREM', KEYS[1], seen) == 1 then
  redis.call('HDEL', KEYS[2], seen)
  redis.call('HDEL', KEYS[5], seen)
  redis.call('HINCRBY', KEYS[4], 'added', -1)
  redis.call('HINCRBY', KEYS[4], 'withdrawn', 1)
  return 1
end
redis.call('HINCRBY', KEYS[4], 'late', 1)
return 2
"""

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
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  epoch = clock[1] .. string.format('%06d', tonumber(clock[2]))
  redis.call('HSET', meta, 'epoch', epoch)
end
local member = id .. ':' .. token .. ':' .. epoch
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

# ARGV: max_size. Returns the numbers _COUNTERS_REPLY names ("marker": whether it exists).
_COUNTERS = (
    _PRELUDE
    + """
reap(tonumber(ARGV[1]))
local m = redis.call('HMGET', meta, 'added', 'sampled', 'acked', 'redelivered', 'dropped',
                     'scored', 'failed', 'accepted', 'dead', 'withdrawn', 'late')
local out = {}
for i = 1, 9 do out[i] = tonumber(m[i]) or 0 end
out[10] = redis.call('ZCARD', waiting)
out[11] = redis.call('ZCARD', leases)
out[12] = redis.call('EXISTS', KEYS[7])
out[13] = tonumber(m[10]) or 0
out[14] = tonumber(m[11]) or 0
return out
"""
)
_COUNTERS_REPLY = (
    "added", "sampled", "acked", "redelivered", "dropped", "scored", "failed", "accepted",
    "dead_lettered", "size", "leased", "marker", "withdrawn", "late",
)  # fmt: skip

# ARGV: max_size. Returns the number of waiting samples.
_SIZE = (
    _PRELUDE
    + """
reap(tonumber(ARGV[1]))
return redis.call('ZCARD', waiting)
"""
)


_TOKEN = re.compile(r"([0-9]+:[0-9]+:[0-9]+)@(.*)", re.DOTALL)
"""A lease token: the lease member (the sample's id, the hand-out's number, the
epoch), then ``@`` and the queue's name."""


class _DeadLetter(SampleUnreadable):
    """A sample handed out ``max_deliveries`` times without an ack, now a dead letter."""

    def __init__(self, message: str, sample: Any) -> None:
        super().__init__(message)
        self._sample = sample

    @property
    def raw(self) -> Any:
        """The dead-lettered sample (its stored text when it no longer decodes)."""
        return self._sample


def _scripts(oom: bool) -> dict[str, LuaScript]:
    # Every script but the add may run while Redis refuses writes at maxmemory: the
    # scorer keeps draining the queue (which frees memory) meanwhile.
    flag = ALLOW_OOM if oom else ""
    return {
        "add": LuaScript(_ADD),
        "sample": LuaScript(flag + _SAMPLE),
        "ack": LuaScript(flag + _ACK),
        "counters": LuaScript(flag + _COUNTERS),
        "size": LuaScript(flag + _SIZE),
        "renew": LuaScript(flag + _RENEW),
        "withdraw": LuaScript(flag + _WITHDRAW),
    }


class RedisOrganicQueue(OrganicQueueBase):
    """A bounded organic queue in Redis, shared by every process that names it, with
    at-least-once delivery (:meth:`take`, :meth:`ack`); see ``docs/queues.md`` and
    ``docs/fleet.md``. Call :meth:`close` (or :meth:`aclose`, or use it as a context
    manager) when done.

    Args:
        client: A redis-py client (``redis.Redis``, ``redis.cluster.RedisCluster``,
            a Sentinel master); the caller keeps it and closes it. A URL string is
            read as :meth:`from_url` would.
        name: The queue's name; every process using the same server and ``name``
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
        timeout: Seconds any one awaited call may take before it raises
            ``RedisUnavailable`` (plain calls: the client's ``socket_timeout``, which
            :meth:`from_url` sets to this).

    Raises:
        ValueError: A parameter is out of range (the message names it).
        TypeError: ``client`` is not a redis-py client.
        ImportError: The ``redis`` package is missing (install ``organic-scoring[redis]``).
        RedisUnavailable: The server cannot be reached.
    """

    blocking = True  # every call is a round trip to the server
    _announces_adds = True  # calls _notify_added after every add

    _REQUEST_MS: ClassVar[int] = 600_000
    """How long (ms) an add by request key is remembered, for retries and withdrawals."""

    _SCRIPTS: ClassVar[dict[bool, dict[str, LuaScript]]] = {
        oom: _scripts(oom) for oom in (False, True)
    }

    def __init__(
        self,
        client: Any,
        *,
        name: str = "organic",
        max_size: int = DEFAULT_QUEUE_SIZE,
        lease: float = DEFAULT_LEASE,
        seed: int | None = None,
        one_scorer: bool = True,
        lock_period: float = DEFAULT_LOCK_PERIOD,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        check_count("max_deliveries", max_deliveries)
        check_count("max_size", max_size)
        self._lease = check_seconds("lease", lease, 0.001)
        if not isinstance(name, str) or not name or "{" in name or "}" in name:
            raise ValueError(f"name must be a non-empty string without braces, got {name!r}")
        if not isinstance(one_scorer, bool):
            raise ValueError(f"one_scorer must be True or False, got {one_scorer!r}")
        self._lock_period = check_seconds("lock_period", lock_period, 0.01)
        check_timeout(timeout)
        self._one_scorer = one_scorer
        self._max_deliveries = max_deliveries
        self._name = name
        self._max_size = max_size
        self._lease_ms = max(1, round(self._lease * 1000))
        self._random = random.Random(seed)
        what = f"RedisOrganicQueue(name={name!r})"
        self._link = RedisLink.connect(client, what, timeout=float(timeout))
        prefix = f"organic-scoring:{{{name}}}:"
        self._keys = [
            prefix + part
            for part in ("waiting", "items", "leases", "meta", "tries", "dead", "marker")
        ]
        self._channel = prefix + "added"
        self._request_prefix = prefix + "request:"
        self._withdrawals: deque[tuple[float, list[str]]] = deque()
        self._withdrawer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._origin = uuid.uuid4().hex.encode()
        self._watcher: _AddWatcher | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._warned_full = False
        self._warned_late = False
        self._lost = 0
        self._data_losses = 0
        self._last_held = 0  # samples waiting or leased at the last look
        self._run_id: str | None = None
        self._run_id_checked = 0.0
        try:
            self._scripts = self._SCRIPTS[self._link.script_flags]
            self._mark()
            self._check_server(at_start=True)
        except BaseException:
            self._link.close()
            raise

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> RedisOrganicQueue:
        """A queue on a client made from ``url`` (``redis://[[user]:password@]host[:port][/db]``,
        ``rediss://`` for TLS, ``unix:///path``), its connect and socket timeouts set to
        ``timeout``; the queue owns that client and closes it. ``settings``: as for the
        class.

        Raises:
            ValueError: ``url`` is not a Redis URL, or a setting is out of range.
        """
        if not isinstance(url, str):
            raise ValueError(f"url must be a Redis URL string, got {type(url).__name__}")
        return cls(url, **settings)

    # -- the queue ---------------------------------------------------------------

    def _add_args(self, sample: Any, key: str | None) -> tuple[list[str], list[Any]]:
        if sample is None:
            raise ValueError("cannot add None: RedisOrganicQueue.sample() returns None for 'empty'")
        request = request_key.get() if key is None else None
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        kind, model, body = encode(sample)
        stored = body if model is None else f"{model}\n{body}"
        if request is not None:
            # The request's key and what is stored: a retry stores once, while a
            # handler that queues several samples for one request stores each.
            key = f"{request}:{hashlib.sha1(stored.encode()).hexdigest()[:16]}"
        args = [kind[0] + stored, self._max_size, self._channel, self._origin]
        if key is None:
            return self._keys, args
        return [*self._keys, self._request_prefix + key], [*args, self._REQUEST_MS]

    def _run(self, name: str, doing: str, args: list[Any], keys: list[str] | None = None) -> Any:
        """Script ``name`` on the client, its failures raised as RedisUnavailable."""
        self._check_open()
        with self._link.failures(doing):
            return self._scripts[name](self._link, self._keys if keys is None else keys, args)

    async def _arun(
        self, name: str, doing: str, args: list[Any], keys: list[str] | None = None
    ) -> Any:
        """Script ``name`` on this event loop's async client (:meth:`RedisLink.run`)."""
        self._check_open()
        script = self._scripts[name]
        keys = self._keys if keys is None else keys
        return await self._link.run(
            doing,
            lambda client: script.acall(client, self._link, keys, args),
            lambda: script(self._link, keys, args),
        )

    def _add_failed(self, keys: list[str]) -> None:
        """An add by request key raised: withdraw it on a thread, once Redis answers."""
        if len(keys) <= len(self._keys):
            return
        with self._lock:
            self._withdrawals.append((time.monotonic(), keys))
            if self._withdrawer is None and not self._closed:
                self._withdrawer = threading.Thread(
                    target=self._withdraw_pending,
                    name=f"organic-scoring-queue-{self._name}-withdraw",
                    daemon=True,
                )
                self._withdrawer.start()

    def _withdraw_pending(self) -> None:
        while True:
            with self._lock:
                if not self._withdrawals or self._closed:
                    self._withdrawer = None
                    return
                since, keys = self._withdrawals[0]
            if time.monotonic() - since > self._REQUEST_MS / 1000:
                outcome: Any = None  # remembered no longer: nothing to withdraw
            else:
                try:
                    outcome = self._scripts["withdraw"](self._link, keys, [self._REQUEST_MS])
                except self._link.errors:
                    self._stopping.wait(self._link.timeout)
                    continue
            with self._lock:
                self._withdrawals.popleft()
            if outcome:
                log.warning(
                    f"organic queue {self._name!r}: a sample reached Redis after its "
                    "request was answered with an error; "
                    + ("it was taken back" if int(outcome) == 1 else "it is being scored")
                    + " (see counters().withdrawn and .late)"
                )

    def _added(self, dropped: Any) -> None:
        if dropped is not None and int(dropped) < 0:
            # A retry, or withdrawn: the handler did add (nothing new for the listeners).
            seen = adds_seen.get()
            if seen is not None:
                seen.count += 1
            return
        if dropped and not self._warned_full:
            self._warned_full = True
            log.warning(
                f"organic queue {self._name!r} is full (max_size={self._max_size}); dropping "
                "the oldest samples to make room, see RedisOrganicQueue.counters()"
            )
        self._notify_added()

    def add(self, sample: Any, *, key: str | None = None) -> None:
        """Store ``sample``; in a full queue, drop the oldest waiting sample first.

        Args:
            sample: A pydantic model or a JSON value.
            key: Makes the add idempotent (a second add with it stores nothing); by
                default the intake's key for the request being handled, its hotkey
                and nonce with a digest of the sample. An add by key that raised is
                withdrawn (``counters().withdrawn``, ``.late``).

        Raises:
            ValueError: ``sample`` is None (``sample()`` uses None to mean empty).
            SampleNotStorable: (a ``ValueError``, and a ``TypeError``) ``sample``
                could not be read back; the message names the part.
            RedisUnavailable: The server did not answer; the sample may or may not
                have been stored.
        """
        keys, args = self._add_args(sample, key)
        try:
            dropped = self._run("add", "cannot add a sample", args, keys)
        except RedisUnavailable:
            self._add_failed(keys)
            raise
        self._added(dropped)

    async def aadd(self, sample: Any, *, key: str | None = None) -> None:
        """:meth:`add`, awaitable, on this event loop's async client."""
        keys, args = self._add_args(sample, key)
        try:
            dropped = await self._arun("add", "cannot add a sample", args, keys)
        except (RedisUnavailable, asyncio.CancelledError):
            self._add_failed(keys)
            raise
        self._added(dropped)

    def sample(self) -> Any:
        """:meth:`take` without the token: the lease runs out and the sample comes back.

        Raises:
            SampleUnreadable: See :meth:`take`.
            RedisUnavailable: The server did not answer; nothing was handed out.
        """
        taken = self.take()
        return None if taken is None else taken[0]

    def _sample_args(self) -> list[Any]:
        return [repr(self._random.random()), self._lease_ms, self._max_size, self._max_deliveries]

    def take(self) -> tuple[Any, str] | None:
        """Lease a uniformly random waiting sample: ``(sample, lease token)``, or None
        when none waits. Acknowledge it with :meth:`ack` (the token) when done.

        Raises:
            SampleDecodeError: The stored sample could not be loaded back; it has left
                the queue (counted as acked) and the error carries what was stored.
            SampleUnreadable: The sample was handed out ``max_deliveries`` times
                already; it went to the dead letters, and the error carries it.
            RedisUnavailable: The server did not answer; nothing was handed out.
        """
        return self._taken(self._run("sample", "cannot sample", self._sample_args()))

    async def atake(self) -> tuple[Any, str] | None:
        """:meth:`take`, awaitable, on this event loop's async client."""
        return self._taken(await self._arun("sample", "cannot sample", self._sample_args()))

    async def asample(self) -> Any:
        """:meth:`sample`, awaitable, on this event loop's async client."""
        taken = await self.atake()
        return None if taken is None else taken[0]

    def _taken(self, reply: Any) -> tuple[Any, str] | None:
        if reply is None:
            return None
        member, stored, *dead = reply
        token = (member.decode() if isinstance(member, bytes) else str(member)) + "@" + self._name
        if dead:
            raise _DeadLetter(
                f"organic queue {self._name!r}: a sample was handed out {int(dead[0])} "
                "times and never acknowledged (its iterations hung, or their scorers "
                "died); it was moved to the dead letters, see dead_letters()",
                _load_or_raw(stored),
            )
        try:
            item = _load(stored)
        except SampleUnreadable:  # it will never decode: settle it now
            with contextlib.suppress(RedisUnavailable):
                self.ack(token, failed=True)
            raise
        return item, token

    def _ack_args(self, lease: Any, failed: bool) -> list[Any]:
        self._check_open()
        found = _TOKEN.fullmatch(lease) if isinstance(lease, str) else None
        if found is None:
            raise TypeError(
                "RedisOrganicQueue.ack takes the lease token take() handed out with the "
                f"sample, got {type(lease).__name__}"
            )
        if found[2] != self._name:
            raise ValueError(
                f"organic queue {self._name!r}: a lease token of another queue "
                f"({found[2]!r}) cannot be acknowledged here"
            )
        return [found[1], self._max_size, "failed" if failed else "scored"]

    def ack(self, lease: Any, *, failed: bool = False) -> None:
        """The iteration holding ``lease`` (the token :meth:`take` handed out) has
        ended: delete the lease and the sample. A token whose lease ran out does
        nothing (logged). ``failed`` is counted with the ack, atomically.

        Raises:
            TypeError: ``lease`` is not a lease token.
            ValueError: ``lease`` is a token of another queue (name).
            RedisUnavailable: The server did not answer; the lease stays, so the call
                can be repeated (or the sample comes back when the lease runs out).
        """
        self._acked(self._run("ack", "cannot acknowledge a sample", self._ack_args(lease, failed)))

    async def aack(self, lease: Any, *, failed: bool = False) -> None:
        """:meth:`ack`, awaitable, on this event loop's async client."""
        args = self._ack_args(lease, failed)
        self._acked(await self._arun("ack", "cannot acknowledge a sample", args))

    def _acked(self, live: Any) -> None:
        if not live:
            level = log.debug if self._warned_late else log.warning
            self._warned_late = True
            level(
                f"organic queue {self._name!r}: a sample was acknowledged after its "
                f"{self._lease:g}s lease ran out; it was put back and will be scored again. "
                "Make lease= longer than the longest iteration."
            )

    def _renew_args(self, leases: Sequence[Any]) -> list[Any] | None:
        self._check_open()
        matches = (_TOKEN.fullmatch(lease) for lease in leases if isinstance(lease, str))
        held = [found[1] for found in matches if found is not None and found[2] == self._name]
        if not held:
            return None
        return [self._lease_ms, self._max_size, *held]

    def renew(self, leases: Sequence[Any]) -> None:
        """Their iterations still run: give each of ``leases`` (tokens :meth:`take`
        handed out) a fresh ``lease``, in one round trip. Others are ignored.

        Raises:
            RedisUnavailable: The server did not answer; the leases run as they were.
        """
        args = self._renew_args(leases)
        if args is not None:
            self._run("renew", "cannot renew leases", args)

    async def arenew(self, leases: Sequence[Any]) -> None:
        """:meth:`renew`, awaitable, on this event loop's async client."""
        args = self._renew_args(leases)
        if args is not None:
            await self._arun("renew", "cannot renew leases", args)

    def dead_letters(self, limit: int = 100) -> list[Any]:
        """Up to ``limit`` dead letters, newest first (a stored text where one no
        longer decodes). They stay in the list, which keeps the newest ``max_size``.

        Raises:
            RedisUnavailable: The server did not answer.
        """
        self._check_open()
        with self._link.failures("cannot read the dead letters"):
            stored = self._link.client.lrange(self._keys[5], 0, max(0, limit - 1))
        return [_load_or_raw(one if isinstance(one, bytes) else one.encode()) for one in stored]

    def count_accepted(self) -> None:
        """Count one request accepted by an intake, in the fleet's ledger (one round trip).

        Raises:
            RedisUnavailable: The server did not answer.
        """
        self._check_open()
        with self._link.failures("cannot count an accepted request"):
            self._link.client.hincrby(self._keys[3], "accepted", 1)

    async def acount_accepted(self) -> None:
        """:meth:`count_accepted`, awaitable, on this event loop's async client."""
        self._check_open()
        await self._link.run(
            "cannot count an accepted request",
            lambda client: client.hincrby(self._keys[3], "accepted", 1),
            self.count_accepted,
        )

    @property
    def size(self) -> int:
        """How many samples are waiting, those whose lease ran out included."""
        return int(self._run("size", "cannot read the size", [self._max_size]))

    async def asize(self) -> int:
        """:attr:`size`, awaitable, on this event loop's async client."""
        return int(await self._arun("size", "cannot read the size", [self._max_size]))

    def counters(self) -> LeasedQueueCounters:
        """All counters and the size, read together in one atomic script."""
        self._check_open()
        self._check_server()
        reply = self._run("counters", "cannot read the counters", [self._max_size])
        if not int(reply[11]):
            self._data_lost()
            reply = self._run("counters", "cannot read the counters", [self._max_size])
        counted = dict(zip(_COUNTERS_REPLY, map(int, reply), strict=True))
        del counted["marker"]
        self._last_held = counted["size"] + counted["leased"]
        return LeasedQueueCounters(
            max_size=self._max_size, lost=self._lost, data_losses=self._data_losses, **counted
        )

    def scorer_lock(self) -> LeaseLock | None:
        """A new lock on this queue's scorer role; None when ``one_scorer`` is False."""
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

    # -- listeners ---------------------------------------------------------------

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every add by any process (others' via a thread)."""
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
        """Close the async clients it made (and the client, if :meth:`from_url` made
        it). Idempotent; unacknowledged leases run out and their samples come back."""
        self._closed = True
        self._stopping.set()
        with self._lock:
            withdrawer = self._withdrawer
        if withdrawer is not None and withdrawer is not threading.current_thread():
            withdrawer.join()
        with self._lock:
            pending, self._withdrawals = len(self._withdrawals), deque()
        if pending:
            log.warning(
                f"organic queue {self._name!r}: closed with {pending} sample(s) not "
                "withdrawn: their requests were answered with an error, and each may "
                "still reach Redis and be scored, uncounted (Redis did not answer)"
            )
        self._stop_watching()
        self._link.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaitable: this loop's async client is closed before it returns."""
        await self._link.aforget()
        self.close()

    async def adetach(self) -> None:
        """Close this event loop's async client (another is made if the loop calls again)."""
        await self._link.aforget()

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
        """Log a server restart (new run id); at start, warn when it persists nothing."""
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
        """The marker vanished: report and count the loss, and mark the queue again."""
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
        self._mark()

    def _mark(self) -> None:
        with self._link.failures("cannot mark the queue"):
            self._link.client.set(self._keys[6], self._origin, nx=True)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"RedisOrganicQueue(name={self._name!r}) is closed")


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


def _load_or_raw(stored: bytes) -> Any:
    """The stored sample, or what was stored when it no longer loads."""
    try:
        return _load(stored)
    except SampleUnreadable as unreadable:
        return unreadable.raw
