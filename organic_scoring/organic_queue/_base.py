"""The organic queue interface: where intake puts samples and the loop takes them."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any, ClassVar

from organic_scoring.organic_queue._lock import LeaseLock

__all__ = ["OrganicQueueBase", "adds_seen", "check_count"]


def check_count(name: str, value: object) -> None:
    """Refuse (ValueError) anything but an int of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int of at least 1, got {value!r}")


class AddsSeen:
    """How many adds the code of one ``receive_organic`` call made (its context)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


adds_seen: contextvars.ContextVar[AddsSeen | None] = contextvars.ContextVar(
    "organic_scoring_adds_seen", default=None
)
"""Set by ``receive_organic`` around ``_on_organic_entry``; ``_notify_added`` counts into it."""


request_key: ContextVar[str | None] = ContextVar("organic_scoring_request_key", default=None)
"""The request being handled (hotkey and nonce), set by the intake; idempotent adds key by it."""


class OrganicQueueBase(ABC):
    """A store of organic samples waiting to be scored (see ``docs/queues.md``).

    Implementations must be thread-safe. Subclasses implement :meth:`add`,
    :meth:`sample` and :attr:`size`, and call :meth:`_notify_added` after each ``add``.
    """

    blocking: ClassVar[bool] = True
    """Whether :meth:`add`, :meth:`sample`, :attr:`size` and :meth:`ack` may block."""

    # One lock for every queue: subclasses need not call ``super().__init__()``.
    _listeners_lock = threading.Lock()
    _listeners: tuple[Callable[[], None], ...] = ()
    # Whether the class calls _notify_added (a custom one: once it first has).
    _announces_adds: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "add" in vars(cls) and "_announces_adds" not in vars(cls):
            cls._announces_adds = False  # its own add: unknown until it announces
        for name in ("add", "sample"):
            if inspect.iscoroutinefunction(vars(cls).get(name)):
                raise TypeError(
                    f"{cls.__name__}.{name} must be a plain def, not async def: the "
                    f"awaitable a{name} runs it on a worker thread (or inline when "
                    "blocking = False), and nothing would await its coroutine"
                )
        if inspect.isfunction(vars(cls).get("size")):
            raise TypeError(
                f"{cls.__name__}.size must be a property: put @property above "
                "`def size(self)` (the loop reads queue.size, it does not call it)"
            )

    @abstractmethod
    def add(self, sample: Any) -> None:
        """Store one organic sample."""

    @abstractmethod
    def sample(self) -> Any:
        """Remove and return one sample, or return None when the queue is empty.

        Raises :class:`~organic_scoring.errors.SampleUnreadable` when an entry left the
        queue but cannot be handed over; any other exception means nothing left it.
        """

    @property
    @abstractmethod
    def size(self) -> int:
        """How many samples are waiting."""

    def is_empty(self) -> bool:
        """True when no sample is waiting."""
        return self.size == 0

    def take(self) -> tuple[Any, Any] | None:
        """A waiting sample and its lease token, or None when none waits (default:
        :meth:`sample`, the sample being its own token). The loop later calls
        :meth:`ack` and :meth:`renew` with the token."""
        sample = self.sample()
        return None if sample is None else (sample, sample)

    def ack(self, lease: Any, *, failed: bool = False) -> None:
        """The iteration holding ``lease`` (a token from :meth:`take`) has ended
        (``failed``: it failed and was reported); default: nothing to do."""
        return None

    def renew(self, leases: Sequence[Any]) -> None:
        """The iterations holding ``leases`` (tokens from :meth:`take`) still run (a
        leasing queue extends their leases); default: nothing to do."""
        return None

    def count_accepted(self) -> None:
        """An intake accepted a request (a shared queue counts it for
        ``stats.organic_unaccounted``); default: nothing to do."""
        return None

    def scorer_lock(self) -> LeaseLock | None:
        """A new lock on the role every scorer of this shared queue contends for (the
        loop runs iterations only while holding it); default: None, no contention."""
        return None

    # -- awaitable forms: off the event loop when the queue blocks ---------------------

    async def _off_loop(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.blocking:
            return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
        return fn(*args, **kwargs)

    async def aadd(self, sample: Any) -> None:
        """:meth:`add`, awaitable: on a worker thread when the queue blocks."""
        await self._off_loop(self.add, sample)

    async def asample(self) -> Any:
        """:meth:`sample`, awaitable: on a worker thread when the queue blocks."""
        return await self._off_loop(self.sample)

    async def atake(self) -> tuple[Any, Any] | None:
        """:meth:`take`, awaitable: on a worker thread when the queue blocks."""
        taken: tuple[Any, Any] | None = await self._off_loop(self.take)
        return taken

    async def adetach(self) -> None:
        """The running event loop is done with the queue: release what it holds there
        (a Redis queue's async connections). Default: nothing to do."""
        return None

    async def asize(self) -> int:
        """:attr:`size`, awaitable: on a worker thread when the queue blocks."""
        size: int = await self._off_loop(lambda: self.size)
        return size

    async def aack(self, lease: Any, *, failed: bool = False) -> None:
        """:meth:`ack`, awaitable (skipped when :meth:`ack` is the default)."""
        if type(self).ack is not OrganicQueueBase.ack:
            await self._off_loop(self.ack, lease, failed=failed)

    async def arenew(self, leases: Sequence[Any]) -> None:
        """:meth:`renew`, awaitable: on a worker thread when the queue blocks."""
        await self._off_loop(self.renew, leases)

    async def acount_accepted(self) -> None:
        """:meth:`count_accepted`, awaitable (skipped when it is the default)."""
        if type(self).count_accepted is not OrganicQueueBase.count_accepted:
            await self._off_loop(self.count_accepted)

    def __len__(self) -> int:
        return self.size

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (cheap, never raising) from the adding thread after every
        ``add``."""
        with self._listeners_lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``; a listener that was never added is ignored."""
        with self._listeners_lock:
            self._listeners = tuple(fn for fn in self._listeners if fn != listener)

    def _notify_added(self) -> None:
        """Tell the listeners a sample was added. Call after each successful ``add``."""
        if not type(self)._announces_adds:
            type(self)._announces_adds = True
        seen = adds_seen.get()
        if seen is not None:
            seen.count += 1
        for listener in self._listeners:
            listener()
