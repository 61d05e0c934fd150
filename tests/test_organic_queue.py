"""OrganicQueue: bound, drop-oldest, uniform sampling, seeding, listeners, threads."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organic_scoring.organic_queue import OrganicQueue, OrganicQueueBase, QueueCounters

# Upper 0.1% point of the chi-square distribution with 9 degrees of freedom.
CHI2_DF9_P001 = 27.877


def drain(queue: OrganicQueue) -> list[Any]:
    """Everything still waiting, in sampling order."""
    out = []
    while (item := queue.sample()) is not None:
        out.append(item)
    return out


def chi_square(counts: Counter[Any], categories: list[Any], total: int) -> float:
    expected = total / len(categories)
    return sum((counts[c] - expected) ** 2 / expected for c in categories)


def test_is_an_organic_queue() -> None:
    queue = OrganicQueue()
    assert isinstance(queue, OrganicQueueBase)
    assert queue.max_size == 10_000
    assert queue.is_empty()
    assert len(queue) == 0


def test_sample_on_empty_returns_none() -> None:
    queue = OrganicQueue(seed=0)
    assert queue.sample() is None
    queue.add("x")
    assert queue.sample() == "x"
    assert queue.sample() is None
    assert queue.sampled == 1


def test_adding_none_is_refused() -> None:
    queue = OrganicQueue()
    with pytest.raises(ValueError, match="None"):
        queue.add(None)
    assert queue.added == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, 10.0, True, "10", None])
def test_max_size_is_validated(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_size"):
        OrganicQueue(max_size=bad)


def test_bound_holds_and_drops_are_counted() -> None:
    queue = OrganicQueue(max_size=5, seed=0)
    for i in range(12):
        queue.add(i)
        assert queue.size == min(i + 1, 5)
    assert queue.dropped == 7
    assert queue.added == 12


def test_full_queue_drops_oldest_first() -> None:
    queue = OrganicQueue(max_size=3, seed=0)
    for i in range(10):
        queue.add(i)
    assert sorted(drain(queue)) == [7, 8, 9]


def test_drop_oldest_skips_entries_already_sampled() -> None:
    queue = OrganicQueue(max_size=3, seed=0)
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


def test_max_size_one() -> None:
    queue = OrganicQueue(max_size=1, seed=0)
    queue.add("a")
    queue.add("b")
    assert queue.dropped == 1
    assert queue.sample() == "b"
    assert queue.sample() is None


@settings(max_examples=300, deadline=None)
@given(
    max_size=st.integers(min_value=1, max_value=8),
    ops=st.lists(st.booleans(), max_size=120),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_matches_a_reference_model(max_size: int, ops: list[bool], seed: int) -> None:
    """Any interleaving of add (True) and sample (False) agrees with a plain list model."""
    queue = OrganicQueue(max_size=max_size, seed=seed)
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


def test_first_draw_is_uniform_over_entries() -> None:
    # Whatever its age or slot, every waiting entry is equally likely to come out first.
    categories = list(range(10))
    counts: Counter[int] = Counter()
    trials = 5_000
    for trial in range(trials):
        queue = OrganicQueue(seed=trial)
        for item in categories:
            queue.add(item)
        counts[queue.sample()] += 1
    assert chi_square(counts, categories, trials) < CHI2_DF9_P001


def test_draws_stay_uniform_under_churn() -> None:
    # Sample one, put it back: slots get reshuffled by swap-removal, the odds must not.
    categories = list(range(10))
    queue = OrganicQueue(seed=12345)
    for item in categories:
        queue.add(item)
    counts: Counter[int] = Counter()
    draws = 20_000
    for _ in range(draws):
        item = queue.sample()
        counts[item] += 1
        queue.add(item)
    assert chi_square(counts, categories, draws) < CHI2_DF9_P001


def test_seed_makes_sampling_reproducible() -> None:
    def run(seed: int) -> list[Any]:
        queue = OrganicQueue(max_size=50, seed=seed)
        out = []
        for i in range(200):
            queue.add(i)
            if i % 3 == 0:
                out.append(queue.sample())
        return out + drain(queue)

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_listeners_called_once_per_add_even_when_dropping() -> None:
    queue = OrganicQueue(max_size=2, seed=0)
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


def test_listeners_run_outside_the_lock() -> None:
    # A listener may use the queue (the loop may sample at once); under the lock it would hang.
    queue = OrganicQueue(seed=0)
    seen: list[Any] = []
    queue.add_listener(lambda: seen.append((queue.counters(), queue.sample())))
    queue.add("x")
    assert seen[0][1] == "x"
    assert seen[0][0].size == 1


def test_listeners_do_not_leak_between_queues() -> None:
    first, second = OrganicQueue(), OrganicQueue()
    calls: list[str] = []
    first.add_listener(lambda: calls.append("first"))
    second.add("x")
    assert calls == []


def test_counters_snapshot() -> None:
    queue = OrganicQueue(max_size=3, seed=0)
    for i in range(5):
        queue.add(i)
    queue.sample()
    snapshot = queue.counters()
    assert snapshot == QueueCounters(added=5, sampled=1, dropped=2, size=2, max_size=3)
    assert (queue.added, queue.sampled, queue.dropped) == (5, 1, 2)
    with pytest.raises(AttributeError):
        snapshot.added = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        queue.added = 0  # type: ignore[misc]
    assert "size=2" in repr(queue)


@pytest.fixture
def eager_thread_switching() -> Any:
    """Switch threads as often as the interpreter allows, so races show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_thread_switching")
def test_no_loss_or_duplication_under_threads() -> None:
    adders, samplers, per_adder = 8, 4, 4_000
    queue = OrganicQueue(max_size=256, seed=3)
    start = threading.Barrier(adders + samplers)
    adders_done = threading.Event()
    taken: list[list[tuple[int, int]]] = [[] for _ in range(samplers)]
    errors: list[BaseException] = []

    def add(worker: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(per_adder):
                queue.add((worker, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sample(worker: int) -> None:
        try:
            start.wait(timeout=10)
            while not adders_done.is_set():
                item = queue.sample()
                if item is not None:
                    taken[worker].append(item)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    add_threads = [threading.Thread(target=add, args=(w,)) for w in range(adders)]
    sample_threads = [threading.Thread(target=sample, args=(w,)) for w in range(samplers)]
    for thread in add_threads + sample_threads:
        thread.start()
    for thread in add_threads:
        thread.join(timeout=60)
    adders_done.set()
    for thread in sample_threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in add_threads + sample_threads)
    assert errors == []

    sampled = [item for worker in taken for item in worker]
    remaining = drain(queue)
    everything = set((w, i) for w in range(adders) for i in range(per_adder))
    assert len(set(sampled)) == len(sampled), "an entry was sampled twice"
    assert not set(sampled) & set(remaining)
    assert set(sampled) | set(remaining) <= everything
    counters = queue.counters()
    assert counters.added == len(everything)
    assert counters.sampled == len(sampled) + len(remaining)
    assert counters.dropped == len(everything) - len(sampled) - len(remaining)
    assert counters.size == 0
