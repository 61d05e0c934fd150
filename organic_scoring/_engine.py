"""The scoring loop and its lifecycle: who runs it, how it waits, how it stops.

One :class:`Engine` belongs to one scorer. A *run* is the span from ``start()`` (or
``await start_loop()``) to the moment the loop has fully wound down; at most one
run exists at a time. Within a run the engine owns every iteration task it
starts: stopping first lets in-flight iterations finish within the stop timeout,
then cancels the rest and waits for them, so nothing of ours outlives the run.

``start()`` from synchronous code gives the run a daemon thread with its own event
loop; from inside a running event loop it becomes a task on that loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from organic_scoring._log import log
from organic_scoring._trigger import Trigger
from organic_scoring.config import ScoringConfig
from organic_scoring.errors import IterationError
from organic_scoring.organic_queue import OrganicQueueBase

__all__ = ["Engine"]

DEFAULT_STOP_TIMEOUT = 10.0
# How long stop() waits beyond its timeout for cancelled iterations to unwind: long
# enough for each to report itself to _on_iteration_error (bounded at 5 s by default).
_CANCEL_GRACE = 10.0


class _Run:
    """The state of one run, shared between its loop and whoever stops it."""

    __slots__ = ("drain_timeout", "finished", "loop", "stop_requested", "task", "thread", "tid")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tid: int | None = None  # the thread the run's event loop runs on
        self.thread: threading.Thread | None = None
        self.task: asyncio.Task[None] | None = None
        self.stop_requested = False
        self.drain_timeout = DEFAULT_STOP_TIMEOUT
        self.finished = threading.Event()


class Engine:
    """Runs ``iterate`` whenever the trigger says so, up to k at a time."""

    def __init__(
        self,
        iterate: Callable[[], Awaitable[Any]],
        trigger: Trigger,
        config: ScoringConfig,
        queue: OrganicQueueBase,
    ) -> None:
        self._iterate = iterate
        self._trigger = trigger
        self._config = config
        self._queue = queue
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._failures_in_a_row = 0
        self._resume_at = 0.0

    @property
    def is_running(self) -> bool:
        """True from ``start()`` until the run has wound down completely."""
        return self._run is not None

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
            run.task = loop.create_task(self._main(run), name="organic-scoring")
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
        await self._main(run)

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
            loop.run_until_complete(self._main(run))
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

    async def _main(self, run: _Run) -> None:
        run.loop, run.tid = asyncio.get_running_loop(), threading.get_ident()
        waker = self._trigger.waker
        self._failures_in_a_row, self._resume_at = 0, 0.0
        self._queue.add_listener(waker.wake)
        try:
            await self._loop(run)
        finally:
            self._queue.remove_listener(waker.wake)
            waker.unbind()
            self._release(run)

    async def _loop(self, run: _Run) -> None:
        limit = self._config.max_concurrent_iterations
        waker = self._trigger.waker
        tasks: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            waker.wake()

        def stopping() -> bool:
            return run.stop_requested

        last_start: float | None = None
        try:
            while not run.stop_requested:
                if len(tasks) >= limit:
                    await waker.wait(None)
                    continue
                pause = self._resume_at - time.monotonic()
                if pause > 0:
                    await waker.wait(pause)
                    continue
                if not await self._trigger.wait_due(last_start, stopping):
                    break
                last_start = time.monotonic()
                task = asyncio.ensure_future(self._one())
                tasks.add(task)
                task.add_done_callback(finished)
        except asyncio.CancelledError:
            # Our owner cancelled the run itself: no grace period for iterations.
            await _cancel_all(tasks)
            raise
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=run.drain_timeout)
            if pending:
                log.warning(
                    f"stop: cancelling {len(pending)} iteration(s) still running after "
                    f"{run.drain_timeout:g}s"
                )
                await _cancel_all(pending)

    async def _one(self) -> None:
        try:
            await self._iterate()
        except IterationError:
            self._failed()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an overridden loop_iteration that raised on its own
            log.error(f"loop_iteration raised {exc!r}", exc_info=exc)
            self._failed()
        else:
            self._failures_in_a_row = 0
            self._resume_at = 0.0

    def _failed(self) -> None:
        """Back off after a failure: the pause doubles while failures repeat."""
        self._failures_in_a_row += 1
        config = self._config
        pause = min(config.backoff_initial * 2 ** (self._failures_in_a_row - 1), config.backoff_max)
        self._resume_at = time.monotonic() + pause

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
        """Stop and wait for the run to end, unless called on the run's own loop thread."""
        run = self.request_stop(timeout)
        if run is None or run.tid == threading.get_ident():
            return
        if not run.finished.wait(timeout + _CANCEL_GRACE):
            log.error("stop: the loop did not wind down in time; a hook is blocking its event loop")
            return
        if run.thread is not None:
            run.thread.join(_CANCEL_GRACE)

    async def aclose(self, timeout: float) -> None:
        """Stop and wait without blocking the calling event loop."""
        run = self.request_stop(timeout)
        if run is None:
            return
        current = asyncio.current_task()
        if run.task is not None and run.tid == threading.get_ident():
            if run.task is not current:
                await asyncio.wait({run.task})
            return
        await asyncio.to_thread(self.stop, timeout)


async def _cancel_all(tasks: set[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
