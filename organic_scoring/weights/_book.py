"""ScoreBook: one moving-average score per uid, and the weights they add up to.

A validator turns each round of rewards into chain weights in the same few steps:
fold the rewards into a per-uid exponential moving average, forget a uid whose
hotkey was replaced, follow the subnet as it grows, normalise, emit. The score book
does those steps with the edges handled:

- an update moves only the uids it names (nobody decays because they were not
  queried this round; :meth:`ScoreBook.decay` does that on request);
- a NaN, an infinity, a duplicate or an unknown uid rejects the whole update and
  leaves every score as it was;
- :meth:`ScoreBook.weights` never returns NaN, even when nothing scored above zero;
- the book survives restarts through :meth:`ScoreBook.save` / :meth:`ScoreBook.load`;
- one lock guards the state, so a scoring thread and the validator's main thread can
  share a book, and every reader gets a copy;
- told which rewards came from organic and which from synthetic samples
  (``update(..., organic=True/False)``), it tracks each kind apart, checks that each
  miner answers both alike (:meth:`ScoreBook.consistency`), and can weigh the kinds
  and penalise a miner that does not (see :meth:`ScoreBook.weights`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
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
    bittensor major.

    Organic and synthetic. Pass ``organic=True`` or ``organic=False`` to
    :meth:`update` and the book also keeps, per uid and per kind, a moving average
    of the same form (:attr:`organic_scores`, :attr:`synthetic_scores`), a count, and
    the last ``gap_window`` rewards; :meth:`consistency` compares the two kinds per
    uid. The keyword-only settings below decide how :meth:`weights` uses them; they
    are settings of this object, not data, so :meth:`save` does not store them and
    :meth:`load` takes them again.

    Args:
        n_uids: How many uids to track, an int >= 0.
        alpha: The weight of a new reward, in (0, 1].
        organic_weight: None (the default) weighs the plain moving average of all
            rewards. A number ``w`` in [0, 1] weighs ``w * organic + (1 - w) *
            synthetic`` per uid instead (see :meth:`weights`).
        gap_false_flag_rate: The chance, in (0, 1), that a uid answering both kinds
            alike is flagged at one check: its gap counts as significant when the
            two-sided p-value of Welch's t (organic against synthetic rewards) is at
            most this. Lower flags fewer honest miners and needs a larger gap or more
            rewards to flag a gamer.
        gap_penalty: The share, in [0, 1], taken off the weight of a uid whose gap is
            significant; 0 (the default) only reports it, 1 zeroes the uid.
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
        self._alpha = _check_alpha(alpha)
        self._organic_weight = (
            None if organic_weight is None else _check_unit(organic_weight, "organic_weight")
        )
        self._gap_false_flag_rate = _check_rate(gap_false_flag_rate, "gap_false_flag_rate")
        self._gap_penalty = _check_unit(gap_penalty, "gap_penalty")
        self._gap_window = _check_count(gap_window, "gap_window")
        self._gap_min_count = _check_count(gap_min_count, "gap_min_count")
        self._hotkeys: tuple[str, ...] | None = None
        # Created by the first update that names a kind: a book that never does so
        # costs nothing for it.
        self._kinds: KindBook | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_metagraph(
        cls,
        metagraph: Any,
        alpha: float = 0.1,
        *,
        organic_weight: float | None = None,
        gap_false_flag_rate: float = GAP_FALSE_FLAG_RATE,
        gap_penalty: float = 0.0,
        gap_window: int = 64,
        gap_min_count: int = 8,
    ) -> ScoreBook:
        """A book sized for ``metagraph`` that already follows its hotkeys.

        Works with the metagraph of every bittensor major (9/10's ``bt.Metagraph``,
        whose ``n`` is a numpy array, and 11's, which has no ``n``): it reads only
        ``metagraph.hotkeys``, then syncs to them (:meth:`sync`), so a later ``sync`` resets
        the uids whose miner was replaced. The other arguments are the constructor's.
        """
        hotkeys = getattr(metagraph, "hotkeys", None)
        if hotkeys is None:
            raise ValueError(
                "metagraph must have hotkeys (a bittensor metagraph), "
                f"got {type(metagraph).__name__}"
            )
        book = cls(
            len(hotkeys),
            alpha,
            organic_weight=organic_weight,
            gap_false_flag_rate=gap_false_flag_rate,
            gap_penalty=gap_penalty,
            gap_window=gap_window,
            gap_min_count=gap_min_count,
        )
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

        ``uids`` and ``rewards`` are parallel one-dimensional sequences (lists, tuples or
        numpy arrays). Only the named uids move; all others keep their score. Raises
        ValueError, changing nothing, if a uid is not an integer, is negative, is out of
        range or appears twice, if a reward is not a finite number, or if the lengths
        differ.

        ``organic`` says what the rewards were earned on: True for an organic sample,
        False for a synthetic one (``logs["is_organic_sample"]`` in ``_log_results``).
        Either way :attr:`scores` moves as above; with True or False the rewards also
        go into that kind's record, which :meth:`consistency` and a book with
        ``organic_weight`` or ``gap_penalty`` use. None (the default) keeps no
        per-kind record.
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
                    self._kinds = KindBook(scores.shape[0], self._gap_window)
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

        The classic template decays every uid that was not queried on each update;
        here that is opt-in: ``book.update(uids, rewards); book.decay(0.99, exclude=uids)``.
        The per-kind moving averages decay alike; the recent rewards the consistency
        test looks at do not.
        """
        factor = _check_factor(factor)
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

        Pass ``metagraph.hotkeys``. The book grows with zero scores or shrinks to the
        new size, and every uid whose hotkey differs from the one recorded by the
        previous ``sync`` has its score reset to zero (a new miner does not inherit its
        predecessor's standing, nor its organic/synthetic record). The first ``sync``
        only records the hotkeys. Returns the uids that were reset.
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
            if size != scores.shape[0]:
                resized = np.zeros(size, dtype=np.float64)
                keep = min(size, scores.shape[0])
                resized[:keep] = scores[:keep]
                scores = resized
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
        """The scores as weights: negatives clipped to zero, then scaled to sum to one.

        With the default settings the score of uid ``u`` is its moving average
        ``scores[u]``. With ``organic_weight = w`` it is instead, from the per-kind
        moving averages ``O[u]`` (:attr:`organic_scores`) and ``S[u]``
        (:attr:`synthetic_scores`)::

            w * O[u] + (1 - w) * S[u]    when u has rewards of both kinds
            O[u]  or  S[u]               when it has rewards of one kind only
            scores[u]                    when it has no per-kind record

        With ``gap_penalty = p > 0``, a uid whose organic/synthetic gap is significant
        (``consistency().significant[u]``, that is ``p[u] <= gap_false_flag_rate``) has its
        clipped score multiplied by ``1 - p``. Then::

            weight[u] = max(score[u], 0) / sum over v of max(score[v], 0)

        When no score is above zero the result is all zeros (never NaN); check
        ``weights.any()`` before emitting.
        """
        with self._lock:
            score = self._scores.copy()
            kinds = self._kinds
            if kinds is not None and self._organic_weight is not None:
                score = _mixed(score, kinds, self._organic_weight)
            flagged = None
            if kinds is not None and self._gap_penalty > 0:
                flagged = compare(kinds, self._gap_false_flag_rate, self._gap_min_count).significant
        clipped = np.maximum(score, 0.0)
        if flagged is not None:
            clipped[flagged] *= 1.0 - self._gap_penalty
        return _normalise(clipped)

    def consistency(self) -> Consistency:
        """Per uid, the gap between its recent organic and synthetic rewards, and whether
        it is significant.

        Looks at each uid's last ``gap_window`` rewards of each kind (fed by
        ``update(..., organic=True/False)``) and returns a
        :class:`~organic_scoring.weights.Consistency` of arrays by uid: the two means,
        the lifetime counts, ``gap = organic_mean - synthetic_mean``, Welch's ``t =
        gap / sqrt(var_o / m + var_s / n)`` over the ``m`` organic and ``n`` synthetic
        recent rewards, its two-sided p-value ``p`` (Student's t with Welch's degrees
        of freedom), and ``significant = p <= gap_false_flag_rate`` (needing at least
        ``gap_min_count`` of each kind). ``.flagged()`` lists the significant uids.
        """
        with self._lock:
            kinds = self._kinds
            if kinds is None:
                kinds = KindBook(self._scores.shape[0], self._gap_window)
            return compare(kinds, self._gap_false_flag_rate, self._gap_min_count)

    def as_dict(self) -> dict[int, float]:
        """The non-zero weights as ``{uid: weight}``, as bittensor 11's ``bt.set_weights`` takes."""
        weights = self.weights()
        (nonzero,) = np.nonzero(weights)
        return dict(zip(nonzero.tolist(), weights[nonzero].tolist(), strict=True))

    def top(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` best uids as ``(uid, score)`` pairs, best first (ties by lower uid)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k must be an int >= 0, got {k!r}")
        scores = self.scores
        order = np.argsort(-scores, kind="stable")[: int(k)]
        return [(int(uid), float(scores[uid])) for uid in order]

    # -- persistence -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the book (scores, hotkeys, alpha, the per-kind record) to ``path``, atomically.

        A crash or error mid-save leaves whatever file was at ``path`` untouched. The
        format is a versioned numpy ``.npz`` archive, read back by :meth:`load`. The
        settings (``organic_weight`` and the ``gap_`` ones but ``gap_window``) are not
        stored: they are given again to :meth:`load`.
        """
        with self._lock:
            scores = self._scores.copy()
            hotkeys = self._hotkeys
            kinds = None
            if self._kinds is not None:
                copy = self._kinds.copy()
                kinds = _scorebook_file.StoredKinds(copy.averages, copy.counts, copy.windows)
        _scorebook_file.write(path, scores, self._alpha, hotkeys, kinds)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        organic_weight: float | None = None,
        gap_false_flag_rate: float = GAP_FALSE_FLAG_RATE,
        gap_penalty: float = 0.0,
        gap_window: int | None = None,
        gap_min_count: int = 8,
    ) -> ScoreBook:
        """Read a book written by :meth:`save` (of this version or an earlier one).

        The keyword arguments are the constructor's settings. ``gap_window`` defaults
        to the window stored in the file (64 for a file without a per-kind record); a
        different one given here for a file that has one raises ValueError.

        Raises :class:`~organic_scoring.weights.ScoreBookFileError` (a ValueError) for
        a corrupt, truncated, foreign or newer-version file, and FileNotFoundError when
        there is none. Loading never executes anything from the file.
        """
        stored = _scorebook_file.read(path)
        window = 64 if stored.kinds is None else int(stored.kinds.windows.shape[2])
        if gap_window is not None and stored.kinds is not None and gap_window != window:
            raise ValueError(
                f"gap_window={gap_window!r} differs from the window of {window} recent "
                f"rewards stored in {os.fspath(path)!r}; leave gap_window out to keep it"
            )
        book = cls(
            int(stored.scores.shape[0]),
            stored.alpha,
            organic_weight=organic_weight,
            gap_false_flag_rate=gap_false_flag_rate,
            gap_penalty=gap_penalty,
            gap_window=window if gap_window is None else gap_window,
            gap_min_count=gap_min_count,
        )
        book._scores = stored.scores
        book._hotkeys = stored.hotkeys
        if stored.kinds is not None:
            kinds = KindBook(0, window)
            kinds.averages = stored.kinds.averages
            kinds.counts = stored.kinds.counts
            kinds.windows = stored.kinds.windows
            book._kinds = kinds
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
    if isinstance(n_uids, bool) or not isinstance(n_uids, (int, np.integer)) or n_uids < 0:
        raise ValueError(f"n_uids must be an int >= 0, got {n_uids!r}")
    return int(n_uids)


def _check_alpha(alpha: object) -> float:
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float, np.integer, np.floating))
        or not 0.0 < float(alpha) <= 1.0
    ):
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    return float(alpha)


def _check_unit(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_rate(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0.0 < float(value) < 1.0
    ):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise ValueError(f"{name} must be an int >= 2, got {value!r}")
    return int(value)


def _check_factor(factor: object) -> float:
    if (
        isinstance(factor, bool)
        or not isinstance(factor, (int, float, np.integer, np.floating))
        or not 0.0 <= float(factor) <= 1.0
    ):
        raise ValueError(f"factor must be a number in [0, 1], got {factor!r}")
    return float(factor)


def _as_uids(uids: Any, name: str) -> npt.NDArray[np.integer[Any]]:
    """A one-dimensional integer array of ``uids``, or ValueError naming ``name``."""
    try:
        array = np.asarray(uids)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"{name} must be a one-dimensional sequence of ints ({exc})") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional sequence of ints, got {uids!r}")
    if array.dtype.kind not in "iu":
        if array.size == 0:
            return np.empty(0, dtype=np.intp)
        raise ValueError(f"{name} must be integers, got values of dtype {array.dtype}")
    return array


def _as_rewards(rewards: Any) -> FloatArray:
    try:
        array = np.asarray(rewards)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"rewards must be a one-dimensional sequence of numbers ({exc})") from None
    if array.ndim != 1:
        raise ValueError(f"rewards must be a one-dimensional sequence of numbers, got {rewards!r}")
    if array.dtype.kind not in "biuf" and array.size:
        raise ValueError(f"rewards must be real numbers, got values of dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


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
