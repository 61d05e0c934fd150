"""The OrganicQueue contract, run against every implementation (see support.queue_contract.KINDS).

Bound and drop-oldest, uniform and seeded sampling, None when empty, listeners,
counters, and no loss or duplication under threads. What only one implementation
promises lives in its own file.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from organic_scoring.organic_queue import OrganicQueueBase, QueueCounters
from support.queue_contract import (
    CHI2_DF9_P001,
    KINDS,
    MakeQueue,
    assert_no_loss_or_duplication,
    chi_square,
    drain,
    eager_thread_switching,
    hammer,
    queue_maker,
)

CHI2_DF9_P0001 = 33.720
"""Upper 0.01% point of the chi-square distribution with 9 degrees of freedom."""


@pytest.fixture(params=KINDS)
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeQueue]:
    """Make fresh queues of each kind in turn, closed after the test."""
    with queue_maker(request.param, tmp_path) as make:
        yield make


def test_is_an_organic_queue(make_queue: MakeQueue) -> None:
    queue = make_queue()
    assert isinstance(queue, OrganicQueueBase)
    assert queue.max_size == 10_000
    assert queue.is_empty()
    assert len(queue) == 0


def test_sample_on_empty_returns_none(make_queue: MakeQueue) -> None:
    queue = make_queue()
    assert queue.sample() is None
    queue.add("x")
    assert queue.sample() == "x"
    assert queue.sample() is None
    assert queue.counters().sampled == 1


def test_adding_none_is_refused(make_queue: MakeQueue) -> None:
    queue = make_queue()
    with pytest.raises(ValueError, match="None"):
        queue.add(None)
    assert queue.counters().added == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, 10.0, True, "10", None])
def test_max_size_is_validated(make_queue: MakeQueue, tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_size"):
        make_queue(max_size=bad)
    assert list(tmp_path.iterdir()) == []  # a refused queue leaves no file behind


def test_bound_holds_and_drops_are_counted(make_queue: MakeQueue) -> None:
    queue = make_queue(max_size=5)
    for i in range(12):
        queue.add(i)
        assert queue.size == min(i + 1, 5)
    assert queue.counters().dropped == 7
    assert queue.counters().added == 12


def test_full_queue_drops_oldest_first(make_queue: MakeQueue) -> None:
    queue = make_queue(max_size=3)
    for i in range(10):
        queue.add(i)
    assert sorted(drain(queue)) == [7, 8, 9]


def test_drop_oldest_skips_entries_already_sampled(make_queue: MakeQueue) -> None:
    queue = make_queue(max_size=3)
    for item in "abc":
        queue.add(item)
    taken = queue.sample()
    queue.add("d")  # room again: nothing dropped
    assert queue.counters().dropped == 0
    queue.add("e")  # full: the oldest entry still waiting goes
    assert queue.counters().dropped == 1
    oldest_left = next(item for item in "abc" if item != taken)
    remaining = set(drain(queue))
    assert oldest_left not in remaining
    assert remaining == set("abcde") - {taken, oldest_left}


def test_max_size_one(make_queue: MakeQueue) -> None:
    queue = make_queue(max_size=1)
    queue.add("a")
    queue.add("b")
    assert queue.counters().dropped == 1
    assert queue.sample() == "b"
    assert queue.sample() is None


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=300, deadline=None)
@given(
    max_size=st.integers(min_value=1, max_value=8),
    ops=st.lists(st.booleans(), max_size=120),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_matches_a_reference_model(kind: str, max_size: int, ops: list[bool], seed: int) -> None:
    """Any interleaving of add (True) and sample (False) agrees with a plain list model."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        queue_maker(kind, Path(tmp)) as make,
    ):
        queue = make(max_size=max_size, seed=seed)
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
            assert queue.counters().dropped == dropped
        assert sorted(drain(queue)) == sorted(model)


def test_every_draw_of_a_fill_is_uniform_over_entries(make_queue: MakeQueue) -> None:
    # Refill 0..9 and drain it, many times over: every entry equally likely first, and
    # (each draw being uniform over the entries left) at every later place of the
    # draining order too. 2,000 fills see an entry drawn first 50% too often (0.15 for
    # 0.10) 99 times in 100, and the ten places together 20,000 draws.
    categories = list(range(10))
    queue = make_queue(seed=2024)
    places: list[Counter[int]] = [Counter() for _ in categories]
    trials = 2_000
    for _ in range(trials):
        for item in categories:
            queue.add(item)
        order = drain(queue)
        assert sorted(order) == categories
        for place, item in zip(places, order, strict=True):
            place[item] += 1
    assert chi_square(places[0], categories, trials) < CHI2_DF9_P001
    # Ten tests at once: each at 0.0001 keeps the chance of any false alarm at 0.001.
    for place in places:
        assert chi_square(place, categories, trials) < CHI2_DF9_P0001, place


def test_draws_stay_uniform_under_churn(make_queue: MakeQueue) -> None:
    # Sample one, put it back: slots get reshuffled by swap-removal, the odds must not.
    # 10,000 draws see one entry drawn 20% too often (0.12 for 0.10) 97 times in 100.
    categories = list(range(10))
    queue = make_queue(max_size=10, seed=12345)
    for item in categories:
        queue.add(item)
    counts: Counter[int] = Counter()
    draws = 10_000
    for _ in range(draws):
        item = queue.sample()
        counts[item] += 1
        queue.add(item)
    assert chi_square(counts, categories, draws) < CHI2_DF9_P001


def test_seed_makes_sampling_reproducible(make_queue: MakeQueue) -> None:
    def run(seed: int) -> list[Any]:
        queue = make_queue(max_size=50, seed=seed)
        out = []
        for i in range(200):
            queue.add(i)
            if i % 3 == 0:
                out.append(queue.sample())
        return out + drain(queue)

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_listeners_called_once_per_add_even_when_dropping(make_queue: MakeQueue) -> None:
    queue = make_queue(max_size=2)
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


def test_listeners_run_outside_the_lock(make_queue: MakeQueue) -> None:
    # A listener may use the queue (the loop may sample at once); under the lock it would hang.
    queue = make_queue()
    seen: list[Any] = []
    queue.add_listener(lambda: seen.append((queue.counters(), queue.sample())))
    queue.add("x")
    assert seen[0][1] == "x"
    assert seen[0][0].size == 1


def test_listeners_do_not_leak_between_queues(make_queue: MakeQueue) -> None:
    first, second = make_queue(), make_queue()
    calls: list[str] = []
    first.add_listener(lambda: calls.append("first"))
    second.add("x")
    assert calls == []


def test_counters_snapshot(make_queue: MakeQueue) -> None:
    queue = make_queue(max_size=3)
    for i in range(5):
        queue.add(i)
    queue.sample()
    snapshot = queue.counters()
    assert snapshot == QueueCounters(added=5, sampled=1, dropped=2, size=2, max_size=3)
    with pytest.raises(AttributeError):
        snapshot.added = 0  # type: ignore[misc]
    assert "size=2" in repr(queue)


def test_no_loss_or_duplication_under_threads(make_queue: MakeQueue) -> None:
    # 8 adders against 4 samplers on a small bound: adds, samples and drops all race.
    queue = make_queue(max_size=64, seed=3)
    with eager_thread_switching():
        sampled, everything = hammer([queue] * 8, [queue] * 4, per_adder=4_000)
    assert_no_loss_or_duplication(queue, sampled, everything)
