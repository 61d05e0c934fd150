"""One background run at a time: a task of the running event loop, or a thread of its own.
``body(run)`` loops until ``run.stopping`` and waits with ``run.sleep``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from organic_scoring._defaults import CANCEL_GRACE
from organic_scoring._log import log

__all__ = ["Background", "Run", "running_loop"]


@dataclass
class Run:
    """One run: where it runs, and its stop."""

    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task[None] | None = None
    thread: threading.Thread | None = None
    event: asyncio.Event | None = None
    owned: bool = False
    """Started by ``start()``: a task or thread of our own, cancelled if need be."""
    stopping: bool = False
    ready: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def request_stop(self) -> None:
        self.stopping = True
        loop, event = self.loop, self.event
        if loop is not None and event is not None and not loop.is_closed():
            # A loop closed meanwhile raises RuntimeError: the run has ended then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a stop is asked for."""
        assert self.event is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)


Body = Callable[[Run], Awaitable[None]]


class Background:
    """Runs one ``body`` at a time in the background; ``what`` names it in messages."""

    def __init__(self, what: str, thread_name: str) -> None:
        self._what = what
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self._run: Run | None = None

    @property
    def running(self) -> bool:
        """True from the start until the run has ended."""
        return self._run is not None

    async def run_here(self, body: Body) -> None:
        """Run ``body`` in the calling task until stopped or cancelled."""
        run = self._claim()
        try:
            await self._main(run, body)
        finally:
            self._release(run)

    def start(self, body: Body) -> None:
        """Run ``body`` as a task of the running loop, else on a thread of its own."""
        loop = running_loop()
        run = self._claim()
        run.owned = True
        if loop is not None:
            run.loop, run.event = loop, asyncio.Event()
            run.task = loop.create_task(self._owned(run, body), name=self._thread_name)
            return
        run.thread = threading.Thread(
            target=self._thread_main, args=(run, body), name=self._thread_name, daemon=True
        )
        try:
            run.thread.start()
        except BaseException:
            self._release(run)
            raise
        run.ready.wait()

    def stop(self, timeout: float) -> None:
        """Ask the run to stop and wait for it; from the run's own loop, only ask."""
        run = self._request_stop()
        if run is None or run.loop is None or running_loop() is run.loop:
            return
        if not run.finished.wait(timeout):
            task = run.task
            if not run.owned or task is None:  # run_here(): its caller's task
                log.warning(f"{self._what}: an attempt is still running after {timeout:g}s")
                return
            log.warning(f"{self._what}: cancelling an attempt still running after {timeout:g}s")
            with contextlib.suppress(RuntimeError):  # the loop has closed: it ended
                run.loop.call_soon_threadsafe(task.cancel)
            run.finished.wait(CANCEL_GRACE)
        if run.thread is not None:
            run.thread.join(CANCEL_GRACE)

    async def aclose(self, timeout: float) -> None:
        """:meth:`stop`, without blocking the calling event loop."""
        run = self._request_stop()
        if run is None:
            return
        if run.loop is asyncio.get_running_loop():
            task = run.task
            if task is not None and task is not asyncio.current_task():
                _done, pending = await asyncio.wait({task}, timeout=timeout)
                if pending and run.owned:
                    task.cancel()
                    await asyncio.wait({task})
            return
        await asyncio.to_thread(self.stop, timeout)

    def _claim(self) -> Run:
        with self._lock:
            if self._run is not None:
                state = "stopping" if self._run.stopping else "running"
                raise RuntimeError(
                    f"the {self._what} is already {state}; stop() it before starting it again"
                )
            self._run = run = Run()
            return run

    def _release(self, run: Run) -> None:
        with self._lock:
            if self._run is run:
                self._run = None
        run.finished.set()
        run.ready.set()

    def _request_stop(self) -> Run | None:
        with self._lock:
            run = self._run
        if run is not None:
            run.request_stop()
        return run

    def _thread_main(self, run: Run, body: Body) -> None:
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._owned(run, body))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                self._release(run)

    async def _owned(self, run: Run, body: Body) -> None:
        """A run started by ``start()``: ends quietly when cancelled by a stop."""
        try:
            await self._main(run, body)
        except asyncio.CancelledError:
            if not run.stopping:
                raise
        finally:
            self._release(run)

    async def _main(self, run: Run, body: Body) -> None:
        run.loop = asyncio.get_running_loop()
        run.task = asyncio.current_task()
        if run.event is None:
            run.event = asyncio.Event()
        if run.stopping:
            run.event.set()
        run.ready.set()
        await body(run)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
