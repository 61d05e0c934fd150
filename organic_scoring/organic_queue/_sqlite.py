"""A persistent organic queue: OrganicQueue's guarantees, kept in a SQLite file.

Organic samples are real user traffic and cannot be regenerated; an in-memory queue
loses every waiting one when the validator restarts or crashes. This queue keeps
them in a SQLite database (the standard library's :mod:`sqlite3`, WAL mode), so a
sample whose ``add`` returned is still there when the file is opened again, or is
counted as dropped.

The file (schema version 1)
---------------------------
``PRAGMA application_id`` marks the file as an organic queue and ``PRAGMA
user_version`` holds the schema version; any other file is refused on open rather
than modified. Two tables:

* ``organic_queue_entry``: one row per waiting sample. ``seq`` (the rowid) grows
  with every add, so the oldest waiting row is the one with the smallest ``seq``.
  ``slot`` is kept dense, ``0 .. size-1``, and unique: a uniformly random waiting
  sample is the row at ``slot = randrange(size)``, and a removal moves the row in
  the last slot into the hole. Finding the oldest row, a random row, the size
  (``max(slot) + 1``) and removing one are each a B-tree lookup: O(log n).
* ``organic_queue_meta``: a single row with the ``added``, ``sampled`` and
  ``dropped`` counters, updated in the same transaction as the rows they count.

Each ``add`` (with the drop it may cause) and each ``sample`` is one
``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction, so a crash leaves all of it or none.

Stored samples
--------------
A pydantic model is stored as its JSON (``model_dump_json``) with its class's
import path, ``module:qualname``; sampling imports that class and validates the
JSON back into it. A JSON value (dict with str keys, list, str, int, float, bool,
None, nested) is stored as JSON text. Nothing is pickled. ``add`` refuses anything
that would not come back as it went in, so every stored row can be loaded later.
Sampling imports the module a stored model names: open only queue files you trust
as much as your code.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import random
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from organic_scoring._log import log
from organic_scoring.errors import OrganicScoringError, SampleUnreadable
from organic_scoring.organic_queue._base import OrganicQueueBase
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
_COUNTERS = (
    "SELECT added, sampled, dropped, (SELECT max(slot) FROM organic_queue_entry)"
    " FROM organic_queue_meta WHERE id = 0"
)


class QueueFileError(OrganicScoringError, ValueError):
    """The file cannot be used as an organic queue.

    It is not a SQLite database, is a database of something else, was written with
    another schema version, or cannot be opened at all. The file is left as it was.
    """


class SampleDecodeError(SampleUnreadable, ValueError):
    """A stored sample could not be turned back into an object by ``sample()``.

    Typically the model's class was renamed, moved or changed incompatibly since the
    sample was stored. The row has left the queue (counted as sampled, so one bad row
    cannot block the queue); what was stored is kept here so it is reported, not lost.
    """

    def __init__(self, message: str, kind: str, model: str | None, body: str) -> None:
        super().__init__(message)
        self.kind = kind
        """``"model"`` or ``"json"``."""
        self.model = model
        """The stored class path, ``module:qualname``, for a model; else None."""
        self.body = body
        """The stored JSON text."""


class SQLiteOrganicQueue(OrganicQueueBase):
    """A bounded, thread-safe organic queue whose samples survive a restart or crash.

    Same surface and guarantees as :class:`OrganicQueue`: at ``max_size`` waiting
    samples ``add`` drops the oldest (counted in :attr:`dropped`), ``sample``
    removes and returns a uniformly random waiting sample or None, and the counters
    obey ``added == sampled + dropped + size``. Here the samples and the counters
    live in a SQLite file, and ``add`` accepts only what it can store: pydantic
    models (their class must be importable by name) and JSON values.

    Durability. With ``synchronous="FULL"`` (the default) ``add`` returns only after
    the sample is on disk: it survives a process crash and a power loss, at the
    price of an fsync per add and per sample. ``"NORMAL"`` skips that fsync: an
    acknowledged add still survives the process crashing or being killed, but the
    last few may be lost if the machine loses power (the file stays consistent).
    Either way each call blocks its thread until its transaction is committed; run
    ``python -m benchmarks.bench_sqlite_queue`` to see what that costs on a machine.

    Threads. One connection serves the object, guarded by one lock: every call
    from any thread is serialised. Two queue objects, in one process or two, may
    open the same file: SQLite serialises their transactions (waiting up to
    ``timeout`` seconds for the other's lock, then raising
    :class:`sqlite3.OperationalError`), each sees the other's samples, the counters
    are shared, and each enforces its own ``max_size`` on its adds.

    Reopening a file keeps its samples and counters. If it holds more samples than
    the new ``max_size``, the oldest are dropped (counted) on open.

    Use it as a context manager, or call :meth:`close` when done.

    Args:
        path: The queue file; created when missing or empty. Its directory must exist.
        max_size: The most samples kept waiting; an int, at least 1.
        seed: Seeds this object's random generator, so a test can replay the order
            in which samples come out. None draws a fresh seed.
        synchronous: ``"FULL"`` or ``"NORMAL"``, see above.
        timeout: Seconds to wait for another connection's lock on the file.

    Raises:
        QueueFileError: The file is not an organic queue of this schema version,
            or cannot be opened.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_size: int = 10_000,
        seed: int | None = None,
        *,
        synchronous: str = "FULL",
        timeout: float = 5.0,
    ) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be an int of at least 1, got {max_size!r}")
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
        self._conn: sqlite3.Connection | None = _open(self._path, mode, float(timeout))
        try:
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
        """Store ``sample``; in a full queue, drop the oldest waiting sample first.

        Returns once the sample is committed to the file (see *Durability*).

        Raises:
            ValueError: ``sample`` is None (``sample()`` uses None to mean empty),
                or holds a float that JSON cannot carry (NaN, infinity), or
                contains itself.
            TypeError: ``sample`` is neither a pydantic model nor a JSON value, or
                is a model that cannot be imported by name or loaded back from its
                own JSON. The message names the offending type.
        """
        if sample is None:
            raise ValueError(
                "cannot add None: SQLiteOrganicQueue.sample() returns None for 'empty'"
            )
        kind, model, body = _encode(sample)
        with self._lock, self._transaction() as conn:
            size = _size(conn)
            drop = max(0, size - self._max_size + 1)
            for _ in range(drop):
                seq, slot = conn.execute(_OLDEST).fetchone()
                _remove(conn, seq, slot, size)
                size -= 1
            conn.execute(_INSERT, (size, kind, model, body))
            conn.execute(_COUNT_ADD, (drop,))
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
                left the queue and the error carries what was stored.
        """
        with self._lock, self._transaction() as conn:
            size = _size(conn)
            if size == 0:
                return None
            slot = self._random.randrange(size)
            seq, kind, model, body = conn.execute(_AT_SLOT, (slot,)).fetchone()
            _remove(conn, seq, slot, size)
            conn.execute(_COUNT_SAMPLE)
        return _decode(kind, model, body)

    @property
    def size(self) -> int:
        """How many samples are waiting."""
        with self._lock:
            return _size(self._connection())

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

    @property
    def added(self) -> int:
        """Samples accepted by :meth:`add` over the file's life."""
        return self.counters().added

    @property
    def sampled(self) -> int:
        """Samples handed out by :meth:`sample` over the file's life."""
        return self.counters().sampled

    @property
    def dropped(self) -> int:
        """Samples dropped, oldest first, because the queue was full."""
        return self.counters().dropped

    def counters(self) -> QueueCounters:
        """All counters and the size, read together in one statement."""
        with self._lock:
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

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise ValueError(f"SQLiteOrganicQueue({self._path!r}) is closed")
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of the block's changes are committed, or none."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _trim_on_open(self) -> int:
        """Drop the oldest samples beyond ``max_size``; return how many."""
        with self._lock, self._transaction() as conn:
            size = _size(conn)
            drop = max(0, size - self._max_size)
            for _ in range(drop):
                seq, slot = conn.execute(_OLDEST).fetchone()
                _remove(conn, seq, slot, size)
                size -= 1
            if drop:
                conn.execute(_COUNT_DROPS, (drop,))
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
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked again under the write lock: another process may have created it.
            if _is_new(conn, path):
                for statement in _CREATE_SCHEMA:
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except QueueFileError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise QueueFileError(f"cannot use {path!r} as an organic queue: {exc}") from exc
    except BaseException:
        conn.close()
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


def _size(conn: sqlite3.Connection) -> int:
    last = conn.execute(_SIZE).fetchone()[0]
    return 0 if last is None else int(last) + 1


def _remove(conn: sqlite3.Connection, seq: int, slot: int, size: int) -> None:
    """Delete one row and move the row in the last slot into its place."""
    conn.execute(_DELETE, (seq,))
    if slot != size - 1:
        conn.execute(_MOVE, (slot, size - 1))


# -- samples <-> JSON text -----------------------------------------------------------

_JSON_SCALARS = (str, int, float, bool, type(None))
_JSON_HINT = (
    "SQLiteOrganicQueue stores pydantic models and JSON values "
    "(dict with str keys, list, str, int, float, bool, None)"
)


def _encode(sample: Any) -> tuple[str, str | None, str]:
    """``(kind, model path or None, JSON text)`` for ``sample``, or a clear error."""
    if isinstance(sample, BaseModel):
        cls = type(sample)
        path = _model_path(cls)
        try:
            body = sample.model_dump_json()
        except ValueError as exc:
            raise TypeError(f"cannot store a {cls.__qualname__}: {exc}") from exc
        try:
            cls.model_validate_json(body)
        except ValueError as exc:
            raise TypeError(
                f"cannot store a {cls.__qualname__}: it does not load back from its own "
                f"JSON ({exc})"
            ) from exc
        return "model", path, body
    _check_json(sample, [], set())
    return "json", None, json.dumps(sample, allow_nan=False, ensure_ascii=False)


def _check_json(value: Any, where: list[str | int], open_containers: set[int]) -> None:
    """Raise unless ``value`` is a JSON value that comes back from JSON unchanged."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{_where(where)} is {value!r}; JSON has no NaN or infinity")
        return
    if kind is not dict and kind is not list:
        advice = "; store a list" if kind is tuple else ""
        raise TypeError(f"{_where(where)} is a {kind.__qualname__}{advice}: {_JSON_HINT}")
    if id(value) in open_containers:
        raise ValueError(f"{_where(where)} contains itself")
    open_containers.add(id(value))
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"{_where(where)} has a key of type {type(key).__qualname__} "
                    f"({key!r}); JSON object keys are str"
                )
            where.append(key)
            _check_json(item, where, open_containers)
            where.pop()
    else:
        for index, item in enumerate(value):
            where.append(index)
            _check_json(item, where, open_containers)
            where.pop()
    open_containers.discard(id(value))


def _where(path: list[str | int]) -> str:
    return "sample" + "".join(f"[{step!r}]" for step in path)


@functools.lru_cache(maxsize=256)
def _model_path(cls: type[BaseModel]) -> str:
    """``module:qualname`` for ``cls``, checked to import back to ``cls`` itself."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    try:
        found: type[BaseModel] | None = _import_model(path)
    except (ImportError, AttributeError, TypeError, ValueError):
        found = None
    if found is not cls:
        raise TypeError(
            f"cannot store a {cls.__qualname__}: its class cannot be imported back as "
            f"{path!r}; define the model at module level"
        )
    return path


def _import_model(path: str) -> type[BaseModel]:
    """The pydantic model class at ``module:qualname``; refuse anything else."""
    module_name, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise TypeError(f"{path!r} is not a pydantic model class")
    return found


def _decode(kind: str, model: str | None, body: str) -> Any:
    """The object stored as ``(kind, model, body)``."""
    try:
        if kind == "json":
            return json.loads(body)
        if kind == "model" and model is not None:
            return _import_model(model).model_validate_json(body)
        problem = f"unknown kind {kind!r}"
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        what = model if kind == "model" else "JSON"
        raise SampleDecodeError(
            f"cannot load a stored {what} sample: {exc}", kind, model, body
        ) from exc
    raise SampleDecodeError(f"cannot load a stored sample: {problem}", kind, model, body)
