"""Watching the scoring loop's event loop from outside it, for hooks that block it.

A :class:`Watchdog` thread posts a probe to the loop every ``threshold / 4`` seconds; a
probe that waits ``threshold`` seconds or more means the loop is blocked, and the loop
thread's stack (last looked at while the probe waited) tells which hook holds it.
``on_block`` hears of it once the probe runs, on the watchdog's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import CodeType, FrameType
from typing import Any

__all__ = ["Watchdog", "code_of"]

OnBlock = Callable[[str, float], None]  # (who: the hook or the place, seconds)


def code_of(fn: Any) -> Iterable[CodeType]:
    """The code objects of a function, a bound method, and whatever they wrap."""
    seen = 0
    while fn is not None and seen < 8:
        seen += 1
        fn = getattr(fn, "__func__", fn)
        code = getattr(fn, "__code__", None)
        if isinstance(code, CodeType):
            yield code
        fn = getattr(fn, "__wrapped__", None)


class Watchdog:
    """A thread that measures ``loop``'s lag (its thread: ``tid``) and names the hook
    (``hooks``: code to name) that blocked it ``threshold`` seconds or more."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tid: int,
        hooks: dict[CodeType, str],
        threshold: float,
        on_block: OnBlock,
    ) -> None:
        self._loop = loop
        self._tid = tid
        self._hooks = hooks
        self._threshold = threshold
        self._on_block = on_block
        self._stopped = threading.Event()
        self._answered: float | None = None  # when the last probe ran on the loop
        self._thread = threading.Thread(
            target=self._watch, name="organic-scoring-watchdog", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns once the thread has ended (within one tick)."""
        self._stopped.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _answer(self) -> None:  # on the loop
        self._answered = time.monotonic()

    def _watch(self) -> None:
        tick = self._threshold / 4
        sent: float | None = None
        who: str | None = None
        while not self._stopped.wait(tick):
            if sent is not None:
                answered = self._answered
                if answered is None:
                    who = self._blocker()  # the latest look is the likeliest culprit
                    continue
                lag = answered - sent
                if lag >= self._threshold and who is not None:
                    self._on_block(who, lag)
                sent, who = None, None
            self._answered = None
            sent = time.monotonic()
            try:
                self._loop.call_soon_threadsafe(self._answer)
            except RuntimeError:  # the loop has closed
                return

    def _blocker(self) -> str:
        """The innermost hook on the loop thread's stack, else where that stack is."""
        frame: FrameType | None = sys._current_frames().get(self._tid)
        top = frame
        while frame is not None:
            name = self._hooks.get(frame.f_code)
            if name is not None:
                return name
            frame = frame.f_back
        if top is None:
            return "code outside the scorer's hooks"
        code = top.f_code
        with contextlib.suppress(ValueError):
            return (
                f"code outside the scorer's hooks ({code.co_name} at "
                f"{code.co_filename.rsplit('/', 1)[-1]}:{top.f_lineno})"
            )
        return "code outside the scorer's hooks"
