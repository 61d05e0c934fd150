"""The organic queue interface: where intake puts samples and the loop takes them."""

from __future__ import annotations

import asyncio
import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any, ClassVar

from organic_scoring.organic_queue._lock import LeaseLock

__all__ = ["OrganicQueueBase"]


request_key: ContextVar[str | None] = ContextVar("organic_scoring_request_key", default=None)
"""The request being handled (its hotkey and nonce), set by the intake: a queue that
adds idempotently keys its add by it."""


class OrganicQueueBase(ABC):
    """A store of organic samples waiting to be scored.

    Implementations must be thread-safe (intakes add, the loop samples, from
    different threads). Subclasses implement :meth:`add`, :meth:`sample` and
    :attr:`size`, and should call :meth:`_notify_added` after each ``add`` so a
    waiting loop reacts at once. With :attr:`blocking` True (the default) the loop
    and intakes use the awaitable forms (:meth:`aadd`, :meth:`asample`,
    :meth:`asize`, :meth:`aack`), which run the plain methods on a worker thread;
    set it False only for microsecond in-memory calls. Leasing queues override
    :meth:`ack`; queues shared by several scorers return a lock from
    :meth:`scorer_lock`.
    """

    blocking: ClassVar[bool] = True
    """Whether :meth:`add`, :meth:`sample`, :attr:`size` and :meth:`ack` may block."""

    # Listener changes are rare (a scorer starting or stopping), so one lock serves
    # every queue, and subclasses need not call ``super().__init__()``.
    _listeners_lock = threading.Lock()
    _listeners: tuple[Callable[[], None], ...] = ()

    @abstractmethod
    def add(self, sample: Any) -> None:
        """Store one organic sample."""

    @abstractmethod
    def sample(self) -> Any:
        """Remove and return one sample, or return None when the queue is empty.

        When an entry left the queue but cannot be handed over (a stored record that
        no longer decodes, say), raise :class:`~organic_scoring.errors.SampleUnreadable`:
        the scoring loop reports it as a failed organic sample. Any other exception
        means nothing left the queue.
        """

    @property
    @abstractmethod
    def size(self) -> int:
        """How many samples are waiting."""

    def is_empty(self) -> bool:
        """True when no sample is waiting."""
        return self.size == 0

    def take(self) -> tuple[Any, Any] | None:
        """A waiting sample and its lease token, or None when none waits.

        The scoring loop calls this, and later :meth:`ack` (and :meth:`renew`) with
        the token. Default: :meth:`sample`, with the sample itself as its token.
        """
        sample = self.sample()
        return None if sample is None else (sample, sample)

    def ack(self, lease: Any, *, failed: bool = False) -> None:
        """The iteration holding ``lease`` (a token from :meth:`take`) has ended;
        default: nothing to do.

        ``failed`` tells how it ended: False when it was scored, True when it failed
        and was reported. A queue that keeps the accounting of several processes
        counts the outcome here.
        """
        return None

    def renew(self, leases: Sequence[Any]) -> None:
        """The iterations holding ``leases`` (tokens from :meth:`take`) still run;
        default: nothing to do.

        A leasing queue extends their leases, so that a slow iteration's sample is not
        handed out again meanwhile. The scoring loop calls it a few times per lease.
        """
        return None

    def count_accepted(self) -> None:
        """An intake accepted a request (its ``_on_organic_entry`` returned); default:
        nothing to do.

        A queue shared by several processes (as
        :class:`~organic_scoring.organic_queue.RedisOrganicQueue`) counts it in its
        ledger, for ``stats.organic_unaccounted``.
        :meth:`~organic_scoring.OrganicScoringBase.receive_organic` calls it.
        """
        return None

    def scorer_lock(self) -> LeaseLock | None:
        """The lock that lets one scorer at a time use this queue; default: None.

        A queue shared by several processes returns a new :class:`LeaseLock` on a
        role every scorer of that queue contends for: the scoring loop keeps it for
        each run and runs iterations only while it holds it. None lets every scorer
        sample the queue.
        """
        return None

    # -- awaitable forms: off the event loop when the queue blocks ---------------------

    async def aadd(self, sample: Any) -> None:
        """:meth:`add`, awaitable: on a worker thread when the queue blocks."""
        if self.blocking:
            await asyncio.to_thread(self.add, sample)
        else:
            self.add(sample)

    async def asample(self) -> Any:
        """:meth:`sample`, awaitable: on a worker thread when the queue blocks."""
        if self.blocking:
            return await asyncio.to_thread(self.sample)
        return self.sample()

    async def atake(self) -> tuple[Any, Any] | None:
        """:meth:`take`, awaitable: on a worker thread when the queue blocks."""
        if self.blocking:
            return await asyncio.to_thread(self.take)
        return self.take()

    async def adetach(self) -> None:
        """The running event loop is done with the queue: release what it holds there
        (a Redis queue's async connections). Default: nothing to do."""
        return None

    async def asize(self) -> int:
        """:attr:`size`, awaitable: on a worker thread when the queue blocks."""
        if self.blocking:
            return await asyncio.to_thread(lambda: self.size)
        return self.size

    async def aack(self, lease: Any, *, failed: bool = False) -> None:
        """:meth:`ack`, awaitable: on a worker thread when the queue blocks.

        Skipped entirely when a subclass keeps the do-nothing :meth:`ack`.
        """
        if type(self).ack is OrganicQueueBase.ack:
            return
        if self.blocking:
            await asyncio.to_thread(functools.partial(self.ack, lease, failed=failed))
        else:
            self.ack(lease, failed=failed)

    async def arenew(self, leases: Sequence[Any]) -> None:
        """:meth:`renew`, awaitable: on a worker thread when the queue blocks."""
        if self.blocking:
            await asyncio.to_thread(self.renew, leases)
        else:
            self.renew(leases)

    async def acount_accepted(self) -> None:
        """:meth:`count_accepted`, awaitable: on a worker thread when the queue blocks.

        Skipped entirely when a subclass keeps the do-nothing :meth:`count_accepted`.
        """
        if type(self).count_accepted is OrganicQueueBase.count_accepted:
            return
        if self.blocking:
            await asyncio.to_thread(self.count_accepted)
        else:
            self.count_accepted()

    def __len__(self) -> int:
        return self.size

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the adding thread) after every ``add``.

        Listeners must be cheap and must not raise; the scoring loop uses one to
        wake up when traffic arrives.
        """
        with self._listeners_lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``; a listener that was never added is ignored."""
        with self._listeners_lock:
            self._listeners = tuple(fn for fn in self._listeners if fn != listener)

    def _notify_added(self) -> None:
        """Tell the listeners a sample was added. Call after each successful ``add``."""
        for listener in self._listeners:
            listener()
