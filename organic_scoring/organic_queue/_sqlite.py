"""A persistent organic queue: OrganicQueue's guarantees, kept in a SQLite file (WAL).

``PRAGMA application_id`` marks the file and ``user_version`` holds the schema version.
``organic_queue_entry`` has a row per waiting sample: ``seq`` grows with every add,
``slot`` is dense (``0 .. size-1``; a removal moves the last slot into the hole), so a
random sample is ``slot = randrange(size)``. ``organic_queue_meta`` holds the counters.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from organic_scoring._defaults import DEFAULT_QUEUE_SIZE
from organic_scoring._log import log
from organic_scoring.errors import QueueFileError, QueueUnavailable
from organic_scoring.organic_queue._base import OrganicQueueBase, check_count
from organic_scoring.organic_queue._codec import SampleDecodeError, decode, encode
from organic_scoring.organic_queue._memory import QueueCounters

__all__ = ["QueueFileError", "SQLiteOrganicQueue", "SampleDecodeError"]

_APPLICATION_ID = 0x4F53_5155  # "OSQU": an organic-scoring queue file
_SCHEMA_VERSION = 1
_SYNCHRONOUS = ("FULL", "NORMAL")

_CREATE_SCHEMA = (
    "CREATE TABLE organic_queue_entry ("
    " seq INTEGER PRIMARY KEY,"
    " slot INTEGER NOT NULL UNIQUE,"
    " kind TEXT NOT NULL CHECK (kind IN ('json', 'model')),"
    " model TEXT,"
    " body TEXT NOT NULL)",
    "CREATE TABLE organic_queue_meta ("
    " id INTEGER PRIMARY KEY CHECK (id = 0),"
    " added INTEGER NOT NULL,"
    " sampled INTEGER NOT NULL,"
    " dropped INTEGER NOT NULL)",
    "INSERT INTO organic_queue_meta VALUES (0, 0, 0, 0)",
    f"PRAGMA application_id = {_APPLICATION_ID}",
    f"PRAGMA user_version = {_SCHEMA_VERSION}",
)

_SIZE = "SELECT max(slot) FROM organic_queue_entry"
_OLDEST = "SELECT seq, slot FROM organic_queue_entry ORDER BY seq LIMIT 1"
_AT_SLOT = "SELECT seq, kind, model, body FROM organic_queue_entry WHERE slot = ?"
_INSERT = "INSERT INTO organic_queue_entry (slot, kind, model, body) VALUES (?, ?, ?, ?)"
_DELETE = "DELETE FROM organic_queue_entry WHERE seq = ?"
_MOVE = "UPDATE organic_queue_entry SET slot = ? WHERE slot = ?"
_COUNT_ADD = "UPDATE organic_queue_meta SET added = added + 1, dropped = dropped + ? WHERE id = 0"
_COUNT_SAMPLE = "UPDATE organic_queue_meta SET sampled = sampled + 1 WHERE id = 0"
_COUNT_DROPS = "UPDATE organic_queue_meta SET dropped = dropped + ? WHERE id = 0"
_PROBE_WRITE = "UPDATE organic_queue_meta SET added = added WHERE id = 0"
_COUNTERS = (
    "SELECT added, sampled, dropped, (SELECT max(slot) FROM organic_queue_entry)"
    " FROM organic_queue_meta WHERE id = 0"
)


class SQLiteOrganicQueue(OrganicQueueBase):
    """A bounded, thread-safe organic queue in a SQLite file, surviving a restart or
    crash (see ``docs/queues.md``). Several objects may open one file, each holding
    its own ``max_size``. Use it as a context manager, or :meth:`close` it.

    Args:
        path: The queue file; created when missing or empty. Its directory must exist.
        max_size: The most samples kept waiting; an int, at least 1.
        seed: Seeds this object's random generator; None draws a fresh seed.
        synchronous: ``"FULL"`` fsyncs every add and sample (survives power loss);
            ``"NORMAL"`` survives a process crash only.
        timeout: Seconds to wait for another connection's lock on the file.

    Raises:
        QueueFileError: The file is not an organic queue of this schema version,
            is damaged or read-only, or cannot be opened.
    """

    _announces_adds = True  # calls _notify_added after every add

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_size: int = DEFAULT_QUEUE_SIZE,
        seed: int | None = None,
        *,
        synchronous: str = "FULL",
        timeout: float = 5.0,
    ) -> None:
        check_count("max_size", max_size)
        mode = synchronous.upper() if isinstance(synchronous, str) else None
        if mode not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        self._path = os.fspath(path)
        self._max_size = max_size
        self._synchronous = mode
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._warned_full = False
        self._warned_loop = False
        # The size as of the file's data_version (another connection's commit changes it).
        self._size_cache: int | None = None
        self._data_version = -1
        self._conn: sqlite3.Connection | None = _open(self._path, mode, float(timeout))
        try:
            with self._errors():
                self._opened_with = self._counters()
                trimmed = self._trim_on_open()
        except BaseException:
            self.close()
            raise
        if trimmed:
            log.warning(
                f"organic queue file holds more samples than max_size={max_size}; dropped "
                f"the {trimmed} oldest"
            )

    # -- the queue ---------------------------------------------------------------

    def add(self, sample: Any) -> None:
        """Store ``sample`` and commit; in a full queue, drop the oldest first.

        Raises:
            ValueError: ``sample`` is None (``sample()`` uses None to mean empty).
            SampleNotStorable: ``sample`` could not be read back (not a pydantic model
                or JSON value, NaN, a cycle, too deep ...); the message names the part.
            QueueUnavailable: The file failed; nothing was stored.
        """
        if sample is None:
            raise ValueError(
                "cannot add None: SQLiteOrganicQueue.sample() returns None for 'empty'"
            )
        kind, model, body = encode(sample)
        self._warn_on_event_loop()
        with self._lock, self._errors(), _transaction(self._connection()) as conn:
            size = self._size_now(conn)
            drop = max(0, size - self._max_size + 1)
            size = _drop_oldest(conn, drop, size)
            conn.execute(_INSERT, (size, kind, model, body))
            conn.execute(_COUNT_ADD, (drop,))
            self._size_cache = size + 1
            first_drop = drop > 0 and not self._warned_full
            self._warned_full = self._warned_full or first_drop
        if first_drop:
            log.warning(
                f"organic queue is full (max_size={self._max_size}); dropping the oldest "
                "entries to make room, see SQLiteOrganicQueue.counters()"
            )
        self._notify_added()

    def sample(self) -> Any:
        """Remove and return a uniformly random waiting sample, or None when empty.

        Raises:
            SampleDecodeError: The stored sample could not be loaded back; it has
                left the queue and the error carries what was stored (``raw``).
            QueueUnavailable: The file failed; nothing left the queue.
        """
        with self._lock, self._errors(), _transaction(self._connection()) as conn:
            size = self._size_now(conn)
            if size == 0:
                return None
            slot = self._random.randrange(size)
            seq, kind, model, body = conn.execute(_AT_SLOT, (slot,)).fetchone()
            _remove(conn, seq, slot, size)
            conn.execute(_COUNT_SAMPLE)
            self._size_cache = size - 1
        return decode(kind, model, body)

    @property
    def size(self) -> int:
        """How many samples are waiting."""
        with self._lock, self._errors():
            return self._size_now(self._connection())

    @property
    def max_size(self) -> int:
        """The most samples kept waiting before the oldest is dropped."""
        return self._max_size

    @property
    def path(self) -> str:
        """The queue file."""
        return self._path

    @property
    def synchronous(self) -> str:
        """``"FULL"`` or ``"NORMAL"``: how far an acknowledged add is durable."""
        return self._synchronous

    def counters(self) -> QueueCounters:
        """All counters (over the file's life) and the size, read in one statement."""
        with self._lock, self._errors():
            now = self._counters()
        opened = self._opened_with
        return replace(now, carried_over=opened.size, dropped_earlier=opened.dropped)

    def _counters(self) -> QueueCounters:
        added, sampled, dropped, last = self._connection().execute(_COUNTERS).fetchone()
        return QueueCounters(
            added=added,
            sampled=sampled,
            dropped=dropped,
            size=0 if last is None else last + 1,
            max_size=self._max_size,
        )

    # -- lifecycle ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._conn is None

    def close(self) -> None:
        """Close the file. Idempotent; the queue cannot be used afterwards."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> SQLiteOrganicQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"SQLiteOrganicQueue({self._path!r}, closed)"
        c = self.counters()
        return (
            f"SQLiteOrganicQueue({self._path!r}, size={c.size}, max_size={c.max_size}, "
            f"added={c.added}, sampled={c.sampled}, dropped={c.dropped})"
        )

    # -- internals ---------------------------------------------------------------

    def _size_now(self, conn: sqlite3.Connection) -> int:
        """The size, re-read from the file only if another connection changed it."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if self._size_cache is None or version != self._data_version:
            self._size_cache, self._data_version = _size(conn), version
        return self._size_cache

    def _warn_on_event_loop(self) -> None:
        if self._warned_loop:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._warned_loop = True
        log.warning(
            f"SQLiteOrganicQueue({self._path!r}).add() was called on an event loop, which "
            "waits for the commit; in async code use 'await queue.aadd(sample)'"
        )

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's failures of a file in use, as QueueUnavailable naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            self._size_cache = None
            raise QueueUnavailable(f"organic queue file {self._path!r}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise ValueError(f"SQLiteOrganicQueue({self._path!r}) is closed")
        return conn

    def _trim_on_open(self) -> int:
        """Drop the oldest samples beyond ``max_size``; return how many."""
        with self._lock, _transaction(self._connection()) as conn:
            size = self._size_now(conn)
            drop = max(0, size - self._max_size)
            size = _drop_oldest(conn, drop, size)
            if drop:
                conn.execute(_COUNT_DROPS, (drop,))
            self._size_cache = size
        return drop


# -- the file ----------------------------------------------------------------------


def _open(path: str, synchronous: str, timeout: float) -> sqlite3.Connection:
    """Connect, check the file is ours (or empty), switch to WAL, create the schema."""
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise QueueFileError(f"cannot open organic queue file {path!r}: {exc}") from exc
    try:
        # Read-only checks first: a file that is not ours is left exactly as it was.
        _is_new(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise QueueFileError(
                f"cannot use {path!r} as an organic queue: SQLite cannot put it in WAL "
                f"mode (journal_mode={mode})"
            )
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise QueueFileError(f"organic queue file {path!r} is damaged: {'; '.join(problems)}")
        with _transaction(conn):
            # Checked again under the write lock: another process may have created it.
            if _is_new(conn, path):
                for statement in _CREATE_SCHEMA:
                    conn.execute(statement)
            # A file we may not write fails here, at open, not at every later call.
            conn.execute(_PROBE_WRITE)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise QueueFileError(f"cannot use {path!r} as an organic queue: {exc}") from exc
        raise
    return conn


def _is_new(conn: sqlite3.Connection, path: str) -> bool:
    """True for an empty database; False for a queue file of our schema; else raise."""
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id == _APPLICATION_ID:
        if version != _SCHEMA_VERSION:
            raise QueueFileError(
                f"{path!r} is an organic queue file of schema version {version}; this "
                f"version of organic-scoring reads schema version {_SCHEMA_VERSION}"
            )
        return False
    objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if application_id == 0 and version == 0 and objects == 0:
        return True
    raise QueueFileError(
        f"{path!r} is a SQLite database but not an organic queue file "
        f"(application_id={application_id}, {objects} schema objects); refusing to touch it"
    )


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: all of the block's changes are committed, or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _drop_oldest(conn: sqlite3.Connection, drop: int, size: int) -> int:
    """Remove the ``drop`` oldest rows of a queue of ``size``; the size left."""
    for _ in range(drop):
        seq, slot = conn.execute(_OLDEST).fetchone()
        _remove(conn, seq, slot, size)
        size -= 1
    return size


def _size(conn: sqlite3.Connection) -> int:
    last = conn.execute(_SIZE).fetchone()[0]
    return 0 if last is None else int(last) + 1


def _remove(conn: sqlite3.Connection, seq: int, slot: int, size: int) -> None:
    """Delete one row and move the row in the last slot into its place."""
    conn.execute(_DELETE, (seq,))
    if slot != size - 1:
        conn.execute(_MOVE, (slot, size - 1))
