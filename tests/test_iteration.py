"""One iteration: sampling order, concurrency of query and reference, logs, failures."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

import pytest

from organic_scoring import IterationError, StageTimeout
from organic_scoring._loop.iteration import planned
from organic_scoring.organic_queue import OrganicQueue
from organic_scoring.synth_dataset import MixtureDataset, OrganicReplayDataset, SynthDatasetBase
from support.scorers import Letters, Recorder, forever
from support.waiting import WAIT, Counter, until

pytestmark = [pytest.mark.python_version, pytest.mark.usefixtures("no_leaks")]

CONTRACT_KEYS = {
    "organic_time_sample": float,
    "organic_time_responses": float,
    "organic_time_rewards": float,
    "organic_time_weights": float,
    "organic_time_total": float,
    "organic_queue_size": int,
    "is_organic_sample": bool,
}


def test_organic_sample_is_preferred_to_synthetic() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    scorer._organic_queue.add({"organic": 1})
    first = asyncio.run(scorer.loop_iteration())
    second = asyncio.run(scorer.loop_iteration())
    assert scorer.samples == [{"organic": 1}, {"synthetic": "a"}]
    assert first["is_organic_sample"] is True
    assert first["organic_sample_source"] == "organic"
    assert second["is_organic_sample"] is False
    assert second["organic_sample_source"] == "Letters"


def test_synthetic_fallback_follows_dataset_weights() -> None:
    scorer = Recorder(synth_dataset=[Letters("a"), Letters("b")], synth_dataset_weights=[3, 1])

    async def many() -> None:
        for _ in range(2000):
            await scorer.loop_iteration()

    asyncio.run(many())
    tally = Tally(s["synthetic"] for s in scorer.samples)
    # 3:1 odds; with 2000 draws the share of "a" lies in 0.75 +- 0.05 but for
    # a 1-in-10^6 fluke.
    assert 0.70 < tally["a"] / 2000 < 0.80


def test_nothing_to_score_skips_quietly() -> None:
    scorer = Recorder()
    assert asyncio.run(scorer.loop_iteration()) == {}
    assert scorer.samples == []
    assert scorer.errors == []
    assert scorer.stats.skipped == 1
    assert scorer.stats.in_flight == 0


def test_logs_carry_the_contract_keys_with_sane_values() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    for n in range(3):
        scorer._organic_queue.add(n)
    logs = asyncio.run(scorer.loop_iteration())
    for key, kind in CONTRACT_KEYS.items():
        assert isinstance(logs[key], kind), key
    times = [v for k, v in logs.items() if k.startswith("organic_time_")]
    assert all(t >= 0 for t in times)
    parts = (
        logs["organic_time_sample"]
        + logs["organic_time_responses"]
        + logs["organic_time_rewards"]
        + logs["organic_time_weights"]
    )
    assert logs["organic_time_total"] == pytest.approx(parts, abs=1e-3)
    assert logs["organic_queue_size"] == 2
    assert logs["organic_iteration"] == 1
    assert scorer.logs == [logs]


def test_query_and_reference_run_concurrently() -> None:
    class Overlap(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            self.query_in.set()
            await self.reference_in.wait()  # deadlocks unless both run at once
            return {0: "x"}

        async def _generate_reference(self, sample: Any) -> Any:
            self.reference_in.set()
            await self.query_in.wait()
            return "reference"

        async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None):
            self.seen_reference = reference
            return {0: 1.0}

    async def main() -> dict[str, Any]:
        scorer = Overlap(synth_dataset=Letters("a"), query_timeout=5, reference_timeout=5)
        scorer.query_in, scorer.reference_in = asyncio.Event(), asyncio.Event()
        logs = await scorer.loop_iteration()
        assert scorer.seen_reference == "reference"
        return logs

    logs = asyncio.run(main())
    assert (
        logs["organic_time_responses"]
        >= max(logs["organic_time_query"], logs["organic_time_reference"]) - 1e-3
    )


def test_sync_hooks_are_accepted() -> None:
    class Plain(Recorder):
        def _query_miners(self, sample: Any) -> Any:  # type: ignore[override]
            return {7: sample}

        def _set_weights(self, rewards: Any) -> None:  # type: ignore[override]
            self.weights_set.append(rewards)

    scorer = Plain(synth_dataset=Letters("a"))
    asyncio.run(scorer.loop_iteration())
    assert scorer.weights_set == [{7: 1.0}]


class Boom(Exception):
    pass


class Abort(BaseException):
    """A hook's own BaseException, neither an Exception nor a cancellation."""


STAGE_HOOKS = {
    "query": "_query_miners",
    "reference": "_generate_reference",
    "rewards": "_generate_rewards",
    "weights": "_set_weights",
    "log": "_log_results",
}


FAILURES = {
    "raise": Boom,
    "hang": StageTimeout,
    "generator-exit": GeneratorExit,
    "base-exception": Abort,
    "sync-raise": Boom,
    "sync-hang": StageTimeout,
}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test, so that a blocked plain hook's thread can end."""
    event = threading.Event()
    yield event
    event.set()
    for thread in threading.enumerate():
        if thread.name == "AnyIO worker thread":
            thread.join(WAIT)


def _failing(stage: str, how: str, release: threading.Event) -> Recorder:
    hook = STAGE_HOOKS[stage]

    async def broken(self: Recorder, *args: Any, **kwargs: Any) -> Any:
        if how == "raise":
            raise Boom(stage)
        if how == "generator-exit":
            raise GeneratorExit
        if how == "base-exception":
            raise Abort(stage)
        await forever()

    def plain(self: Recorder, *args: Any, **kwargs: Any) -> Any:
        if how == "sync-raise":
            raise Boom(stage)
        release.wait(WAIT)  # blocks its thread, far past the stage's timeout

    method = plain if how.startswith("sync") else broken
    cls = type(f"Broken{stage.title()}", (Recorder,), {hook: method})
    timeouts = {f"{s}_timeout": 0.05 for s in STAGE_HOOKS}
    return cls(synth_dataset=Letters("a"), **timeouts)  # type: ignore[no-any-return]


@pytest.mark.parametrize("how", list(FAILURES))
@pytest.mark.parametrize("stage", list(STAGE_HOOKS))
def test_every_stage_failure_is_counted_and_reported(
    stage: str, how: str, release: threading.Event
) -> None:
    scorer = _failing(stage, how, release)
    asyncio.run(scorer.receive_organic("organic-sample"))
    with pytest.raises(IterationError) as raised:
        asyncio.run(scorer.loop_iteration())
    assert raised.value.stage == stage
    assert raised.value.organic is True
    expected = FAILURES[how]
    assert isinstance(raised.value.__cause__, expected)
    [(sample, reported_stage, exc)] = scorer.errors
    assert (sample, reported_stage) == ("organic-sample", stage)
    assert isinstance(exc, expected)
    stats = scorer.stats
    assert dict(stats.failures) == {stage: 1}
    assert stats.failed_iterations == 1
    assert stats.organic_failed == 1
    assert stats.organic_in_flight == 0
    assert stats.in_flight == 0
    assert stats.organic_unaccounted == 0
    [kept] = scorer.recent_failures
    assert (kept.stage, kept.sample, kept.organic) == (stage, "organic-sample", True)


@pytest.mark.parametrize("fatal", [SystemExit, KeyboardInterrupt])
def test_system_exit_and_keyboard_interrupt_are_reported_then_raised(
    fatal: type[BaseException],
) -> None:
    class Exits(Recorder):
        async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None):
            raise fatal

    scorer = Exits()
    asyncio.run(scorer.receive_organic("precious"))
    with pytest.raises(fatal):
        asyncio.run(scorer.loop_iteration())
    [(sample, stage, exc)] = scorer.errors
    assert (sample, stage, type(exc)) == ("precious", "rewards", fatal)
    assert scorer.stats.organic_failed == 1
    assert scorer.stats.organic_unaccounted == 0


def test_a_plain_hook_runs_off_the_event_loop_thread(release: threading.Event) -> None:
    class Plain(Recorder):
        def _query_miners(self, sample: Any) -> Any:  # type: ignore[override]
            self.query_thread = threading.get_ident()
            return {0: sample}

    async def main() -> int:
        await scorer.loop_iteration()
        return threading.get_ident()

    scorer = Plain(synth_dataset=Letters("a"))
    loop_thread = asyncio.run(main())
    assert scorer.query_thread != loop_thread
    assert scorer.errors == []


_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="unset")


def test_a_plain_hook_sees_the_callers_context_variables() -> None:
    class Plain(Recorder):
        def _query_miners(self, sample: Any) -> Any:  # type: ignore[override]
            self.seen = _CALLER.get()
            return {0: sample}

    async def main() -> None:
        _CALLER.set("the validator's request id")
        await scorer.loop_iteration()

    scorer = Plain(synth_dataset=Letters("a"))
    asyncio.run(main())
    assert scorer.seen == "the validator's request id"


@pytest.mark.parametrize("fatal", [ValueError, GeneratorExit, KeyboardInterrupt])
def test_what_a_plain_hook_raises_reaches_the_iteration(fatal: type[BaseException]) -> None:
    class Plain(Recorder):
        def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None):  # type: ignore[override]
            raise fatal

    scorer = Plain(synth_dataset=Letters("a"))
    with pytest.raises(KeyboardInterrupt if fatal is KeyboardInterrupt else IterationError):
        asyncio.run(scorer.loop_iteration())
    assert [(stage, type(exc)) for _, stage, exc in scorer.errors] == [("rewards", fatal)]


def test_plain_hooks_run_at_most_four_per_allowed_iteration_at_once() -> None:
    inside, release, lock = Counter(), threading.Event(), threading.Lock()
    active = most = 0

    class Plain(Recorder):
        def _query_miners(self, sample: Any) -> Any:  # type: ignore[override]
            nonlocal active, most
            with lock:
                active += 1
                most = max(most, active)
            inside.bump()
            release.wait(WAIT)
            with lock:
                active -= 1
            return {0: sample}

    async def main() -> None:
        calls = [asyncio.ensure_future(scorer.loop_iteration()) for _ in range(6)]
        await asyncio.to_thread(inside.wait_for, 4)
        await asyncio.sleep(0.05)
        assert inside.value == 4  # the other two wait for a thread
        release.set()
        await asyncio.gather(*calls)

    scorer = Plain(synth_dataset=Letters("a"), max_concurrent_iterations=1)
    asyncio.run(main())
    assert (most, inside.value, scorer.errors) == (4, 6, [])


def test_abandoned_plain_calls_are_bounded_and_then_refused(
    release: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    running = Counter()

    class Blocks(Recorder):
        def _query_miners(self, sample: Any) -> Any:  # type: ignore[override]
            running.bump()
            release.wait(WAIT)  # past its timeout: the call is abandoned, not stopped
            return {0: sample}

    scorer = Blocks(synth_dataset=Letters("a"), query_timeout=0.02, max_concurrent_iterations=1)

    async def fail(times: int) -> None:
        for _ in range(times):
            with pytest.raises(IterationError):
                await scorer.loop_iteration()

    asyncio.run(fail(3))
    asyncio.run(fail(1))  # abandoned calls count across event loops
    assert running.value == 4
    assert [type(exc) for _, _, exc in scorer.errors] == [StageTimeout] * 4
    with pytest.raises(IterationError) as raised:
        asyncio.run(scorer.loop_iteration())
    refused = raised.value.__cause__
    assert isinstance(refused, RuntimeError)
    assert "abandoned" in str(refused)
    assert running.value == 4  # no fifth thread started
    release.set()  # the abandoned calls return (to event loops long closed) ...
    for thread in threading.enumerate():
        if thread.name == "AnyIO worker thread":
            thread.join(WAIT)
    assert asyncio.run(scorer.loop_iteration())["is_organic_sample"] is False  # ... and free up
    assert escaped == []


def test_sample_stage_failure_is_reported() -> None:
    class Broken(Letters):
        def sample(self) -> Any:
            raise Boom("dataset")

    scorer = Recorder(synth_dataset=Broken("a"))
    with pytest.raises(IterationError) as raised:
        asyncio.run(scorer.loop_iteration())
    assert raised.value.stage == "sample"
    assert [(s, st) for s, st, _ in scorer.errors] == [(None, "sample")]
    assert dict(scorer.stats.failures) == {"sample": 1}


def test_error_hook_that_raises_does_not_escape(caplog: pytest.LogCaptureFixture) -> None:
    class BadReporter(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            raise Boom("query")

        async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException):
            raise RuntimeError("reporter broke")

    scorer = BadReporter(synth_dataset=Letters("a"))
    with pytest.raises(IterationError):
        asyncio.run(scorer.loop_iteration())
    assert scorer.stats.failures["query"] == 1


def test_other_half_is_cancelled_when_query_fails() -> None:
    class Half(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            await self.reference_started.wait()
            raise Boom("query")

        async def _generate_reference(self, sample: Any) -> Any:
            self.reference_started.set()
            try:
                await forever()
            except asyncio.CancelledError:
                self.reference_cancelled = True
                raise

    async def main() -> Half:
        scorer = Half(synth_dataset=Letters("a"))
        scorer.reference_started = asyncio.Event()
        scorer.reference_cancelled = False
        with pytest.raises(IterationError):
            await scorer.loop_iteration()
        return scorer

    assert asyncio.run(main()).reference_cancelled


def test_a_failing_reference_cancels_the_query_and_leaves_the_caller_uncancelled() -> None:
    class Half(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            try:
                await forever()
            except asyncio.CancelledError:
                self.query_cancelled = True
                raise

        async def _generate_reference(self, sample: Any) -> Any:
            await asyncio.sleep(0)
            raise Boom("reference")

    async def main() -> Half:
        scorer = Half(synth_dataset=Letters("a"))
        scorer.query_cancelled = False
        with pytest.raises(IterationError) as raised:
            await scorer.loop_iteration()
        assert raised.value.stage == "reference"
        assert isinstance(raised.value.__cause__, Boom)  # itself, not an exception group
        await asyncio.sleep(0.01)  # the cancellation of the query stayed inside
        return scorer

    scorer = asyncio.run(main())
    assert scorer.query_cancelled
    assert [(stage, type(exc)) for _, stage, exc in scorer.errors] == [("reference", Boom)]


def test_the_first_failure_is_reported_and_a_later_one_logged_not_lost(
    library_log: list[str],
) -> None:
    class Both(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            try:
                await forever()
            finally:
                raise Boom("the query, failing as it is cancelled")

        async def _generate_reference(self, sample: Any) -> Any:
            await asyncio.sleep(0)
            raise Boom("the reference, first")

    scorer = Both(synth_dataset=Letters("a"))
    with pytest.raises(IterationError) as raised:
        asyncio.run(scorer.loop_iteration())
    assert raised.value.stage == "reference"
    [(_, stage, exc)] = scorer.errors
    assert (stage, str(exc)) == ("reference", "the reference, first")
    assert any("the query, failing as it is cancelled" in m for m in library_log)


def test_cancelling_an_iteration_cancels_and_awaits_both_halves() -> None:
    class Hangs(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            self.started.bump()
            await forever()

        async def _generate_reference(self, sample: Any) -> Any:
            self.started.bump()
            try:
                await forever()
            except asyncio.CancelledError:
                self.reference_cancelled = True
                raise

    async def main() -> Hangs:
        scorer = Hangs(synth_dataset=Letters("a"))
        scorer.started, scorer.reference_cancelled = Counter(), False
        task = asyncio.ensure_future(scorer.loop_iteration())
        await until(lambda: scorer.started.value >= 2, "both halves to start")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert scorer.reference_cancelled  # awaited before the iteration ended
        return scorer

    scorer = asyncio.run(main())
    [(_, stage, exc)] = scorer.errors
    assert stage == "query"
    assert isinstance(exc, asyncio.CancelledError)


@pytest.mark.parametrize("plain", [False, True], ids=["async", "plain"])
@pytest.mark.parametrize("error", [TimeoutError, asyncio.TimeoutError])
def test_a_hooks_own_timeout_error_is_its_failure_not_a_stage_timeout(
    error: type[BaseException], plain: bool
) -> None:
    def raises(self: Recorder, sample: Any) -> Any:
        raise error("the miners' own")

    async def raises_async(self: Recorder, sample: Any) -> Any:
        raise error("the miners' own")

    cls = type("OwnTimeout", (Recorder,), {"_query_miners": raises if plain else raises_async})
    scorer = cls(synth_dataset=Letters("a"), query_timeout=WAIT)
    with pytest.raises(IterationError) as raised:
        asyncio.run(scorer.loop_iteration())
    cause = raised.value.__cause__
    assert type(cause) is error
    assert str(cause) == "the miners' own"
    [(_, stage, exc)] = scorer.errors
    assert stage == "query"
    assert exc is cause


def test_set_weights_and_log_never_overlap_themselves() -> None:
    class Slow(Recorder):
        active = 0
        most = 0

        async def _set_weights(self, rewards: Any) -> None:
            type(self).active += 1
            type(self).most = max(type(self).most, type(self).active)
            await asyncio.sleep(0.001)
            type(self).active -= 1

    async def main() -> None:
        scorer = Slow(synth_dataset=Letters("a"))
        await asyncio.gather(*(scorer.loop_iteration() for _ in range(20)))

    asyncio.run(main())
    assert Slow.most == 1


def test_queue_reachable_publicly_and_as_contract_attribute() -> None:
    queue = OrganicQueue(max_size=5)
    scorer = Recorder(organic_queue=queue)
    assert scorer._organic_queue is queue
    assert scorer.organic_queue is queue


# -- organic replay and the planned kind ----------------------------------------------


def test_the_scorer_feeds_replay_datasets_organic_samples_only() -> None:
    inner = OrganicReplayDataset(
        100,
        seed=1,
        transform=lambda s, rng: {**s, "replayed": rng.random()},
        fallback=Letters("g"),
        min_samples=1,
        cooldown=0,
    )
    top = OrganicReplayDataset(100, seed=2, fallback=Letters("f"))
    mixture = MixtureDataset([inner, Letters("m")], seed=3)
    scorer = Recorder(synth_dataset=[top, mixture, inner], seed=4)  # inner listed twice
    organic = [{"organic": i} for i in range(5)]

    async def run() -> None:
        for round_ in range(5):
            scorer._organic_queue.add(organic[round_])
            for _ in range(4):  # one organic, then synthetic ones: replays, fallbacks
                await scorer.loop_iteration()

    asyncio.run(run())
    assert scorer.stats.organic_iterations == 5
    assert scorer.stats.synthetic_iterations == 15
    for replay in (inner, top):
        assert replay.seen == 5  # each organic sample offered once, never a synthetic one
        assert sorted(replay.stored(), key=str) == organic
    assert any(s.get("replayed") for s in scorer.samples)  # replays did go out


def test_the_scorers_redact_reaches_a_replay_dataset_without_its_own() -> None:
    # redact= keeps users' words out of everything the library keeps: a replay
    # dataset stores organic samples (and save() writes them to a file).
    with pytest.raises(ValueError, match="redact=True") as refused:
        Recorder(synth_dataset=OrganicReplayDataset(10), redact=True)
    assert "OrganicReplayDataset" in str(refused.value)

    own = OrganicReplayDataset(10, redact=lambda s: {"id": s["id"], "own": True})
    plain = OrganicReplayDataset(10)
    scorer = Recorder(
        synth_dataset=MixtureDataset([own, plain], seed=1), redact=lambda s: {"id": s["id"]}
    )
    scorer._organic_queue.add({"id": 7, "prompt": "my card number is 1234"})
    asyncio.run(scorer.loop_iteration())
    assert plain.stored() == [{"id": 7}]  # the scorer's redact, applied before keeping
    assert own.stored() == [{"id": 7, "own": True}]  # its own, on the real sample
    assert scorer.samples == [{"id": 7, "prompt": "my card number is 1234"}]  # hooks: real

    Recorder(synth_dataset=own, redact=True)  # a replay with its own redact is fine


def test_a_replay_dataset_that_fails_to_keep_a_sample_does_not_fail_the_iteration() -> None:
    def redact(sample: Any) -> Any:
        raise RuntimeError("redactor down")

    scorer = Recorder(synth_dataset=OrganicReplayDataset(10, redact=redact))
    scorer._organic_queue.add({"organic": 1})
    logs = asyncio.run(scorer.loop_iteration())
    assert logs["is_organic_sample"] is True
    assert scorer.errors == []


@pytest.mark.parametrize(
    ("plan", "expected"), [(None, "organic"), ("organic", "organic"), ("synthetic", "a")]
)
def test_the_planned_kind_decides_whether_the_queue_is_asked(
    plan: str | None, expected: str
) -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    scorer._organic_queue.add({"organic": "organic"})

    async def run() -> dict[str, Any]:
        planned.set(plan)  # type: ignore[arg-type]
        return await scorer.loop_iteration()

    asyncio.run(run())
    (sample,) = scorer.samples
    assert sample.get("organic", sample.get("synthetic")) == expected
    assert scorer._organic_queue.size == (1 if plan == "synthetic" else 0)


def test_a_synthetic_plan_without_datasets_still_takes_organic_samples() -> None:
    scorer = Recorder()
    scorer._organic_queue.add({"organic": 1})

    async def run() -> dict[str, Any]:
        planned.set("synthetic")
        return await scorer.loop_iteration()

    assert asyncio.run(run())["is_organic_sample"] is True


def test_stats_report_the_organic_share() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    assert scorer.stats.organic_share == 0.0

    async def run() -> None:
        scorer._organic_queue.add({"organic": 1})
        for _ in range(4):
            await scorer.loop_iteration()

    asyncio.run(run())
    assert scorer.stats.organic_share == 0.25
    assert scorer.stats.as_dict()["organic_share"] == 0.25


def test_hooks_under_a_timeout_start_at_once_in_the_iterations_own_task() -> None:
    # Run in the calling task, a hook begins before the event loop turns: a loop busy
    # with other work cannot time out (for instance) the error hook before it began.
    class Watched(Recorder):
        async def _query_miners(self, sample: Any) -> Any:
            self.tasks = [asyncio.current_task()]
            raise Boom("query")

        async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
            self.tasks.append(asyncio.current_task())

    scorer = Watched(synth_dataset=Letters("a"), query_timeout=5, log_timeout=5)

    async def main() -> Any:
        with pytest.raises(IterationError):
            await scorer.loop_iteration()
        return asyncio.current_task()

    caller = asyncio.run(main())
    assert scorer.tasks == [caller, caller]


def test_a_generated_dataset_is_awaited_and_its_reservoir_is_fed() -> None:
    from organic_scoring.synth_dataset import GeneratedDataset

    replay = OrganicReplayDataset(10, seed=1, min_samples=1, cooldown=0)  # brief at once
    briefs: list[Any] = []

    async def generate(brief: Any) -> dict[str, Any]:
        briefs.append(brief)
        return {"prompt": f"fresh {len(briefs)}", "turns": brief["turns"]}

    scorer = Recorder(synth_dataset=GeneratedDataset(generate, reservoir=replay, seed=2))
    scorer._organic_queue.add({"prompt": "a real user asks about rivers"})

    async def run() -> None:
        for _ in range(3):
            await scorer.loop_iteration()

    asyncio.run(run())
    assert replay.seen == 1  # fed through the generated dataset's reservoir
    assert scorer.samples[1:] == [
        {"prompt": "fresh 1", "turns": 1},
        {"prompt": "fresh 2", "turns": 1},
    ]
    assert sorted(briefs[0]["topics"]) == ["about", "rivers"]  # words of 5+ letters


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no timeout", "timeout"])
def test_hooks_are_called_positionally_so_an_override_may_rename_parameters(
    timeout: float | None,
) -> None:
    """An override's parameter names are its own business: ``_log_results``, called by
    name when it takes the library's names, is called by position when it does not."""
    seen: dict[str, tuple[Any, ...]] = {}

    class Renamed(Recorder):
        async def _query_miners(self, prompt: Any) -> Any:
            return {0: prompt}

        async def _generate_reference(self, item: Any) -> Any:
            return "ref"

        async def _generate_rewards(self, item: Any, answers: Any, ref: Any = None) -> Any:
            return {uid: 1.0 for uid in answers}

        async def _set_weights(self, scores: Any) -> None:
            seen["weights"] = (scores,)

        async def _log_results(  # type: ignore[override]
            self, timings: dict[str, Any], ref: Any, answers: Any, scores: Any, item: Any
        ) -> Any:
            seen["log"] = (ref, answers, scores, item)
            return timings

    scorer = Renamed(
        synth_dataset=Letters("a"),
        query_timeout=timeout,
        rewards_timeout=timeout,
        weights_timeout=timeout,
        log_timeout=timeout,
    )
    logs = asyncio.run(scorer.loop_iteration())
    assert scorer.errors == []
    assert logs["is_organic_sample"] is False
    sample = {"synthetic": "a"}
    assert seen == {"weights": ({0: 1.0},), "log": ("ref", {0: sample}, {0: 1.0}, sample)}


def test_a_log_results_reading_keyword_arguments_gets_them_by_name() -> None:
    """As the original package called it: code reading ``kwargs["sample"]`` keeps working."""
    seen: list[Any] = []

    class ReadsKeywords(Recorder):
        async def _log_results(self, logs: dict[str, Any], **kwargs: Any) -> Any:
            seen.append((kwargs["sample"], kwargs["reference"]))
            return logs

    asyncio.run(ReadsKeywords(synth_dataset=Letters("a")).loop_iteration())
    assert seen == [({"synthetic": "a"}, None)]


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        (
            "rewards",
            "Mismatched._generate_rewards(sample, responses) cannot take the arguments the "
            "library calls it with, by position: _generate_rewards(sample, responses, "
            "reference): too many positional arguments",
        ),
        (
            "log",
            "Mismatched._log_results(logs, sample) cannot take the arguments the library "
            "calls it with, by name (logs=..., reference=..., responses=..., rewards=..., "
            "sample=...) or by position (logs, reference, responses, rewards, sample): too "
            "many positional arguments",
        ),
    ],
)
def test_a_hook_that_cannot_take_its_arguments_is_named_at_construction(
    hook: str, expected: str
) -> None:
    class Mismatched(Recorder):
        if hook == "rewards":

            async def _generate_rewards(self, sample: Any, responses: Any) -> Any:  # type: ignore[override]
                return {}

        else:

            async def _log_results(self, logs: Any, sample: Any) -> Any:  # type: ignore[override]
                return logs

    with pytest.raises(TypeError) as raised:
        Mismatched()
    assert str(raised.value) == expected


def test_a_dataset_whose_sample_is_async_def_hands_its_result_to_the_hooks() -> None:
    """A newcomer writes ``async def sample``: the hooks got the coroutine as the
    sample (``'coroutine' object has no attribute ...`` in every stage) and Python
    warned that it was never awaited."""

    class Awaited(SynthDatasetBase):
        async def sample(self) -> Any:  # type: ignore[override]
            await asyncio.sleep(0)
            return {"synthetic": "async"}

    scorer = Recorder(synth_dataset=Awaited())
    asyncio.run(scorer.loop_iteration())
    assert scorer.samples == [{"synthetic": "async"}]
    assert scorer.errors == []
