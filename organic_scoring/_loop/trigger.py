"""When the next iteration is due: the step counter, the annealed period, and wake-ups.

The triggers are described on docs/loop.md ("How the loop decides") and
docs/probes.md (jitter, ``"poisson"``). A queue whose size cannot be read counts as
empty.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

import anyio

from organic_scoring._defaults import (
    JITTER_ARRIVAL_LAG,
    JITTER_BACKLOG_SMOOTHING,
    JITTER_RATE_SMOOTHING,
    POISSON_BACKLOG_GAIN,
)
from organic_scoring._log import log
from organic_scoring.config import ScoringConfig
from organic_scoring.organic_queue import OrganicQueueBase

__all__ = ["Load", "SampleKind", "Trigger", "Waker"]

SampleKind = Literal["organic", "synthetic"]

_BUCKETS_PER_LAG = 8


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
                with anyio.move_on_after(timeout):
                    await event.wait()
        finally:
            event.clear()

    def unbind(self) -> None:
        """Forget the event loop (it is about to close); later wake-ups do nothing."""
        with self._lock:
            self._loop, self._event, self._pending = None, None, False


class Load:
    """The smoothed arrival rate and backlog a jittered period follows (docs/probes.md).

    Arrivals too young to count are kept in buckets an eighth of the lag wide, so memory
    does not grow with the traffic. Times are monotonic seconds, passed in. Thread-safe.
    """

    def __init__(self, config: ScoringConfig) -> None:
        frequency = config.trigger_frequency
        self._config = config
        self._rate_tau = JITTER_RATE_SMOOTHING * frequency
        self._lag = JITTER_ARRIVAL_LAG * frequency
        self._backlog_tau = JITTER_BACKLOG_SMOOTHING * frequency
        self._bucket = self._lag / _BUCKETS_PER_LAG
        self._lock = threading.Lock()
        self._pending: deque[list[float]] = deque()  # [bucket start, arrivals in it]
        self._rate = 0.0
        self._rate_at = -math.inf
        self._backlog = 0.0
        self._backlog_at: float | None = None

    def arrived(self, now: float) -> None:
        """Count one organic arrival at ``now``."""
        with self._lock:
            pending = self._pending
            if pending and now < pending[-1][0] + self._bucket:
                pending[-1][1] += 1
            else:
                pending.append([now, 1])

    def rate(self, now: float) -> float:
        """The smoothed arrivals per second, as of ``now``."""
        with self._lock:
            return self._rate_now(now)

    def _rate_now(self, now: float) -> float:
        cut = now - self._lag
        pending, tau = self._pending, self._rate_tau
        while pending and pending[0][0] + self._bucket <= cut:
            start, count = pending.popleft()
            at = start + self._bucket / 2  # the bucket's arrivals count at its middle
            self._rate = self._rate * math.exp((self._rate_at - at) / tau) + count / tau
            self._rate_at = at
        if cut <= self._rate_at:
            return self._rate
        return self._rate * math.exp((self._rate_at - cut) / tau)

    def backlog(self, now: float, size: int | None = None) -> float:
        """The smoothed queue size; ``size``, when given, is folded in first."""
        with self._lock:
            return self._backlog_now(now, size)

    def _backlog_now(self, now: float, size: int | None) -> float:
        if size is None:
            return self._backlog
        last = self._backlog_at
        if last is None:
            self._backlog = float(size)
        elif now > last:
            weight = 1.0 - math.exp((last - now) / self._backlog_tau)
            self._backlog += weight * (size - self._backlog)
        self._backlog_at = now if last is None else max(last, now)
        return self._backlog

    def mean(self, now: float, size: int | None) -> float:
        """The mean period as of ``now``, from the backlog as it stood before ``size`` (the
        size that decides this wait's kind must not shorten its period) is folded in."""
        with self._lock:
            rate = self._rate_now(now)
            backlog = self._backlog
            self._backlog_now(now, size)
        return self._config.jittered_mean(rate, backlog)


class Trigger:
    """The step counter and the decision of when the next iteration is due.

    Args:
        config: The validated settings.
        queue: The organic queue, for its size.
        rng: The generator jittered periods are drawn from; default: one seeded with
            ``config.seed``.
    """

    def __init__(
        self,
        config: ScoringConfig,
        queue: OrganicQueueBase,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._queue = queue
        self._lock = threading.Lock()
        self._steps = 0
        self._size_failing = False
        self.waker = Waker()
        self._jitter = config.trigger_jitter if config.trigger == "seconds" else 0.0
        self._random = rng if rng is not None else random.Random(config.seed)
        poisson = config.trigger == "poisson"
        self._load = Load(config) if self._jitter or poisson else None
        # Under "poisson" drawing a kind must not move the points.
        self._kinds = random.Random(self._random.getrandbits(64)) if poisson else None
        self._due: float | None = None  # the next point of the Poisson process
        self.planned: SampleKind | None = None
        """With jitter or ``"poisson"``, the kind of sample chosen for the iteration that
        :meth:`wait_due` last found due (None: whatever is waiting when it starts)."""

    @property
    def load(self) -> Load | None:
        """The smoothed organic load that a jittered period (or, under ``"poisson"``,
        a slot's kind: the backlog only) follows; None otherwise."""
        return self._load

    def arrived(self) -> None:
        """The queue's add listener: wakes the loop, or with jitter counts the arrival;
        nothing under ``"poisson"``. Safe from any thread, never blocks."""
        load = self._load
        if self._config.trigger == "poisson":
            return
        if load is None:
            self.waker.wake()
        else:
            load.arrived(time.monotonic())

    def draw(self, mean: float) -> float:
        """One jittered period: uniform in ``[mean * (1 - j), mean * (1 + j)]``."""
        jitter = self._jitter
        return self._random.uniform(mean * (1.0 - jitter), mean * (1.0 + jitter))

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
        """The annealed period or threshold (with jitter: the mean), reading the queue's
        size on the calling thread."""
        if self._load is not None:
            return self._load.mean(time.monotonic(), None)
        try:
            size = self._queue.size
        except Exception as exc:
            size = self._size_failed(exc)
        return self._config.period(size)

    async def aperiod(self) -> float:
        """:meth:`period`, with the size read off the event loop when the queue blocks."""
        return self._config.period(await self._asize())

    async def _asize(self) -> int:
        try:
            size = await self._queue.asize()
        except Exception as exc:
            return self._size_failed(exc)
        self._size_failing = False
        return size

    def _size_failed(self, exc: Exception) -> int:
        if not self._size_failing:
            self._size_failing = True
            log.warning(f"the organic queue cannot tell its size ({exc!r}); counting it as empty")
        return 0

    async def wait_due(self, last_start: float | None, stopping: Callable[[], bool]) -> bool:
        """Wait until the next iteration is due; False if ``stopping()`` became true first.

        ``last_start``: the monotonic start of the previous iteration, None before the
        first. A True return has spent a steps threshold and set :attr:`planned`.
        """
        self.planned = None
        if self._config.trigger == "poisson":  # the next point, then its kind
            if not await self._until(self.next_point(time.monotonic()), stopping):
                return False
            self.spend()
            self.planned = self.plan(time.monotonic(), await self._asize())
            return True
        if self._load is not None and last_start is not None:
            # Jittered: the period and the kind are chosen as the wait begins.
            size = await self._asize()
            due = last_start + self.draw(self._load.mean(time.monotonic(), size))
            if not await self._until(due, stopping):
                return False
            self.planned = "organic" if size > 0 else "synthetic"
            return True
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

    async def _until(self, due: float, stopping: Callable[[], bool]) -> bool:
        """Wait until monotonic time ``due``; False if ``stopping()`` became true first."""
        while not stopping():
            remaining = due - time.monotonic()
            if remaining <= 0:
                return True
            await self.waker.wait(remaining)
        return False

    def next_point(self, now: float) -> float:
        """Under ``"poisson"``: when the next iteration is due; a point already past is
        dropped (the next is drawn from ``now``)."""
        if self._due is None or self._due < now:
            self._due = now + self._random.expovariate(1.0 / self._config.trigger_frequency)
        return self._due

    def spend(self) -> None:
        """Under ``"poisson"``: the due point was taken; draw the one after it."""
        if self._due is not None:
            self._due += self._random.expovariate(1.0 / self._config.trigger_frequency)

    def plan(self, now: float, size: int) -> SampleKind:
        """Under ``"poisson"``: the kind of the slot due at ``now`` (docs/probes.md);
        ``size``, waiting now, counts for later slots only."""
        load, kinds = self._load, self._kinds
        if load is None or kinds is None:
            raise RuntimeError("plan() is for trigger='poisson'")
        chance = POISSON_BACKLOG_GAIN * load.backlog(now)
        load.backlog(now, size)
        return "organic" if kinds.random() < chance else "synthetic"

    def _take_threshold(self, threshold: int) -> bool:
        with self._lock:
            if self._steps < threshold:
                return False
            self._steps -= threshold
            return True
