"""A histogram that is cheap to feed: observations queue up, buckets are counted when read.

``prometheus_client.Histogram.observe`` takes a lock and walks the buckets on every
call. The scoring loop records several stage times per iteration, from the loop's
thread, and Prometheus reads them every few seconds; so here an observation is one
``deque.append`` (atomic, no lock) and the buckets are counted, vectorised, when the
histogram is read or when enough observations have piled up.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BufferedHistogram", "HistogramSeries"]

_FOLD_AT = 4096
"""Pending observations that trigger a fold on the recording thread (bounds memory)."""


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
    """

    def __init__(
        self,
        bounds: Sequence[float],
        keys: Iterable[str] = (),
        accept: Iterable[str] | None = None,
    ) -> None:
        edges = np.asarray(bounds, dtype=float)
        if edges.ndim != 1 or not len(edges) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bounds must be increasing finite numbers, got {bounds!r}")
        if not np.all(np.isfinite(edges)):
            raise ValueError("bounds must be finite; the +Inf bucket is implied")
        self._edges = edges
        self._accept = None if accept is None else frozenset(accept)
        self._pending: deque[tuple[str, float] | Mapping[str, float]] = deque()
        self._fold_lock = threading.Lock()
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}
        for key in keys:
            self._series(key)

    def observe(self, key: str, value: float) -> None:
        """Record one value under ``key``. Safe from any thread; never blocks."""
        pending = self._pending
        pending.append((key, value))
        if len(pending) >= _FOLD_AT:
            self.fold()

    def observe_all(self, values: Mapping[str, float]) -> None:
        """Record one value per key of ``values`` (a mapping the caller will not change)."""
        pending = self._pending
        pending.append(values)
        if len(pending) >= _FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Count the pending observations into the buckets."""
        with self._fold_lock:
            pending = self._pending
            grouped: dict[str, list[float]] = {}
            for _ in range(len(pending)):
                item = pending.popleft()
                pairs = item.items() if isinstance(item, Mapping) else (item,)
                for key, value in pairs:
                    grouped.setdefault(key, []).append(value)
            accept = self._accept
            for key, values in grouped.items():
                if accept is not None and key not in accept:
                    continue
                array = np.asarray(values, dtype=float)
                array = array[np.isfinite(array)]
                counts = self._series(key)
                counts += np.bincount(
                    np.searchsorted(self._edges, array, side="left"), minlength=len(counts)
                )
                self._sums[key] += float(array.sum())

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

    def _series(self, key: str) -> np.ndarray:
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = np.zeros(len(self._edges) + 1, dtype=np.int64)
            self._sums[key] = 0.0
        return counts
