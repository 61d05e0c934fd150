"""When iterations are due: periods from iteration start, annealing, steps, wake-ups."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from organic_scoring._trigger import Trigger, Waker
from organic_scoring.config import ScoringConfig
from organic_scoring.organic_queue import OrganicQueue


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
