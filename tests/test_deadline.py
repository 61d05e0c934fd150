"""Deadline: a timeout on the running task, on every supported Python."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from organic_scoring._deadline import Deadline, _Deadline310

pytestmark = [pytest.mark.python_version, pytest.mark.usefixtures("no_leaks")]

KINDS = [Deadline, _Deadline310]


@pytest.mark.parametrize("kind", KINDS, ids=["stdlib-or-ours", "python-3.10"])
def test_work_past_the_deadline_is_cancelled_and_times_out(kind: Any) -> None:
    cancelled: list[bool] = []

    async def main() -> Any:
        deadline = kind(0.01)
        try:
            async with deadline:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    cancelled.append(True)
                    raise
        except asyncio.TimeoutError:
            return deadline.expired()
        return None

    assert asyncio.run(main()) is True
    assert cancelled == [True]


@pytest.mark.parametrize("kind", KINDS, ids=["stdlib-or-ours", "python-3.10"])
def test_the_works_own_timeout_error_is_not_the_deadlines(kind: Any) -> None:
    async def main() -> bool:
        deadline = kind(10)
        with pytest.raises(asyncio.TimeoutError):
            async with deadline:
                raise asyncio.TimeoutError("the work's own")
        return deadline.expired()

    assert asyncio.run(main()) is False


@pytest.mark.parametrize("kind", KINDS, ids=["stdlib-or-ours", "python-3.10"])
def test_work_in_time_runs_in_the_calling_task_and_an_outside_cancel_passes(kind: Any) -> None:
    async def main() -> None:
        caller = asyncio.current_task()
        async with kind(10):
            assert asyncio.current_task() is caller
            await asyncio.sleep(0)

        async def waits() -> None:
            async with kind(10):
                await asyncio.sleep(10)

        task = asyncio.ensure_future(waits())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
