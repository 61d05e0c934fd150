"""SQLiteOrganicQueue: OrganicQueue's guarantees, storage round trips, files, and crashes."""

from __future__ import annotations

import math
import os
import selectors
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, field_validator

from benchmarks import bench_sqlite_queue
from organic_scoring import OrganicScoringError, _compat
from organic_scoring.organic_queue import (
    OrganicQueueBase,
    QueueCounters,
    QueueFileError,
    SampleDecodeError,
    SQLiteOrganicQueue,
)

# Upper 0.1% point of the chi-square distribution with 9 degrees of freedom.
CHI2_DF9_P001 = 27.877


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


def drain(queue: SQLiteOrganicQueue) -> list[Any]:
    """Everything still waiting, in sampling order."""
    out = []
    while (item := queue.sample()) is not None:
        out.append(item)
    return out


def chi_square(counts: Counter[Any], categories: list[Any], total: int) -> float:
    expected = total / len(categories)
    return sum((counts[c] - expected) ** 2 / expected for c in categories)


# -- the OrganicQueue contract -------------------------------------------------------


def test_is_an_organic_queue(db: Path) -> None:
    with SQLiteOrganicQueue(db) as queue:
        assert isinstance(queue, OrganicQueueBase)
        assert queue.max_size == 10_000
        assert queue.synchronous == "FULL"
        assert queue.path == str(db)
        assert queue.is_empty()
        assert len(queue) == 0
    assert queue.closed


def test_sample_on_empty_returns_none(open_queue: Any) -> None:
    queue = open_queue()
    assert queue.sample() is None
    queue.add("x")
    assert queue.sample() == "x"
    assert queue.sample() is None
    assert queue.sampled == 1


def test_adding_none_is_refused(open_queue: Any) -> None:
    queue = open_queue()
    with pytest.raises(ValueError, match="None"):
        queue.add(None)
    assert queue.added == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, 10.0, True, "10", None])
def test_max_size_is_validated(db: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_size"):
        SQLiteOrganicQueue(db, max_size=bad)
    assert not db.exists()


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


def test_bound_holds_and_drops_are_counted(open_queue: Any) -> None:
    queue = open_queue(max_size=5)
    for i in range(12):
        queue.add(i)
        assert queue.size == min(i + 1, 5)
    assert queue.dropped == 7
    assert queue.added == 12


def test_full_queue_drops_oldest_first(open_queue: Any) -> None:
    queue = open_queue(max_size=3)
    for i in range(10):
        queue.add(i)
    assert sorted(drain(queue)) == [7, 8, 9]


def test_drop_oldest_skips_entries_already_sampled(open_queue: Any) -> None:
    queue = open_queue(max_size=3)
    for item in "abc":
        queue.add(item)
    taken = queue.sample()
    queue.add("d")  # room again: nothing dropped
    assert queue.dropped == 0
    queue.add("e")  # full: the oldest entry still waiting goes
    assert queue.dropped == 1
    oldest_left = next(item for item in "abc" if item != taken)
    remaining = set(drain(queue))
    assert oldest_left not in remaining
    assert remaining == set("abcde") - {taken, oldest_left}


def test_max_size_one(open_queue: Any) -> None:
    queue = open_queue(max_size=1)
    queue.add("a")
    queue.add("b")
    assert queue.dropped == 1
    assert queue.sample() == "b"
    assert queue.sample() is None


@settings(max_examples=60, deadline=None)
@given(
    max_size=st.integers(min_value=1, max_value=8),
    ops=st.lists(st.booleans(), max_size=80),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_matches_a_reference_model(max_size: int, ops: list[bool], seed: int) -> None:
    """Any interleaving of add (True) and sample (False) agrees with a plain list model."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        SQLiteOrganicQueue(
            Path(tmp) / "q.db", max_size=max_size, seed=seed, synchronous="NORMAL"
        ) as queue,
    ):
        model: list[int] = []  # waiting ids, oldest first
        dropped = 0
        next_id = 0
        for is_add in ops:
            if is_add:
                if len(model) == max_size:
                    model.pop(0)
                    dropped += 1
                model.append(next_id)
                queue.add(next_id)
                next_id += 1
            else:
                got = queue.sample()
                if model:
                    assert got in model
                    model.remove(got)
                else:
                    assert got is None
            assert queue.size == len(model)
            assert queue.dropped == dropped
        assert sorted(drain(queue)) == sorted(model)


def test_first_draw_is_uniform_over_entries(open_queue: Any) -> None:
    # Refill 0..9 and draw once, many times over: every entry equally likely first.
    categories = list(range(10))
    queue = open_queue(seed=2024)
    counts: Counter[int] = Counter()
    trials = 1_500
    for _ in range(trials):
        for item in categories:
            queue.add(item)
        counts[queue.sample()] += 1
        drain(queue)
    assert chi_square(counts, categories, trials) < CHI2_DF9_P001


def test_draws_stay_uniform_under_churn_and_drops(open_queue: Any) -> None:
    # Sample one, put it back, and push extra entries through a full queue: slots get
    # reshuffled by swap-removal and by drops, the odds must not.
    categories = list(range(10))
    queue = open_queue(max_size=10, seed=12345)
    for item in categories:
        queue.add(item)
    counts: Counter[int] = Counter()
    draws = 6_000
    for _ in range(draws):
        item = queue.sample()
        counts[item] += 1
        queue.add(item)
    assert chi_square(counts, categories, draws) < CHI2_DF9_P001


def test_seed_makes_sampling_reproducible(tmp_path: Path) -> None:
    def run(seed: int, name: str) -> list[Any]:
        with SQLiteOrganicQueue(
            tmp_path / name, max_size=50, seed=seed, synchronous="NORMAL"
        ) as queue:
            out = []
            for i in range(200):
                queue.add(i)
                if i % 3 == 0:
                    out.append(queue.sample())
            return out + drain(queue)

    assert run(7, "a.db") == run(7, "b.db")
    assert run(7, "c.db") != run(8, "d.db")


def test_listeners_called_once_per_add_even_when_dropping(open_queue: Any) -> None:
    queue = open_queue(max_size=2)
    calls: list[int] = []

    def listener() -> None:
        calls.append(queue.size)

    queue.add_listener(listener)
    for i in range(4):
        queue.add(i)
    assert calls == [1, 2, 2, 2]
    queue.sample()
    assert len(calls) == 4  # sampling does not notify
    queue.remove_listener(listener)
    queue.add(9)
    assert len(calls) == 4


def test_listeners_run_outside_the_lock(open_queue: Any) -> None:
    # A listener may use the queue (the loop may sample at once); under the lock it would hang.
    queue = open_queue()
    seen: list[Any] = []
    queue.add_listener(lambda: seen.append((queue.counters(), queue.sample())))
    queue.add("x")
    assert seen[0][1] == "x"
    assert seen[0][0].size == 1


def test_failed_add_changes_nothing_and_notifies_no_one(open_queue: Any) -> None:
    queue = open_queue()
    calls: list[None] = []
    queue.add_listener(lambda: calls.append(None))
    with pytest.raises(TypeError):
        queue.add(object())
    assert calls == []
    assert queue.counters() == QueueCounters(added=0, sampled=0, dropped=0, size=0, max_size=10_000)


def test_counters_snapshot(open_queue: Any) -> None:
    queue = open_queue(max_size=3)
    for i in range(5):
        queue.add(i)
    queue.sample()
    snapshot = queue.counters()
    assert snapshot == QueueCounters(added=5, sampled=1, dropped=2, size=2, max_size=3)
    assert (queue.added, queue.sampled, queue.dropped) == (5, 1, 2)
    with pytest.raises(AttributeError):
        queue.added = 0
    assert "size=2" in repr(queue)


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, so races show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def hammer(
    add_via: list[SQLiteOrganicQueue], sample_via: list[SQLiteOrganicQueue], per_adder: int
) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """One thread per entry of ``add_via`` adds ``per_adder`` numbered entries while
    one thread per entry of ``sample_via`` samples; returns (sampled, everything added)."""
    start = threading.Barrier(len(add_via) + len(sample_via))
    adders_done = threading.Event()
    taken: list[list[tuple[int, int]]] = [[] for _ in sample_via]
    errors: list[BaseException] = []

    def add(worker: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(per_adder):
                add_via[worker].add([worker, i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sample(worker: int) -> None:
        try:
            start.wait(timeout=10)
            while not adders_done.is_set():
                item = sample_via[worker].sample()
                if item is not None:
                    taken[worker].append(tuple(item))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    add_threads = [threading.Thread(target=add, args=(w,)) for w in range(len(add_via))]
    sample_threads = [threading.Thread(target=sample, args=(w,)) for w in range(len(sample_via))]
    for thread in add_threads + sample_threads:
        thread.start()
    for thread in add_threads:
        thread.join(timeout=60)
    adders_done.set()
    for thread in sample_threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in add_threads + sample_threads)
    assert errors == []
    everything = {(w, i) for w in range(len(add_via)) for i in range(per_adder)}
    return [item for worker in taken for item in worker], everything


def assert_no_loss_or_duplication(
    queue: SQLiteOrganicQueue, sampled: list[tuple[int, int]], everything: set[tuple[int, int]]
) -> None:
    remaining = [tuple(item) for item in drain(queue)]
    assert len(set(sampled)) == len(sampled), "an entry was sampled twice"
    assert not set(sampled) & set(remaining)
    assert set(sampled) | set(remaining) <= everything
    counters = queue.counters()
    assert counters.added == len(everything)
    assert counters.sampled == len(sampled) + len(remaining)
    assert counters.dropped == len(everything) - len(sampled) - len(remaining)
    assert counters.size == 0


@pytest.mark.usefixtures("eager_thread_switching")
def test_no_loss_or_duplication_under_threads(open_queue: Any) -> None:
    queue = open_queue(max_size=64, seed=3)
    sampled, everything = hammer([queue] * 8, [queue] * 4, per_adder=300)
    assert_no_loss_or_duplication(queue, sampled, everything)


@pytest.mark.usefixtures("eager_thread_switching")
def test_two_queue_objects_can_share_a_file(open_queue: Any) -> None:
    # Two connections, as two processes would have: SQLite serialises their transactions.
    first, second = open_queue(max_size=64, seed=1), open_queue(max_size=64, seed=2)
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
        assert queue.counters() == before
        remaining = drain(queue)
        queue.add({"i": 6})
    assert len(remaining) == 3
    assert {item["i"] for item in remaining} < {2, 3, 4, 5}
    with SQLiteOrganicQueue(db, max_size=4) as queue:
        assert queue.counters() == QueueCounters(added=7, sampled=4, dropped=2, size=1, max_size=4)


def test_reopening_with_a_smaller_bound_drops_the_oldest(db: Path) -> None:
    with SQLiteOrganicQueue(db, max_size=10, synchronous="NORMAL") as queue:
        for i in range(10):
            queue.add(i)
    with SQLiteOrganicQueue(db, max_size=3, synchronous="NORMAL") as queue:
        assert queue.counters() == QueueCounters(added=10, sampled=0, dropped=7, size=3, max_size=3)
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
    number = queue.added
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
