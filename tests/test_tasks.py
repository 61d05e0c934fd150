"""TaskGroup: the owner waits for every child, and failures and cancellations travel."""

from __future__ import annotations

import asyncio
import logging

import pytest

from organic_scoring._tasks import TaskGroup

pytestmark = [pytest.mark.python_version, pytest.mark.usefixtures("no_leaks")]


async def _forever(cancelled: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(name)
        raise


def test_leaving_waits_for_every_child() -> None:
    finished: list[int] = []

    async def child(n: int) -> None:
        await asyncio.sleep(0.01 * n)
        finished.append(n)

    async def main() -> None:
        async with TaskGroup() as group:
            for n in range(3):
                group.start_soon(child(n))
        assert sorted(finished) == [0, 1, 2]
        assert len(group) == 0

    asyncio.run(main())


def test_a_failing_child_cancels_its_siblings_and_the_body() -> None:
    cancelled: list[str] = []

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def scope() -> None:
        async with TaskGroup() as group:
            group.start_soon(_forever(cancelled, "sibling"))
            group.start_soon(fails())
            await _forever(cancelled, "body")

    async def main() -> None:
        with pytest.raises(ValueError, match="boom"):
            await scope()
        # The group's own cancellation of the body does not leak to its owner.
        await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None
        assert not task.cancelled()

    asyncio.run(main())
    assert sorted(cancelled) == ["body", "sibling"]


def test_a_second_failure_is_logged_not_lost(caplog: pytest.LogCaptureFixture) -> None:
    async def fails(text: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError(text)

    async def first() -> None:
        await asyncio.sleep(0)
        raise ValueError("first")

    async def scope() -> None:
        async with TaskGroup() as group:
            group.start_soon(fails("second"))
            group.start_soon(first())

    async def main() -> None:
        with pytest.raises(ValueError, match="first"):
            await scope()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert any("second" in record.getMessage() for record in caplog.records)


def test_a_body_that_raises_cancels_the_children_then_propagates() -> None:
    cancelled: list[str] = []

    async def scope() -> None:
        async with TaskGroup() as group:
            group.start_soon(_forever(cancelled, "child"))
            await asyncio.sleep(0)
            raise KeyError("body")

    async def main() -> None:
        with pytest.raises(KeyError):
            await scope()

    asyncio.run(main())
    assert cancelled == ["child"]


def test_cancelling_the_owner_cancels_and_awaits_the_children() -> None:
    cancelled: list[str] = []
    unwound: list[str] = []

    async def slow_to_unwind() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # still awaited by the owner
            unwound.append("child")
            raise

    async def owner() -> None:
        async with TaskGroup() as group:
            group.start_soon(slow_to_unwind())
            group.start_soon(_forever(cancelled, "other"))

    async def main() -> None:
        task = asyncio.ensure_future(owner())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert unwound == ["child"]

    asyncio.run(main())
    assert cancelled == ["other"]


def test_join_waits_up_to_its_timeout_and_cancel_ends_the_rest() -> None:
    cancelled: list[str] = []

    async def main() -> None:
        async with TaskGroup() as group:
            group.start_soon(asyncio.sleep(0))
            group.start_soon(_forever(cancelled, "stuck"))
            assert not await group.join(0.05)
            assert len(group) == 1
            group.cancel()
        assert await group.join(0)

    asyncio.run(main())
    assert cancelled == ["stuck"]


def test_a_closed_group_refuses_new_children_without_leaking_the_coroutine() -> None:
    async def main() -> None:
        async with TaskGroup() as group:
            pass
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="not open"):
            group.start_soon(coro)
        assert coro.cr_frame is None  # closed: no "never awaited" warning

    asyncio.run(main())
