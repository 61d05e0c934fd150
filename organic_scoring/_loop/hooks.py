"""Calling a scorer's hooks: async or plain sorted once (:class:`Hook`), plain ones on
worker threads (:class:`PlainCalls`), a task group's errors unwrapped (:func:`ungrouped`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread

from organic_scoring._log import log

if sys.version_info < (3, 11):  # AnyIO depends on this backport on Python 3.10
    from exceptiongroup import BaseExceptionGroup

__all__ = [
    "HOOK_CALLS",
    "Hook",
    "PlainCalls",
    "call_hook",
    "check_signatures",
    "is_async_callable",
    "overrides",
    "takes_by_name",
    "ungrouped",
]

HOOK_CALLS: dict[str, tuple[str, ...]] = {
    "_on_organic_entry": ("request",),
    "_blacklist_fn": ("request",),
    "_priority_fn": ("request",),
    "_verify_fn": ("request",),
    "_query_miners": ("sample",),
    "_generate_reference": ("sample",),
    "_generate_rewards": ("sample", "responses", "reference"),
    "_set_weights": ("rewards",),
    "_log_results": ("logs", "reference", "responses", "rewards", "sample"),
    "_on_iteration_error": ("sample", "stage", "exc"),
}
"""What each hook is called with, in order: by position, except ``_log_results``,
which gets its arguments by name when it accepts them so (as the original package
called it), else by position."""


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


def _binds(fn: Any, names: tuple[str, ...], *, by_name: bool) -> str | None:
    """None when ``fn`` accepts ``names`` as arguments (by name or by position), else
    why not; None as well when ``fn`` has no signature to read."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        if by_name:
            signature.bind(**dict.fromkeys(names))
        else:
            signature.bind(*names)
    except TypeError as refused:
        return str(refused)
    return None


def takes_by_name(fn: Any) -> bool:
    """Whether ``_log_results`` hook ``fn`` accepts its arguments by name."""
    return _binds(fn, HOOK_CALLS["_log_results"], by_name=True) is None


def check_signatures(scorer: object) -> None:
    """Check that every hook of ``scorer`` accepts the arguments it is called with.

    Raises:
        TypeError: A hook could not take them; the message names the hook, what it
            is called with and what does not fit.
    """
    cls = type(scorer).__name__
    for name, names in HOOK_CALLS.items():
        fn = getattr(scorer, name, None)
        if fn is None:
            continue
        why = _binds(fn, names, by_name=False)
        if why is None or (name == "_log_results" and takes_by_name(fn)):
            continue
        call = ", ".join(names)
        how = (
            f"by name ({', '.join(f'{n}=...' for n in names)}) or by position ({call})"
            if name == "_log_results"
            else f"by position: {name}({call})"
        )
        signature = inspect.signature(fn)
        plain = signature.replace(
            parameters=[
                p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()
            ],
            return_annotation=inspect.Signature.empty,
        )
        raise TypeError(
            f"{cls}.{name}{plain} cannot take the arguments the library calls it with, {how}: {why}"
        )


def overrides(scorer: object, base: type, name: str) -> bool:
    """True when ``scorer``'s class replaces ``base``'s method ``name``."""
    return getattr(type(scorer), name) is not getattr(base, name)


class Hook:
    """One resolved hook: the callable, whether it is async, and the lock a plain one's
    thread holds for the whole call (``serial``: an abandoned call holds it too)."""

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


class PlainCalls:
    """Runs plain functions on AnyIO worker threads, ``limit`` at a time per event loop;
    a cancelled caller abandons its call (docs/loop.md, "Plain hooks and timeouts")."""

    __slots__ = ("_abandoned", "_limit", "_limiters", "_lock", "name")

    def __init__(self, limit: int, name: str = "plain hooks") -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.name = name
        self._limit = limit
        self._lock = threading.Lock()
        self._abandoned = 0
        # A CapacityLimiter serves one event loop: one each.
        self._limiters: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anyio.CapacityLimiter
        ] = weakref.WeakKeyDictionary()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a worker thread; returns what it returns, raises what it raises.

        Raises:
            RuntimeError: ``limit`` abandoned calls are still running.
        """
        with self._lock:
            if self._abandoned >= self._limit:
                raise RuntimeError(
                    f"{self._abandoned} calls of {self.name} abandoned after a timeout or "
                    "a stop are still running on their threads; no new call starts until "
                    "one returns (make the hook return in time, or make it async)"
                )
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self._limit)
        call = _Call(self, fn, args)
        try:
            return await anyio.to_thread.run_sync(call.run, limiter=limiter, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            call.abandon()
            raise


class _Call:
    """One call of :class:`PlainCalls`, and where it stands: ``"waiting"`` for its
    thread, ``"running"``, ``"done"``, or ``"gone"`` (abandoned before it began) or
    ``"abandoned"`` (while it runs: counted until it returns)."""

    __slots__ = ("args", "fn", "owner", "state")

    def __init__(self, owner: PlainCalls, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.owner, self.fn, self.args = owner, fn, args
        self.state = "waiting"

    def run(self) -> Any:
        lock = self.owner._lock
        with lock:
            if self.state == "gone":
                return None
            self.state = "running"
        try:
            return self.fn(*self.args)
        finally:
            with lock:
                if self.state == "abandoned":
                    self.owner._abandoned -= 1
                self.state = "done"

    def abandon(self) -> None:
        with self.owner._lock:
            if self.state == "waiting":
                self.state = "gone"
            elif self.state == "running":
                self.state = "abandoned"
                self.owner._abandoned += 1


@contextlib.contextmanager
def ungrouped(
    also: Callable[[BaseException], None] | None = None,
) -> Iterator[None]:
    """Around an AnyIO task group: raise the first exception of the group it raised
    (nested groups flattened) as itself, cause and context untouched; hand each of
    the others to ``also`` (default: log it), so none is lost. Anything else passes
    unchanged."""
    try:
        yield
    except BaseExceptionGroup as errors:
        first, *rest = _leaves(errors)
        for other in rest:
            if also is None:
                log.error(f"a task failed beside {first!r}: {other!r}", exc_info=other)
            else:
                also(other)
        context = first.__context__
        try:
            raise first
        finally:
            first.__context__ = context
            del first, context


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error
