"""``OrganicScoringBase``: the class a validator subclasses.

The library's state lives in ``_organic_queue`` and in ``_OrganicScoringBase__*``
attributes; the read-only views may be shadowed by subclass attributes (see
``docs/loop.md``).
"""

from __future__ import annotations

import inspect
import operator
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from organic_scoring._defaults import DEFAULT_STOP_TIMEOUT, DEFAULT_STUCK_AFTER
from organic_scoring._log import log
from organic_scoring._loop.engine import Engine
from organic_scoring._loop.hooks import call_hook, check_signatures, overrides
from organic_scoring._loop.iteration import IterationRunner
from organic_scoring._loop.runtime import Runtime
from organic_scoring._loop.stages import Stage
from organic_scoring._loop.stats import ScoringStats, StatsRecorder
from organic_scoring._loop.trigger import Trigger
from organic_scoring._redact import describe_error
from organic_scoring.config import ScoringConfig
from organic_scoring.config import Trigger as TriggerName
from organic_scoring.errors import FailedIteration, QueueUnavailable
from organic_scoring.intake._identity import ANY_HOTKEY, AnyHotkey
from organic_scoring.organic_queue import OrganicQueue, OrganicQueueBase
from organic_scoring.organic_queue._base import AddsSeen, adds_seen
from organic_scoring.synth_dataset import SynthDatasetBase
from organic_scoring.synth_dataset._mixture import check_weights

__all__ = ["OrganicScoringBase"]

_T = TypeVar("_T")
_S = TypeVar("_S", bound="OrganicScoringBase")


class _view(Generic[_T]):
    """A read-only non-data descriptor, so a subclass attribute of the same name may shadow it."""

    def __init__(self, fget: Callable[[Any], _T]) -> None:
        self._fget = fget
        self.__doc__ = fget.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _view[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> _view[_T] | _T:
        if obj is None:
            return self
        return self._fget(obj)


class OrganicScoringBase(ABC):
    """Base class of a validator's organic scoring: subclass it and implement the hooks.

    Required hooks: :meth:`_on_organic_entry`, :meth:`_query_miners`,
    :meth:`_generate_rewards`, :meth:`_set_weights`. Optional: :meth:`_generate_reference`,
    :meth:`_log_results`, :meth:`_on_iteration_error`, and for the intake
    :meth:`_blacklist_fn`, :meth:`_priority_fn`, :meth:`_verify_fn`. Hooks are normally
    ``async def``; plain functions work too (the loop runs its plain hooks on worker threads).

    Then call :meth:`start` and :meth:`stop` (or use ``with`` / ``async with``), and
    :meth:`increment_step` once per validator step when ``trigger="steps"``.
    """

    def __init__(
        self,
        axon: Any = None,
        synth_dataset: SynthDatasetBase | Sequence[SynthDatasetBase] | None = None,
        trigger_frequency: float = 15,
        trigger: TriggerName = "seconds",
        trigger_frequency_min: float | None = None,
        trigger_scaling_factor: float = 5,
        organic_queue: OrganicQueueBase | None = None,
        *,
        synth_dataset_weights: Sequence[float] | None = None,
        max_concurrent_iterations: int = 1,
        query_timeout: float | None = None,
        reference_timeout: float | None = None,
        rewards_timeout: float | None = None,
        weights_timeout: float | None = None,
        log_timeout: float | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        allowed_hotkeys: Iterable[str] | Callable[[str], bool] | AnyHotkey | None = None,
        trigger_jitter: float = 0.0,
        seed: int | None = None,
        redact: bool | Callable[[Any], Any] = False,
        stuck_after: float = DEFAULT_STUCK_AFTER,
        release_when_stuck: bool = False,
    ) -> None:
        """Validate the settings and prepare the loop; nothing runs until :meth:`start`.

        Args:
            axon: A bittensor 9/10 axon to take organic requests through; the handler is
                ``_on_organic_entry``, for the synapse type its first parameter names.
                Not available on bittensor 11 (use :mod:`organic_scoring.http`).
            synth_dataset: One dataset, several, or None. Used when no organic sample is
                waiting; with neither, the trigger is skipped.
            trigger_frequency: Seconds between iteration starts (``"seconds"``), or steps
                per iteration (``"steps"``, at least 1), with an empty organic queue.
            trigger: ``"seconds"``, ``"steps"`` or ``"poisson"`` (query times drawn
                at a fixed mean rate, whatever the queue holds: no annealing, no jitter).
            trigger_frequency_min: The floor the period anneals to as organic traffic
                backs up. Default: 2 or ``trigger_frequency``, whichever is smaller; a
                ``trigger_frequency`` below it is logged, and the loop runs at the floor.
            trigger_scaling_factor: Queue entries per unit taken off the period.
            organic_queue: Where organic samples wait. Default: a new
                :class:`~organic_scoring.organic_queue.OrganicQueue`.
            synth_dataset_weights: Relative weights for choosing among several datasets.
            max_concurrent_iterations: Iterations allowed in flight at once.
            query_timeout, reference_timeout, rewards_timeout, weights_timeout,
            log_timeout: Per-stage limits in seconds (None: no limit).
            backoff_initial, backoff_max: The pause after a failed iteration; it doubles
                while failures repeat, up to ``backoff_max``, and resets on a success.
            allowed_hotkeys: Who may send organic requests, for every intake of this
                scorer that does not say otherwise: SS58 hotkeys, a callable
                ``(hotkey) -> bool``, or :data:`~organic_scoring.ANY_HOTKEY` (None: each
                intake decides). Checked by the intake before any signature or
                ``_blacklist_fn``.
            trigger_jitter: ``j`` in [0, 1), ``"seconds"`` only: each period is drawn
                uniformly from ``[m * (1 - j), m * (1 + j)]`` around the annealed mean
                ``m``, and arrivals no longer cut a wait short. 0 keeps plain periods.
            seed: Seeds the loop's own random draws (jittered periods, the choice
                among datasets), for reproducible runs.
            redact: Keep no sample where it can be read back or exported
                (:attr:`recent_failures`, ``IterationError.sample``) and log failures
                without exception messages, which often quote their input. True puts a
                :class:`~organic_scoring.Redacted` in place of each sample; a function of
                a sample returns what may be kept of it. Hooks still get real samples.
                A function also applies to an ``OrganicReplayDataset`` without a
                ``redact`` of its own; True refuses such a dataset.
            stuck_after: Seconds an iteration may run before it counts as stuck; when
                every slot is stuck the loop logs a warning.
            release_when_stuck: On a shared queue, give up the scorer role while every
                slot is stuck, so a standby takes over; take it back once a slot frees.

        Raises:
            ValueError: A setting is out of range or of the wrong kind (``synth_dataset``
                included), or ``redact=True`` meets a replay dataset that would keep raw
                samples (the message names it).
            TypeError: ``organic_queue`` is of the wrong type, or a hook cannot take the
                arguments it is called with (the message names it).
        """
        # The settings are ScoringConfig's fields, passed on by name.
        settings = {k: v for k, v in locals().items() if k in ScoringConfig.model_fields}
        config = ScoringConfig.model_validate(settings)
        datasets = _datasets(synth_dataset, synth_dataset_weights)
        check_signatures(self)
        if organic_queue is None:
            organic_queue = OrganicQueue()
        elif not isinstance(organic_queue, OrganicQueueBase):
            raise TypeError(
                "organic_queue must be an OrganicQueueBase instance or None, "
                f"got {type(organic_queue).__name__}"
            )
        self._organic_queue = organic_queue
        stats = StatsRecorder()
        schedule = Trigger(config, organic_queue)
        runner = IterationRunner(
            self,
            config,
            organic_queue,
            datasets,
            synth_dataset_weights,
            stats,
            reference_overridden=overrides(self, OrganicScoringBase, "_generate_reference"),
        )
        engine = Engine(self.loop_iteration, runner, schedule, config, organic_queue)
        self.__runtime = Runtime(config, axon, datasets, stats, schedule, runner, engine)
        if axon is not None:
            from organic_scoring.axon import attach_axon  # the transport, only when asked for

            # The original package's way: open to every hotkey unless the scorer says
            # otherwise (start() warns).
            open_to_all = config.allowed_hotkeys is None
            attach_axon(
                self,
                axon,
                allowed_hotkeys=ANY_HOTKEY if open_to_all else None,
                allow_unsigned_body=True,  # as the original did; attach_axon warns
            )

    if not TYPE_CHECKING:  # hidden from type checkers: it would make every name valid

        def __getattr__(self, name: str) -> Any:
            # The usual lookup failed: a subclass's __init__ may not have called super's.
            cls = type(self).__name__
            ours = name == "_organic_queue" or name.startswith("_OrganicScoringBase__")
            # A read-only view (stats, step, ...) whose getter found no state lands here too.
            uninitialised = "_OrganicScoringBase__runtime" not in vars(self)
            if ours or (uninitialised and hasattr(type(self), name)):
                message = (
                    f"{cls} is not initialised: {cls}.__init__ must call "
                    "super().__init__(...) (OrganicScoringBase.__init__ builds the loop, "
                    "its queue and its settings) before the scorer is used"
                )
            else:
                message = f"{cls!r} object has no attribute {name!r}"
            raise AttributeError(message, name=name, obj=self)

    # -- hooks: required -----------------------------------------------------------

    @abstractmethod
    async def _on_organic_entry(self, synapse: Any) -> Any:
        """Handle one organic request and add what scoring needs to ``self._organic_queue``.

        The first parameter's annotation names the request type: a ``bt.Synapse``
        subclass for the axon intake (bittensor 9/10), a pydantic model for the
        signed-HTTP intake (11). The return value is the response to the caller.
        """

    @abstractmethod
    async def _query_miners(self, sample: Any) -> Any:
        """Query miners with ``sample``; return their responses in any shape."""

    @abstractmethod
    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        """Turn the miners' ``responses`` (and the ``reference``) into rewards."""

    @abstractmethod
    async def _set_weights(self, rewards: Any) -> None:
        """Turn ``rewards`` into weights. Never runs concurrently with itself."""

    # -- hooks: optional -----------------------------------------------------------

    async def _generate_reference(self, sample: Any) -> Any:
        """Build a reference answer for ``sample``; runs beside ``_query_miners``. Default: None."""
        return None

    async def _log_results(
        self,
        logs: dict[str, Any],
        reference: Any,
        responses: Any,
        rewards: Any,
        sample: Any,
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Record one iteration; return the logs. Never runs concurrently with itself.

        ``logs`` holds the stage times and the keys listed on the docs' loop page ("The logs").
        The default logs a one-line summary of them at debug level, never the sample, the
        reference, the responses or the rewards.
        """
        kind = "organic" if logs["is_organic_sample"] else logs["organic_sample_source"]
        log.debug(
            f"iteration {logs['organic_iteration']} ({kind}): "
            f"total {logs['organic_time_total']:.3f}s, "
            f"responses {logs['organic_time_responses']:.3f}s, "
            f"rewards {logs['organic_time_rewards']:.3f}s, "
            f"weights {logs['organic_time_weights']:.3f}s, "
            f"queue {logs['organic_queue_size']}"
        )
        return logs

    async def _on_iteration_error(self, sample: Any, stage: Stage, exc: BaseException) -> None:
        """Called once for every failure, after it was counted (the docs' loop page,
        "When something fails").

        Args:
            sample: The iteration's sample; what the queue stored for an entry that
                could not be decoded; None when there was none yet (a broken queue).
            stage: ``"sample"``, ``"query"``, ``"reference"``, ``"rewards"``,
                ``"weights"``, ``"log"``, or ``"iteration"`` (an overridden
                :meth:`loop_iteration` raised outside any stage).
            exc: What was raised, any ``BaseException``:
                :class:`~organic_scoring.errors.StageTimeout` for a timeout,
                :class:`asyncio.CancelledError` when ``stop()`` cancelled the iteration.

        The default logs it with its traceback (with ``redact``: type and frames only).
        """
        redacting = self.__runtime.config.redact is not False
        log.error(
            f"organic scoring iteration failed in the {stage} stage: "
            f"{describe_error(exc, redacting)}",
            exc_info=None if redacting else exc,
        )

    async def _blacklist_fn(self, synapse: Any) -> tuple[bool, str]:
        """Return ``(True, reason)`` to refuse an organic request. Default: allow all."""
        return False, ""

    async def _priority_fn(self, synapse: Any) -> float:
        """The priority of an organic request; higher is served first. Default: 0."""
        return 0.0

    async def _verify_fn(self, synapse: Any) -> bool:
        """Extra verification of an organic request, after the transport's signature and
        nonce checks; return False (or raise) to refuse. Default: accept."""
        return True

    # -- intake ------------------------------------------------------------------

    async def receive_organic(self, request: Any) -> Any:
        """Hand one organic request to :meth:`_on_organic_entry`; return its response.

        Intakes (built-in and custom) call this for every request that passed their
        checks; it counts the request for the organic accounting (accepted, not queued,
        or a handler error, re-raised), in a fleet queue's ledger too.
        """
        queue = self._organic_queue
        seen = AddsSeen()
        token = adds_seen.set(seen)
        try:
            result = await call_hook(self._on_organic_entry, request)
        except BaseException:
            self.__runtime.stats.handler_failed()
            raise
        finally:
            adds_seen.reset(token)
        self.__runtime.stats.accepted()
        # Only a queue known to announce its adds can tell; a stream may add later.
        if seen.count == 0 and type(queue)._announces_adds and not _is_stream(result):
            self.__not_queued()
        try:
            await self._organic_queue.acount_accepted()
        except Exception as exc:
            log.warning(
                "organic intake: the shared queue did not count an accepted request "
                f"({type(exc).__name__}); the fleet's organic_unaccounted reads one less"
            )
        return result

    def __not_queued(self) -> None:
        """Count a request whose handler added nothing to the queue; say so once."""
        state = self.__runtime
        state.stats.not_queued()
        if state.warned_not_queued:
            return
        state.warned_not_queued = True
        log.warning(
            f"{type(self).__name__}._on_organic_entry returned without adding anything to "
            "self._organic_queue: the request will not be scored (counted in "
            "stats.organic_not_queued). A forgotten `await` on "
            "`self._organic_queue.aadd(...)` does this; a handler that drops requests on "
            "purpose may ignore this message, logged once per scorer."
        )

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the loop: on its own daemon thread from synchronous code, or as a task
        of the running event loop when called inside one.

        Raises:
            RuntimeError: The loop is already running (or still stopping).
        """
        state = self.__runtime
        if state.axon is not None and state.config.allowed_hotkeys is None and not state.warned:
            state.warned = True
            log.warning(
                "organic intake: the axon given to the constructor takes organic requests "
                "from any hotkey; pass allowed_hotkeys= to say who may call"
            )
        state.engine.start()

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the loop; safe from any thread and idempotent.

        No new iteration starts; in-flight ones get ``timeout`` seconds, then are
        cancelled (and reported). From another thread this returns when the loop has
        wound down. On the loop's own thread it cannot wait without blocking that loop,
        so it requests the stop and returns; use ``await aclose()`` there to wait.
        """
        self.__runtime.engine.stop(timeout)

    async def aclose(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the loop and wait for it to wind down, without blocking the event loop."""
        await self.__runtime.engine.aclose(timeout)

    async def start_loop(self) -> None:
        """Run the loop in the calling task until :meth:`stop` (or cancellation).

        For callers who own their event loop; :meth:`start` is the usual way.
        """
        await self.__runtime.engine.run_here()

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self: _S) -> _S:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- steps and timing ----------------------------------------------------------

    def increment_step(self, n: int = 1) -> None:
        """Count ``n`` validator steps; wakes the loop at once. Safe from any thread.

        Only the ``"steps"`` trigger uses the counter; under ``"seconds"`` this is
        harmless and has no effect on when iterations run.
        """
        self.__runtime.trigger.increment(_steps("increment_step", n))

    def set_step(self, step: int) -> None:
        """Set the step counter to ``step``; wakes the loop at once. Safe from any thread."""
        self.__runtime.trigger.set_step(_steps("set_step", step))

    def sample_rate_dynamic(self) -> float:
        """The current annealed period in seconds, or step threshold (an int) for steps.

        With ``trigger_jitter``, the mean the next period will be drawn around.
        """
        value = self.__runtime.trigger.period()
        return int(value) if self.__runtime.config.trigger == "steps" else value

    async def wait_until_next(self, timer_elapsed: float = 0) -> None:
        """Wait until the next iteration is due, ``timer_elapsed`` seconds after the
        previous one started (``"seconds"``), or until the step counter reaches the
        threshold, which is then spent (``"steps"``). For callers driving
        :meth:`loop_iteration` themselves; do not mix with :meth:`start`.
        """
        last_start = time.monotonic() - timer_elapsed
        await self.__runtime.trigger.wait_due(last_start, lambda: False)

    async def loop_iteration(self) -> dict[str, Any]:
        """Run one iteration now and return its logs (``{}`` if there was no sample).

        Can be awaited directly, without :meth:`start`.

        Raises:
            IterationError: A stage raised or timed out; it was already counted and
                handed to :meth:`_on_iteration_error`.
        """
        return await self.__runtime.runner.run()

    def holds_scorer_role(self) -> bool:
        """Whether this process may set weights now: its loop runs and, on a queue shared
        by a fleet, it holds the scorer lock under its current fencing token, checked
        in Redis at the call (blocking: one round trip). Give it to
        :class:`~organic_scoring.weights.WeightSetter` as ``active=``."""
        return self.__runtime.engine.holds_role()

    # -- read-only views -----------------------------------------------------------

    @_view
    def organic_queue(self) -> OrganicQueueBase:
        """The organic queue (also reachable as ``self._organic_queue``)."""
        return self._organic_queue

    @_view
    def config(self) -> ScoringConfig:
        """The validated settings."""
        return self.__runtime.config

    @_view
    def axon(self) -> Any:
        """The axon given at construction, or None."""
        return self.__runtime.axon

    @_view
    def synth_datasets(self) -> tuple[SynthDatasetBase, ...]:
        """The synthetic datasets, possibly empty."""
        return self.__runtime.datasets

    @_view
    def is_running(self) -> bool:
        """True from :meth:`start` until the loop has wound down."""
        return self.__runtime.engine.is_running

    @_view
    def step(self) -> int:
        """The step counter: steps counted and not yet spent on an iteration."""
        return self.__runtime.trigger.steps

    @_view
    def stats(self) -> ScoringStats:
        """A snapshot of the loop's counters and recent stage timings."""
        queue = self._organic_queue
        counters = getattr(queue, "counters", None)
        try:
            queue_counters = counters() if callable(counters) else {}
            if not isinstance(queue_counters, dict):
                queue_counters = dict(vars(queue_counters))
            size = queue_counters.get("size")
            if size is None:  # read apart only when the counters do not carry it
                size = queue.size
        except QueueUnavailable:  # a store that is down: the loop's counters still count
            queue_counters, size = {}, -1
        rt = self.__runtime
        return rt.stats.snapshot(
            size,
            queue_counters,
            active=rt.engine.is_active,
            oldest=rt.runner.oldest_age(),
            stuck=rt.runner.stuck(rt.config.stuck_after),
        )

    @_view
    def recent_failures(self) -> tuple[FailedIteration, ...]:
        """The last few failed iterations, oldest first, with their samples (redacted
        when ``redact`` is on)."""
        return tuple(self.__runtime.runner.failures)


def _is_stream(result: Any) -> bool:
    """An async iterator, or a response that streams one (a streaming synapse's)."""
    return hasattr(result, "__aiter__") or hasattr(result, "body_iterator")


def _datasets(
    synth_dataset: SynthDatasetBase | Sequence[SynthDatasetBase] | None,
    weights: Sequence[float] | None,
) -> tuple[SynthDatasetBase, ...]:
    accepts = "a SynthDatasetBase, a sequence of them, or None"
    given: object = synth_dataset  # checked as whatever it is, not as annotated
    if given is None:
        datasets: tuple[Any, ...] = ()
    elif isinstance(given, SynthDatasetBase):
        datasets = (given,)
    elif isinstance(given, str):
        raise ValueError(
            f"synth_dataset must be {accepts}, got the string {given!r}: a string is "
            "not a dataset (for the bundled one, pass default_dataset() from "
            "organic_scoring.synth_dataset)"
        )
    elif isinstance(given, Sequence) and not isinstance(given, bytes):
        datasets = tuple(given)
    else:
        raise ValueError(f"synth_dataset must be {accepts}, got {_what(given)}")
    for index, dataset in enumerate(datasets):
        if not isinstance(dataset, SynthDatasetBase):
            raise ValueError(
                f"synth_dataset[{index}] must be a SynthDatasetBase, got {_what(dataset)}"
            )
    if weights is not None:
        check_weights(weights, len(datasets), name="synth_dataset_weights")
    return datasets


def _steps(method: str, n: object) -> int:
    """``n`` as an int (numpy integers included), or a TypeError naming the call."""
    try:
        return operator.index(n)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{method}() takes an int step count, got {type(n).__name__} {n!r:.40}"
        ) from None


def _what(given: object) -> str:
    """What was passed where a dataset belongs, with the fix for a class or a function."""
    if isinstance(given, type):
        return f"the class {given.__name__}: pass an instance, {given.__name__}(...)"
    if inspect.isfunction(given):
        return f"the function {given.__name__}: call it, {given.__name__}()"
    return type(given).__name__


def runtime(scoring: OrganicScoringBase) -> Runtime:
    """The scorer's private runtime: the one way the library's intakes and exporters
    reach its statistics and settings. Not for validator code."""
    state: Runtime = scoring._OrganicScoringBase__runtime  # type: ignore[attr-defined]
    return state
