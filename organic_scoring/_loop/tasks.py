"""Structured concurrency: every task the library starts has an owner that waits for it.

:class:`TaskGroup` is a small nursery in the manner of trio and AnyIO (and of
``asyncio.TaskGroup``, which Python 3.10 lacks)::

    async with TaskGroup() as group:
        group.start_soon(work())
        ...                      # the body runs beside the children

Rules, all tested:

- Leaving the ``async with`` waits for every child, whatever happened.
- When a child fails (raises anything but a cancellation), its siblings and the body
  are cancelled, and the first failure is raised from the ``async with`` once every
  child has finished. Later failures are logged, never lost.
- When the body raises (a cancellation included), every child is cancelled, then
  awaited, and the body's exception propagates.
- A cancellation that reaches the owner while it waits for the children is passed
  on to them; the owner still waits for them and then re-raises it.

Children must not let ``SystemExit`` or ``KeyboardInterrupt`` escape: asyncio raises
those straight out of the event loop, past any owner. The scoring loop catches them
inside its iterations and turns them into an orderly stop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from organic_scoring._log import log

__all__ = ["TaskGroup"]

_T = TypeVar("_T")


class TaskGroup:
    """Owns a set of tasks: cancels them together, waits for all of them."""

    __slots__ = (
        "_closed",
        "_errors",
        "_exiting",
        "_parent",
        "_parent_cancelled",
        "_tasks",
        "_waiter",
    )

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._errors: list[BaseException] = []
        self._parent: asyncio.Task[Any] | None = None
        self._parent_cancelled = False
        self._exiting = False
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None  # set while the owner waits

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """The children still running."""
        return frozenset(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    async def __aenter__(self) -> TaskGroup:
        if self._parent is not None:
            raise RuntimeError("a TaskGroup can be entered only once")
        self._parent = asyncio.current_task()
        return self

    def start_soon(
        self, coro: Coroutine[Any, Any, _T], *, name: str | None = None
    ) -> asyncio.Task[_T]:
        """Run ``coro`` as a child task; it inherits the caller's context variables."""
        if self._closed or self._parent is None:
            coro.close()
            raise RuntimeError("the task group is not open")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._child_done)
        return task

    def cancel(self) -> None:
        """Cancel every child (not the body)."""
        for task in self._tasks:
            task.cancel()

    async def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the current children; True if none is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return not self._tasks

    def _child_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        waiter = self._waiter
        if not self._tasks and waiter is not None and not waiter.done():
            waiter.set_result(None)
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so asyncio never calls it unretrieved
        if error is None:
            return
        self._errors.append(error)
        if len(self._errors) > 1:
            return
        self.cancel()
        parent = self._parent
        if not self._exiting and parent is not None and not parent.done():
            self._parent_cancelled = True
            parent.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._exiting = True
        if exc is not None:
            self.cancel()
        outside: asyncio.CancelledError | None = None
        while self._tasks:
            # One future that the last child resolves: a cancellation of it can only
            # come from outside, and it costs less than asyncio.wait on every child.
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            except asyncio.CancelledError as cancelled:
                outside = cancelled
                self.cancel()
            finally:
                self._waiter = None
        self._closed = True
        ours = self._parent_cancelled
        if ours and sys.version_info >= (3, 11) and self._parent is not None:
            self._parent.uncancel()
        if self._errors:
            first, *rest = self._errors
            for other in rest:
                log.error(f"a task failed while its group was stopping: {other!r}", exc_info=other)
            if exc is not None and not isinstance(exc, asyncio.CancelledError):
                log.error(f"a task failed beside {exc!r}: {first!r}", exc_info=first)
                return False  # the body's own exception goes on
            raise first
        if outside is not None:
            raise outside
        return False
