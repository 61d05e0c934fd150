"""Calling a scorer's hooks: sync or async sorted once, overridden or not.

A hook is normally ``async def``; a plain ``def`` works too. Which of the two a
hook is gets decided once, when it is resolved (as Starlette does for endpoints),
never per call: :class:`Hook` keeps the answer. The scoring loop runs plain hooks
on :class:`~organic_scoring._loop.workers.Workers` threads so that stage timeouts and
``stop()`` hold for them; a plain function that returns an awaitable (a decorated
coroutine function, say) has that awaitable awaited as well.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Hook", "call_hook", "is_async_callable", "overrides"]


def is_async_callable(obj: Any) -> bool:
    """True for a coroutine function, a partial of one, or an object whose ``__call__`` is."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    if inspect.iscoroutinefunction(obj):
        return True
    # An instance whose class defines ``async def __call__``.
    call = inspect.getattr_static(type(obj), "__call__", None)
    return not inspect.isroutine(obj) and inspect.iscoroutinefunction(call)


async def call_hook(hook: Callable[..., Any], *args: Any) -> Any:
    """Call ``hook(*args)`` on the current thread and await the result if it is awaitable."""
    result = hook(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def overrides(scorer: object, base: type, name: str) -> bool:
    """True when ``scorer``'s class replaces ``base``'s method ``name``."""
    return getattr(type(scorer), name) is not getattr(base, name)


class Hook:
    """One resolved hook: the callable, and whether calling it gives a coroutine.

    ``serial``, when given, is held by a plain hook's worker thread for the whole
    call, so that even a call abandoned after a timeout keeps the next one waiting.
    """

    __slots__ = ("fn", "is_async", "name", "serial")

    def __init__(
        self, fn: Callable[..., Any], name: str, serial: threading.Lock | None = None
    ) -> None:
        self.fn = fn
        self.name = name
        self.is_async = is_async_callable(fn)
        self.serial = serial

    def __repr__(self) -> str:
        return f"Hook({self.name}, {'async' if self.is_async else 'sync'})"
