"""The scoring loop's lifecycle: who runs it, how it waits, how it stops.

One :class:`Engine` per scorer, at most one run at a time, which owns its iterations
through an AnyIO task group (docs/loop.md, "Lifecycle"). With a shared queue the run
iterates only while its :class:`LeaseKeeper` holds the queue's ``scorer_lock()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from organic_scoring._defaults import (
    CANCEL_GRACE,
    DEFAULT_STOP_TIMEOUT,
    IDLE_NOTICE_AFTER,
    LOOP_BLOCKED_AFTER,
)
from organic_scoring._log import log
from organic_scoring._loop.hooks import ungrouped
from organic_scoring._loop.iteration import Attempt, IterationRunner, attempt, fencing, planned
from organic_scoring._loop.trigger import SampleKind, Trigger
from organic_scoring._loop.watchdog import Watchdog
from organic_scoring.config import ScoringConfig
from organic_scoring.errors import IterationError, ScorerRoleLost
from organic_scoring.organic_queue import OrganicQueueBase
from organic_scoring.organic_queue._lock import LeaseKeeper, LeaseLock

__all__ = ["Engine"]

_FATAL = (SystemExit, KeyboardInterrupt)
_LOOK_EVERY = 5.0  # seconds between reads of a blocking queue's counters


@dataclass(eq=False, slots=True)
class _Run:
    """The state of one run, shared between its loop and whoever stops it."""

    keeper: LeaseKeeper | None = None  # the scorer lock, for a shared queue
    settled: bool = False  # keeper decided: until then the run is not the active scorer
    loop: asyncio.AbstractEventLoop | None = None
    tid: int | None = None  # the thread the run's event loop runs on
    thread: threading.Thread | None = None
    task: asyncio.Task[None] | None = None
    stop_requested: bool = False
    drain_timeout: float = DEFAULT_STOP_TIMEOUT
    finished: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0  # iterations started and not yet ended
    # The running iterations: what to cancel when the scorer role is lost.
    iterations: dict[Attempt, tuple[anyio.CancelScope, int | None]] = field(default_factory=dict)


_inside: contextvars.ContextVar[_Run | None] = contextvars.ContextVar(
    "organic_scoring_run", default=None
)
"""The run whose code is executing (plain hooks' threads included): ``stop()`` there
cannot wait for the run, which would wait for it."""


class _Fatal(Exception):
    """Carries a ``SystemExit`` or ``KeyboardInterrupt`` through the task group, to be
    re-raised once the run has wound down."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


class Engine:
    """Runs ``iterate`` whenever the trigger says so, up to k at a time."""

    def __init__(
        self,
        iterate: Callable[[], Awaitable[Any]],
        runner: IterationRunner,
        trigger: Trigger,
        config: ScoringConfig,
        queue: OrganicQueueBase,
    ) -> None:
        self._iterate = iterate
        self._runner = runner
        self._trigger = trigger
        self._config = config
        self._queue = queue
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._failures_in_a_row = 0
        self._resume_at = 0.0
        self._named: set[str] = set()  # what the watchdog has named as blocking the loop

    @property
    def is_running(self) -> bool:
        """True from ``start()`` until the run has wound down completely."""
        return self._run is not None

    @property
    def is_active(self) -> bool:
        """True while running and allowed to run iterations: this process holds the
        scorer lock of a shared queue, or the queue needs none."""
        run = self._run
        if run is None or run.stop_requested or not run.settled:
            return False
        return run.keeper is None or run.keeper.active

    def holds_role(self) -> bool:
        """:attr:`is_active`, and a shared queue's scorer lock checked now under the
        current fencing token (a round trip)."""
        run = self._run
        if not self.is_active or run is None:
            return False
        keeper = run.keeper
        if keeper is None:
            return True
        fence = keeper.lock.fence
        return fence is not None and keeper.lock.check(fence)

    # -- starting ---------------------------------------------------------------

    def start(self) -> None:
        """Start a run on a thread of its own, or as a task of the running loop."""
        run = self._claim()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            run.loop, run.tid = loop, threading.get_ident()
            run.task = loop.create_task(self._main(run, reraise=False), name="organic-scoring")
            # The run has logged its exception: mark it as seen.
            run.task.add_done_callback(lambda task: task.cancelled() or task.exception())
            return
        ready = threading.Event()
        run.thread = threading.Thread(
            target=self._thread_main, args=(run, ready), name="organic-scoring", daemon=True
        )
        try:
            run.thread.start()
        except BaseException:
            self._release(run)
            raise
        ready.wait()

    async def run_here(self) -> None:
        """Run in the calling task until stopped (``start_loop()``)."""
        run = self._claim()
        run.task = asyncio.current_task()
        await self._main(run, reraise=True)

    def _claim(self) -> _Run:
        with self._lock:
            if self._run is not None:
                state = "stopping" if self._run.stop_requested else "running"
                raise RuntimeError(
                    f"the organic scoring loop is already {state}; "
                    "call stop() (and let it finish) before starting it again"
                )
            self._run = run = _Run()
        return run

    def _release(self, run: _Run) -> None:
        with self._lock:
            if self._run is run:
                self._run = None
        run.finished.set()

    def _thread_main(self, run: _Run, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            run.loop, run.tid = loop, threading.get_ident()
            ready.set()
            loop.run_until_complete(self._main(run, reraise=False))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                self._release(run)
                ready.set()

    # -- running ----------------------------------------------------------------

    async def _main(self, run: _Run, *, reraise: bool) -> None:
        """One run, start to end. ``reraise``: the caller awaits it (``start_loop()``)."""
        run.loop, run.tid = asyncio.get_running_loop(), threading.get_ident()
        token = _inside.set(run)
        waker = self._trigger.waker
        self._failures_in_a_row, self._resume_at = 0, 0.0
        fatal: BaseException | None = None
        watchdog: Watchdog | None = None
        try:
            watchdog = Watchdog(
                run.loop, run.tid, self._runner.hook_codes(), self._block_threshold(), self._blocked
            )
            watchdog.start()
            self._queue.add_listener(self._trigger.arrived)
            lock = self._queue.scorer_lock()
            if lock is not None:
                loop = asyncio.get_running_loop()

                def changed(_active: bool) -> None:  # on the keeper's thread
                    waker.wake()
                    with contextlib.suppress(RuntimeError):  # the loop has closed
                        loop.call_soon_threadsafe(self._lost_role, run)

                run.keeper = LeaseKeeper(lock, on_change=changed)
                run.keeper.start()
            run.settled = True
            with ungrouped():
                async with anyio.create_task_group() as group:
                    watch = anyio.CancelScope()
                    group.start_soon(self._watch, run, watch, name="organic-scoring-watch")
                    await self._loop(run, group)
                    with anyio.move_on_after(run.drain_timeout):
                        while run.in_flight:
                            await waker.wait(None)  # each iteration wakes it as it ends
                    watch.cancel()
                    if run.in_flight:
                        log.warning(
                            f"stop: cancelling {run.in_flight} iteration(s) still running "
                            f"after {run.drain_timeout:g}s"
                        )
                        group.cancel_scope.cancel()
        except _Fatal as stopped:
            fatal = stopped.error
            log.error(f"the organic scoring loop stopped: a hook raised {fatal!r}")
        except Exception as exc:
            log.error(
                f"the organic scoring loop stopped on an unexpected error: {exc!r}", exc_info=exc
            )
            if reraise:
                raise
        finally:
            if watchdog is not None:
                watchdog.stop()
            self._queue.remove_listener(self._trigger.arrived)
            with contextlib.suppress(Exception):
                await self._queue.adetach()
            if run.keeper is not None:  # release the scorer lock (a round trip), off the loop
                try:
                    await asyncio.to_thread(run.keeper.stop)
                except asyncio.CancelledError:
                    run.keeper.stop()  # returns at once if the worker thread has it in hand already
                    raise
            waker.unbind()
            _inside.reset(token)
            self._release(run)
        if fatal is not None:
            raise fatal

    async def _loop(self, run: _Run, group: anyio.abc.TaskGroup) -> None:
        limit = self._config.max_concurrent_iterations
        waker = self._trigger.waker

        def stopping() -> bool:
            return run.stop_requested

        keeper = run.keeper
        last_start: float | None = None
        while not run.stop_requested:
            if keeper is not None and not keeper.active:
                # Another process is the active scorer: stand by. The keeper wakes us
                # when it takes the lock; the timeout is a second chance.
                await waker.wait(keeper.lock.period / 3)
                continue
            if run.in_flight >= limit:
                await waker.wait(None)
                continue
            pause = self._resume_at - time.monotonic()
            if pause > 0:
                await waker.wait(pause)
                continue
            if not await self._trigger.wait_due(last_start, stopping) or run.stop_requested:
                break
            if keeper is not None and not keeper.active:
                continue  # the lock was lost during the wait
            last_start = time.monotonic()
            run.in_flight += 1
            group.start_soon(
                self._one, run, self._trigger.planned, name="organic-scoring-iteration"
            )

    async def _watch(self, run: _Run, scope: anyio.CancelScope) -> None:
        """While the run lasts: renew running iterations' leases, read a shared queue's
        counters (so a server that lost its data is reported), say when every slot is
        stuck, and when the run has gone idle."""
        queue, runner, config = self._queue, self._runner, self._config
        lease = getattr(queue, "lease", None)
        renews = type(queue).renew is not OrganicQueueBase.renew
        tick = min(config.stuck_after / 4, 1.0)
        if renews and isinstance(lease, (int, float)) and lease > 0:
            tick = min(tick, lease / 3)
        renew_failed = False
        all_stuck = False
        idle = _Idle(self._config, runner)
        counters = getattr(queue, "counters", None) if queue.blocking else None
        next_look = time.monotonic()
        with scope:
            while True:
                await anyio.sleep(tick)
                if callable(counters) and time.monotonic() >= next_look:
                    next_look = time.monotonic() + _LOOK_EVERY
                    with contextlib.suppress(Exception):  # an outage shows elsewhere
                        await asyncio.to_thread(counters)
                samples = list(runner.leased.values())
                if renews and samples:
                    try:
                        await queue.arenew(samples)
                    except Exception as exc:
                        if not renew_failed:
                            log.warning(
                                f"cannot renew the leases of {len(samples)} running "
                                f"iteration(s) ({exc!r}); retrying"
                            )
                        renew_failed = True
                    else:
                        renew_failed = False
                if idle.due(run.in_flight > 0):
                    await self._say_idle(run, idle)
                stuck = runner.stuck(config.stuck_after)
                if stuck >= config.max_concurrent_iterations and not all_stuck:
                    all_stuck = True
                    giving_up = config.release_when_stuck and run.keeper is not None
                    log.warning(
                        f"every iteration slot is stuck: {stuck} iteration(s) have run "
                        f"for more than {config.stuck_after:g}s (the oldest "
                        f"{runner.oldest_age():.1f}s); no sample is scored until one ends"
                        + ("; giving up the scorer role" if giving_up else "")
                    )
                    if giving_up and run.keeper is not None:
                        run.keeper.willing = False
                elif all_stuck and stuck < config.max_concurrent_iterations:
                    all_stuck = False
                    log.info("an iteration slot is free again")
                    if run.keeper is not None:
                        run.keeper.willing = True

    def _block_threshold(self) -> float:
        """Seconds of event-loop lag the watchdog counts as a block: below the shortest
        stage timeout, so that a timeout a hook defeated has its culprit named."""
        c = self._config
        stages = (c.query_timeout, c.reference_timeout, c.rewards_timeout, c.weights_timeout)
        timeouts = [t for t in (*stages, c.log_timeout) if t is not None]
        return max(min([LOOP_BLOCKED_AFTER, *timeouts]), 0.1)

    def _blocked(self, who: str, seconds: float) -> None:
        """The watchdog saw ``who`` block the event loop (on its thread); named once per
        hook, and at debug level with no hook on the stack (nothing to advise)."""
        if who in self._named or who.startswith("code outside"):
            log.debug(f"{who} blocked the scoring loop's event loop for {seconds:.1f}s")
            return
        self._named.add(who)
        log.warning(
            f"{who} blocked the scoring loop's event loop for {seconds:.1f}s: an async def "
            "hook that makes a blocking call (time.sleep, requests, a synchronous dendrite "
            "or chain call) holds up every timeout, stop() and everything else on that loop "
            "until it returns. Make it a plain def (plain hooks run on a worker thread, "
            "where timeouts and stop() hold), or move the call off the loop with "
            "`await asyncio.to_thread(...)`. Logged once per hook."
        )

    async def _say_idle(self, run: _Run, idle: _Idle) -> None:
        """Log what a run that has run nothing for a while is waiting for."""
        config, keeper = self._config, run.keeper
        head = f"the scoring loop has run no iteration for {idle.after:g}s: "
        if keeper is not None and not keeper.active:
            log.info(head + "this process stands by while another holds the scorer role")
            return
        if config.trigger == "steps":
            threshold = int(await self._trigger.aperiod())
            why = (
                f"trigger='steps' starts one every {threshold} step"
                f"{'' if threshold == 1 else 's'} and the step counter stands at "
                f"{self._trigger.steps}; call increment_step() once per validator step "
                "(or set_step())"
            )
        elif idle.skipped:
            source = (
                "the synthetic datasets returned no sample"
                if self._runner.has_datasets
                else "no synth_dataset was given"
            )
            why = (
                f"every trigger found nothing to score (the organic queue was empty and "
                f"{source}); pass synth_dataset= for synthetic samples, or send organic "
                "requests to an intake"
            )
        else:
            why = f"waiting for the {config.trigger!r} trigger"
        log.warning(head + why)

    async def _one(self, run: _Run, plan: SampleKind | None) -> None:
        """One call of ``loop_iteration``, every outcome counted and reported; ``plan``:
        the kind of sample the trigger chose."""
        record = Attempt()
        attempt.set(record)  # this task's own context: the runner marks what it reported
        planned.set(plan)
        keeper = run.keeper
        fence = None if keeper is None else keeper.lock.fence
        if keeper is not None:
            fencing.set(_still_ours(keeper.lock, fence))
        scope = anyio.CancelScope()
        run.iterations[record] = (scope, fence)
        try:
            with scope:
                await self._iterate()
        except IterationError:
            self._failed()
        except asyncio.CancelledError:
            raise
        except _FATAL as exc:
            run.stop_requested = True  # no iteration starts after this one
            if not record.reported:
                await self._runner.report_outside(None, exc)
            raise _Fatal(exc) from exc
        except BaseException as exc:  # an overridden loop_iteration that raised on its own
            if not record.reported:
                await self._runner.report_outside(None, exc)
            self._failed()
        else:
            self._failures_in_a_row = 0
            self._resume_at = 0.0
        finally:
            del run.iterations[record]
            run.in_flight -= 1
            self._trigger.waker.wake()

    def _lost_role(self, run: _Run) -> None:
        """The scorer lock changed hands: cancel the iterations begun under another tenure."""
        keeper = run.keeper
        if keeper is None:
            return
        current = keeper.lock.fence if keeper.active else None
        for record, (scope, fence) in run.iterations.items():
            if fence == current:
                continue
            if record.why is None:
                record.why = ScorerRoleLost(
                    "this process is no longer the active scorer: its iteration was cancelled"
                )
            scope.cancel()

    def _failed(self) -> None:
        self._failures_in_a_row += 1
        self._resume_at = time.monotonic() + self._config.backoff(self._failures_in_a_row)

    # -- stopping ---------------------------------------------------------------

    def request_stop(self, timeout: float) -> _Run | None:
        """Ask the current run to stop; in-flight iterations get ``timeout`` seconds."""
        with self._lock:
            run = self._run
            if run is None:
                return None
            if not run.stop_requested:
                run.stop_requested = True
                run.drain_timeout = timeout
        self._trigger.waker.wake()
        return run

    def stop(self, timeout: float) -> None:
        """Stop and wait for the run to end, unless called from inside the run."""
        run = self.request_stop(timeout)
        if run is None or run.tid == threading.get_ident() or _inside.get() is run:
            return
        if not run.finished.wait(timeout + CANCEL_GRACE):
            log.error("stop: the loop did not wind down in time; a hook is blocking its event loop")
            return
        if run.thread is not None:
            run.thread.join(CANCEL_GRACE)

    async def aclose(self, timeout: float) -> None:
        """Stop and wait without blocking the calling event loop (inside the run: only ask)."""
        run = self.request_stop(timeout)
        if run is None or _inside.get() is run:
            return
        if run.task is not None and run.tid == threading.get_ident():
            if run.task is not asyncio.current_task():
                await asyncio.wait({run.task})
            return
        await asyncio.to_thread(self.stop, timeout)


class _Idle:
    """Whether a run has gone ``after`` seconds without an iteration ending: once."""

    __slots__ = ("_runner", "_since", "_told", "after", "progress", "skipped")

    def __init__(self, config: ScoringConfig, runner: IterationRunner) -> None:
        after = IDLE_NOTICE_AFTER
        if config.trigger != "steps":
            after = max(after, 2 * config.trigger_frequency)
        self.after = after
        self._runner = runner
        self.progress = runner.stats.progress()
        self._since = time.monotonic()
        self._told = False
        self.skipped = False  # triggers found nothing to score during the quiet spell

    def due(self, busy: bool) -> bool:
        """True the first time the run has been quiet, not ``busy``, for :attr:`after` s."""
        if self._told:
            return False
        ended, skipped = progress = self._runner.stats.progress()
        now = time.monotonic()
        if ended != self.progress[0]:
            self.progress, self._since, self.skipped = progress, now, False
            return False
        self.skipped = self.skipped or skipped != self.progress[1]
        if busy or now - self._since < self.after:
            return False
        self._told = True
        return True


def _still_ours(lock: LeaseLock, fence: int | None) -> Callable[[], Awaitable[None]]:
    """A check that raises :class:`ScorerRoleLost` unless ``lock`` is still held under ``fence``."""

    async def check() -> None:
        if fence is None or not await asyncio.to_thread(lock.check, fence):
            raise ScorerRoleLost(
                "this process is no longer the active scorer (another took the role "
                "while the iteration ran): its weights were not set"
            )

    return check
