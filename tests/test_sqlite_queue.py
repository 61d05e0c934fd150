"""SQLiteOrganicQueue beyond the shared contract: storage round trips, files, and crashes.

The guarantees every organic queue gives run against this one in test_queue_contract.py.
"""

from __future__ import annotations

import asyncio
import math
import os
import selectors
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from benchmarks import bench_sqlite_queue
from organic_scoring import IterationError, OrganicScoringError, _compat
from organic_scoring.errors import (
    QueueFileError,
    QueueUnavailable,
    SampleDecodeError,
    SampleNotStorable,
)
from organic_scoring.organic_queue import QueueCounters, SQLiteOrganicQueue
from organic_scoring.organic_queue._codec import MAX_DEPTH
from support.queue_contract import (
    assert_no_loss_or_duplication,
    drain,
    eager_thread_switching,
    hammer,
)
from support.scorers import Letters, Recorder


class Message(BaseModel):
    """A chat turn, nested inside Conversation."""

    role: str
    content: str


class Conversation(BaseModel):
    """A model with nesting, a datetime and an optional field."""

    messages: list[Message]
    at: datetime
    temperature: float | None = None

    class Inner(BaseModel):
        """A model reachable only through its qualname."""

        flag: bool = True


class Strict(BaseModel):
    """Refuses what it serialises: its JSON does not load back."""

    value: str

    @field_validator("value")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("value must not be empty")
        return value


Synapse = _compat.synapse_class()
if Synapse is not None:

    class EchoSynapse(Synapse):  # type: ignore[misc, valid-type]
        """A validator's organic request on bittensor 9/10."""

        prompt: str = ""
        completion: list[str] = []


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def open_queue(db: Path) -> Iterator[Any]:
    """Make queues on ``db`` (NORMAL sync unless asked) and close them all afterwards."""
    made: list[SQLiteOrganicQueue] = []

    def make(**kwargs: Any) -> SQLiteOrganicQueue:
        kwargs.setdefault("synchronous", "NORMAL")
        kwargs.setdefault("seed", 0)
        queue = SQLiteOrganicQueue(kwargs.pop("path", db), **kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


# -- beyond the OrganicQueue contract (that is in test_queue_contract.py) -----------------


def test_defaults_and_closing_on_exit(db: Path) -> None:
    with SQLiteOrganicQueue(db) as queue:
        assert queue.max_size == 10_000
        assert queue.synchronous == "FULL"
        assert queue.path == str(db)
    assert queue.closed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"synchronous": "OFF"}, "synchronous"),
        ({"synchronous": 2}, "synchronous"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": True}, "timeout"),
    ],
)
def test_options_are_validated(db: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SQLiteOrganicQueue(db, **kwargs)


def test_synchronous_is_case_insensitive(open_queue: Any) -> None:
    assert open_queue(synchronous="normal").synchronous == "NORMAL"


def test_failed_add_changes_nothing_and_notifies_no_one(open_queue: Any) -> None:
    queue = open_queue()
    calls: list[None] = []
    queue.add_listener(lambda: calls.append(None))
    with pytest.raises(TypeError):
        queue.add(object())
    assert calls == []
    assert queue.counters() == QueueCounters(added=0, sampled=0, dropped=0, size=0, max_size=10_000)


def test_two_queue_objects_can_share_a_file(open_queue: Any) -> None:
    # Two connections, as two processes would have: SQLite serialises their transactions.
    first, second = open_queue(max_size=64, seed=1), open_queue(max_size=64, seed=2)
    with eager_thread_switching():
        sampled, everything = hammer([first, second] * 3, [second, first], per_adder=200)
    assert first.counters() == second.counters()
    assert_no_loss_or_duplication(first, sampled, everything)


# -- what can be stored ----------------------------------------------------------------


def test_pydantic_models_round_trip(open_queue: Any) -> None:
    queue = open_queue()
    conversation = Conversation(
        messages=[Message(role="user", content="héllo ✓"), Message(role="assistant", content="")],
        at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        temperature=0.7,
    )
    queue.add(conversation)
    queue.add(Conversation.Inner(flag=False))
    out = drain(queue)
    assert conversation in out
    assert Conversation.Inner(flag=False) in out
    assert {type(item) for item in out} == {Conversation, Conversation.Inner}


@pytest.mark.bittensor
@pytest.mark.skipif(Synapse is None, reason="bittensor 11 has no Synapse")
def test_bittensor_synapses_round_trip(open_queue: Any) -> None:
    queue = open_queue()
    synapse = EchoSynapse(prompt="what is 2+2?", completion=["4"])
    queue.add(synapse)
    back = queue.sample()
    assert type(back) is EchoSynapse
    assert back == synapse


JSON_VALUES = [
    "text ✓ with \x00 and \n",
    0,
    -(2**62),
    2**80,
    1.5,
    -0.0,
    1e308,
    True,
    False,
    [],
    {},
    [1, "two", None, [3.0, {"four": [False]}]],
    {"messages": [{"role": "user", "content": "hi"}], "meta": {"uid": 7, "score": None}},
]


def test_json_values_round_trip_exactly(open_queue: Any) -> None:
    queue = open_queue()
    for value in JSON_VALUES:
        queue.add(value)
        back = queue.sample()
        assert back == value
        assert type(back) is type(value)
        assert repr(back) == repr(
            value
        )  # 1.5 stays a float, True stays a bool, -0.0 keeps its sign


class NotStorable:
    """Neither a model nor a JSON value."""


def make_local_model() -> BaseModel:
    class Local(BaseModel):
        x: int = 1

    return Local()


@pytest.mark.parametrize(
    ("sample", "error", "match"),
    [
        (NotStorable(), TypeError, r"sample is a NotStorable: .*pydantic models and JSON"),
        (b"bytes", TypeError, "sample is a bytes"),
        ((1, 2), TypeError, "sample is a tuple; store a list"),
        ({"a": [1, {2, 3}]}, TypeError, r"sample\['a'\]\[1\] is a set"),
        ({1: "one"}, TypeError, "key of type int"),
        ({"when": datetime(2025, 1, 1)}, TypeError, r"sample\['when'\] is a datetime"),
        ([1.0, math.nan], ValueError, r"sample\[1\] is nan; JSON has no NaN"),
        ({"x": math.inf}, ValueError, "inf"),
        (make_local_model(), TypeError, "cannot be imported back"),
        (Strict.model_construct(value=""), TypeError, "does not load back"),
    ],
)
def test_unstorable_samples_are_clear_errors_at_add(
    open_queue: Any, sample: Any, error: type[Exception], match: str
) -> None:
    queue = open_queue()
    with pytest.raises(error, match=match):
        queue.add(sample)
    assert queue.counters().added == 0


def test_self_containing_values_are_refused(open_queue: Any) -> None:
    queue = open_queue()
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match=r"sample\[1\] contains itself"):
        queue.add(loop)
    shared = [1]
    queue.add([shared, shared])  # the same list twice is fine: it is not a cycle
    assert queue.sample() == [[1], [1]]


def test_a_stored_model_that_no_longer_loads_is_reported_not_stuck(
    open_queue: Any, db: Path
) -> None:
    queue = open_queue()
    queue.add(Message(role="user", content="hi"))
    queue.add(Message(role="user", content="there"))
    with sqlite3.connect(db) as raw:  # as if the class had moved since it was stored
        raw.execute("UPDATE organic_queue_entry SET model = 'gone.module:Message' WHERE slot = 0")
        raw.execute("UPDATE organic_queue_entry SET model = 'json:dumps' WHERE slot = 1")
    raw.close()
    errors = []
    for _ in range(2):
        with pytest.raises(SampleDecodeError) as caught:
            queue.sample()
        errors.append(caught.value)
    assert isinstance(errors[0], OrganicScoringError)
    assert {e.model for e in errors} == {"gone.module:Message", "json:dumps"}
    assert all(e.kind == "model" and '"content"' in e.body for e in errors)
    assert any("not a pydantic model" in str(e) for e in errors)
    assert queue.sample() is None  # the bad rows left the queue, counted as sampled
    assert queue.counters().sampled == 2


# -- the file --------------------------------------------------------------------------


def test_reopening_keeps_samples_and_counters(db: Path) -> None:
    with SQLiteOrganicQueue(db, max_size=4, seed=0) as queue:
        for i in range(6):
            queue.add({"i": i})
        queue.sample()
        before = queue.counters()
    with SQLiteOrganicQueue(db, max_size=4, seed=0) as queue:
        reopened = queue.counters()
        # The file's counters, and what this object found in it on open.
        assert replace(reopened, carried_over=0, dropped_earlier=0) == before
        assert (reopened.carried_over, reopened.dropped_earlier) == (before.size, before.dropped)
        remaining = drain(queue)
        queue.add({"i": 6})
    assert len(remaining) == 3
    assert {item["i"] for item in remaining} < {2, 3, 4, 5}
    with SQLiteOrganicQueue(db, max_size=4) as queue:
        assert queue.counters() == QueueCounters(
            added=7, sampled=4, dropped=2, size=1, max_size=4, carried_over=1, dropped_earlier=2
        )


def test_reopening_with_a_smaller_bound_drops_the_oldest(db: Path) -> None:
    with SQLiteOrganicQueue(db, max_size=10, synchronous="NORMAL") as queue:
        for i in range(10):
            queue.add(i)
    with SQLiteOrganicQueue(db, max_size=3, synchronous="NORMAL") as queue:
        # The ten it found were carried over; seven of them were dropped since.
        assert queue.counters() == QueueCounters(
            added=10, sampled=0, dropped=7, size=3, max_size=3, carried_over=10
        )
        assert sorted(drain(queue)) == [7, 8, 9]


def test_the_file_is_in_wal_mode(db: Path) -> None:
    SQLiteOrganicQueue(db).close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_another_schema_version_is_refused(db: Path) -> None:
    SQLiteOrganicQueue(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA user_version = 2")
    raw.close()
    with pytest.raises(QueueFileError, match=r"schema version 2; .* reads schema version 1"):
        SQLiteOrganicQueue(db)


def test_a_foreign_database_is_refused_and_left_alone(db: Path) -> None:
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE users (name TEXT)")
        raw.execute("INSERT INTO users VALUES ('alice')")
    raw.close()
    before = db.read_bytes()
    with pytest.raises(QueueFileError, match="not an organic queue file") as caught:
        SQLiteOrganicQueue(db)
    assert isinstance(caught.value, ValueError)
    assert db.read_bytes() == before  # still in rollback-journal mode, same contents


def test_a_file_that_is_not_sqlite_is_refused(db: Path) -> None:
    db.write_text("these are not the bytes of a database\n" * 100)
    with pytest.raises(QueueFileError, match="cannot use"):
        SQLiteOrganicQueue(db)


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(QueueFileError, match="cannot open"):
        SQLiteOrganicQueue(tmp_path / "nowhere" / "queue.db")


def test_a_closed_queue_says_so(db: Path) -> None:
    queue = SQLiteOrganicQueue(db)
    queue.close()
    queue.close()  # idempotent
    assert "closed" in repr(queue)
    for use in (lambda: queue.add(1), queue.sample, lambda: queue.size, queue.counters):
        with pytest.raises(ValueError, match="is closed"):
            use()


# -- crashes ---------------------------------------------------------------------------

# Adds numbered entries for ever, writing "ack <number>" to its own pipe once ``add``
# has returned: a written number is an acknowledged add. (A separate pipe, because
# bittensor 9/10 log to stdout from a thread of their own.) Numbering resumes from
# the file's ``added`` counter, so across runs the k-th add ever made carries number k.
WRITER = textwrap.dedent(
    """
    import os, sys
    from organic_scoring.organic_queue import SQLiteOrganicQueue

    path, max_size, synchronous = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    acks = os.fdopen(int(sys.argv[4]), "w")
    queue = SQLiteOrganicQueue(path, max_size=max_size, synchronous=synchronous)
    number = queue.counters().added
    print("ready", number, file=acks, flush=True)
    while True:
        queue.add({"id": number, "pad": "x" * 200})
        print("ack", number, file=acks, flush=True)
        number += 1
    """
)


def read_lines(fd: int, count: int, deadline: float) -> list[str]:
    """The first ``count`` lines written to the pipe ``fd``, or fail at ``deadline``.

    Anything after the last wanted line is thrown away: call this once per pipe.
    """
    lines: list[str] = []
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(lines) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"writer too slow: {len(lines)} lines"
            if not selector.select(remaining):
                continue
            chunk = os.read(fd, 65536)
            assert chunk, "the writer exited early"
            *done, pending = (pending + chunk).split(b"\n")
            lines.extend(line.decode() for line in done)
    return lines[:count]


def run_writer_until_killed(db: Path, max_size: int, synchronous: str, acks: int) -> list[str]:
    """Start a writer, read its "ready" line and ``acks`` acks, then SIGKILL it."""
    read_fd, write_fd = os.pipe()
    try:
        with (db.parent / "writer.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(db), str(max_size), synchronous, str(write_fd)],
                stdout=log,
                stderr=log,
                pass_fds=(write_fd,),
            )
        os.close(write_fd)
        write_fd = -1
        try:
            return read_lines(read_fd, 1 + acks, time.monotonic() + 90)
        finally:
            proc.kill()  # SIGKILL, wherever the writer is: mid-transaction or between adds
            proc.wait(timeout=30)
    finally:
        os.close(read_fd)
        if write_fd != -1:
            os.close(write_fd)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and SIGKILL")
@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_every_acknowledged_add_survives_sigkill(tmp_path: Path, synchronous: str) -> None:
    db, max_size, acks_per_run, runs = tmp_path / "crash.db", 150, 300, 3
    acked: list[int] = []
    for _ in range(runs):
        first, *acks = run_writer_until_killed(db, max_size, synchronous, acks_per_run)
        ready, start = first.split()
        assert ready == "ready"
        assert int(start) >= len(acked)  # earlier adds, acked or not, are all counted
        numbers = [int(line.split()[1]) for line in acks]
        assert numbers == list(range(int(start), int(start) + acks_per_run))
        acked.extend(numbers)

    with SQLiteOrganicQueue(db, max_size=max_size) as queue:
        counters = queue.counters()
        waiting = {item["id"] for item in drain(queue)}
    # The file is consistent: the counters add up, drops only at the bound.
    assert counters.sampled == 0
    assert counters.added >= max(acked) + 1
    assert counters.size == min(counters.added, max_size)
    assert counters.dropped == counters.added - counters.size
    # Drops are oldest first, so exactly the first `dropped` numbers are gone.
    assert waiting == set(range(counters.dropped, counters.added))
    for number in acked:
        assert number in waiting or number < counters.dropped


# -- benchmark -------------------------------------------------------------------------


def test_bench_sqlite_queue_rows() -> None:
    rows = bench_sqlite_queue.run(quick=True)
    assert {(row["synchronous"], row["size"]) for row in rows} == {
        (mode, size) for mode in ("NORMAL", "FULL") for size in bench_sqlite_queue.QUICK_SIZES
    }
    for row in rows:
        assert set(row) == {"name", "synchronous", "size", "ours_ns", "bare_ns", "ratio"}
        assert row["ours_ns"] > 0
        assert row["bare_ns"] > 0
        assert math.isclose(row["ratio"], row["ours_ns"] / row["bare_ns"])


# -- with the scoring loop: off the event loop, accounted for, failing over ---------------


class _Watched(SQLiteOrganicQueue):
    """Records the threads its blocking calls run on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.threads: set[int] = set()
        super().__init__(*args, **kwargs)

    def sample(self) -> Any:
        self.threads.add(threading.get_ident())
        return super().sample()

    @property
    def size(self) -> int:
        self.threads.add(threading.get_ident())
        return super().size


def test_the_loop_calls_a_sqlite_queue_off_its_event_loop(db: Path) -> None:
    scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=0.001)

    async def run() -> int:
        loop_thread = threading.get_ident()
        await scorer.receive_organic({"prompt": "hi"})
        async with scorer:
            await asyncio.to_thread(scorer.done.wait_for, 3)
        return loop_thread

    with _Watched(db, synchronous="NORMAL") as queue:
        scorer = Recorder(organic_queue=queue, synth_dataset=Letters("a"), trigger_frequency=0.001)
        loop_thread = asyncio.run(run())
        assert queue.threads  # it was asked for samples and its size...
        assert loop_thread not in queue.threads  # ...never on the loop's own thread
        assert scorer.stats.organic_scored == 1


def test_a_plain_add_on_an_event_loop_says_once_to_await_aadd(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def adds(queue: SQLiteOrganicQueue) -> None:
        queue.add({"n": 1})
        queue.add({"n": 2})
        await queue.aadd({"n": 3})

    with SQLiteOrganicQueue(db, synchronous="NORMAL") as queue:
        asyncio.run(adds(queue))
        assert queue.size == 3
    hints = [r for r in caplog.records if "await queue.aadd" in r.getMessage()]
    assert len(hints) == 1


def test_accounting_balances_after_a_restart(db: Path) -> None:
    with SQLiteOrganicQueue(db, synchronous="NORMAL") as queue:
        earlier_life = Recorder(organic_queue=queue)
        for n in range(7):
            asyncio.run(earlier_life.receive_organic({"n": n}))  # accepted, never scored
    with SQLiteOrganicQueue(db, synchronous="NORMAL") as queue:
        scorer = Recorder(organic_queue=queue)

        async def accept_three_and_score_all() -> None:
            for n in range(7, 10):
                await scorer.receive_organic({"n": n})
            for _ in range(10):
                await scorer.loop_iteration()

        asyncio.run(accept_three_and_score_all())
        stats = scorer.stats
    assert (stats.organic_accepted, stats.organic_carried_over) == (3, 7)
    assert stats.organic_scored == 10
    assert stats.organic_unaccounted == 0


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 981, 100_000])
def test_add_refuses_a_value_nested_too_deep_to_read_back(open_queue: Any, depth: int) -> None:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    queue = open_queue()
    with pytest.raises(SampleNotStorable, match=f"more than {MAX_DEPTH} levels") as caught:
        queue.add(value)
    assert isinstance(caught.value, ValueError)
    assert queue.size == 0


def test_nesting_up_to_the_limit_round_trips(open_queue: Any) -> None:
    value: Any = "leaf"
    for _ in range(MAX_DEPTH):
        value = {"down": value}
    queue = open_queue()
    queue.add(value)
    assert queue.sample() == value


def test_an_entry_that_fails_to_decode_is_reported_with_what_was_stored(
    db: Path, open_queue: Any
) -> None:
    queue = open_queue()
    scorer = Recorder(organic_queue=queue)
    asyncio.run(scorer.receive_organic({"n": 1}))
    too_deep = "[" * 100_000 + "]" * 100_000  # too deep for the JSON reader of any Python
    with sqlite3.connect(db) as raw:  # as if written by another program
        raw.execute("UPDATE organic_queue_entry SET body = ?", (too_deep,))
    raw.close()
    with pytest.raises(IterationError) as raised:
        asyncio.run(scorer.loop_iteration())
    assert raised.value.stage == "sample"
    [(sample, stage, error)] = scorer.errors
    assert (sample, stage) == (too_deep, "sample")  # the payload, not None
    assert isinstance(error, SampleDecodeError)
    assert isinstance(error.__cause__, RecursionError)
    assert scorer.stats.organic_failed == 1
    assert scorer.stats.organic_unaccounted == 0


def _fill(db: Path, n: int) -> None:
    with SQLiteOrganicQueue(db, synchronous="NORMAL") as queue:
        for i in range(n):
            queue.add({"i": i, "text": "x" * 500})


def _damage(db: Path, page: int) -> None:
    """Overwrite one page of the file (counting from 0; not 0, which holds the header)."""
    probe = sqlite3.connect(db)
    size = probe.execute("PRAGMA page_size").fetchone()[0]
    probe.close()
    with open(db, "r+b") as file:
        file.seek(page * size)
        file.write(b"\xff" * size)


def test_a_damaged_file_is_refused_on_open(db: Path) -> None:
    _fill(db, 200)
    _damage(db, 3)
    with pytest.raises(QueueFileError, match="damaged"):
        SQLiteOrganicQueue(db)


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable, even for root (the immutable attribute), for a while."""
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a file unwritable here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture
def read_only(db: Path) -> Iterator[Path]:
    """``db`` as a queue file this process may not write."""
    _fill(db, 3)
    if os.geteuid() != 0:  # permissions stop anyone but root
        db.chmod(0o444)
        yield db
        db.chmod(0o644)
        return
    with immutable(db):
        yield db


def test_a_file_failing_while_open_is_a_clear_error_and_the_loop_goes_on_synthetic(
    db: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("making an open file fail needs the immutable attribute (root)")
    with SQLiteOrganicQueue(db, synchronous="NORMAL") as queue:
        scorer = Recorder(organic_queue=queue, synth_dataset=Letters("a"), backoff_initial=0)
        asyncio.run(scorer.receive_organic({"n": 1}))
        with immutable(Path(f"{db}-wal")):  # the write-ahead log can no longer be written

            async def twice() -> list[dict[str, Any]]:
                return [await scorer.loop_iteration() for _ in range(2)]

            during = asyncio.run(twice())
        after = asyncio.run(scorer.loop_iteration())  # the file works again
        assert scorer.stats.organic_unaccounted == 0
    assert [logs["is_organic_sample"] for logs in during] == [False, False]
    assert after["is_organic_sample"] is True
    assert [(sample, stage) for sample, stage, _ in scorer.errors] == [(None, "sample")] * 2
    error = scorer.errors[0][2]
    assert isinstance(error, QueueUnavailable)
    assert str(db) in str(error)


def test_a_read_only_file_is_refused_on_open(read_only: Path) -> None:
    with pytest.raises(QueueFileError, match=r"readonly|read-only|read only"):
        SQLiteOrganicQueue(read_only)


def test_size_is_read_from_the_file_only_after_another_connection_wrote(open_queue: Any) -> None:
    queue, other = open_queue(), open_queue()
    queue.add({"n": 1})
    counts: list[str] = []
    queue._conn.set_trace_callback(counts.append)
    assert (queue.size, queue.size) == (1, 1)
    assert not any("max(slot)" in statement for statement in counts)  # known since the add
    other.add({"n": 2})
    assert queue.size == 2  # the other connection's commit is seen
    assert sum("max(slot)" in statement for statement in counts) == 1
