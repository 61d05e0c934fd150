"""Workers: plain functions off the event loop, bounded, abandoned on cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from organic_scoring._workers import Workers
from support.waiting import WAIT, Counter

pytestmark = [pytest.mark.python_version, pytest.mark.usefixtures("no_leaks")]

_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_runs_on_another_thread_with_the_callers_context() -> None:
    async def main() -> tuple[int, str]:
        _VAR.set("from the caller")
        return await Workers(2).run(lambda: (threading.get_ident(), _VAR.get()))

    ident, seen = asyncio.run(main())
    assert ident != threading.get_ident()
    assert seen == "from the caller"


@pytest.mark.parametrize("error", [ValueError("v"), GeneratorExit(), KeyboardInterrupt()])
def test_whatever_the_function_raises_reaches_the_caller(error: BaseException) -> None:
    def raises() -> None:
        raise error

    async def main() -> None:
        with pytest.raises(type(error)):
            await Workers(1).run(raises)

    asyncio.run(main())


def test_no_more_than_limit_threads_run_at_once() -> None:
    inside, release = Counter(), threading.Event()
    most = [0]
    lock = threading.Lock()
    active = [0]

    def work() -> None:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        inside.bump()
        release.wait(WAIT)
        with lock:
            active[0] -= 1

    async def main() -> None:
        workers = Workers(2)
        calls = [asyncio.ensure_future(workers.run(work)) for _ in range(5)]
        await asyncio.to_thread(inside.wait_for, 2)
        await asyncio.sleep(0.05)
        assert inside.value == 2  # the other three wait for a slot
        release.set()
        await asyncio.gather(*calls)

    asyncio.run(main())
    assert most[0] == 2
    assert inside.value == 5


def test_an_abandoned_call_finishes_on_its_own_and_keeps_its_slot_until_then() -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def blocks() -> str:
        entered.set()
        release.wait(WAIT)
        finished.set()
        return "late"

    async def main() -> None:
        workers = Workers(1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(workers.run(blocks), 0.05)
        assert entered.is_set()
        assert not finished.is_set()  # abandoned, not stopped
        waiting = asyncio.ensure_future(workers.run(lambda: "next"))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the abandoned call still holds the only slot
        release.set()
        assert await waiting == "next"

    asyncio.run(main())
    assert finished.wait(WAIT)


def test_a_call_outliving_its_event_loop_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))

    async def main() -> None:
        task = asyncio.ensure_future(Workers(1).run(release.wait, WAIT))
        await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(main())  # the loop closes while the thread still runs
    release.set()
    for thread in threading.enumerate():
        if thread.name == "organic-scoring-hook":
            thread.join(WAIT)
    assert escaped == []  # handing the result to a closed loop raised nothing


def test_a_waiter_that_gives_up_passes_its_grant_on() -> None:
    release = threading.Event()

    async def main() -> None:
        workers = Workers(1)
        holder = asyncio.ensure_future(workers.run(release.wait, WAIT))
        await asyncio.sleep(0.01)
        quitter = asyncio.ensure_future(workers.run(lambda: "quitter"))
        stayer = asyncio.ensure_future(workers.run(lambda: "stayer"))
        await asyncio.sleep(0.01)
        quitter.cancel()
        release.set()
        assert await holder is True
        assert await stayer == "stayer"

    asyncio.run(main())


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        Workers(0)
