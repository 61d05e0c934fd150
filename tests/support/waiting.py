"""Bounded waits: every wait in a test has a ceiling that only a broken build reaches."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

WAIT = 10.0
"""Upper bound for any wait in a test; reached only when something is broken."""


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Block (in a synchronous test) until ``predicate()`` holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s for {what}")
        time.sleep(0.005)


async def until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait without blocking the event loop until ``predicate()`` holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s for {what}")
        await asyncio.sleep(0.005)


class Counter:
    """A thread-safe counter that a test can wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.value = 0

    def bump(self) -> None:
        with self._cond:
            self.value += 1
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = WAIT) -> int:
        with self._cond:
            if not self._cond.wait_for(lambda: self.value >= n, timeout):
                raise AssertionError(f"waited {timeout}s for {n}, got {self.value}")
            return self.value
