"""The score book's file format (docs/weights.md describes it), written atomically."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from numpy.lib.npyio import NpzFile

from organic_scoring._atomic import atomic_write
from organic_scoring.errors import ScoreBookFileError
from organic_scoring.weights._consistency import KindBook

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ScoreBookFileError", "StoredBook", "read", "write"]

FORMAT_NAME = "organic_scoring.scorebook"
"""What the ``format`` entry of every score book file says."""

FORMAT_VERSION = 2
"""The file format version this module writes, and the newest it reads."""

_V1_KEYS = frozenset({"format", "version", "scores", "alpha", "has_hotkeys", "hotkeys"})
_KEYS = {  # the versions read, and the entries each must hold
    1: _V1_KEYS,
    2: _V1_KEYS | {"has_kinds", "kind_averages", "kind_counts", "kind_windows"},
}


@dataclass(frozen=True)
class StoredBook:
    """What a score book file holds, checked for consistency."""

    scores: npt.NDArray[np.float64]
    alpha: float
    hotkeys: tuple[str, ...] | None
    kinds: KindBook | None = None


def write(
    path: str | os.PathLike[str],
    scores: npt.NDArray[np.float64],
    alpha: float,
    hotkeys: tuple[str, ...] | None,
    kinds: KindBook | None = None,
) -> None:
    """Atomically replace the file at ``path`` with a score book holding these values."""
    n_uids = int(np.asarray(scores).shape[0])
    if kinds is None:
        kinds = KindBook(
            np.zeros((2, 0)), np.zeros((2, 0), dtype=np.int64), np.zeros((2, n_uids, 0))
        )
        has_kinds = False
    else:
        has_kinds = True

    def dump(handle: BinaryIO) -> None:
        np.savez(
            handle,
            format=np.array(FORMAT_NAME),
            version=np.array(FORMAT_VERSION, dtype=np.int64),
            scores=np.asarray(scores, dtype=np.float64),
            alpha=np.array(alpha, dtype=np.float64),
            has_hotkeys=np.array(hotkeys is not None),
            hotkeys=np.array(hotkeys or (), dtype=np.str_),
            has_kinds=np.array(has_kinds),
            kind_averages=np.asarray(kinds.averages, dtype=np.float64),
            kind_counts=np.asarray(kinds.counts, dtype=np.int64),
            kind_windows=np.asarray(kinds.windows, dtype=np.float64),
        )

    atomic_write(path, dump)


def read(path: str | os.PathLike[str]) -> StoredBook:
    """Read and check the score book file at ``path``.

    Raises :class:`ScoreBookFileError` for anything but a complete, consistent file of
    a known version, and :class:`FileNotFoundError` when there is no file.
    """
    try:
        # Opened here rather than by np.load, which leaks its handle when the archive
        # turns out to be broken.
        with open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if not isinstance(loaded, NpzFile):
                raise ScoreBookFileError(path, "not a score book archive (a bare array)")
            with loaded as archive:
                entries = {name: archive[name] for name in archive.files}
    except (FileNotFoundError, ScoreBookFileError):
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ScoreBookFileError(path, f"corrupt or truncated ({exc})") from exc
    return _check(path, entries)


def _check(path: str | os.PathLike[str], entries: dict[str, npt.NDArray[Any]]) -> StoredBook:
    if _text(entries.get("format")) != FORMAT_NAME:
        raise ScoreBookFileError(path, "not a score book file (no score book format marker)")
    version = entries.get("version")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ScoreBookFileError(path, "the format version is missing or malformed")
    if int(version) not in _KEYS:
        raise ScoreBookFileError(
            path,
            f"unknown format version {int(version)}; this library reads versions "
            f"{', '.join(map(str, _KEYS))}",
        )
    missing = sorted(_KEYS[int(version)] - entries.keys())
    if missing:
        raise ScoreBookFileError(path, f"missing entries: {', '.join(missing)}")

    scores = entries["scores"]
    if scores.ndim != 1 or scores.dtype.kind != "f":
        raise ScoreBookFileError(path, "scores must be a one-dimensional float array")
    if not np.isfinite(scores).all():
        raise ScoreBookFileError(path, "scores contain NaN or infinity")

    alpha = entries["alpha"]
    if alpha.shape != () or alpha.dtype.kind != "f" or not 0.0 < float(alpha) <= 1.0:
        raise ScoreBookFileError(path, "alpha must be a float in (0, 1]")

    has_hotkeys = entries["has_hotkeys"]
    if has_hotkeys.shape != () or has_hotkeys.dtype.kind != "b":
        raise ScoreBookFileError(path, "has_hotkeys must be a boolean")
    raw_hotkeys = entries["hotkeys"]
    if raw_hotkeys.ndim != 1 or (raw_hotkeys.size and raw_hotkeys.dtype.kind != "U"):
        raise ScoreBookFileError(path, "hotkeys must be a one-dimensional array of strings")
    hotkeys: tuple[str, ...] | None = None
    if bool(has_hotkeys):
        if raw_hotkeys.shape[0] != scores.shape[0]:
            raise ScoreBookFileError(
                path, f"{raw_hotkeys.shape[0]} hotkeys recorded for {scores.shape[0]} scores"
            )
        hotkeys = tuple(str(h) for h in raw_hotkeys)
    kinds = _check_kinds(path, entries, scores.shape[0]) if int(version) >= 2 else None
    return StoredBook(
        scores=scores.astype(np.float64), alpha=float(alpha), hotkeys=hotkeys, kinds=kinds
    )


def _check_kinds(
    path: str | os.PathLike[str], entries: dict[str, npt.NDArray[Any]], n_uids: int
) -> KindBook | None:
    has_kinds = entries["has_kinds"]
    if has_kinds.shape != () or has_kinds.dtype.kind != "b":
        raise ScoreBookFileError(path, "has_kinds must be a boolean")
    if not bool(has_kinds):
        return None
    averages, counts, windows = (
        entries["kind_averages"],
        entries["kind_counts"],
        entries["kind_windows"],
    )
    if averages.shape != (2, n_uids) or averages.dtype.kind != "f":
        raise ScoreBookFileError(
            path, f"kind_averages must be a float array of shape (2, {n_uids})"
        )
    if counts.shape != (2, n_uids) or counts.dtype.kind not in "iu":
        raise ScoreBookFileError(path, f"kind_counts must be an int array of shape (2, {n_uids})")
    if (
        windows.ndim != 3
        or windows.shape[:2] != (2, n_uids)
        or windows.shape[2] < 1
        or windows.dtype.kind != "f"
    ):
        raise ScoreBookFileError(
            path, f"kind_windows must be a float array of shape (2, {n_uids}, window >= 1)"
        )
    if not (np.isfinite(averages).all() and np.isfinite(windows).all()):
        raise ScoreBookFileError(path, "the per-kind record contains NaN or infinity")
    if (counts < 0).any():
        raise ScoreBookFileError(path, "kind_counts must not be negative")
    return KindBook(
        averages.astype(np.float64), counts.astype(np.int64), windows.astype(np.float64)
    )


def _text(value: npt.NDArray[Any] | None) -> str | None:
    if value is None or value.shape != () or value.dtype.kind != "U":
        return None
    return str(value)
