"""The running loop: triggers end to end, failure isolation, concurrency, lifecycle."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from typing import Any
from unittest import mock

import pytest

from organic_scoring import IterationError, StageTimeout
from organic_scoring._loop.trigger import Trigger
from organic_scoring.organic_queue import OrganicQueue
from support.scorers import Letters, Recorder, forever
from support.waiting import WAIT, Counter, wait_until

pytestmark = [pytest.mark.python_version, pytest.mark.usefixtures("no_leaks")]


def test_steps_from_another_thread_give_n_over_threshold_iterations() -> None:
    scorer = Recorder(synth_dataset=Letters("a"), trigger="steps", trigger_frequency=3)
    with scorer:
        validator = threading.Thread(target=lambda: [scorer.increment_step() for _ in range(3)])
        validator.start()
        validator.join()
        scorer.done.wait_for(1)  # the first iteration follows the threshold at once
        validator = threading.Thread(target=lambda: [scorer.increment_step() for _ in range(8)])
        validator.start()
        validator.join()
        scorer.done.wait_for(3)
    assert scorer.done.value == 11 // 3
    assert scorer.step == 11 % 3


def test_set_step_triggers_an_iteration() -> None:
    scorer = Recorder(synth_dataset=Letters("a"), trigger="steps", trigger_frequency=5)
    with scorer:
        scorer.set_step(5)
        scorer.done.wait_for(1)
    assert scorer.step == 0


def test_increment_step_is_harmless_under_seconds() -> None:
    scorer = Recorder(synth_dataset=Letters("a"), trigger="seconds", trigger_frequency=1000)
    with scorer:
        scorer.done.wait_for(1)  # the first iteration runs at start
        for _ in range(100):
            scorer.increment_step()
    assert scorer.done.value == 1


def test_seconds_trigger_runs_repeatedly() -> None:
    scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=0.01)
    with scorer:
        scorer.done.wait_for(5)
    assert all(not logs["is_organic_sample"] for logs in scorer.logs)


def test_organic_traffic_is_scored_by_the_running_loop() -> None:
    scorer = Recorder(trigger="steps", trigger_frequency=1)
    with scorer:
        asyncio.run(scorer._on_organic_entry({"prompt": "hi"}))
        scorer.increment_step()
        scorer.done.wait_for(1)
    assert scorer.samples == [{"prompt": "hi"}]
    assert scorer.stats.organic_scored == 1


def test_loop_survives_every_kind_of_failure_and_backs_off() -> None:
    class Flaky(Recorder):
        calls = 0

        async def _query_miners(self, sample: Any) -> Any:
            type(self).calls += 1
            if type(self).calls <= 3:
                raise RuntimeError("miners unreachable")
            return {0: sample}

    scorer = Flaky(
        synth_dataset=Letters("a"), trigger_frequency=0.001, backoff_initial=0.001, backoff_max=0.01
    )
    with scorer:
        scorer.done.wait_for(5)
    stats = scorer.stats
    assert stats.failures["query"] == 3
    assert stats.iterations >= 2
    assert [stage for _, stage, _ in scorer.errors] == ["query"] * 3


def test_overridden_loop_iteration_that_raises_does_not_kill_the_loop() -> None:
    class Custom(Recorder):
        async def loop_iteration(self) -> dict[str, Any]:
            self.done.bump()
            raise ValueError("custom")

    scorer = Custom(trigger_frequency=0.001, backoff_initial=0.0, backoff_max=0.0)
    with scorer:
        scorer.done.wait_for(3)


def test_the_loop_outlives_a_thousand_failures_in_a_row() -> None:
    """The 1,025th failure in a row overflowed the backoff (2 ** 1024 is past a float)
    and stopped the loop: some eight hours of failures at the default 30 s cap."""

    class Down(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            self.calls.bump()
            raise RuntimeError("miners unreachable")

    scorer = Down(
        synth_dataset=Letters("a"), trigger_frequency=0.001, backoff_initial=0.0, backoff_max=0.0
    )
    scorer.calls = Counter()
    with scorer:
        scorer.calls.wait_for(1100)


def test_k_iterations_overlap_while_set_weights_stays_serial() -> None:
    k = 3

    class Wide(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            # Returns only once k queries are in flight together.
            self.inside.bump()
            await asyncio.to_thread(self.inside.wait_for, k)
            return {0: sample}

        async def _set_weights(self, rewards: Any) -> None:
            self.active += 1
            self.most = max(self.most, self.active)
            await asyncio.sleep(0.001)
            self.active -= 1

    scorer = Wide(
        synth_dataset=Letters("a"),
        trigger_frequency=0.001,
        max_concurrent_iterations=k,
        query_timeout=WAIT,
    )
    scorer.inside, scorer.active, scorer.most = Counter(), 0, 0
    with scorer:
        scorer.done.wait_for(k)
    assert scorer.errors == []
    assert scorer.most == 1


class _SlowReporter(Recorder):
    """Its error hook awaits before it records: a report must not be cancelled too."""

    async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
        await asyncio.sleep(0.01)
        await super()._on_iteration_error(sample, stage, exc)


@pytest.mark.parametrize("query_timeout", [None, WAIT])
def test_stop_cancels_a_hanging_hook_and_reports_the_organic_sample(
    query_timeout: float | None,
) -> None:
    class Hangs(_SlowReporter):
        async def _query_miners(self, sample: Any) -> Any:
            self.entered.set()
            await forever()

    # Under a stage timeout too, stop()'s cancellation is reported as itself.
    scorer = Hangs(trigger_frequency=0.001, query_timeout=query_timeout)
    scorer.entered = threading.Event()
    scorer._organic_queue.add("precious")
    scorer.start()
    assert scorer.entered.wait(WAIT)
    scorer.stop(timeout=0.05)
    assert not scorer.is_running
    [(sample, stage, exc)] = scorer.errors
    assert (sample, stage) == ("precious", "query")
    assert isinstance(exc, asyncio.CancelledError)
    assert scorer.stats.organic_failed == 1
    assert scorer.stats.organic_in_flight == 0


def test_stop_lets_in_flight_iterations_finish_within_the_timeout() -> None:
    class Slowish(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            self.entered.set()
            await asyncio.to_thread(self.release.wait, WAIT)
            return {0: sample}

    scorer = Slowish(synth_dataset=Letters("a"), trigger_frequency=1000)
    scorer.entered, scorer.release = threading.Event(), threading.Event()
    scorer.start()
    assert scorer.entered.wait(WAIT)
    threading.Timer(0.05, scorer.release.set).start()
    scorer.stop(timeout=WAIT)
    assert scorer.errors == []
    assert scorer.stats.iterations == 1


def test_start_twice_is_an_error_and_start_after_stop_works() -> None:
    scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=1000)
    scorer.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            scorer.start()
    finally:
        scorer.stop()
    scorer.stop()  # idempotent
    before = scorer.done.value
    scorer.start()
    scorer.done.wait_for(before + 1)
    scorer.stop()
    assert not scorer.is_running


def test_hundred_start_stop_cycles_leave_nothing_behind() -> None:
    scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=0.001)
    baseline = threading.active_count()
    for _ in range(100):
        scorer.start()
        assert scorer.is_running
        scorer.stop()
        assert not scorer.is_running
    assert threading.active_count() == baseline


def test_start_inside_a_running_loop_runs_as_a_task() -> None:
    async def main() -> Recorder:
        scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=0.001)
        before = threading.active_count()
        async with scorer:
            assert threading.active_count() == before  # no thread of ours
            await asyncio.to_thread(scorer.done.wait_for, 3)
        assert not scorer.is_running
        return scorer

    assert asyncio.run(main()).done.value >= 3


def test_stop_on_the_loop_thread_requests_and_returns() -> None:
    async def main() -> None:
        scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=1000)
        scorer.start()
        await asyncio.to_thread(scorer.done.wait_for, 1)
        scorer.stop()  # must not block this loop
        assert scorer.is_running  # it winds down on its own
        await scorer.aclose()
        assert not scorer.is_running

    asyncio.run(main())


def test_stop_from_inside_a_hook() -> None:
    class StopsItself(Recorder):
        async def _set_weights(self, rewards: Any) -> None:
            self.stop()

    scorer = StopsItself(synth_dataset=Letters("a"), trigger_frequency=0.001)
    scorer.start()
    scorer.done.wait_for(1)
    scorer.stop()
    assert scorer.stats.iterations == 1


def test_start_loop_for_callers_who_own_the_loop() -> None:
    async def main() -> None:
        scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=0.001)
        runner = asyncio.ensure_future(scorer.start_loop())
        await asyncio.to_thread(scorer.done.wait_for, 2)
        with pytest.raises(RuntimeError):
            scorer.start()
        scorer.stop()
        await asyncio.wait_for(runner, WAIT)

    asyncio.run(main())


def test_cancelling_start_loop_cancels_iterations_and_waits_for_their_reports() -> None:
    class Hangs(_SlowReporter):
        async def _query_miners(self, sample: Any) -> Any:
            self.entered.set()
            await forever()

    async def main() -> Hangs:
        scorer = Hangs(synth_dataset=Letters("a"), trigger_frequency=0.001)
        scorer.entered = asyncio.Event()
        runner = asyncio.ensure_future(scorer.start_loop())
        await scorer.entered.wait()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert [stage for _, stage, _ in scorer.errors] == ["query"]  # reported by then
        return scorer

    scorer = asyncio.run(main())
    assert not scorer.is_running
    assert [stage for _, stage, _ in scorer.errors] == ["query"]


def test_subclass_with_ordinary_names_does_not_break_the_engine() -> None:
    class Busy(Recorder):
        def __init__(self, **kwargs: Any) -> None:
            self._stage = "mine"
            self._lock = "mine"
            self.events = ["mine"]
            self.stats = {"mine": 1}
            self._config = "mine"
            self._engine = "mine"
            self._trigger = "mine"
            self._runner = "mine"
            self._queue = "mine"
            self._step = "mine"
            self.config = "mine"
            self.is_running = "mine"
            super().__init__(**kwargs)
            self._stats = "mine"
            self._datasets = "mine"

    scorer = Busy(synth_dataset=Letters("a"), trigger="steps", trigger_frequency=1)
    with scorer:
        scorer.increment_step(2)
        scorer.done.wait_for(2)
    assert scorer.stats == {"mine": 1}
    assert scorer.is_running == "mine"
    assert scorer.errors == []


def test_backoff_grows_while_failures_repeat_and_resets_on_success() -> None:
    class Flaky(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            self.starts.append(time.monotonic())
            if len(self.starts) <= 3:
                raise RuntimeError("down")
            return {0: sample}

    scorer = Flaky(
        synth_dataset=Letters("a"), trigger_frequency=0.001, backoff_initial=0.02, backoff_max=0.05
    )
    scorer.starts = []
    with scorer:
        scorer.done.wait_for(6)
    gaps = [b - a for a, b in zip(scorer.starts, scorer.starts[1:], strict=False)]
    # Pauses of 0.02, 0.04, then 0.05 (capped), never shorter; none after a success.
    assert gaps[0] >= 0.02
    assert gaps[1] >= 0.04
    assert gaps[2] >= 0.05
    assert scorer.stats.failures["query"] == 3


def test_a_stop_during_a_hanging_reference_reports_the_reference_stage() -> None:
    class SlowReference(Recorder):
        async def _generate_reference(self, sample: Any) -> Any:
            self.entered.set()
            await forever()

    scorer = SlowReference(trigger_frequency=0.001)
    scorer.entered = threading.Event()
    scorer._organic_queue.add("precious")
    scorer.start()
    assert scorer.entered.wait(WAIT)
    scorer.stop(timeout=0.05)
    [(sample, stage, exc)] = scorer.errors
    assert (sample, stage) == ("precious", "reference")
    assert isinstance(exc, asyncio.CancelledError)


# -- failures that are not an Exception, and failures outside the stages ------------------


class Abort(BaseException):
    """A hook's own BaseException."""


@pytest.mark.parametrize("error", [GeneratorExit, Abort])
def test_a_base_exception_from_a_hook_fails_only_its_iteration(error: type[BaseException]) -> None:
    class Odd(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            if sample == "precious":
                raise error
            return {0: sample}

    scorer = Odd(synth_dataset=Letters("a"), trigger_frequency=0.001, backoff_initial=0.001)
    asyncio.run(scorer.receive_organic("precious"))
    with scorer:
        scorer.done.wait_for(3)  # the failure, then synthetic iterations go on
    assert [(s, st, type(e)) for s, st, e in scorer.errors] == [("precious", "query", error)]
    stats = scorer.stats
    assert (stats.failures["query"], stats.failed_iterations) == (1, 1)
    assert (stats.organic_failed, stats.in_flight, stats.organic_unaccounted) == (1, 0, 0)
    assert stats.iterations >= 2


@pytest.mark.parametrize("fatal", [SystemExit, KeyboardInterrupt])
def test_system_exit_in_a_hook_is_reported_then_stops_the_run_on_its_thread(
    fatal: type[BaseException], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    escaped: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_type))

    class Exits(Recorder):
        async def _set_weights(self, rewards: Any) -> None:
            raise fatal

    scorer = Exits(trigger_frequency=0.001)
    asyncio.run(scorer.receive_organic("precious"))
    scorer.start()
    scorer.done.wait_for(1)
    wait_until(lambda: not scorer.is_running, "the run to stop")
    for thread in threading.enumerate():
        if thread.name == "organic-scoring":
            thread.join(WAIT)
    [(sample, stage, exc)] = scorer.errors
    assert (sample, stage, type(exc)) == ("precious", "weights", fatal)
    assert scorer.stats.organic_unaccounted == 0
    assert scorer.stats.in_flight == 0
    assert any(repr(fatal()) in r.getMessage() for r in caplog.records)
    assert escaped == [fatal]  # and it goes on out of the run's thread
    scorer.start()  # a new run can start
    scorer.stop()


def test_keyboard_interrupt_reaches_the_owner_of_start_loop_after_cancelling_the_rest() -> None:
    class Interrupts(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            if sample == "interrupt":
                await asyncio.sleep(0.01)
                raise KeyboardInterrupt
            if not self.entered.is_set():  # the first synthetic one hangs, later ones pass
                self.entered.set()
                await forever()
            return {0: sample}

    scorer = Interrupts(
        synth_dataset=Letters("a"), trigger_frequency=0.001, max_concurrent_iterations=2
    )

    async def organic_once_the_synthetic_one_hangs() -> None:
        await scorer.entered.wait()
        await scorer.receive_organic("interrupt")

    async def main() -> None:
        scorer.entered = asyncio.Event()
        sender = asyncio.ensure_future(organic_once_the_synthetic_one_hangs())
        try:
            await scorer.start_loop()
        finally:
            await sender

    # Like any KeyboardInterrupt inside asyncio, it leaves through the event loop.
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert not scorer.is_running
    reports = sorted((str(s), st, type(e).__name__) for s, st, e in scorer.errors)
    assert reports == [
        ("interrupt", "query", "KeyboardInterrupt"),
        ("{'synthetic': 'a'}", "query", "CancelledError"),
    ]
    assert scorer.stats.in_flight == 0


def test_system_exit_in_a_task_started_inside_a_loop_goes_out_of_that_loop() -> None:
    class Exits(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            raise SystemExit(3)

    scorer = Exits(synth_dataset=Letters("a"), trigger_frequency=0.001)

    async def main() -> None:
        scorer.start()
        await asyncio.sleep(WAIT)  # the SystemExit ends this loop long before

    with pytest.raises(SystemExit):
        asyncio.run(main())
    assert not scorer.is_running
    assert [(st, type(e)) for _, st, e in scorer.errors] == [("query", SystemExit)]


def test_an_overridden_loop_iteration_that_raises_is_counted_reported_and_kept() -> None:
    class Custom(Recorder):
        async def loop_iteration(self) -> dict[str, Any]:
            raise ValueError("custom")

    scorer = Custom(trigger_frequency=0.001, backoff_initial=0.001, backoff_max=0.001)
    with scorer:
        scorer.done.wait_for(2)
    assert {(s, st, type(e)) for s, st, e in scorer.errors} == {(None, "iteration", ValueError)}
    stats = scorer.stats
    assert stats.failures["iteration"] == stats.failed_iterations >= 2
    assert stats.in_flight == 0
    assert scorer.recent_failures[0].stage == "iteration"


def test_an_error_escaping_the_loop_cancels_reports_and_ends_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Hangs(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            self.entered.set()
            await forever()

    scorer = Hangs(trigger_frequency=0.001, max_concurrent_iterations=2)
    scorer.entered = threading.Event()
    asyncio.run(scorer.receive_organic("precious"))
    real = Trigger.wait_due
    calls = 0

    async def breaks_on_the_second_call(self: Trigger, *args: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            await asyncio.to_thread(scorer.entered.wait, WAIT)
            raise RuntimeError("a bug in the loop")
        return await real(self, *args)

    with mock.patch.object(Trigger, "wait_due", breaks_on_the_second_call):
        scorer.start()
        wait_until(lambda: not scorer.is_running, "the run to end")
    [(sample, stage, exc)] = scorer.errors
    assert (sample, stage) == ("precious", "query")
    assert isinstance(exc, asyncio.CancelledError)
    stats = scorer.stats
    assert (stats.in_flight, stats.organic_failed, stats.organic_unaccounted) == (0, 1, 0)
    assert any("a bug in the loop" in r.getMessage() for r in caplog.records)
    scorer.start()  # and the scorer can run again
    scorer.stop()


def test_a_queue_that_cannot_tell_its_size_does_not_stop_synthetic_scoring(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Blind(OrganicQueue):
        @property
        def size(self) -> int:
            raise OSError("size unknown")

    scorer = Recorder(synth_dataset=Letters("a"), organic_queue=Blind(), trigger_frequency=0.001)
    with scorer:
        scorer.done.wait_for(3)
    assert scorer.errors == []
    warnings = [r for r in caplog.records if "cannot tell its size" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per wake-up


# -- plain hooks, stop() and aclose() ----------------------------------------------------


def test_stop_returns_within_its_bound_while_a_plain_hook_blocks() -> None:
    release = threading.Event()

    class Blocks(Recorder):
        def _query_miners(self, sample: Any) -> Any:  # type: ignore[override]
            self.entered.set()
            release.wait(WAIT)  # a blocking call the loop cannot interrupt
            return {0: sample}

    scorer = Blocks(synth_dataset=Letters("a"), trigger_frequency=1000)
    scorer.entered = threading.Event()
    try:
        scorer.start()
        assert scorer.entered.wait(WAIT)
        scorer.stop(timeout=0.1)
        assert not release.is_set()  # stop() returned while the hook still blocks
        assert not scorer.is_running
        [(_, stage, exc)] = scorer.errors
        assert stage == "query"
        assert isinstance(exc, asyncio.CancelledError)
        scorer.start()  # no need to wait for the abandoned call
        scorer.stop(timeout=0.1)
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name == "AnyIO worker thread":
                thread.join(WAIT)


def test_aclose_from_inside_a_hook_asks_for_the_stop_and_the_iteration_finishes() -> None:
    class ClosesItself(Recorder):
        async def _set_weights(self, rewards: Any) -> None:
            await asyncio.wait_for(self.aclose(timeout=WAIT), WAIT / 2)  # returns at once
            self.weights_set.append(rewards)

    scorer = ClosesItself(synth_dataset=Letters("a"), trigger_frequency=0.001)
    scorer.start()
    wait_until(lambda: not scorer.is_running, "the run to end")
    assert scorer.errors == []
    assert scorer.stats.iterations == 1
    assert len(scorer.weights_set) == 1


def test_stop_from_a_plain_hook_asks_for_the_stop_and_returns() -> None:
    class StopsItself(Recorder):
        def _set_weights(self, rewards: Any) -> None:  # type: ignore[override]
            self.stop(timeout=WAIT)  # on a worker thread, inside the run

    scorer = StopsItself(synth_dataset=Letters("a"), trigger_frequency=0.001)
    scorer.start()
    wait_until(lambda: not scorer.is_running, "the run to end")
    assert scorer.errors == []
    assert scorer.stats.iterations == 1


class _SizeWatched(OrganicQueue):
    """An OrganicQueue that counts how often its size is read."""

    def __init__(self) -> None:
        super().__init__()
        self.size_reads = Counter()

    @property
    def size(self) -> int:
        self.size_reads.bump()
        return super().size


def test_with_jitter_a_wait_runs_its_course_and_its_sample_was_chosen_when_it_began() -> None:
    class Timed(Recorder):
        def __init__(self, **kwargs: Any) -> None:
            self.times: list[float] = []
            super().__init__(**kwargs)

        async def _query_miners(self, sample: Any) -> Any:
            self.times.append(time.monotonic())
            return await super()._query_miners(sample)

    queue = _SizeWatched()
    # Settings under which, without jitter, a burst would end the wait at once.
    scorer = Timed(
        synth_dataset=Letters("a"),
        organic_queue=queue,
        trigger_frequency=1.0,
        trigger_frequency_min=0.01,
        trigger_scaling_factor=1,
        trigger_jitter=0.5,
        seed=5,
    )
    first_draw = random.Random(5).uniform(0.5, 1.5)
    assert first_draw > 0.6
    with scorer:
        scorer.done.wait_for(1)
        queue.size_reads.wait_for(2)  # the first iteration's logs, then the wait begins
        for i in range(200):
            queue.add({"organic": i})
        scorer.done.wait_for(3)
    first, second, third = scorer.samples[:3]
    assert first == second == {"synthetic": "a"}  # the queue was empty when they were chosen
    assert third["organic"] in range(200)
    assert scorer.times[1] - scorer.times[0] >= 0.5  # m * (1 - j): not cut short by the burst
    # The backlog the burst left shortens the periods after it.
    assert scorer.sample_rate_dynamic() < 1.0


IDLE_STEPS = (
    "the scoring loop has run no iteration for {after:g}s: trigger='steps' starts one "
    "every 3 steps and the step counter stands at 1; call increment_step() once per "
    "validator step (or set_step())"
)
IDLE_NOTHING = (
    "the scoring loop has run no iteration for {after:g}s: every trigger found nothing to "
    "score (the organic queue was empty and no synth_dataset was given); pass "
    "synth_dataset= for synthetic samples, or send organic requests to an intake"
)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"synth_dataset": Letters("a"), "trigger": "steps", "trigger_frequency": 3}, IDLE_STEPS),
        ({"trigger_frequency": 0.05}, IDLE_NOTHING),
    ],
    ids=["steps never counted", "no dataset and no traffic"],
)
def test_a_loop_that_runs_nothing_says_once_what_it_waits_for(
    settings: dict[str, Any],
    expected: str,
    library_log: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from organic_scoring._loop import engine

    after = 0.3
    monkeypatch.setattr(engine, "IDLE_NOTICE_AFTER", after)
    scorer = Recorder(**settings)
    with scorer:
        scorer.increment_step()
        wait_until(lambda: any("no iteration" in m for m in library_log), "the idle notice")
        time.sleep(3 * after)  # a few more rounds of the watch: still said once
    assert [m for m in library_log if "no iteration" in m] == [expected.format(after=after)]
    assert scorer.stats.iterations == 0


def test_a_loop_that_runs_says_nothing_about_waiting(
    library_log: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from organic_scoring._loop import engine

    monkeypatch.setattr(engine, "IDLE_NOTICE_AFTER", 0.3)
    scorer = Recorder(synth_dataset=Letters("a"), trigger_frequency=0.05)
    with scorer:
        scorer.done.wait_for(20)  # 1 s of iterations: more than three notice periods
    assert not [m for m in library_log if "no iteration" in m]


BLOCKED = re.compile(
    r"Blocks\._query_miners blocked the scoring loop's event loop for (\d+\.\d)s: an async "
    r"def hook that makes a blocking call \(time\.sleep, requests, a synchronous dendrite "
    r"or chain call\) holds up every timeout, stop\(\) and everything else on that loop "
    r"until it returns\. Make it a plain def \(plain hooks run on a worker thread, where "
    r"timeouts and stop\(\) hold\), or move the call off the loop with "
    r"`await asyncio\.to_thread\(\.\.\.\)`\. Logged once per hook\."
)


def test_a_blocking_call_in_an_async_hook_fails_its_stage_after_the_fact_and_is_named_once(
    library_log: list[str],
) -> None:
    """``time.sleep`` in an ``async def`` hook keeps its timeout from firing: the stage is
    reported as timed out once it returns, and the watchdog names the hook once."""

    class Blocks(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            time.sleep(0.8)  # noqa: ASYNC251  # the mistake: a blocking call in an async hook
            return {0: sample}

    scorer = Blocks(
        synth_dataset=Letters("a"), query_timeout=0.2, trigger_frequency=0.01, backoff_initial=0.01
    )
    with scorer:
        wait_until(
            lambda: "organic-scoring-watchdog" in {t.name for t in threading.enumerate()},
            "the run's watchdog",
        )
        scorer.done.wait_for(2)
    # The watchdog is the run's: it has ended when stop() returns.
    assert "organic-scoring-watchdog" not in {t.name for t in threading.enumerate()}
    assert scorer.weights_set == []
    failures = [(stage, type(exc)) for _, stage, exc in scorer.errors]
    assert failures[:2] == [("query", StageTimeout)] * 2
    exc = scorer.errors[0][2]
    assert str(exc) == (
        "the query stage exceeded its 0.2s timeout: its hook returned after "
        f"{exc.ran:.2f}s, as the event loop could not interrupt it"
    )
    assert exc.ran >= 0.8
    named = [m for m in library_log if "blocked the scoring loop" in m]
    assert len(named) == 1, named
    matched = BLOCKED.fullmatch(named[0])
    assert matched, named[0]
    assert 0.6 <= float(matched.group(1)) <= 2.0


def test_a_blocking_hook_without_timeout_is_named_and_not_failed(
    library_log: list[str],
) -> None:
    """Without a timeout nothing was defeated: the iteration is scored, and the block is
    still named (it held up everything else on the loop)."""

    class Blocks(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            time.sleep(0.8)  # noqa: ASYNC251  # the mistake under test
            return {0: sample}

    scorer = Blocks(synth_dataset=Letters("a"), trigger_frequency=60)
    with scorer:
        scorer.done.wait_for(1)
        wait_until(
            lambda: any("blocked the scoring loop" in m for m in library_log), "the block's name"
        )
    assert scorer.errors == []
    assert scorer.stats.iterations == 1
    [named] = [m for m in library_log if "blocked the scoring loop" in m]
    assert BLOCKED.fullmatch(named), named


def test_awaiting_and_plain_hooks_are_never_named_as_blocking(library_log: list[str]) -> None:
    class Sleeps(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            await asyncio.sleep(0.8)
            return {0: sample}

        def _generate_rewards(  # type: ignore[override]
            self, sample: Any, responses: Any, reference: Any = None
        ) -> Any:
            time.sleep(0.8)  # a plain hook runs on a worker thread: the loop is free
            return {uid: 1.0 for uid in responses}

    scorer = Sleeps(synth_dataset=Letters("a"), trigger_frequency=60)
    with scorer:
        scorer.done.wait_for(1)
    assert scorer.errors == []
    assert not [m for m in library_log if "blocked" in m]


def test_loop_iteration_called_directly_reports_a_defeated_timeout() -> None:
    class Blocks(Recorder):
        async def _set_weights(self, rewards: Any) -> None:
            time.sleep(0.3)  # noqa: ASYNC251  # the mistake under test

    scorer = Blocks(synth_dataset=Letters("a"), weights_timeout=0.1)
    with pytest.raises(IterationError) as raised:
        asyncio.run(scorer.loop_iteration())
    assert raised.value.stage == "weights"
    assert isinstance(raised.value.__cause__, StageTimeout)
    [(_, stage, exc)] = scorer.errors
    assert (stage, type(exc)) == ("weights", StageTimeout)
