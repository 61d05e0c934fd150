"""What the loop has done: counters and recent stage timings, readable from any thread."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from organic_scoring._log import log
from organic_scoring._loop.stages import STAGES, Stage

__all__ = [
    "TIMED",
    "IntakeObserver",
    "ScoringStats",
    "StageTimes",
    "StatsObserver",
    "StatsRecorder",
    "is_fleet_ledger",
]

IntakeObserver = Callable[[str, int, float], None]
"""Told of every intake answer: ``(transport, status, seconds)``. Called on the
server's thread; it must be quick and must not block."""

TIMED = ("sample", "query", "reference", "responses", "rewards", "weights", "log", "total")
"""The durations one iteration reports to :meth:`StatsRecorder.succeeded`, in this order."""
_WINDOW = 512
_COUNTS = (
    "iterations",
    "organic_iterations",
    "synthetic_iterations",
    "skipped",
    "failed_iterations",
    "in_flight",
    "organic_scored",
    "organic_failed",
    "organic_in_flight",
    "organic_accepted",
    "organic_handler_errors",
    "organic_not_queued",
)

StatsObserver = Callable[[tuple[float, ...]], object]
"""Told of every scored iteration's durations (:data:`TIMED` order), on the loop's thread:
it must be quick and must not block. What it raises is logged."""


@dataclass(frozen=True)
class StageTimes:
    """Percentiles, in seconds, of one stage's recent durations."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float


@dataclass(frozen=True)
class ScoringStats:
    """A snapshot of the scoring loop's counters.

    Every counter is this process's, except ``queue_size``, ``queue_counters`` and
    :attr:`organic_unaccounted`, the queue's: on a fleet's shared queue the whole
    fleet's (``str()`` and ``repr()`` say which is which). The organic accounting is on
    the docs' Queues page, "Guarantees and their limits".
    """

    iterations: int
    """Iterations that ran every stage to the end."""
    organic_iterations: int
    synthetic_iterations: int
    skipped: int
    """Triggers that found neither an organic nor a synthetic sample."""
    failed_iterations: int
    """Iterations that ended in a failure (each was reported to ``_on_iteration_error``)."""
    failures: MappingProxyType[str, int]
    """Failures reported to ``_on_iteration_error``, per stage. Besides failed iterations
    this counts a broken organic queue (``"sample"``: the iteration went on with a
    synthetic sample) and an overridden ``loop_iteration`` that raised (``"iteration"``)."""
    in_flight: int
    organic_scored: int
    organic_failed: int
    organic_in_flight: int
    organic_accepted: int
    """Organic requests whose ``_on_organic_entry`` returned in this process (see
    ``receive_organic``); a fleet's count is ``queue_counters["accepted"]``."""
    organic_handler_errors: int
    """Organic requests whose ``_on_organic_entry`` raised in this process."""
    queue_size: int
    """Samples waiting in the queue (a shared queue: fleet-wide); -1 when the queue
    could not be read."""
    queue_counters: MappingProxyType[str, int]
    """The queue's own counters (``added``, ``sampled``, ``dropped``), when it keeps
    them; a shared queue's are fleet-wide."""
    active_scorer: bool = False
    """True while this scorer's loop runs iterations: it is running and, on a queue
    shared by several scorers, holds the scorer lock (the others stand by)."""
    oldest_iteration_age: float = 0.0
    """Seconds the oldest running iteration has run; 0 when none runs."""
    stuck_iterations: int = 0
    """Running iterations older than ``stuck_after``."""
    organic_not_queued: int = 0
    """Accepted organic requests whose ``_on_organic_entry`` returned without adding
    anything to the queue (a forgotten ``await``, or a handler that drops on purpose):
    they show in :attr:`organic_unaccounted`, and this says why."""
    stage_times: MappingProxyType[str, StageTimes] = field(
        default_factory=lambda: MappingProxyType({})
    )
    intake_requests: MappingProxyType[str, MappingProxyType[int, int]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Answers of the intakes: transport (``"axon"``, ``"btauth/1"``, ``"epistula"``) to
    HTTP status to count."""

    @property
    def organic_share(self) -> float:
        """``organic_iterations / iterations``, in [0, 1]; 0.0 before the first iteration."""
        if self.iterations == 0:
            return 0.0
        return self.organic_iterations / self.iterations

    @property
    def organic_carried_over(self) -> int:
        """Samples a persistent queue already held when it was opened (an earlier
        life's accepted requests); 0 for a queue that starts empty."""
        return self.queue_counters.get("carried_over", 0)

    @property
    def organic_unaccounted(self) -> int | None:
        """Accepted (or carried-over) organic samples not scored, failed, dropped, in
        flight or queued: 0 at rest; None when the queue keeps no ``dropped`` counter.

        On a fleet's shared queue, from its fleet-wide ledger, plus the samples Redis
        lost (``lost``) and those answered with an error after they left the waiting
        (``late``).
        """
        counters = self.queue_counters
        if is_fleet_ledger(counters):
            return (
                counters.get("lost", 0)
                + counters.get("late", 0)
                + counters["accepted"]
                - (
                    counters["scored"]
                    + counters["failed"]
                    + counters["dropped"]
                    + counters["leased"]
                    + counters["size"]
                )
            )
        dropped = counters.get("dropped")
        if dropped is None:
            return None
        dropped -= counters.get("dropped_earlier", 0)
        return (
            self.organic_accepted
            + self.organic_carried_over
            - (
                self.organic_scored
                + self.organic_failed
                + dropped
                + self.organic_in_flight
                + self.queue_size
            )
        )

    def __str__(self) -> str:
        """A few readable lines: counts, the organic accounting, stage times in ms."""
        failed = ", ".join(f"{stage} {count}" for stage, count in self.failures.items())
        counters = self.queue_counters
        fleet = is_fleet_ledger(counters)
        not_queued = f", not queued {self.organic_not_queued}" if self.organic_not_queued else ""
        iterations = (
            f"iterations{' in this process' if fleet else ''}: {self.iterations} (organic "
            f"{self.organic_iterations}, synthetic {self.synthetic_iterations}), skipped "
            f"{self.skipped}, failed {self.failed_iterations}"
            + (f" ({failed})" if failed else "")
            + f", in flight {self.in_flight}"
        )
        if fleet:
            lines = [
                iterations,
                f"organic requests in this process: accepted {self.organic_accepted}, "
                f"handler errors {self.organic_handler_errors}, scored {self.organic_scored}, "
                f"failed {self.organic_failed}, in flight {self.organic_in_flight}" + not_queued,
                f"organic requests fleet-wide (the shared queue): accepted "
                f"{counters['accepted']}, scored {counters['scored']}, failed "
                f"{counters['failed']}, dropped {counters['dropped']}, in flight "
                f"{counters['leased']}, queued {self.queue_size}, unaccounted "
                f"{self.organic_unaccounted}, redelivered {counters.get('redelivered', 0)}",
            ]
        else:
            lines = [
                iterations,
                f"organic requests: accepted {self.organic_accepted}, scored "
                f"{self.organic_scored}, failed {self.organic_failed}, in flight "
                f"{self.organic_in_flight}, queued {self.queue_size}, dropped "
                f"{counters.get('dropped', '?')}, unaccounted "
                f"{'?' if self.organic_unaccounted is None else self.organic_unaccounted}, "
                f"handler errors {self.organic_handler_errors}" + not_queued,
            ]
        if counters:
            lines.append(
                f"queue{' (fleet-wide)' if fleet else ''}: "
                + ", ".join(f"{k} {v}" for k, v in counters.items())
            )
        if self.stage_times:
            width = max(len(name) for name in self.stage_times)
            lines.append("stage times in ms (p50 / p90 / p99 / max, over the last n):")
            for name, times in self.stage_times.items():
                figures = " / ".join(
                    _ms(value) for value in (times.p50, times.p90, times.p99, times.max)
                )
                lines.append(f"  {name:<{width}}  {figures}  (n={times.count})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        """The dataclass's repr, the fleet-wide fields marked ``(fleet-wide)``."""
        fleet = is_fleet_ledger(self.queue_counters)
        parts = []
        for each in fields(self):
            value = f"{each.name}={getattr(self, each.name)!r}"
            if fleet and each.name in ("queue_size", "queue_counters"):
                value += " (fleet-wide)"
            parts.append(value)
        return f"{type(self).__name__}({', '.join(parts)})"

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain, JSON-ready data."""
        return {
            "iterations": self.iterations,
            "organic_iterations": self.organic_iterations,
            "synthetic_iterations": self.synthetic_iterations,
            "organic_share": self.organic_share,
            "skipped": self.skipped,
            "failed_iterations": self.failed_iterations,
            "failures": dict(self.failures),
            "in_flight": self.in_flight,
            "organic_scored": self.organic_scored,
            "organic_failed": self.organic_failed,
            "organic_in_flight": self.organic_in_flight,
            "organic_accepted": self.organic_accepted,
            "organic_carried_over": self.organic_carried_over,
            "organic_handler_errors": self.organic_handler_errors,
            "organic_not_queued": self.organic_not_queued,
            "organic_unaccounted": self.organic_unaccounted,
            "queue_size": self.queue_size,
            "queue_counters": dict(self.queue_counters),
            "active_scorer": self.active_scorer,
            "oldest_iteration_age": self.oldest_iteration_age,
            "stuck_iterations": self.stuck_iterations,
            "stage_times": {k: vars(v) for k, v in self.stage_times.items()},
            "intake_requests": {t: dict(by) for t, by in self.intake_requests.items()},
        }


class StatsRecorder:
    """The engine's mutable counters behind one lock; :meth:`snapshot` copies them out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTS, 0)  # named as ScoringStats's fields
        self._failures: dict[str, int] = dict.fromkeys((*STAGES, "iteration"), 0)
        self._intake: dict[str, dict[int, int]] = {}
        self._intake_observers: tuple[IntakeObserver, ...] = ()
        self._times: dict[str, deque[float]] = {k: deque(maxlen=_WINDOW) for k in TIMED}
        self._windows = tuple(self._times.values())
        self._observers: tuple[StatsObserver, ...] = ()

    def add_observer(self, observer: StatsObserver) -> None:
        """Tell ``observer`` of every scored iteration from now on (see :data:`StatsObserver`)."""
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove_observer(self, observer: StatsObserver) -> None:
        """Stop telling ``observer``; nothing happens if it was not added."""
        with self._lock:
            observers = list(self._observers)
            if observer in observers:
                observers.remove(observer)
            self._observers = tuple(observers)

    def _move(self, **by: int) -> None:
        with self._lock:
            for name, n in by.items():
                self._counts[name] += n

    def started(self) -> None:
        self._move(in_flight=1)

    def accepted(self) -> None:
        self._move(organic_accepted=1)

    def handler_failed(self) -> None:
        self._move(organic_handler_errors=1)

    def not_queued(self) -> None:
        self._move(organic_not_queued=1)

    def intake(self, transport: str, status: int, seconds: float) -> None:
        """An intake answered a request with ``status`` after ``seconds``."""
        with self._lock:
            by_status = self._intake.setdefault(transport, {})
            by_status[status] = by_status.get(status, 0) + 1
        for observer in self._intake_observers:
            try:
                observer(transport, status, seconds)
            except Exception as exc:  # an exporter's bug must not fail a request
                log.error(f"an intake observer raised {exc!r}", exc_info=exc)

    def add_intake_observer(self, observer: IntakeObserver) -> None:
        """Tell ``observer`` of every intake answer from now on."""
        with self._lock:
            self._intake_observers = (*self._intake_observers, observer)

    def remove_intake_observer(self, observer: IntakeObserver) -> None:
        """Stop telling ``observer``; nothing happens if it was not added."""
        with self._lock:
            self._intake_observers = tuple(o for o in self._intake_observers if o != observer)

    def progress(self) -> tuple[int, int]:
        """Iterations that ended (scored or failed), and triggers skipped, so far."""
        with self._lock:
            c = self._counts
            return c["iterations"] + c["failed_iterations"], c["skipped"]

    def sampled(self, organic: bool) -> None:
        if organic:
            self._move(organic_in_flight=1)

    def skipped(self) -> None:
        self._move(in_flight=-1, skipped=1)

    def succeeded(self, organic: bool, times: tuple[float, ...]) -> None:
        """An iteration ran every stage; ``times`` are its durations in :data:`TIMED` order."""
        with self._lock:
            c = self._counts
            c["in_flight"] -= 1
            c["iterations"] += 1
            if organic:
                c["organic_iterations"] += 1
                c["organic_in_flight"] -= 1
                c["organic_scored"] += 1
            else:
                c["synthetic_iterations"] += 1
            for window, value in zip(self._windows, times):  # noqa: B905 - both len(TIMED)
                window.append(value)
        for observer in self._observers:
            try:
                observer(times)
            except Exception as exc:  # an observer's bug must not fail the iteration
                log.error(f"a stats observer raised {exc!r}", exc_info=exc)

    def failed(self, stage: Stage, organic: bool) -> None:
        """An iteration ended in a failure in ``stage``."""
        with self._lock:
            c = self._counts
            c["in_flight"] -= 1
            c["failed_iterations"] += 1
            self._failures[stage] += 1
            if organic:
                c["organic_in_flight"] -= 1
                c["organic_failed"] += 1

    def fault(self, stage: Stage, *, failed_iteration: bool) -> None:
        """A failure reported outside the runner's iterations; ``failed_iteration``: it
        failed a call of ``loop_iteration`` (rather than a part of one that went on)."""
        with self._lock:
            self._failures[stage] += 1
            if failed_iteration:
                self._counts["failed_iterations"] += 1

    def snapshot(
        self,
        queue_size: int,
        queue_counters: dict[str, int],
        *,
        active: bool = False,
        oldest: float = 0.0,
        stuck: int = 0,
    ) -> ScoringStats:
        with self._lock:
            counts: dict[str, Any] = dict(self._counts)
            failures = {k: v for k, v in self._failures.items() if v}
            intake = {t: MappingProxyType(dict(by)) for t, by in self._intake.items()}
            times = {k: list(v) for k, v in self._times.items() if v}
        return ScoringStats(
            **counts,
            failures=MappingProxyType(failures),
            queue_size=queue_size,
            queue_counters=MappingProxyType(dict(queue_counters)),
            active_scorer=active,
            oldest_iteration_age=oldest,
            stuck_iterations=stuck,
            stage_times=MappingProxyType({k: _percentiles(v) for k, v in times.items()}),
            intake_requests=MappingProxyType(intake),
        )


def is_fleet_ledger(counters: Mapping[str, int]) -> bool:
    """Whether ``counters`` are a shared queue's fleet-wide ledger (RedisOrganicQueue)."""
    return {"accepted", "scored", "failed", "leased", "dropped", "size"} <= counters.keys()


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _percentiles(values: list[float]) -> StageTimes:
    p50, p90, p99 = np.percentile(values, (50, 90, 99))
    return StageTimes(len(values), float(p50), float(p90), float(p99), max(values))
