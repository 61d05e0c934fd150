"""One iteration of the scoring loop: sample, query and reference, rewards, weights, log.

The stages, their timeouts and their timings live here; when iterations start is
the engine's business (:mod:`organic_scoring._engine`). A failed stage is counted,
recorded, handed to the scorer's ``_on_iteration_error`` hook and raised as
:class:`~organic_scoring.errors.IterationError`, so an organic sample is always
either scored or reported, never dropped silently, cancellation included.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from organic_scoring._log import log
from organic_scoring._stats import StatsRecorder
from organic_scoring.config import ScoringConfig
from organic_scoring.errors import (
    FailedIteration,
    IterationError,
    SampleUnreadable,
    StageTimeout,
)
from organic_scoring.organic_queue import OrganicQueueBase
from organic_scoring.synth_dataset import MixtureDataset, SynthDatasetBase

__all__ = ["IterationRunner", "ScorerHooks"]

_ERROR_HOOK_TIMEOUT = 5.0
_KEEP_FAILURES = 32


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
    def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> Any: ...


class _StageFailed(Exception):
    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(stage)
        self.stage = stage
        self.error = error


class _OrganicSampleFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


class _CancelledIn(asyncio.CancelledError):
    """A cancellation that knows which of two concurrent stages it interrupted."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage


class _Serial:
    """Per-event-loop locks that keep ``_set_weights`` and ``_log_results`` serial."""

    __slots__ = ("log", "weights")

    def __init__(self) -> None:
        self.weights = asyncio.Lock()
        self.log = asyncio.Lock()


class IterationRunner:
    """Runs single iterations against a scorer's hooks; safe to share across tasks."""

    def __init__(
        self,
        hooks: ScorerHooks,
        config: ScoringConfig,
        queue: OrganicQueueBase,
        datasets: Sequence[SynthDatasetBase],
        dataset_weights: Sequence[float] | None,
        stats: StatsRecorder,
    ) -> None:
        self._hooks = hooks
        self._config = config
        self._queue = queue
        self._datasets: MixtureDataset | None = (
            MixtureDataset(datasets, dataset_weights) if datasets else None
        )
        self._stats = stats
        self._numbers = itertools.count(1)
        self._serial: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Serial] = (
            weakref.WeakKeyDictionary()
        )
        self.failures: deque[FailedIteration] = deque(maxlen=_KEEP_FAILURES)

    async def run(self) -> dict[str, Any]:
        """Run one iteration; return its logs, or ``{}`` when there was nothing to score."""
        stats = self._stats
        stats.started()
        started = time.perf_counter()
        stage, sample, organic = "sample", None, False
        try:
            try:
                sample, organic, source = self._take_sample()
            except _OrganicSampleFailed as failed:
                # An entry left the queue but could not be handed over: it is an
                # organic sample, and it failed in the sample stage.
                organic = True
                stats.sampled(organic)
                raise failed.error from None
            if sample is None:
                stats.skipped()
                return {}
            stats.sampled(organic)
            sampled = time.perf_counter()
            stage = "query"
            (responses, t_query), (reference, t_reference) = await self._responses(sample)
            responded = time.perf_counter()
            stage = "rewards"
            rewards = await self._call(
                "rewards",
                self._config.rewards_timeout,
                self._hooks._generate_rewards,
                sample,
                responses,
                reference,
            )
            rewarded = time.perf_counter()
            stage = "weights"
            serial = self._serial_for_loop()
            async with serial.weights:
                await self._call(
                    "weights", self._config.weights_timeout, self._hooks._set_weights, rewards
                )
            weighted = time.perf_counter()
            logs: dict[str, Any] = {
                "organic_time_sample": sampled - started,
                "organic_time_responses": responded - sampled,
                "organic_time_query": t_query,
                "organic_time_reference": t_reference,
                "organic_time_rewards": rewarded - responded,
                "organic_time_weights": weighted - rewarded,
                "organic_time_total": weighted - started,
                "organic_queue_size": self._queue.size,
                "is_organic_sample": organic,
                "organic_iteration": next(self._numbers),
                "organic_sample_source": source,
            }
            stage = "log"
            async with serial.log:
                result = await self._call(
                    "log",
                    self._config.log_timeout,
                    self._hooks._log_results,
                    logs=logs,
                    reference=reference,
                    responses=responses,
                    rewards=rewards,
                    sample=sample,
                )
        except asyncio.CancelledError as cancelled:
            # stop() ran out of patience: the sample is reported, not lost.
            if isinstance(cancelled, _CancelledIn):
                stage = cancelled.stage
            await self._report(stage, sample, organic, cancelled)
            raise
        except _StageFailed as failed:
            await self._report(failed.stage, sample, organic, failed.error)
            raise IterationError(failed.stage, sample, organic) from failed.error
        except Exception as exc:  # the sample stage: the queue or a dataset raised
            await self._report(stage, sample, organic, exc)
            raise IterationError(stage, sample, organic) from exc
        times = {
            "sample": logs["organic_time_sample"],
            "query": t_query,
            "reference": t_reference,
            "responses": logs["organic_time_responses"],
            "rewards": logs["organic_time_rewards"],
            "weights": logs["organic_time_weights"],
            "log": time.perf_counter() - weighted,
            "total": logs["organic_time_total"],
        }
        stats.succeeded(organic, times)
        return result if isinstance(result, dict) else logs

    def _take_sample(self) -> tuple[Any, bool, str]:
        queue = self._queue
        if not queue.is_empty():
            try:
                sample = queue.sample()
            except SampleUnreadable as exc:
                raise _OrganicSampleFailed(exc) from exc
            if sample is not None:  # another iteration may have taken the last one
                return sample, True, "organic"
        dataset = self._pick_dataset()
        if dataset is None:
            return None, False, ""
        return dataset.sample(), False, type(dataset).__name__

    def _pick_dataset(self) -> SynthDatasetBase | None:
        return None if self._datasets is None else self._datasets.choose()

    async def _responses(self, sample: Any) -> tuple[tuple[Any, float], tuple[Any, float]]:
        """``_query_miners`` and ``_generate_reference`` side by side, each timed."""
        config, hooks = self._config, self._hooks
        query = asyncio.ensure_future(
            self._timed("query", config.query_timeout, hooks._query_miners, sample)
        )
        reference = asyncio.ensure_future(
            self._timed("reference", config.reference_timeout, hooks._generate_reference, sample)
        )
        both = (query, reference)
        try:
            await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            # Name the half that was still running, so a cancelled iteration is
            # reported in the stage that held it up.
            if query.done() and not reference.done():
                raise _CancelledIn("reference") from None
            raise
        finally:
            # On a failure or a cancellation, the other half is not left running.
            for task in both:
                task.cancel()
            await asyncio.gather(*both, return_exceptions=True)
        for task in both:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return query.result(), reference.result()

    async def _timed(
        self, stage: str, timeout: float | None, hook: Callable[..., Any], *args: Any
    ) -> tuple[Any, float]:
        begun = time.perf_counter()
        value = await self._call(stage, timeout, hook, *args)
        return value, time.perf_counter() - begun

    async def _call(
        self, stage: str, timeout: float | None, hook: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        """Call a hook, await it if it is async, under the stage's timeout."""
        try:
            result = hook(*args, **kw)
            if inspect.isawaitable(result):
                if timeout is None:
                    result = await result
                else:
                    result = await asyncio.wait_for(_as_coroutine(result), timeout)
        except asyncio.TimeoutError as exc:
            raise _StageFailed(stage, StageTimeout(stage, timeout or 0.0)) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _StageFailed(stage, exc) from exc
        return result

    def _serial_for_loop(self) -> _Serial:
        loop = asyncio.get_running_loop()
        serial = self._serial.get(loop)
        if serial is None:
            serial = self._serial[loop] = _Serial()
        return serial

    async def _report(self, stage: str, sample: Any, organic: bool, error: BaseException) -> None:
        """Count, keep and hand a failure to the scorer; never raises (but re-cancels)."""
        self._stats.failed(stage, organic)
        self.failures.append(FailedIteration(stage, sample, organic, error))
        timeout = self._config.log_timeout or _ERROR_HOOK_TIMEOUT
        try:
            await self._call("log", timeout, self._hooks._on_iteration_error, sample, stage, error)
        except _StageFailed as failed:
            log.error(
                f"_on_iteration_error raised while reporting a {stage} failure: {failed.error!r}",
                exc_info=failed.error,
            )


def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    """``asyncio.wait_for`` takes futures and coroutines; wrap anything else awaitable."""
    if inspect.iscoroutine(awaitable) or asyncio.isfuture(awaitable):
        return awaitable

    async def waiter() -> Any:
        return await awaitable

    return waiter()
