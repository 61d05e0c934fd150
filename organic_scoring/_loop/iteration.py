"""One iteration of the scoring loop: sample, query and reference, rewards, weights, log.

What becomes of each failure is on docs/loop.md ("When something fails"). Timeouts
are AnyIO cancel scopes (Python 3.10).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Protocol

import anyio

from organic_scoring._defaults import ERROR_HOOK_TIMEOUT
from organic_scoring._log import log
from organic_scoring._loop.hooks import HOOK_CALLS, Hook, PlainCalls, takes_by_name, ungrouped
from organic_scoring._loop.stages import Stage
from organic_scoring._loop.stats import StatsRecorder
from organic_scoring._loop.trigger import SampleKind
from organic_scoring._loop.watchdog import code_of
from organic_scoring._redact import describe_error, redactor
from organic_scoring.config import ScoringConfig
from organic_scoring.errors import (
    FailedIteration,
    IterationError,
    SampleUnreadable,
    ScorerRoleLost,
    StageTimeout,
)
from organic_scoring.organic_queue import OrganicQueueBase
from organic_scoring.synth_dataset import (
    GeneratedDataset,
    MixtureDataset,
    OrganicReplayDataset,
    SynthDatasetBase,
)

__all__ = ["Attempt", "IterationRunner", "ScorerHooks", "attempt", "fencing", "planned"]

_KEEP_FAILURES = 32
_FATAL = (SystemExit, KeyboardInterrupt)


class ScorerHooks(Protocol):
    """The hooks of :class:`~organic_scoring.OrganicScoringBase` an iteration calls."""

    def _query_miners(self, sample: Any) -> Any: ...
    def _generate_reference(self, sample: Any) -> Any: ...
    def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any: ...
    def _set_weights(self, rewards: Any) -> Any: ...
    def _log_results(
        self,
        logs: dict[str, Any],
        reference: Any,
        responses: Any,
        rewards: Any,
        sample: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any: ...
    def _on_iteration_error(self, sample: Any, stage: Stage, exc: BaseException) -> Any: ...


@dataclass(eq=False, slots=True)
class Attempt:
    """One call of ``loop_iteration``: whether it was reported; why it was cancelled."""

    reported: bool = False
    why: BaseException | None = None


attempt: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar(
    "organic_scoring_attempt", default=None
)
"""Set by the engine around each ``loop_iteration`` call it makes."""

planned: contextvars.ContextVar[SampleKind | None] = contextvars.ContextVar(
    "organic_scoring_planned", default=None
)
"""The kind of sample a jittered trigger chose for this iteration; None: organic if waiting."""


fencing: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "organic_scoring_fencing", default=None
)
"""On a shared queue, awaited before ``_set_weights``: raises unless this scorer still
holds the role it held when the iteration began."""


class _StageFailed(Exception):
    def __init__(self, stage: Stage, error: BaseException) -> None:
        super().__init__(stage)
        self.stage: Stage = stage
        self.error = error


@dataclass(slots=True)
class _Responses:
    """What the query and the reference returned, and their times (None until returned)."""

    query: Any = None
    reference: Any = None
    query_time: float | None = None
    reference_time: float | None = None


@dataclass(slots=True)
class _Serial:
    """Per-event-loop locks that keep ``_set_weights`` and ``_log_results`` serial."""

    weights: asyncio.Lock = field(default_factory=asyncio.Lock)
    log: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Hooks:
    """The scorer's iteration hooks, resolved once: async or plain, overridden or not."""

    __slots__ = ("error", "log", "log_by_name", "query", "reference", "rewards", "weights")

    def __init__(self, scorer: ScorerHooks, reference_overridden: bool) -> None:
        self.query = Hook(scorer._query_miners, "_query_miners")
        self.reference = (
            Hook(scorer._generate_reference, "_generate_reference")
            if reference_overridden
            else None
        )
        self.rewards = Hook(scorer._generate_rewards, "_generate_rewards")
        # Plain hooks of the serial stages hold a lock on their worker thread.
        self.weights = Hook(scorer._set_weights, "_set_weights", threading.Lock())
        self.log = Hook(scorer._log_results, "_log_results", threading.Lock())
        self.log_by_name = takes_by_name(scorer._log_results)
        self.error = Hook(scorer._on_iteration_error, "_on_iteration_error")


class IterationRunner:
    """Runs single iterations against a scorer's hooks; safe to share across tasks.

    Args:
        reference_overridden: False when ``_generate_reference`` is the base class's
            (which returns None at once): it is then not called at all, and the query
            runs without a second task beside it.
    """

    def __init__(
        self,
        scorer: ScorerHooks,
        config: ScoringConfig,
        queue: OrganicQueueBase,
        datasets: Sequence[SynthDatasetBase],
        dataset_weights: Sequence[float] | None,
        stats: StatsRecorder,
        *,
        reference_overridden: bool = True,
    ) -> None:
        self._scorer = scorer
        self._reference_overridden = reference_overridden
        self._hooks: _Hooks | None = None
        self._config = config
        self._queue = queue
        self._datasets: MixtureDataset | None = (
            MixtureDataset(datasets, dataset_weights, seed=_derived(config.seed))
            if datasets
            else None
        )
        self._stats = stats
        self._numbers = itertools.count(1)
        self._serial: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Serial] = (
            weakref.WeakKeyDictionary()
        )
        self.plain = PlainCalls(max(4, 4 * config.max_concurrent_iterations), "plain hooks")
        # A queue that neither blocks nor brings its own awaitable forms is called inline.
        self._queue_awaited = queue.blocking or any(
            getattr(type(queue), name) is not getattr(OrganicQueueBase, name)
            for name in ("asample", "asize", "atake")
        )
        self._queue_failures = 0
        self._queue_retry_at = 0.0
        self.failures: deque[FailedIteration] = deque(maxlen=_KEEP_FAILURES)
        self.running: dict[object, float] = {}  # each running iteration's monotonic start
        self.leased: dict[object, Any] = {}  # each running iteration's organic lease token
        self._redact = redactor(config.redact)
        self._replays = _replays(datasets)
        if config.redact is True and any(r.redact is None for r in self._replays):
            raise ValueError(
                "redact=True keeps no organic sample, but synth_dataset holds an "
                "OrganicReplayDataset, which keeps them to replay: give it its own "
                "redact= (what of a sample it may keep), or pass redact= a function, "
                "which is then applied before it keeps anything"
            )

    @property
    def stats(self) -> StatsRecorder:
        """The counters this runner moves."""
        return self._stats

    @property
    def has_datasets(self) -> bool:
        """Whether there is a synthetic dataset to fall back on."""
        return self._datasets is not None

    def hook_codes(self) -> dict[CodeType, str]:
        """The code of every ``async def`` hook (the intake's too), to ``Class._hook``."""
        scorer, hooks = self._scorer, self.hooks
        cls = type(scorer).__name__
        named: list[tuple[str, Any]] = [
            (hook.name, hook.fn)
            for hook in (hooks.query, hooks.reference, hooks.rewards, hooks.weights, hooks.log)
            if hook is not None and hook.is_async
        ]
        named += [
            (name, getattr(scorer, name, None))
            for name in (
                "_on_iteration_error",
                "_on_organic_entry",
                "_blacklist_fn",
                "_priority_fn",
                "_verify_fn",
            )
        ]
        return {code: f"{cls}.{name}" for name, fn in named for code in code_of(fn)}

    @property
    def hooks(self) -> _Hooks:
        """The scorer's hooks, resolved on first use (after the subclass's ``__init__``)."""
        hooks = self._hooks
        if hooks is None:
            hooks = self._hooks = _Hooks(self._scorer, self._reference_overridden)
        return hooks

    async def run(self) -> dict[str, Any]:
        """Run one iteration; return its logs, or ``{}`` when there was nothing to score."""
        key = object()
        self.running[key] = time.monotonic()
        try:
            return await self._run(key)
        finally:
            del self.running[key]
            self.leased.pop(key, None)

    def oldest_age(self) -> float:
        """Seconds the oldest running iteration has run; 0 when none runs."""
        started = min(self.running.values(), default=None)
        return 0.0 if started is None else time.monotonic() - started

    def stuck(self, after: float) -> int:
        """How many running iterations have run for ``after`` seconds or more."""
        now = time.monotonic()
        return sum(now - started >= after for started in list(self.running.values()))

    async def _run(self, key: object) -> dict[str, Any]:
        stats = self._stats
        hooks = self.hooks
        config = self._config
        stats.started()
        started = time.perf_counter()
        stage: Stage = "sample"
        sample: Any = None
        lease: Any = None
        organic = False
        pair = _Responses()
        try:
            try:
                sample, lease, organic, source = await self._take_sample()
            except SampleUnreadable as unreadable:
                # An entry left the queue but could not be handed over: it is an
                # organic sample, reported with what the queue held for it.
                sample, organic = unreadable.raw, True
                stats.sampled(True)
                raise _StageFailed("sample", unreadable) from unreadable
            if sample is None:
                stats.skipped()
                return {}
            if organic:
                self.leased[key] = lease
            stats.sampled(organic)
            sampled = time.perf_counter()
            stage = "query"
            await self._responses(sample, pair)
            responses, reference = pair.query, pair.reference
            t_query, t_reference = pair.query_time or 0.0, pair.reference_time or 0.0
            responded = time.perf_counter()
            stage = "rewards"
            rewards = await self._call(
                "rewards", config.rewards_timeout, hooks.rewards, sample, responses, reference
            )
            rewarded = time.perf_counter()
            stage = "weights"
            serial = self._serial_for_loop()
            async with serial.weights:
                still_ours = fencing.get()
                if still_ours is not None:
                    try:
                        await still_ours()
                    except Exception as lost:
                        raise _StageFailed("weights", lost) from lost
                await self._call("weights", config.weights_timeout, hooks.weights, rewards)
            weighted = time.perf_counter()
            logs: dict[str, Any] = {
                "organic_time_sample": sampled - started,
                "organic_time_responses": responded - sampled,
                "organic_time_query": t_query,
                "organic_time_reference": t_reference,
                "organic_time_rewards": rewarded - responded,
                "organic_time_weights": weighted - rewarded,
                "organic_time_total": weighted - started,
                "organic_queue_size": await self._queue_size(),
                "is_organic_sample": organic,
                "organic_iteration": next(self._numbers),
                "organic_sample_source": source,
            }
            stage = "log"
            async with serial.log:
                args: tuple[Any, ...] = (logs, reference, responses, rewards, sample)
                named: dict[str, Any] = {}
                if hooks.log_by_name:  # as the original package called it
                    args, named = (), dict(zip(HOOK_CALLS["_log_results"], args, strict=True))
                result = await self._call("log", config.log_timeout, hooks.log, *args, **named)
        except asyncio.CancelledError as cancelled:
            # stop() ran out of patience: the sample is reported, not lost. A cancel
            # scope cancels every await inside it, so the report is shielded (its hook
            # keeps its own timeout).
            if stage == "query" and pair.query_time is not None and pair.reference_time is None:
                stage = "reference"  # the query had returned: the reference held it up
            record = attempt.get()
            why = record.why if record is not None and record.why is not None else cancelled
            with anyio.CancelScope(shield=True):
                await self._end_failed(stage, sample, organic, why, lease)
            raise
        except _StageFailed as failed:
            error = failed.error
            await self._end_failed(failed.stage, sample, organic, error, lease)
            if isinstance(error, _FATAL):
                raise error from None
            raise IterationError(failed.stage, self._kept(sample), organic) from error
        except BaseException as exc:  # the library's own code, a dataset: still reported
            await self._end_failed(stage, sample, organic, exc, lease)
            if isinstance(exc, _FATAL):
                raise
            raise IterationError(stage, self._kept(sample), organic) from exc
        stats.succeeded(  # in TIMED order
            organic,
            (
                sampled - started,
                t_query,
                t_reference,
                responded - sampled,
                rewarded - responded,
                weighted - rewarded,
                time.perf_counter() - weighted,
                weighted - started,
            ),
        )
        if organic:
            await self._ack(lease)
        return result if isinstance(result, dict) else logs

    # -- the sample ------------------------------------------------------------------

    async def _take_sample(self) -> tuple[Any, Any, bool, str]:
        """``(sample, lease, organic, source)``: organic if one is waiting, the queue
        works and the plan is not ``"synthetic"``, else synthetic."""
        skip_queue = planned.get() == "synthetic" and self._datasets is not None
        if not skip_queue and time.monotonic() >= self._queue_retry_at:
            queue = self._queue
            try:
                taken = await queue.atake() if self._queue_awaited else queue.take()
            except SampleUnreadable:
                self._queue_works()
                raise
            except Exception as exc:
                await self._queue_broken(exc)
            else:
                self._queue_works()
                if taken is not None:
                    sample, lease = taken
                    self._offer(sample)
                    return sample, lease, True, "organic"
        dataset = None if self._datasets is None else self._datasets.choose()
        if dataset is None:
            return None, None, False, ""
        asample = getattr(dataset, "asample", None)
        drawn = await asample() if callable(asample) else dataset.sample()
        if inspect.isawaitable(drawn):
            drawn = await drawn  # an ``async def sample``
        return drawn, None, False, type(dataset).__name__

    def _offer(self, sample: Any) -> None:
        """Hand an organic sample to every replay dataset (redacted by the scorer's
        ``redact`` unless it has its own); their failures are only logged."""
        for replay in self._replays:
            try:
                replay.offer(sample if replay.redact is not None else self._kept(sample))
            except Exception as exc:
                log.warning(f"{replay!r} could not keep an organic sample: {exc!r}")

    def _queue_works(self) -> None:
        self._queue_failures = 0
        self._queue_retry_at = 0.0

    async def _queue_broken(self, exc: Exception) -> None:
        """Report a queue that failed to hand out a sample, and leave it alone a while."""
        self._queue_failures += 1
        self._queue_retry_at = time.monotonic() + self._config.backoff(self._queue_failures)
        self._stats.fault("sample", failed_iteration=False)
        await self._report("sample", None, False, exc)

    async def _queue_size(self) -> int:
        """The size for the logs; -1 when the queue cannot tell (the trigger logs that)."""
        queue = self._queue
        try:
            return await queue.asize() if self._queue_awaited else queue.size
        except Exception:
            return -1

    async def _ack(self, lease: Any, *, failed: bool = False) -> None:
        """Tell the queue the iteration holding ``lease`` has ended, and how."""
        try:
            await self._queue.aack(lease, failed=failed)
        except Exception as exc:
            log.warning(
                f"the organic queue could not acknowledge a sample ({exc!r}); a leasing "
                "queue will hand it out again when its lease expires"
            )

    # -- the stages ------------------------------------------------------------------

    async def _responses(self, sample: Any, pair: _Responses) -> None:
        """``_query_miners`` and ``_generate_reference`` side by side, each timed, into
        ``pair``; the first to fail cancels the other and is raised."""
        config, hooks = self._config, self.hooks
        begun = time.perf_counter()
        if hooks.reference is None:
            pair.query = await self._call("query", config.query_timeout, hooks.query, sample)
            pair.query_time, pair.reference_time = time.perf_counter() - begun, 0.0
            return
        reference = hooks.reference

        async def generate_reference() -> None:
            pair.reference = await self._call(
                "reference", config.reference_timeout, reference, sample
            )
            pair.reference_time = time.perf_counter() - begun

        # The query runs in this task, the reference beside it in a child task: the
        # group cancels the one when the other fails, and waits for the child.
        with ungrouped(also=self._failed_too):
            async with anyio.create_task_group() as group:
                group.start_soon(generate_reference)
                pair.query = await self._call("query", config.query_timeout, hooks.query, sample)
                pair.query_time = time.perf_counter() - begun

    def _failed_too(self, error: BaseException) -> None:
        """Log a failure of the query or the reference beside the one reported."""
        stage = "query or reference"
        if isinstance(error, _StageFailed):
            stage, error = error.stage, error.error
        self._log_error(f"the {stage} stage failed too", error)

    def _log_error(self, head: str, error: BaseException) -> None:
        """Log ``error`` after ``head``: with its traceback, or redacted."""
        redacting = self._redact is not None
        log.error(
            f"{head}: {describe_error(error, redacting)}", exc_info=None if redacting else error
        )

    async def _call(
        self, stage: Stage, timeout: float | None, hook: Hook, *args: Any, **kw: Any
    ) -> Any:
        """Call a hook under its stage's timeout; any failure becomes ``_StageFailed``."""
        ran: float | None = None
        try:
            if hook.is_async:
                awaitable = hook.fn(*args, **kw)
            else:
                awaitable = self._in_thread(hook, *args, **kw)
            if timeout is None:
                return await awaitable
            # The hook runs in this task, so it starts at once: a busy event loop
            # cannot time it out before it began. The scope takes only its own
            # cancellation; a TimeoutError the hook raises is the hook's failure.
            begun = time.monotonic()
            with anyio.move_on_after(timeout):
                result = await awaitable
                ran = time.monotonic() - begun
                # An async hook that blocked the event loop (or held off its
                # cancellation) past its timeout returns late: it failed all the same.
                if not hook.is_async or ran <= timeout:
                    return result
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # GeneratorExit, SystemExit, a hook's own BaseException
            raise _StageFailed(stage, exc) from exc
        raise _StageFailed(stage, StageTimeout(stage, timeout, ran=ran))

    async def _in_thread(self, hook: Hook, *args: Any, **kw: Any) -> Any:
        call = functools.partial(hook.fn, *args, **kw)
        result = await self.plain.run(_holding, hook.serial or contextlib.nullcontext(), call)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _serial_for_loop(self) -> _Serial:
        loop = asyncio.get_running_loop()
        serial = self._serial.get(loop)
        if serial is None:
            serial = self._serial[loop] = _Serial()
        return serial

    # -- failures --------------------------------------------------------------------

    async def _end_failed(
        self, stage: Stage, sample: Any, organic: bool, error: BaseException, lease: Any = None
    ) -> None:
        """Count a failed iteration, report it, and release its organic sample's lease."""
        record = attempt.get()
        if record is not None:
            record.reported = True
        self._stats.failed(stage, organic)
        await self._report(stage, sample, organic, error)
        # An unreadable entry has left the queue already; a scorer that lost its role
        # leaves the sample to its lease, which brings it back for the active scorer.
        if organic and stage != "sample" and not isinstance(error, ScorerRoleLost):
            await self._ack(lease, failed=True)

    async def report_outside(self, sample: Any, error: BaseException) -> None:
        """Count and report a failure that no stage accounts for (``"iteration"``)."""
        self._stats.fault("iteration", failed_iteration=True)
        await self._report("iteration", sample, False, error)

    async def _report(self, stage: Stage, sample: Any, organic: bool, error: BaseException) -> None:
        """Keep a failure and hand it to the scorer; never raises (but re-cancels)."""
        self.failures.append(FailedIteration(stage, self._kept(sample), organic, error))
        timeout = self._config.log_timeout or ERROR_HOOK_TIMEOUT
        try:
            await self._call("log", timeout, self.hooks.error, sample, stage, error)
        except _StageFailed as failed:
            self._log_error(
                f"_on_iteration_error raised while reporting a {stage} failure", failed.error
            )

    def _kept(self, sample: Any) -> Any:
        """``sample`` as the library may keep it: itself, or redacted."""
        redact = self._redact
        return sample if redact is None else redact(sample)


def _replays(datasets: Sequence[SynthDatasetBase]) -> tuple[OrganicReplayDataset, ...]:
    """Every OrganicReplayDataset among ``datasets``, looking inside mixtures, fallbacks
    and generated datasets' reservoirs, once each."""
    found: list[OrganicReplayDataset] = []
    stack = list(reversed(datasets))
    while stack:
        dataset = stack.pop()
        if isinstance(dataset, OrganicReplayDataset):
            if all(dataset is not known for known in found):
                found.append(dataset)
                if dataset.fallback is not None:
                    stack.append(dataset.fallback)
        elif isinstance(dataset, MixtureDataset):
            stack.extend(reversed(dataset.datasets))
        elif isinstance(dataset, GeneratedDataset):
            stack.extend(d for d in (dataset.fallback, dataset.reservoir) if d is not None)
    return tuple(found)


def _derived(seed: int | None) -> int | None:
    """A seed for a second generator, different from the one ``seed`` itself seeds."""
    return None if seed is None else random.Random(seed).getrandbits(64)


def _holding(lock: AbstractContextManager[Any], call: Callable[[], Any]) -> Any:
    with lock:
        return call()
