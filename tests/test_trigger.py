"""When iterations are due: periods from iteration start, annealing, steps, wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import threading
import time

import pytest

from organic_scoring._loop.trigger import Load, Trigger, Waker
from organic_scoring.config import ScoringConfig
from organic_scoring.organic_queue import OrganicQueue

pytestmark = pytest.mark.python_version


def never() -> bool:
    return False


def _trigger(queue: OrganicQueue, **settings: object) -> Trigger:
    return Trigger(ScoringConfig.model_validate(settings), queue)


def test_first_seconds_iteration_is_due_at_once() -> None:
    trigger = _trigger(OrganicQueue(), trigger_frequency=1000)
    assert asyncio.run(asyncio.wait_for(trigger.wait_due(None, never), 5))


def test_time_inside_the_iteration_counts_towards_the_period() -> None:
    # The previous iteration started a full period ago: the next one is due now,
    # not a period after the previous one ended.
    trigger = _trigger(OrganicQueue(), trigger_frequency=1000, trigger_frequency_min=1000)
    started_long_ago = time.monotonic() - 1000
    assert asyncio.run(asyncio.wait_for(trigger.wait_due(started_long_ago, never), 5))


def test_seconds_wait_is_not_shorter_than_the_period() -> None:
    trigger = _trigger(OrganicQueue(), trigger_frequency=0.2)

    async def main() -> float:
        start = time.monotonic()
        await trigger.wait_due(start, never)
        return time.monotonic() - start

    assert asyncio.run(main()) >= 0.2


def test_a_burst_during_a_wait_shortens_that_wait() -> None:
    queue = OrganicQueue()
    trigger = _trigger(
        queue, trigger_frequency=1000, trigger_frequency_min=0.01, trigger_scaling_factor=1
    )

    async def main() -> bool:
        queue.add_listener(trigger.waker.wake)
        waiting = asyncio.ensure_future(trigger.wait_due(time.monotonic(), never))
        await asyncio.sleep(0)  # the trigger is now waiting out a 1000 s period
        adder = threading.Thread(target=lambda: [queue.add(i) for i in range(1000)])
        adder.start()
        await asyncio.to_thread(adder.join)
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main())


def test_annealing_formula() -> None:
    queue = OrganicQueue()
    seconds = _trigger(queue, trigger_frequency=15, trigger_frequency_min=2)
    steps = _trigger(queue, trigger="steps", trigger_frequency=10, trigger_frequency_min=2)
    assert seconds.period() == 15
    assert steps.period() == 10
    for i in range(12):
        queue.add(i)
    assert seconds.period() == pytest.approx(15 - 12 / 5)
    assert steps.period() == int(10 - 12 / 5)
    for i in range(100):
        queue.add(i)
    assert seconds.period() == 2
    assert steps.period() == 2


def test_steps_surplus_carries_over() -> None:
    trigger = _trigger(OrganicQueue(), trigger="steps", trigger_frequency=3)
    trigger.increment(7)

    async def due_twice() -> None:
        assert await trigger.wait_due(None, never)
        assert await trigger.wait_due(None, never)

    asyncio.run(asyncio.wait_for(due_twice(), 5))
    assert trigger.steps == 1


def test_increment_from_another_thread_wakes_the_waiter() -> None:
    trigger = _trigger(OrganicQueue(), trigger="steps", trigger_frequency=5)

    async def main() -> bool:
        waiting = asyncio.ensure_future(trigger.wait_due(None, never))
        await asyncio.sleep(0)
        thread = threading.Thread(target=lambda: [trigger.increment() for _ in range(5)])
        thread.start()
        await asyncio.to_thread(thread.join)
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main())
    assert trigger.steps == 0


def test_set_step_wakes_the_waiter() -> None:
    trigger = _trigger(OrganicQueue(), trigger="steps", trigger_frequency=4)

    async def main() -> bool:
        waiting = asyncio.ensure_future(trigger.wait_due(None, never))
        await asyncio.sleep(0)
        threading.Thread(target=trigger.set_step, args=(9,)).start()
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main())
    assert trigger.steps == 5


def test_stopping_ends_the_wait() -> None:
    trigger = _trigger(OrganicQueue(), trigger="steps", trigger_frequency=4)
    stop = False

    async def main() -> bool:
        nonlocal stop
        waiting = asyncio.ensure_future(trigger.wait_due(None, lambda: stop))
        await asyncio.sleep(0)
        stop = True
        trigger.waker.wake()
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main()) is False


def test_waker_coalesces_and_survives_a_closed_loop() -> None:
    waker = Waker()

    async def main() -> None:
        waiting = asyncio.ensure_future(waker.wait(None))
        await asyncio.sleep(0)
        for _ in range(1000):
            waker.wake()
        await asyncio.wait_for(waiting, 5)

    asyncio.run(main())
    waker.wake()  # the loop is closed now: ignored, not raised
    waker.unbind()
    waker.wake()


# -- jitter --------------------------------------------------------------------------


def _jittered(queue: OrganicQueue, **settings: object) -> Trigger:
    trigger = _trigger(queue, **settings)
    queue.add_listener(trigger.arrived)
    return trigger


def test_jittered_periods_keep_the_mean_and_spread_uniformly() -> None:
    trigger = _trigger(OrganicQueue(), trigger_jitter=0.5, seed=7)
    draws = [trigger.draw(2.0) for _ in range(20_000)]
    assert min(draws) >= 1.0
    assert max(draws) <= 3.0
    assert sum(draws) / len(draws) == pytest.approx(2.0, rel=0.01)
    # Uniform over [1, 3]: ten equal bins, each expected to hold a tenth.
    counts = [0] * 10
    for value in draws:
        counts[min(int((value - 1.0) / 0.2), 9)] += 1
    expected = len(draws) / 10
    assert sum((c - expected) ** 2 / expected for c in counts) < 27.877  # chi2(9), p = 0.001

    narrow = _trigger(OrganicQueue(), trigger_jitter=0.1, seed=7)
    narrow_draws = [narrow.draw(2.0) for _ in range(2000)]
    assert 1.8 <= min(narrow_draws) < 1.82
    assert 2.18 < max(narrow_draws) <= 2.2


def test_jittered_periods_are_seeded() -> None:
    def draws(seed: int) -> list[float]:
        trigger = _trigger(OrganicQueue(), trigger_jitter=0.3, seed=seed)
        return [trigger.draw(1.0) for _ in range(5)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_a_jittered_wait_chooses_its_sample_when_it_begins_and_runs_its_course() -> None:
    queue = OrganicQueue()
    # trigger_frequency_min == trigger_frequency: the mean stays 0.2 s whatever the load.
    trigger = _jittered(
        queue, trigger_frequency=0.2, trigger_frequency_min=0.2, trigger_jitter=0.5, seed=1
    )

    async def main() -> tuple[float, bool]:
        began = time.monotonic()
        waiting = asyncio.ensure_future(trigger.wait_due(began, never))
        await asyncio.sleep(0)  # the wait has begun: the queue was empty then
        for i in range(100):
            queue.add(i)  # a burst: no longer cuts the wait short
        due = await asyncio.wait_for(waiting, 5)
        return time.monotonic() - began, due

    elapsed, due = asyncio.run(main())
    assert due
    assert elapsed >= 0.1  # at least m * (1 - j)
    assert trigger.planned == "synthetic"

    # The next wait begins with samples waiting: its iteration takes one of them.
    assert asyncio.run(asyncio.wait_for(trigger.wait_due(time.monotonic() - 1, never), 5))
    assert trigger.planned == "organic"


def test_the_first_jittered_iteration_is_due_at_once_and_takes_what_is_there() -> None:
    trigger = _trigger(OrganicQueue(), trigger_frequency=1000, trigger_jitter=0.5)
    assert asyncio.run(asyncio.wait_for(trigger.wait_due(None, never), 5))
    assert trigger.planned is None


def test_stopping_ends_a_jittered_wait() -> None:
    trigger = _trigger(OrganicQueue(), trigger_frequency=1000, trigger_jitter=0.5)
    stop = False

    async def main() -> bool:
        nonlocal stop
        waiting = asyncio.ensure_future(trigger.wait_due(time.monotonic(), lambda: stop))
        await asyncio.sleep(0)
        stop = True
        trigger.waker.wake()
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main()) is False


def test_without_jitter_an_arrival_wakes_the_loop() -> None:
    queue = OrganicQueue()
    trigger = _jittered(
        queue, trigger_frequency=1000, trigger_frequency_min=0.01, trigger_scaling_factor=1
    )
    assert trigger.load is None

    async def main() -> bool:
        waiting = asyncio.ensure_future(trigger.wait_due(time.monotonic(), never))
        await asyncio.sleep(0)
        for i in range(1000):
            queue.add(i)
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main())
    assert trigger.planned is None


def test_the_smoothed_rate_follows_the_arrivals_once_they_are_old_enough() -> None:
    config = ScoringConfig(trigger_frequency=1.0, trigger_jitter=0.5)
    load = Load(config)
    rng = random.Random(3)
    now = 0.0
    while now < 400.0:  # Poisson arrivals, 5 per second, on a clock of our own
        now += rng.expovariate(5.0)
        load.arrived(now)
    assert load.rate(now) == pytest.approx(5.0, rel=0.2)
    # Nothing arrives any more: the rate decays with its time constant (16 s here),
    # once the last arrivals are JITTER_ARRIVAL_LAG (2 s) old.
    assert load.rate(now + 2 + 16) == pytest.approx(load.rate(now + 2) / math.e, rel=0.05)

    fresh = Load(config)
    for i in range(100):
        fresh.arrived(10.0 + i / 1000)
    assert fresh.rate(11.0) == 0.0  # too recent to count
    assert fresh.rate(12.3) == pytest.approx(100 / 16, rel=0.05)


def test_the_smoothed_backlog_moves_with_its_time_constant() -> None:
    load = Load(ScoringConfig(trigger_frequency=1.0, trigger_jitter=0.5))  # tau = 4 s
    assert load.backlog(0.0, 0) == 0.0
    assert load.backlog(4.0, 100) == pytest.approx(100 * (1 - math.exp(-1)))
    assert load.backlog(4.0) == pytest.approx(100 * (1 - math.exp(-1)))  # a look only


def test_the_size_that_plans_a_wait_does_not_shorten_it() -> None:
    # The size read as a wait begins decides whether its sample is organic: folded in
    # first, it would pull an organic wait's mean down, and the gap would tell.
    config = ScoringConfig(
        trigger_frequency=15, trigger_frequency_min=2, trigger_scaling_factor=5, trigger_jitter=0.5
    )
    load = Load(config)
    assert load.mean(0.0, 0) == 15
    assert load.mean(60.0, 40) == 15  # 40 waiting now: this wait's mean is unmoved
    assert load.mean(60.0, None) < 15  # the waits after it do anneal
    assert load.backlog(60.0) == pytest.approx(40.0 * (1 - math.exp(-60 / 60)))


def test_the_jittered_mean_follows_the_load() -> None:
    config = ScoringConfig(
        trigger_frequency=15, trigger_frequency_min=2, trigger_scaling_factor=5, trigger_jitter=0.5
    )
    assert config.jittered_mean(0.0, 0.0) == 15  # no traffic: the full period
    assert config.jittered_mean(0.7 / 15, 0.0) == pytest.approx(15)  # it fills 0.7 of them
    assert config.jittered_mean(0.1, 0.0) == pytest.approx(7.0)  # 0.7 / 0.1 s
    assert config.jittered_mean(10.0, 0.0) == 2  # the floor
    # A backlog that builds up anyway anneals as the plain formula does.
    assert config.jittered_mean(0.0, 25.0) == pytest.approx(15 - 25 / 5)
    assert config.jittered_mean(0.1, 25.0) == pytest.approx(7.0)  # the larger pull wins


def test_a_jittered_trigger_reports_the_mean_as_its_period() -> None:
    queue = OrganicQueue()
    trigger = _jittered(queue, trigger_frequency=15, trigger_jitter=0.5)
    for i in range(50):
        queue.add(i)  # counted as arrivals, not read as a queue size
    assert trigger.period() == 15


# -- the source-independent schedule: trigger="poisson" (issue 24) -------------------------


class Unreadable(OrganicQueue):
    """A queue whose size cannot be read: a schedule that asked would fail."""

    @property
    def size(self) -> int:
        raise AssertionError("the poisson trigger must not ask the queue")

    async def asize(self) -> int:
        raise AssertionError("the poisson trigger must not ask the queue")


def _points(trigger: Trigger, n: int) -> list[float]:
    """``n`` successive points, taken on time (the loop was never busy)."""
    points = []
    now = 0.0
    for _ in range(n):
        now = trigger.next_point(now)
        points.append(now)
        trigger.spend()
    return points


def test_poisson_gaps_are_exponential_with_the_mean_period() -> None:
    points = _points(
        Trigger(ScoringConfig(trigger="poisson", trigger_frequency=15, seed=3), Unreadable()), 4001
    )
    gaps = [b - a for a, b in itertools.pairwise(points)]
    mean = sum(gaps) / len(gaps)
    assert 14.0 < mean < 16.0  # standard error 15 / sqrt(4000) = 0.24
    # Exponential: half of the gaps below the median, 15 ln 2; a third above the mean.
    below_median = sum(g < 15 * math.log(2) for g in gaps) / len(gaps)
    above_mean = sum(g > 15 for g in gaps) / len(gaps)
    assert 0.47 < below_median < 0.53
    assert 0.33 < above_mean < 0.40  # e^-1 = 0.368


def test_poisson_times_do_not_depend_on_the_queue() -> None:
    config = ScoringConfig(trigger="poisson", trigger_frequency=2, seed=9)
    busy = OrganicQueue()
    for i in range(500):
        busy.add(i)
    loaded = Trigger(config, busy)
    for _ in range(100):
        loaded.arrived()  # arrivals are not even counted
    for k in range(50):
        loaded.plan(k * 2.0, 500)  # kinds come from a generator of their own
    assert _points(loaded, 200) == _points(Trigger(config, Unreadable()), 200)
    assert config.period(0) == config.period(10_000) == 2.0


def test_without_organic_traffic_every_poisson_slot_is_synthetic() -> None:
    trigger = Trigger(ScoringConfig(trigger="poisson", trigger_frequency=1, seed=1), Unreadable())
    assert {trigger.plan(float(k), 0) for k in range(1000)} == {"synthetic"}


def test_a_poisson_point_missed_while_busy_is_dropped() -> None:
    trigger = Trigger(ScoringConfig(trigger="poisson", trigger_frequency=1, seed=1), Unreadable())
    first = trigger.next_point(0.0)
    trigger.spend()
    late = first + 1000.0  # the loop was busy long past the next point
    assert trigger.next_point(late) > late
    assert trigger.next_point(late) == trigger.next_point(late)  # asking again draws nothing


def test_a_poisson_wait_is_not_cut_short_by_arrivals() -> None:
    queue = OrganicQueue()
    trigger = Trigger(ScoringConfig(trigger="poisson", trigger_frequency=1000, seed=2), queue)

    async def main() -> bool:
        queue.add_listener(trigger.arrived)
        waiting = asyncio.ensure_future(trigger.wait_due(None, never))
        await asyncio.sleep(0)
        for i in range(100):
            queue.add(i)
        await asyncio.sleep(0.05)
        done = waiting.done()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return done

    # The first point lies 1000 s ahead on average (seeded: not within the first 50 ms).
    assert trigger.next_point(time.monotonic()) - time.monotonic() > 1
    assert asyncio.run(main()) is False


def test_a_poisson_wait_ends_at_its_point() -> None:
    trigger = Trigger(
        ScoringConfig(trigger="poisson", trigger_frequency=0.01, seed=4), OrganicQueue()
    )

    async def main() -> bool:
        return all([await trigger.wait_due(None, never) for _ in range(5)])

    assert asyncio.run(asyncio.wait_for(main(), 10))
    assert trigger.planned == "synthetic"  # nothing arrived: each slot plans a probe


def test_poisson_refuses_jitter() -> None:
    with pytest.raises(ValueError, match="trigger_jitter"):
        ScoringConfig(trigger="poisson", trigger_jitter=0.5)
