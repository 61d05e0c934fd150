"""A histogram that is cheap to feed: observations wait in a deque, buckets are counted
when read.

``prometheus_client.Histogram.observe`` takes a lock and walks the buckets on every
call, for every value. The scoring loop reports several stage times per iteration
and Prometheus reads them every few seconds; so here recording an iteration is one
``deque.append`` of its times (atomic, no lock, no Python frame: the deque's own
``append`` is the stats observer), and the buckets are counted, vectorised, when the
histogram is read by the thread serving a scrape. Single observations
(:meth:`BufferedHistogram.observe`) are folded on the recording thread once
:data:`FOLD_AT` are waiting.

Rows wait in a bounded deque: if nobody scrapes for :data:`ROWS_KEPT` iterations the
oldest rows are dropped (and a warning says so at the next scrape); the counters,
read from the scorer, stay exact.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from organic_scoring._log import log

__all__ = ["FOLD_AT", "ROWS_KEPT", "BufferedHistogram", "HistogramSeries"]

FOLD_AT = 8192
"""Waiting single observations that make the recording thread count them."""

ROWS_KEPT = 16384
"""Rows kept between two reads (about 5 MB); older ones are dropped."""


@dataclass(frozen=True)
class HistogramSeries:
    """One labelled series of a histogram, as Prometheus exposes it."""

    buckets: tuple[tuple[float, int], ...]
    """``(upper bound, cumulative count)`` pairs, the last bound ``inf``."""
    count: int
    sum: float


class BufferedHistogram:
    """Histogram series keyed by a label value, fed from any thread.

    Args:
        bounds: The finite bucket upper bounds, increasing; ``+Inf`` is implied.
        keys: Label values whose series exist (at zero) before any observation.
        accept: When given, observations under other keys are ignored.
        row_keys: The keys of the values :meth:`observe_row` is given, in order.

    Non-finite values are not counted.
    """

    def __init__(
        self,
        bounds: Sequence[float],
        keys: Iterable[str] = (),
        accept: Iterable[str] | None = None,
        row_keys: Sequence[str] = (),
    ) -> None:
        edges = np.asarray(bounds, dtype=float)
        if edges.ndim != 1 or not len(edges) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bounds must be increasing finite numbers, got {bounds!r}")
        if not np.all(np.isfinite(edges)):
            raise ValueError("bounds must be finite; the +Inf bucket is implied")
        self._edges = edges
        self._accept = None if accept is None else frozenset(accept)
        self._row_keys = tuple(row_keys)
        self._width = len(self._row_keys)
        wanted = [i for i, key in enumerate(self._row_keys) if accept is None or key in accept]
        self._row_columns = np.asarray(wanted, dtype=np.intp)
        self._row_taken = [self._row_keys[i] for i in wanted]
        self._fold_lock = threading.Lock()  # one fold at a time
        self._rows: deque[Sequence[float]] = deque(maxlen=ROWS_KEPT)
        self._warned = False
        self._pending: deque[tuple[str, float]] = deque()
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}
        for key in keys:
            self._series(key)

    def observe(self, key: str, value: float) -> None:
        """Record one value under ``key``. Safe from any thread; never blocks."""
        pending = self._pending
        pending.append((key, value))
        if len(pending) >= FOLD_AT:
            self.fold()

    @property
    def record_row(self) -> Callable[[Sequence[float]], None]:
        """Records one row: one value per key of ``row_keys``, in that order (a sequence
        the caller will not change). Safe from any thread, never blocks; it is the
        bound ``append`` of a deque, so calling it runs no Python code."""
        return self._rows.append

    def fold(self) -> None:
        """Count the waiting observations into the buckets."""
        with self._fold_lock:
            pending, rows = self._pending, self._rows
            # Exactly what is there now (popleft is atomic): writers may go on appending.
            if pending:
                grouped: dict[str, list[float]] = {}
                for _ in range(len(pending)):
                    key, value = pending.popleft()
                    grouped.setdefault(key, []).append(value)
                for key, values in grouped.items():
                    if self._accept is None or key in self._accept:
                        self._count([key], np.asarray(values, dtype=float)[:, None])
            if rows:
                if len(rows) == ROWS_KEPT and not self._warned:
                    self._warned = True
                    log.warning(
                        f"metrics: more than {ROWS_KEPT} iterations since the last scrape; "
                        "the stage-time histogram kept the latest only (scrape more often)"
                    )
                taken = [rows.popleft() for _ in range(len(rows))]
                width = self._width
                matrix = np.fromiter(
                    itertools.chain.from_iterable(taken), dtype=float, count=len(taken) * width
                ).reshape(len(taken), width)
                self._count(self._row_taken, matrix[:, self._row_columns])

    def read(self) -> dict[str, HistogramSeries]:
        """Every series, current up to this call."""
        self.fold()
        with self._fold_lock:
            edges = [*map(float, self._edges), float("inf")]
            result = {}
            for key, counts in self._counts.items():
                cumulative = np.cumsum(counts)
                result[key] = HistogramSeries(
                    buckets=tuple(zip(edges, map(int, cumulative), strict=True)),
                    count=int(cumulative[-1]),
                    sum=self._sums[key],
                )
            return result

    def _count(self, keys: Sequence[str], values: np.ndarray) -> None:
        """Add ``values`` (one column per key) to the keys' buckets and sums."""
        finite = np.isfinite(values)
        slots = len(self._edges) + 1
        index = np.searchsorted(self._edges, np.where(finite, values, 0.0), side="left")
        index += np.arange(len(keys)) * slots  # one bincount for every column at once
        counts = np.bincount(index[finite], minlength=len(keys) * slots).reshape(len(keys), slots)
        sums = np.where(finite, values, 0.0).sum(axis=0)
        for key, column, total in zip(keys, counts, sums, strict=True):
            self._series(key)[:] += column
            self._sums[key] += float(total)

    def _series(self, key: str) -> np.ndarray:
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = np.zeros(len(self._edges) + 1, dtype=np.int64)
            self._sums[key] = 0.0
        return counts
