"""ScoreBook: one moving-average score per uid, and the weights they add up to."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from organic_scoring._defaults import GAP_FALSE_FLAG_RATE
from organic_scoring._log import log
from organic_scoring.weights import _file as _scorebook_file
from organic_scoring.weights._consistency import ORGANIC, SYNTHETIC, Consistency, KindBook, compare

__all__ = ["ScoreBook"]

FloatArray = npt.NDArray[np.float64]


class ScoreBook:
    """Per-uid exponential moving averages of rewards, normalised into weights on demand.

    ``n_uids`` is the subnet's current size (``len(metagraph.hotkeys)``, or bittensor
    9/10's ``metagraph.n``, a numpy integer) and ``alpha`` the weight of a new reward:
    after ``update([u], [r])``, ``scores[u] == alpha * r + (1 - alpha) * previous``.
    Scores start at zero. :meth:`for_metagraph` sizes a book from a metagraph of any
    bittensor major. The keyword-only settings are not saved: :meth:`load` takes them.

    Args:
        n_uids: How many uids to track, an int >= 0.
        alpha: The weight of a new reward, in (0, 1].
        organic_weight: None (the default) weighs the plain moving average of all
            rewards. A number ``w`` in [0, 1] weighs ``w * organic + (1 - w) *
            synthetic`` per uid instead (see :meth:`weights`).
        gap_false_flag_rate: The chance, in (0, 1), that a uid answering both kinds
            alike is flagged at one check (the two-sided p-value of Welch's t at most
            this).
        gap_penalty: The share, in [0, 1], taken off the weight of a uid whose gap is
            significant; 0 only reports it.
        gap_window: How many recent rewards of each kind the test looks at; >= 2.
        gap_min_count: The fewest recent rewards of each kind before a uid can be
            flagged; >= 2.

    All methods are safe to call from several threads at once.
    """

    __slots__ = (
        "_alpha",
        "_gap_false_flag_rate",
        "_gap_min_count",
        "_gap_penalty",
        "_gap_window",
        "_hotkeys",
        "_kinds",
        "_lock",
        "_organic_weight",
        "_scores",
    )

    def __init__(
        self,
        n_uids: int,
        alpha: float = 0.1,
        *,
        organic_weight: float | None = None,
        gap_false_flag_rate: float = GAP_FALSE_FLAG_RATE,
        gap_penalty: float = 0.0,
        gap_window: int = 64,
        gap_min_count: int = 8,
    ) -> None:
        self._scores: FloatArray = np.zeros(_check_n_uids(n_uids), dtype=np.float64)
        self._alpha = _number(alpha, "alpha", "a number in (0, 1]", lambda x: 0.0 < x <= 1.0)
        self._organic_weight = (
            None if organic_weight is None else _check_unit(organic_weight, "organic_weight")
        )
        self._gap_false_flag_rate = _number(
            gap_false_flag_rate,
            "gap_false_flag_rate",
            "a number in (0, 1)",
            lambda x: 0.0 < x < 1.0,
        )
        self._gap_penalty = _check_unit(gap_penalty, "gap_penalty")
        self._gap_window = check_int(gap_window, "gap_window", 2)
        self._gap_min_count = check_int(gap_min_count, "gap_min_count", 2)
        self._hotkeys: tuple[str, ...] | None = None
        # Created by the first update that names a kind.
        self._kinds: KindBook | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_metagraph(cls, metagraph: Any, alpha: float = 0.1, **settings: Any) -> ScoreBook:
        """A book sized for ``metagraph`` (of any major: only ``hotkeys`` is read), synced
        to its hotkeys. ``settings`` are the constructor's keyword arguments."""
        hotkeys = getattr(metagraph, "hotkeys", None)
        if hotkeys is None:
            raise ValueError(
                "metagraph must have hotkeys (a bittensor metagraph), "
                f"got {type(metagraph).__name__}"
            )
        book = cls(len(hotkeys), alpha, **settings)
        book.sync(hotkeys)
        return book

    # -- state ---------------------------------------------------------------------------

    @property
    def n_uids(self) -> int:
        """How many uids the book tracks (uids ``0 .. n_uids - 1``)."""
        return int(self._scores.shape[0])

    @property
    def alpha(self) -> float:
        """The smoothing factor: how much one new reward moves a score, in (0, 1]."""
        return self._alpha

    @property
    def scores(self) -> FloatArray:
        """A read-only copy of the moving averages, indexed by uid."""
        with self._lock:
            copy: FloatArray = self._scores.copy()
        copy.flags.writeable = False
        return copy

    @property
    def hotkeys(self) -> tuple[str, ...] | None:
        """The hotkeys from the last :meth:`sync`, by uid; None if never synced."""
        return self._hotkeys

    def __len__(self) -> int:
        return self.n_uids

    @property
    def organic_scores(self) -> FloatArray:
        """A read-only copy of the moving averages of organic rewards, by uid."""
        return self._kind_scores(ORGANIC)

    @property
    def synthetic_scores(self) -> FloatArray:
        """A read-only copy of the moving averages of synthetic rewards, by uid."""
        return self._kind_scores(SYNTHETIC)

    def _kind_scores(self, kind: int) -> FloatArray:
        with self._lock:
            kinds = self._kinds
            copy: FloatArray = (
                np.zeros_like(self._scores) if kinds is None else kinds.averages[kind].copy()
            )
        copy.flags.writeable = False
        return copy

    @property
    def organic_weight(self) -> float | None:
        """The organic share of the weighed score, or None for the plain average."""
        return self._organic_weight

    @property
    def gap_false_flag_rate(self) -> float:
        """The p-value at or below which a uid's organic/synthetic gap is significant."""
        return self._gap_false_flag_rate

    @property
    def gap_penalty(self) -> float:
        """The share taken off the weight of a uid whose gap is significant."""
        return self._gap_penalty

    @property
    def gap_window(self) -> int:
        """How many recent rewards of each kind the consistency test looks at."""
        return self._gap_window

    @property
    def gap_min_count(self) -> int:
        """The fewest recent rewards of each kind before a uid can be flagged."""
        return self._gap_min_count

    def __repr__(self) -> str:
        return f"ScoreBook(n_uids={self.n_uids}, alpha={self._alpha!r})"

    # -- scoring ---------------------------------------------------------------------------

    def update(
        self,
        uids: Sequence[int] | npt.ArrayLike,
        rewards: npt.ArrayLike,
        *,
        organic: bool | None = None,
    ) -> None:
        """Fold one round of rewards into the moving averages of the uids that earned them.

        ``uids`` and ``rewards`` are parallel 1-D sequences; only the named uids move.
        ``organic``: True or False (``logs["is_organic_sample"]``) also records the
        rewards under that kind; None keeps no per-kind record.

        Raises:
            ValueError: A uid is not an int, negative, out of range or repeated, a
                reward is not finite, or the lengths differ. Nothing changed.
        """
        if organic is not None and not isinstance(organic, (bool, np.bool_)):
            raise ValueError(f"organic must be True, False or None, got {organic!r}")
        index = _as_uids(uids, "uids")
        values = _as_rewards(rewards)
        if index.shape[0] != values.shape[0]:
            raise ValueError(
                f"uids and rewards must have the same length, got {index.shape[0]} uids "
                f"and {values.shape[0]} rewards"
            )
        if not np.isfinite(values).all():
            bad = [int(u) for u in index[~np.isfinite(values)][:5]]
            raise ValueError(f"rewards must be finite numbers; got NaN or infinity for uids {bad}")
        alpha = self._alpha
        with self._lock:
            scores = self._scores
            _check_in_range(index, scores.shape[0], "uids")
            _check_unique(index, scores.shape[0])
            scores[index] = alpha * values + (1.0 - alpha) * scores[index]
            if organic is not None:
                if self._kinds is None:
                    self._kinds = KindBook.empty(scores.shape[0], self._gap_window)
                self._kinds.update(index, values, bool(organic), alpha)

    def update_from(self, rewards: Mapping[int, float], *, organic: bool | None = None) -> None:
        """Like :meth:`update`, from a ``{uid: reward}`` mapping."""
        if not isinstance(rewards, Mapping):
            raise ValueError(
                f"rewards must be a mapping of uid to reward, got {type(rewards).__name__}"
            )
        self.update(list(rewards.keys()), list(rewards.values()), organic=organic)

    def decay(self, factor: float, exclude: Sequence[int] | npt.ArrayLike = ()) -> None:
        """Multiply every score by ``factor`` (in [0, 1]), except the uids in ``exclude``.

        The per-kind averages decay alike; the recent rewards of each kind do not.
        """
        factor = _check_unit(factor, "factor")
        index = _as_uids(exclude, "exclude")
        with self._lock:
            scores = self._scores
            _check_in_range(index, scores.shape[0], "exclude")
            kept = scores[index]
            scores *= factor
            scores[index] = kept
            if self._kinds is not None:
                self._kinds.decay(factor, index)

    def sync(self, hotkeys: Iterable[str]) -> list[int]:
        """Follow the metagraph: resize to ``len(hotkeys)`` and forget replaced miners.

        Pass ``metagraph.hotkeys``. New uids start at zero; a uid whose hotkey differs
        from the previous ``sync`` is reset to zero (per-kind record included). The
        first ``sync`` only records the hotkeys. Returns the uids that were reset.
        """
        if isinstance(hotkeys, (str, bytes)) or not isinstance(hotkeys, Iterable):
            raise ValueError(f"hotkeys must be a sequence of str, got {type(hotkeys).__name__}")
        new = tuple(str(h) if isinstance(h, np.str_) else h for h in hotkeys)
        for uid, hotkey in enumerate(new):
            if not isinstance(hotkey, str):
                raise ValueError(f"hotkeys must be str; uid {uid} has {type(hotkey).__name__}")
        with self._lock:
            old = self._hotkeys
            size = len(new)
            scores = self._scores
            if size != scores.shape[0]:  # cut, or grow with zeros
                scores = np.pad(scores[:size], (0, max(0, size - scores.shape[0])))
            reset: list[int] = []
            if old is not None:
                reset = [uid for uid, (a, b) in enumerate(zip(old, new, strict=False)) if a != b]
                scores[reset] = 0.0
            kinds = self._kinds
            if kinds is not None:
                if size != kinds.averages.shape[1]:
                    kinds = kinds.resized(size)
                kinds.reset(reset)
                self._kinds = kinds
            self._scores = scores
            self._hotkeys = new
        if reset:
            log.info(f"score book: hotkey changed for uids {reset}; their scores were reset")
        return reset

    # -- weights ---------------------------------------------------------------------------

    def weights(self) -> FloatArray:
        """The scores as weights: negatives clipped to zero, then scaled to sum to one (all
        zeros, never NaN, when no score is above zero). ``organic_weight`` and
        ``gap_penalty`` weigh the kinds and penalise a flagged uid (``docs/probes.md``)."""
        with self._lock:  # copies only: the t-test runs outside the lock
            score = self._scores.copy()
            kinds = self._kinds
            if kinds is not None and self._organic_weight is not None:
                score = _mixed(score, kinds, self._organic_weight)
            judged = kinds.copy() if kinds is not None and self._gap_penalty > 0 else None
        flagged = None
        if judged is not None:
            flagged = compare(judged, self._gap_false_flag_rate, self._gap_min_count).significant
        clipped = np.maximum(score, 0.0)
        if flagged is not None:
            clipped[flagged] *= 1.0 - self._gap_penalty
        return _normalise(clipped)

    def consistency(self) -> Consistency:
        """Per uid, the gap between its last ``gap_window`` organic and synthetic rewards,
        Welch's t of it and its two-sided p-value (see
        :class:`~organic_scoring.weights.Consistency`)."""
        with self._lock:  # a copy: the t-test runs outside the lock
            kinds = self._kinds
            if kinds is None:
                kinds = KindBook.empty(self._scores.shape[0], self._gap_window)
            else:
                kinds = kinds.copy()
        return compare(kinds, self._gap_false_flag_rate, self._gap_min_count)

    def as_dict(self) -> dict[int, float]:
        """The non-zero weights as ``{uid: weight}``, as bittensor 11's ``bt.set_weights`` takes."""
        weights = self.weights()
        (nonzero,) = np.nonzero(weights)
        return dict(zip(nonzero.tolist(), weights[nonzero].tolist(), strict=True))

    def top(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` best uids as ``(uid, score)`` pairs, best first (ties by lower uid)."""
        scores = self.scores
        order = np.argsort(-scores, kind="stable")[: check_int(k, "k")]
        return [(int(uid), float(scores[uid])) for uid in order]

    # -- persistence -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the book (scores, hotkeys, alpha, per-kind record) to ``path`` atomically:
        a failed save leaves the previous file. Settings but ``gap_window`` are not saved."""
        with self._lock:
            scores = self._scores.copy()
            hotkeys = self._hotkeys
            kinds = None if self._kinds is None else self._kinds.copy()
        _scorebook_file.write(path, scores, self._alpha, hotkeys, kinds)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, gap_window: int | None = None, **settings: Any
    ) -> ScoreBook:
        """Read a book written by :meth:`save` (of this version or an earlier one).

        ``settings`` are the constructor's keyword arguments; ``gap_window`` defaults to
        the file's (64 without a per-kind record). Loading never runs code from the file.

        Raises:
            ScoreBookFileError: A corrupt, truncated, foreign or newer file (a ValueError).
            FileNotFoundError: There is no file.
            ValueError: ``gap_window`` differs from the file's.
        """
        stored = _scorebook_file.read(path)
        window = 64 if stored.kinds is None else stored.kinds.window
        if gap_window is not None and stored.kinds is not None and gap_window != window:
            raise ValueError(
                f"gap_window={gap_window!r} differs from the window of {window} recent "
                f"rewards stored in {os.fspath(path)!r}; leave gap_window out to keep it"
            )
        book = cls(
            int(stored.scores.shape[0]),
            stored.alpha,
            gap_window=window if gap_window is None else gap_window,
            **settings,
        )
        book._scores = stored.scores
        book._hotkeys = stored.hotkeys
        book._kinds = stored.kinds
        return book


def _mixed(scores: FloatArray, kinds: KindBook, organic_weight: float) -> FloatArray:
    """The per-uid score that weighs the kinds (see :meth:`ScoreBook.weights`)."""
    organic, synthetic = kinds.averages[ORGANIC], kinds.averages[SYNTHETIC]
    has_organic, has_synthetic = kinds.counts[ORGANIC] > 0, kinds.counts[SYNTHETIC] > 0
    both = organic_weight * organic + (1.0 - organic_weight) * synthetic
    mixed: FloatArray = np.where(
        has_organic & has_synthetic,
        both,
        np.where(has_organic, organic, np.where(has_synthetic, synthetic, scores)),
    )
    return mixed


# -- checks ------------------------------------------------------------------------------------


def _check_n_uids(n_uids: object) -> int:
    if isinstance(n_uids, np.ndarray) and n_uids.size == 1 and n_uids.dtype.kind in "iu":
        # bittensor 9/10's metagraph.n: a 0-d array (or [0] before the first sync).
        n_uids = n_uids.reshape(()).item()
    return check_int(n_uids, "n_uids")


def check_int(value: object, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _number(value: object, name: str, wanted: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float, or ValueError saying ``name`` must be ``wanted``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not ok(float(value))
    ):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return float(value)


def _check_unit(value: object, name: str) -> float:
    return _number(value, name, "a number in [0, 1]", lambda x: 0.0 <= x <= 1.0)


def _as_uids(uids: Any, name: str) -> npt.NDArray[np.integer[Any]]:
    """A one-dimensional integer array of ``uids``, or ValueError naming ``name``."""
    array = _one_dimensional(uids, name, "ints")
    if array.dtype.kind not in "iu":
        if array.size == 0:
            return np.empty(0, dtype=np.intp)
        raise ValueError(f"{name} must be integers, got values of dtype {array.dtype}")
    return array


def _as_rewards(rewards: Any) -> FloatArray:
    array = _one_dimensional(rewards, "rewards", "numbers")
    if array.dtype.kind not in "biuf" and array.size:
        raise ValueError(f"rewards must be real numbers, got values of dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _one_dimensional(values: Any, name: str, what: str) -> npt.NDArray[Any]:
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"{name} must be a one-dimensional sequence of {what} ({exc})") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional sequence of {what}, got {values!r}")
    return array


def _check_in_range(index: npt.NDArray[np.integer[Any]], n_uids: int, name: str) -> None:
    if index.size == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0:
        raise ValueError(f"{name} must not be negative, got {low}")
    if high >= n_uids:
        raise ValueError(f"{name} must be below n_uids={n_uids}, got {high}")


def _check_unique(index: npt.NDArray[np.integer[Any]], n_uids: int) -> None:
    if index.size < 2:
        return
    seen = np.zeros(n_uids, dtype=np.bool_)
    seen[index] = True
    if np.count_nonzero(seen) != index.size:
        values, counts = np.unique(index, return_counts=True)
        raise ValueError(f"uids must not repeat, got {values[counts > 1].tolist()} twice or more")


def _normalise(clipped: FloatArray) -> FloatArray:
    """Scale non-negative ``clipped`` in place to sum to one; all zeros stays all zeros."""
    with np.errstate(over="ignore"):
        total = float(clipped.sum())
    if total == 0.0:
        return clipped
    if total == float("inf"):
        # Huge finite scores whose sum overflows: bring them near one first.
        clipped /= clipped.max()
        total = float(clipped.sum())
    clipped /= total
    return clipped
