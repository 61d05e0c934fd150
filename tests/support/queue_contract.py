"""Helpers shared by the queue tests: making queues of every kind, draining, hammering."""

from __future__ import annotations

import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from organic_scoring.organic_queue import OrganicQueue, RedisOrganicQueue, SQLiteOrganicQueue
from support.redis_server import shared_redis

# Upper 0.1% point of the chi-square distribution with 9 degrees of freedom.
CHI2_DF9_P001 = 27.877

# Every implementation of the OrganicQueue contract that the contract tests run against.
KINDS = ("memory", "sqlite", "redis")

# Any implementation; all offer counters(), added, max_size and the rest.
AnyQueue = OrganicQueue | SQLiteOrganicQueue | RedisOrganicQueue
MakeQueue = Callable[..., AnyQueue]


@contextmanager
def queue_maker(kind: str, directory: Path) -> Iterator[MakeQueue]:
    """Yield a function making fresh, independent queues of ``kind``; close them on exit.

    Queues are seeded with 0 unless asked otherwise. SQLite queues each get their own
    file in ``directory`` and use NORMAL sync, which is enough for tests and much faster.
    Redis queues each get their own name on this process's shared server
    (:func:`support.redis_server.shared_redis`); their keys are deleted on exit.
    """
    made: list[SQLiteOrganicQueue | RedisOrganicQueue] = []

    def make(**kwargs: Any) -> AnyQueue:
        kwargs.setdefault("seed", 0)
        if kind == "memory":
            return OrganicQueue(**kwargs)
        if kind == "redis":
            name = f"contract-{uuid.uuid4().hex}"
            # The contract's samples are never acked: a lease longer than any test keeps
            # a slow run (a loaded machine) from seeing them handed out again.
            kwargs.setdefault("lease", 3600.0)
            redis_queue = RedisOrganicQueue.from_url(shared_redis().url, name=name, **kwargs)
            made.append(redis_queue)
            return redis_queue
        kwargs.setdefault("synchronous", "NORMAL")
        queue = SQLiteOrganicQueue(directory / f"queue-{len(made)}.db", **kwargs)
        made.append(queue)
        return queue

    try:
        yield make
    finally:
        for queue in made:
            if isinstance(queue, RedisOrganicQueue) and not queue.closed:
                delete_keys(queue)
            queue.close()


def delete_keys(queue: RedisOrganicQueue) -> None:
    """Delete everything ``queue`` keeps on its server."""
    import redis

    with redis.Redis.from_url(queue.url) as client:
        keys = client.keys(f"organic-scoring:{{{queue.name}}}:*")
        if keys:
            client.delete(*keys)


@contextmanager
def eager_thread_switching() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, so races show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def drain(queue: AnyQueue) -> list[Any]:
    """Everything still waiting, in sampling order."""
    out = []
    while (item := queue.sample()) is not None:
        out.append(item)
    return out


def chi_square(counts: Counter[Any], categories: list[Any], total: int) -> float:
    """Pearson's statistic for ``counts`` against a uniform spread over ``categories``."""
    expected = total / len(categories)
    return sum((counts[c] - expected) ** 2 / expected for c in categories)


def hammer(
    add_via: list[AnyQueue], sample_via: list[AnyQueue], per_adder: int
) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """One thread per entry of ``add_via`` adds ``per_adder`` numbered entries while
    one thread per entry of ``sample_via`` samples; returns (sampled, everything added).

    Entries go in as ``[worker, i]`` lists (what every queue can store) and come back
    as tuples, so they can be compared as sets.
    """
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
    queue: AnyQueue, sampled: list[tuple[int, int]], everything: set[tuple[int, int]]
) -> None:
    """Drain ``queue`` and check that every entry was sampled once, left, or counted dropped."""
    remaining = [tuple(item) for item in drain(queue)]
    assert len(set(sampled)) == len(sampled), "an entry was sampled twice"
    assert not set(sampled) & set(remaining)
    assert set(sampled) | set(remaining) <= everything
    counters = queue.counters()
    assert counters.added == len(everything)
    assert counters.sampled == len(sampled) + len(remaining)
    assert counters.dropped == len(everything) - len(sampled) - len(remaining)
    assert counters.size == 0
