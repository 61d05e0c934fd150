"""A deadline on the running task: the one timeout every part of the library uses.

``async with Deadline(seconds) as deadline: await work()`` cancels ``work`` once
``seconds`` have passed and raises :class:`asyncio.TimeoutError` (the builtin
``TimeoutError`` on 3.11+) out of the block; :meth:`Deadline.expired` then tells a
timeout of ours from a ``TimeoutError`` the work raised itself.

Unlike ``asyncio.wait_for``, the work runs in the calling task: it starts at once
instead of at the event loop's next turn (so a busy loop cannot time out a hook
that never began), and it costs one timer rather than a task and two more turns of
the loop. Python 3.11+ has this as ``asyncio.timeout``; on 3.10 a small equivalent
cancels the task from a timer and turns that cancellation into the timeout.
"""

from __future__ import annotations

import asyncio
import sys
from types import TracebackType

__all__ = ["Deadline"]


class _Deadline310:
    """``asyncio.timeout`` for Python 3.10, enough for the library's needs."""

    __slots__ = ("_delay", "_expired", "_handle", "_task")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None

    def expired(self) -> bool:
        """True once the deadline passed and cancelled the block."""
        return self._expired

    def _expire(self) -> None:
        self._expired = True
        if self._task is not None:
            self._task.cancel()

    async def __aenter__(self) -> _Deadline310:
        self._task = asyncio.current_task()
        self._handle = asyncio.get_running_loop().call_later(self._delay, self._expire)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._handle is not None:
            self._handle.cancel()
        if self._expired and isinstance(exc, asyncio.CancelledError):
            # The timer runs only while the block awaits, so its cancellation is the one
            # the block received.
            raise asyncio.TimeoutError from exc
        return False


if sys.version_info >= (3, 11):
    Deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10
    Deadline = _Deadline310
