"""When the next iteration is due: the step counter, the annealed period, and wake-ups.

Two triggers decide when an iteration starts:

- ``"seconds"``: every *period* seconds, measured from the start of the previous
  iteration;
- ``"steps"``: each time the step counter reaches the *threshold*, which is then
  subtracted so surplus steps carry over.

Both the period and the threshold anneal with the organic queue's size
(:meth:`ScoringConfig.period`). Waiting is event-driven: :meth:`Trigger.increment`,
:meth:`Trigger.set_step`, a queue ``add`` and a stop request all wake the waiting
coroutine at once, from any thread, and it re-reads the queue size and the counter.
The size is read through the queue's awaitable form, so a queue that blocks (a
file, a server) is asked from a worker thread, never on the event loop; a queue
that cannot tell its size counts as empty (and says so in the log, once per outage).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from organic_scoring._log import log
from organic_scoring.config import ScoringConfig
from organic_scoring.organic_queue import OrganicQueueBase

__all__ = ["Trigger", "Waker"]


class Waker:
    """Wakes one coroutine on one event loop from any thread.

    Wake-ups coalesce: however many arrive while one is pending, the loop is
    scheduled once, so a burst of queue adds costs a single loop callback.
    """

    __slots__ = ("_event", "_lock", "_loop", "_pending")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._pending = False

    def wake(self) -> None:
        """Wake the waiting coroutine, if any. Safe from any thread, never blocks."""
        with self._lock:
            loop = self._loop
            if loop is None or self._pending:
                return
            self._pending = True
        try:
            loop.call_soon_threadsafe(self._set)
        except RuntimeError:  # the loop closed between the check and the call
            with self._lock:
                self._pending = False

    def _set(self) -> None:
        with self._lock:
            self._pending = False
            event = self._event
        if event is not None:
            event.set()

    async def wait(self, timeout: float | None) -> None:
        """Return after a :meth:`wake` or ``timeout`` seconds, whichever comes first."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not loop or self._event is None:
                self._loop, self._event, self._pending = loop, asyncio.Event(), False
            event = self._event
        try:
            if timeout is None:
                await event.wait()
            elif timeout > 0:
                await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            event.clear()

    def unbind(self) -> None:
        """Forget the event loop (it is about to close); later wake-ups do nothing."""
        with self._lock:
            self._loop, self._event, self._pending = None, None, False


class Trigger:
    """The step counter and the decision of when the next iteration is due."""

    __slots__ = ("_config", "_lock", "_queue", "_size_failing", "_steps", "waker")

    def __init__(self, config: ScoringConfig, queue: OrganicQueueBase) -> None:
        self._config = config
        self._queue = queue
        self._lock = threading.Lock()
        self._steps = 0
        self._size_failing = False
        self.waker = Waker()

    @property
    def steps(self) -> int:
        """The step counter: steps counted and not yet spent on an iteration."""
        return self._steps

    def increment(self, n: int = 1) -> None:
        """Add ``n`` steps and wake the loop. Safe from any thread."""
        with self._lock:
            self._steps += n
        self.waker.wake()

    def set_step(self, n: int) -> None:
        """Set the step counter to ``n`` and wake the loop. Safe from any thread."""
        with self._lock:
            self._steps = n
        self.waker.wake()

    def period(self) -> float:
        """The annealed period (seconds) or threshold (steps) for the current queue.

        Reads the queue's size on the calling thread.
        """
        try:
            size = self._queue.size
        except Exception as exc:
            size = self._size_failed(exc)
        return self._config.period(size)

    async def aperiod(self) -> float:
        """:meth:`period`, with the size read off the event loop when the queue blocks."""
        try:
            size = await self._queue.asize()
        except Exception as exc:
            size = self._size_failed(exc)
        else:
            self._size_failing = False
        return self._config.period(size)

    def _size_failed(self, exc: Exception) -> int:
        if not self._size_failing:
            self._size_failing = True
            log.warning(f"the organic queue cannot tell its size ({exc!r}); counting it as empty")
        return 0

    async def wait_due(self, last_start: float | None, stopping: Callable[[], bool]) -> bool:
        """Wait until the next iteration is due; False if ``stopping()`` became true first.

        ``last_start`` is the :func:`time.monotonic` start of the previous iteration
        (None before the first; under ``"seconds"`` the first is due at once). Under
        ``"steps"`` a True return has already spent the threshold's steps.
        """
        seconds = self._config.trigger == "seconds"
        while not stopping():
            if seconds:
                if last_start is None:
                    return True
                remaining = last_start + await self.aperiod() - time.monotonic()
                if remaining <= 0:
                    return True
                await self.waker.wait(remaining)
            else:
                if self._take_threshold(int(await self.aperiod())):
                    return True
                await self.waker.wait(None)
        return False

    def _take_threshold(self, threshold: int) -> bool:
        with self._lock:
            if self._steps < threshold:
                return False
            self._steps -= threshold
            return True
