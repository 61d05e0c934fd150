"""Organic against synthetic rewards, per miner: do they answer both kinds alike?
(Welch's t-test per uid; ``docs/probes.md`` gives the formulas.)"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Consistency", "KindBook", "compare", "t_two_sided"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SYNTHETIC, ORGANIC = 0, 1


@dataclass(frozen=True)
class Consistency:
    """Per uid, how a miner's recent organic and synthetic rewards compare.

    Every field is a read-only array indexed by uid, except ``false_flag_rate`` and
    ``min_count``, the settings the verdict used.
    """

    organic_mean: FloatArray
    """Mean of the uid's last ``window`` organic rewards (0 with none)."""
    synthetic_mean: FloatArray
    """Mean of the uid's last ``window`` synthetic rewards (0 with none)."""
    organic_count: IntArray
    """Organic rewards folded in over the book's life."""
    synthetic_count: IntArray
    """Synthetic rewards folded in over the book's life."""
    gap: FloatArray
    """``organic_mean - synthetic_mean``; 0 with fewer than ``min_count`` of either."""
    t: FloatArray
    """Welch's t statistic of the gap; 0 with fewer than ``min_count`` of either."""
    p: FloatArray
    """The two-sided p-value of ``t`` (Student's t, Welch's degrees of freedom); 1
    with fewer than ``min_count`` of either."""
    significant: BoolArray
    """``p <= false_flag_rate``, with at least ``min_count`` recent rewards of each kind."""
    false_flag_rate: float
    min_count: int

    def flagged(self) -> list[int]:
        """The uids whose gap is significant, in order."""
        return [int(uid) for uid in np.flatnonzero(self.significant)]


@dataclass(eq=False)
class KindBook:
    """Per-uid, per-kind moving averages, counts and recent rewards; the arithmetic only
    (the score book holds the lock and checks the input)."""

    averages: FloatArray  # (2, n_uids)
    counts: IntArray  # (2, n_uids)
    windows: FloatArray  # (2, n_uids, window)

    @classmethod
    def empty(cls, n_uids: int, window: int) -> KindBook:
        return cls(
            np.zeros((2, n_uids), dtype=np.float64),
            np.zeros((2, n_uids), dtype=np.int64),
            np.zeros((2, n_uids, window), dtype=np.float64),
        )

    @property
    def window(self) -> int:
        return int(self.windows.shape[2])

    def update(
        self, index: npt.NDArray[np.integer[Any]], values: FloatArray, organic: bool, alpha: float
    ) -> None:
        """Fold ``values`` into the ``index`` uids' averages and windows of one kind."""
        kind = ORGANIC if organic else SYNTHETIC
        averages, counts = self.averages[kind], self.counts[kind]
        averages[index] = alpha * values + (1.0 - alpha) * averages[index]
        self.windows[kind, index, counts[index] % self.window] = values
        counts[index] += 1

    def decay(self, factor: float, keep: npt.NDArray[np.integer[Any]]) -> None:
        """Scale both kinds' averages by ``factor``, except the ``keep`` uids'."""
        kept = self.averages[:, keep]
        self.averages *= factor
        self.averages[:, keep] = kept

    def reset(self, uids: list[int]) -> None:
        """Forget everything about ``uids``."""
        self.averages[:, uids] = 0.0
        self.counts[:, uids] = 0
        self.windows[:, uids, :] = 0.0

    def resized(self, n_uids: int) -> KindBook:
        """A copy for ``n_uids`` uids: new ones start empty, extra ones are cut."""
        book = KindBook.empty(n_uids, self.window)
        keep = min(n_uids, self.averages.shape[1])
        book.averages[:, :keep] = self.averages[:, :keep]
        book.counts[:, :keep] = self.counts[:, :keep]
        book.windows[:, :keep] = self.windows[:, :keep]
        return book

    def copy(self) -> KindBook:
        return KindBook(self.averages.copy(), self.counts.copy(), self.windows.copy())


def compare(book: KindBook, false_flag_rate: float, min_count: int) -> Consistency:
    """The per-uid verdict on ``book``'s recent windows."""
    filled = np.minimum(book.counts, book.window)  # (2, n)
    mask = np.arange(book.window)[None, None, :] < filled[:, :, None]
    safe = np.maximum(filled, 1)
    means = np.where(mask, book.windows, 0.0).sum(axis=2) / safe
    deviations = np.where(mask, book.windows - means[:, :, None], 0.0)
    variances = (deviations**2).sum(axis=2) / np.maximum(filled - 1, 1)
    enough = (filled >= min_count).all(axis=0)
    gap = np.where(enough, means[ORGANIC] - means[SYNTHETIC], 0.0)
    parts = variances / safe  # (2, n): var_o / m and var_s / n
    spread = parts.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(spread > 0, gap / np.sqrt(spread), np.sign(gap) * np.inf)
        df = spread**2 / (parts**2 / np.maximum(filled - 1, 1)).sum(axis=0)
    t = np.where(gap == 0.0, 0.0, t)
    p = np.ones_like(t)
    judged = enough & (spread > 0) & (t != 0.0)
    p[judged] = t_two_sided(t[judged], df[judged])
    p[enough & np.isinf(t)] = 0.0
    significant = enough & (p <= false_flag_rate)
    return Consistency(
        organic_mean=_frozen(np.where(filled[ORGANIC] > 0, means[ORGANIC], 0.0)),
        synthetic_mean=_frozen(np.where(filled[SYNTHETIC] > 0, means[SYNTHETIC], 0.0)),
        organic_count=_frozen(book.counts[ORGANIC].copy()),
        synthetic_count=_frozen(book.counts[SYNTHETIC].copy()),
        gap=_frozen(gap),
        t=_frozen(t.astype(np.float64)),
        p=_frozen(p),
        significant=_frozen(significant),
        false_flag_rate=false_flag_rate,
        min_count=min_count,
    )


def t_two_sided(t: FloatArray, df: FloatArray) -> FloatArray:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom, elementwise.

    The regularised incomplete beta ``I_x(df / 2, 1 / 2)`` at ``x = df / (df + t**2)``,
    by its continued fraction (modified Lentz), on the side where that converges.
    """
    t2 = np.asarray(t, dtype=np.float64) ** 2
    df = np.asarray(df, dtype=np.float64)
    x = df / (df + t2)
    y = t2 / (df + t2)  # 1 - x, without the cancellation
    a, b = df / 2.0, np.full_like(df, 0.5)
    direct = x < (a + 1.0) / (a + b + 2.0)
    # Where the fraction for I_x(a, b) converges slowly, 1 - I_y(b, a) instead.
    aa, bb = np.where(direct, a, b), np.where(direct, b, a)
    xx, yy = np.where(direct, x, y), np.where(direct, y, x)
    lbeta = _lgamma(aa) + _lgamma(bb) - _lgamma(aa + bb)
    with np.errstate(divide="ignore"):
        front = np.exp(aa * np.log(xx) + bb * np.log(yy) - lbeta) / aa
    value = front * _beta_fraction(aa, bb, xx)
    p: FloatArray = np.clip(np.where(direct, value, 1.0 - value), 0.0, 1.0)
    return p


_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def _beta_fraction(a: FloatArray, b: FloatArray, x: FloatArray) -> FloatArray:
    """The continued fraction of the incomplete beta function (Numerical Recipes' betacf)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h: FloatArray = d.copy()
    for m in range(1, 10_000):
        m2 = 2.0 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + num / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            step = d * c
            h = h * step
        if not np.any(np.abs(step - 1.0) > eps):
            break
    return h


def _frozen(array: npt.NDArray[Any]) -> Any:
    array.flags.writeable = False
    return array
