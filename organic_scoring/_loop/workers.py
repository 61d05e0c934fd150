"""Plain-function hooks, run off the event loop on a bounded number of threads.

A hook written as a plain ``def`` may block (a synchronous HTTP call, a model on
the CPU). Run inline it would stall the event loop, so no stage timeout and no
``stop()`` could interrupt it. :class:`Workers` runs each such call on a thread of
its own, at most ``limit`` at once, and the awaiting coroutine can be cancelled or
time out at any moment: the thread is then *abandoned*. Python cannot stop a
thread, so an abandoned call runs to its end on its own; its result is dropped,
and it keeps its slot until then, so abandoned calls can never pile up beyond
``limit`` threads. The threads are daemons: an abandoned call does not hold up the
interpreter's exit.

The call sees the caller's context variables (as :func:`asyncio.to_thread` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Workers"]

_T = TypeVar("_T")


class Workers:
    """Runs plain functions on threads, at most ``limit`` at a time, from any event loop."""

    __slots__ = ("_free", "_lock", "_name", "_waiters")

    def __init__(self, limit: int, name: str = "organic-scoring-hook") -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._free = limit
        self._name = name
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def run(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``fn(*args, **kwargs)`` on a worker thread; raises what it raises."""
        await self._acquire()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_T] = loop.create_future()
        context = contextvars.copy_context()

        def target() -> None:
            settle: Callable[[], None]
            try:
                result = context.run(fn, *args, **kwargs)
            except BaseException as exc:  # handed to the awaiting coroutine, whatever it is
                settle = functools.partial(_fail, done, exc)
            else:
                settle = functools.partial(_succeed, done, result)
            finally:
                self._release()
            # A closed loop means nobody is waiting for this call any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle)

        try:
            threading.Thread(target=target, name=self._name, daemon=True).start()
        except BaseException:
            self._release()
            raise
        return await done

    async def _acquire(self) -> None:
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return
            loop = asyncio.get_running_loop()
            slot: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, slot))
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._release()  # granted just as we gave up: pass it on
            raise

    def _release(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the pool."""
        with self._lock:
            while self._waiters:
                loop, slot = self._waiters.popleft()
                if slot.done():
                    continue
                try:
                    loop.call_soon_threadsafe(self._grant, slot)
                except RuntimeError:
                    continue  # that waiter's loop is gone
                return
            self._free += 1

    def _grant(self, slot: asyncio.Future[None]) -> None:
        if slot.done():  # cancelled before the grant arrived
            self._release()
        else:
            slot.set_result(None)


def _succeed(future: asyncio.Future[_T], result: _T) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
