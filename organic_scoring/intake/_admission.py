"""The admission gate: a fixed number of handler slots, and a bounded wait, highest
priority first (the earliest among equals). One event loop's, not thread-safe."""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["AdmissionGate", "BacklogFull"]


class BacklogFull(Exception):
    """Every slot is taken and the backlog is full: the request is refused."""


class AdmissionGate:
    """Hands out ``max_concurrent`` slots, highest priority first among waiters.

    :meth:`try_enter`, or else await :meth:`queue`'s future; then :meth:`leave`. A
    waiter that gives up must call :meth:`withdraw`.
    """

    def __init__(self, max_concurrent: int, max_backlog: int) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if max_backlog < 0:
            raise ValueError(f"max_backlog must not be negative, got {max_backlog}")
        self._max_concurrent = max_concurrent
        self._max_backlog = max_backlog
        self._active = 0
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def active(self) -> int:
        """Slots currently held."""
        return self._active

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._heap)

    def try_enter(self) -> bool:
        """Take a slot now if one is free and nobody is waiting for it."""
        if self._active < self._max_concurrent and not self._heap:
            self._active += 1
            return True
        return False

    def queue(self, priority: float) -> asyncio.Future[None]:
        """Join the backlog; the returned future completes when the slot is ours.

        Raises:
            BacklogFull: ``max_backlog`` requests are already waiting.
        """
        if len(self._heap) >= self._max_backlog:
            raise BacklogFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (-priority, next(self._order), waiter))
        return waiter

    def withdraw(self, waiter: asyncio.Future[None]) -> None:
        """Give up waiting; if the slot had already been granted, pass it on."""
        if waiter.done():
            if not waiter.cancelled():
                self.leave()
            return
        waiter.cancel()
        for index, entry in enumerate(self._heap):
            if entry[2] is waiter:
                self._heap[index] = self._heap[-1]
                self._heap.pop()
                heapq.heapify(self._heap)
                break

    def leave(self) -> None:
        """Release a slot: it goes to the best waiter, or back to the pool."""
        while self._heap:
            waiter = heapq.heappop(self._heap)[2]
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; the count stays
                return
        self._active -= 1
