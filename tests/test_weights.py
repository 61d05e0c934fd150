"""Tests for organic_scoring.weights: the score book, its file, and emitting weights."""

from __future__ import annotations

import importlib.util
import inspect
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from organic_scoring import _compat
from organic_scoring.errors import ScoreBookFileError
from organic_scoring.weights import ScoreBook, WeightsResult, emit_weights
from organic_scoring.weights._file import FORMAT_VERSION
from support.chain import real_metagraph

# -- construction ------------------------------------------------------------------------------


def test_starts_at_zero_with_given_shape() -> None:
    book = ScoreBook(5, alpha=0.25)
    assert book.n_uids == 5
    assert len(book) == 5
    assert book.alpha == 0.25
    assert book.hotkeys is None
    np.testing.assert_array_equal(book.scores, np.zeros(5))


@pytest.mark.parametrize("n_uids", [-1, 1.0, True, "3", None])
def test_rejects_bad_n_uids(n_uids: Any) -> None:
    with pytest.raises(ValueError, match="n_uids"):
        ScoreBook(n_uids)


@pytest.mark.parametrize("alpha", [0, -0.1, 1.5, float("nan"), float("inf"), True, "0.1", None])
def test_rejects_bad_alpha(alpha: Any) -> None:
    with pytest.raises(ValueError, match="alpha"):
        ScoreBook(4, alpha=alpha)


def test_accepts_numpy_scalars_and_alpha_one() -> None:
    book = ScoreBook(np.int64(3), alpha=np.float32(1.0))
    book.update([0], [0.5])
    assert book.scores[0] == 0.5


@pytest.mark.bittensor
def test_sized_by_the_metagraph_of_any_major() -> None:
    hotkeys = [f"hotkey-{uid}" for uid in range(5)]
    metagraph = real_metagraph(hotkeys)
    book = ScoreBook.for_metagraph(metagraph, alpha=0.5)
    assert book.n_uids == 5
    assert book.alpha == 0.5
    assert book.hotkeys == tuple(hotkeys)
    book.update([4], [1.0])
    # A replaced miner starts from zero at the next sync, as after ScoreBook.sync.
    assert book.sync([*hotkeys[:4], "newcomer"]) == [4]

    mixed = ScoreBook.for_metagraph(metagraph, organic_weight=0.5, gap_penalty=0.5)
    mixed.update([0], [1.0], organic=True)
    mixed.update([1], [1.0], organic=False)
    assert mixed.weights()[0] == pytest.approx(mixed.weights()[1])  # the kinds mixed 50/50


@pytest.mark.bittensor
@pytest.mark.skipif(not _compat.HAS_AXON, reason="bittensor 11's metagraph has no n")
def test_accepts_metagraph_n_of_bittensor_9_and_10() -> None:
    metagraph = real_metagraph(["a", "b", "c"])
    assert isinstance(metagraph.n, np.ndarray)  # what used to be refused
    assert ScoreBook(metagraph.n).n_uids == 3
    unsynced = metagraph.__class__(netuid=1, network="local", sync=False)
    assert ScoreBook(unsynced.n).n_uids == 0  # array([0]) before the first sync


@pytest.mark.parametrize(
    "n_uids", [np.array(2.0), np.array([1, 2]), np.array([], dtype=np.int64), np.array(-1)]
)
def test_rejects_arrays_that_are_not_one_count(n_uids: Any) -> None:
    with pytest.raises(ValueError, match="n_uids"):
        ScoreBook(n_uids)


def test_for_metagraph_needs_hotkeys() -> None:
    with pytest.raises(ValueError, match="metagraph must have hotkeys"):
        ScoreBook.for_metagraph(object())


# -- moving average ----------------------------------------------------------------------------


def test_moving_average_matches_hand_computation() -> None:
    book = ScoreBook(4, alpha=0.2)
    book.update([1, 3], [1.0, 0.5])
    book.update([1], [0.0])
    book.update(np.array([3, 1]), np.array([1.0, 2.0]))
    s1 = 0.0
    s1 = 0.2 * 1.0 + 0.8 * s1
    s1 = 0.2 * 0.0 + 0.8 * s1
    s1 = 0.2 * 2.0 + 0.8 * s1
    s3 = 0.0
    s3 = 0.2 * 0.5 + 0.8 * s3
    s3 = 0.2 * 1.0 + 0.8 * s3
    np.testing.assert_allclose(book.scores, [0.0, s1, 0.0, s3], rtol=0, atol=1e-15)


def test_only_given_uids_move() -> None:
    book = ScoreBook(6, alpha=0.5)
    book.update(range(6), [1.0] * 6)
    before = book.scores
    book.update([2, 4], [0.0, 3.0])
    after = book.scores
    changed = np.nonzero(after != before)[0].tolist()
    assert changed == [2, 4]
    assert after[2] == 0.5 * 0.0 + 0.5 * 0.5
    assert after[4] == 0.5 * 3.0 + 0.5 * 0.5


def test_update_from_mapping() -> None:
    book = ScoreBook(4, alpha=0.5)
    book.update_from({3: 2.0, 0: 1.0})
    np.testing.assert_array_equal(book.scores, [0.5, 0.0, 0.0, 1.0])
    book.update_from({})
    np.testing.assert_array_equal(book.scores, [0.5, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="mapping"):
        book.update_from([(0, 1.0)])  # type: ignore[arg-type]


def test_empty_update_is_a_no_op() -> None:
    book = ScoreBook(3)
    book.update([], [])
    book.update(np.array([], dtype=np.int64), np.array([]))
    np.testing.assert_array_equal(book.scores, np.zeros(3))


def test_accepts_uint_uids_and_int_rewards() -> None:
    book = ScoreBook(3, alpha=0.5)
    book.update(np.array([2], dtype=np.uint16), [4])
    assert book.scores[2] == 2.0


def test_scores_is_a_read_only_copy() -> None:
    book = ScoreBook(3, alpha=0.5)
    scores = book.scores
    with pytest.raises(ValueError, match="read-only"):
        scores[0] = 1.0
    copy = scores.copy()
    copy[0] = 9.0
    assert book.scores[0] == 0.0


@pytest.mark.parametrize(
    ("uids", "rewards", "match"),
    [
        ([0, 1], [1.0, float("nan")], "finite"),
        ([0, 1], [float("inf"), 1.0], "finite"),
        ([0, 1], [1.0, -float("inf")], "finite"),
        ([1, 1], [1.0, 2.0], "repeat"),
        ([0, 4], [1.0, 2.0], "below n_uids"),
        ([0, -1], [1.0, 2.0], "negative"),
        ([0, 1.0], [1.0, 2.0], "integers"),
        ([True, False], [1.0, 2.0], "integers"),
        (["0", "1"], [1.0, 2.0], "integers"),
        ([0, 1], [1.0], "same length"),
        ([0], [1.0, 2.0], "same length"),
        ([[0, 1]], [[1.0, 2.0]], "one-dimensional"),
        (0, 1.0, "one-dimensional"),
        ([0, 1], ["a", "b"], "real numbers"),
        ([0, 1], [1.0, None], "real numbers"),
        ([0, 1], [1 + 2j, 1.0], "real numbers"),
        ([0, [1]], [1.0, 2.0], "one-dimensional"),
    ],
)
def test_bad_update_is_rejected_and_changes_nothing(uids: Any, rewards: Any, match: str) -> None:
    book = ScoreBook(4, alpha=0.5)
    book.update([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0])
    before = book.scores
    with pytest.raises(ValueError, match=match):
        book.update(uids, rewards)
    np.testing.assert_array_equal(book.scores, before)


def test_nan_error_names_the_uids() -> None:
    book = ScoreBook(8)
    with pytest.raises(ValueError, match=r"\[5, 7\]"):
        book.update([3, 5, 7], [1.0, float("nan"), float("inf")])


# -- decay -------------------------------------------------------------------------------------


def test_decay_is_explicit_and_honours_exclude() -> None:
    book = ScoreBook(4, alpha=1.0)
    book.update([0, 1, 2, 3], [1.0, 2.0, 4.0, 8.0])
    book.decay(0.5, exclude=[1, 3])
    np.testing.assert_array_equal(book.scores, [0.5, 2.0, 2.0, 8.0])
    book.decay(0.5)
    np.testing.assert_array_equal(book.scores, [0.25, 1.0, 1.0, 4.0])


@pytest.mark.parametrize("factor", [-0.1, 1.1, float("nan"), True, "0.5"])
def test_decay_rejects_bad_factor(factor: Any) -> None:
    with pytest.raises(ValueError, match="factor"):
        ScoreBook(2).decay(factor)


def test_decay_rejects_out_of_range_exclude_and_changes_nothing() -> None:
    book = ScoreBook(2, alpha=1.0)
    book.update([0, 1], [1.0, 1.0])
    with pytest.raises(ValueError, match="exclude"):
        book.decay(0.5, exclude=[2])
    np.testing.assert_array_equal(book.scores, [1.0, 1.0])


# -- sync --------------------------------------------------------------------------------------


def test_first_sync_records_hotkeys_without_reset() -> None:
    book = ScoreBook(3, alpha=1.0)
    book.update([0, 1, 2], [1.0, 2.0, 3.0])
    assert book.sync(["a", "b", "c"]) == []
    assert book.hotkeys == ("a", "b", "c")
    np.testing.assert_array_equal(book.scores, [1.0, 2.0, 3.0])


def test_sync_resets_uids_whose_hotkey_changed() -> None:
    book = ScoreBook(0, alpha=1.0)
    book.sync(["a", "b", "c", "d"])
    book.update([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0])
    assert book.sync(["a", "x", "c", "y"]) == [1, 3]
    np.testing.assert_array_equal(book.scores, [1.0, 0.0, 3.0, 0.0])
    assert book.sync(["a", "x", "c", "y"]) == []


def test_sync_accepts_a_numpy_array_of_hotkeys() -> None:
    book = ScoreBook(0)
    book.sync(np.array(["a", "b"]))
    assert book.hotkeys == ("a", "b")
    assert all(type(h) is str for h in book.hotkeys)


def test_sync_grows_with_zeros_and_shrinks() -> None:
    book = ScoreBook(2, alpha=1.0)
    book.sync(["a", "b"])
    book.update([0, 1], [1.0, 2.0])
    assert book.sync(["a", "b", "c", "d"]) == []
    assert book.n_uids == 4
    np.testing.assert_array_equal(book.scores, [1.0, 2.0, 0.0, 0.0])
    book.update([3], [5.0])
    assert book.sync(["a"]) == []
    assert book.n_uids == 1
    np.testing.assert_array_equal(book.scores, [1.0])
    with pytest.raises(ValueError, match="below n_uids=1"):
        book.update([1], [1.0])
    # A uid that comes back after a shrink starts from zero, whoever holds it.
    assert book.sync(["a", "b"]) == []
    np.testing.assert_array_equal(book.scores, [1.0, 0.0])


@pytest.mark.parametrize("hotkeys", ["abc", None, 3, ["a", 1]])
def test_sync_rejects_bad_hotkeys(hotkeys: Any) -> None:
    book = ScoreBook(2)
    with pytest.raises(ValueError, match="hotkeys"):
        book.sync(hotkeys)
    assert book.n_uids == 2
    assert book.hotkeys is None


# -- weights -----------------------------------------------------------------------------------


def test_weights_are_l1_normalised_with_negatives_clipped() -> None:
    book = ScoreBook(4, alpha=1.0)
    book.update([0, 1, 2, 3], [1.0, -5.0, 3.0, 0.0])
    weights = book.weights()
    np.testing.assert_allclose(weights, [0.25, 0.0, 0.75, 0.0])
    assert weights.dtype == np.float64
    assert book.as_dict() == {0: 0.25, 2: 0.75}
    assert all(type(k) is int and type(v) is float for k, v in book.as_dict().items())


@pytest.mark.parametrize("rewards", [[0.0, 0.0, 0.0], [-1.0, -2.0, 0.0]])
def test_nothing_to_weigh_gives_zeros_never_nan(rewards: list[float]) -> None:
    book = ScoreBook(3, alpha=1.0)
    book.update([0, 1, 2], rewards)
    weights = book.weights()
    np.testing.assert_array_equal(weights, np.zeros(3))
    assert not np.isnan(weights).any()
    assert book.as_dict() == {}


def test_empty_book_weighs_nothing() -> None:
    book = ScoreBook(0)
    assert book.weights().shape == (0,)
    assert book.as_dict() == {}
    assert book.top(3) == []


def test_huge_scores_do_not_overflow_to_nan() -> None:
    book = ScoreBook(3, alpha=1.0)
    book.update([0, 1, 2], [1.5e308, 1.5e308, 0.0])
    np.testing.assert_allclose(book.weights(), [0.5, 0.5, 0.0])


def test_weights_returns_a_fresh_array() -> None:
    book = ScoreBook(2, alpha=1.0)
    book.update([0], [1.0])
    weights = book.weights()
    weights[0] = 42.0
    assert book.weights()[0] == 1.0
    assert book.scores[0] == 1.0


def test_top_orders_best_first_ties_by_uid() -> None:
    book = ScoreBook(5, alpha=1.0)
    book.update([0, 1, 2, 3, 4], [0.5, 2.0, 0.5, 3.0, -1.0])
    assert book.top(3) == [(3, 3.0), (1, 2.0), (0, 0.5)]
    assert book.top(0) == []
    assert len(book.top(10)) == 5
    with pytest.raises(ValueError, match="k"):
        book.top(-1)


# -- save / load -------------------------------------------------------------------------------


def _filled_book() -> ScoreBook:
    book = ScoreBook(0, alpha=0.3)
    book.sync(["hk-a", "hk-b", "hk-c"])
    book.update([0, 2], [1.0, -0.25])
    return book


def test_save_load_round_trip(tmp_path: Path) -> None:
    book = _filled_book()
    path = tmp_path / "scores.npz"
    book.save(path)
    loaded = ScoreBook.load(path)
    np.testing.assert_array_equal(loaded.scores, book.scores)
    assert loaded.alpha == 0.3
    assert loaded.hotkeys == ("hk-a", "hk-b", "hk-c")
    # The loaded book carries on: a changed hotkey is still noticed.
    assert loaded.sync(["hk-a", "hk-b", "hk-z"]) == [2]
    assert sorted(os.listdir(tmp_path)) == ["scores.npz"]


def test_round_trip_without_hotkeys_and_string_path(tmp_path: Path) -> None:
    book = ScoreBook(2, alpha=0.5)
    book.update([1], [1.0])
    path = str(tmp_path / "book")
    book.save(path)
    assert os.path.exists(path)  # the name is used as given, no suffix added
    loaded = ScoreBook.load(path)
    assert loaded.hotkeys is None
    np.testing.assert_array_equal(loaded.scores, [0.0, 0.5])


def test_save_overwrites_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "scores.npz"
    book = ScoreBook(2, alpha=1.0)
    book.save(path)
    book.update([0], [7.0])
    book.save(path)
    assert ScoreBook.load(path).scores[0] == 7.0


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ScoreBook.load(tmp_path / "nope.npz")


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "scores.npz"
    _filled_book().save(path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 10, 0):
        path.write_bytes(data[:cut])
        with pytest.raises(ScoreBookFileError, match=r"scores\.npz") as info:
            ScoreBook.load(path)
        assert info.value.path == str(path)
        assert isinstance(info.value, ValueError)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "scores.npz"
    path.write_bytes(b"definitely not a score book\x00\x01\x02" * 10)
    with pytest.raises(ScoreBookFileError, match=r"scores\.npz"):
        ScoreBook.load(path)


def test_pickled_content_is_refused_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "scores.npz"
    np.savez(path, format=np.array("organic_scoring.scorebook"), version=np.array(1),
             scores=np.array([object()], dtype=object))  # fmt: skip
    with pytest.raises(ScoreBookFileError, match="corrupt"):
        ScoreBook.load(path)


def test_bare_npy_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scores.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ScoreBookFileError, match="not a score book"):
        ScoreBook.load(path)


_KINDS = {
    "has_kinds": np.array(True),
    "kind_averages": np.zeros((2, 2)),
    "kind_counts": np.zeros((2, 2), dtype=np.int64),
    "kind_windows": np.zeros((2, 2, 4)),
}


def _write_archive(path: Path, **overrides: Any) -> None:
    entries: dict[str, Any] = {
        "format": np.array("organic_scoring.scorebook"),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "scores": np.zeros(2),
        "alpha": np.array(0.5),
        "has_hotkeys": np.array(True),
        "hotkeys": np.array(["a", "b"]),
        "has_kinds": np.array(False),
        "kind_averages": np.zeros((2, 0)),
        "kind_counts": np.zeros((2, 0), dtype=np.int64),
        "kind_windows": np.zeros((2, 2, 0)),
    }
    entries.update(overrides)
    with path.open("wb") as handle:
        np.savez(handle, **{k: v for k, v in entries.items() if v is not None})


def test_hand_written_valid_archive_loads(tmp_path: Path) -> None:
    path = tmp_path / "scores.npz"
    _write_archive(path)
    assert ScoreBook.load(path).hotkeys == ("a", "b")
    _write_archive(path, **_KINDS)
    assert ScoreBook.load(path).gap_window == 4


def test_a_version_1_file_still_loads(tmp_path: Path) -> None:
    # What version 1.0 of the library wrote: no per-kind record.
    path = tmp_path / "scores.npz"
    no_kinds = {key: None for key in _KINDS}
    _write_archive(path, version=np.array(1, dtype=np.int64), scores=np.array([0.5, 0.25]),
                   **no_kinds)  # fmt: skip
    book = ScoreBook.load(path, organic_weight=0.7)
    np.testing.assert_array_equal(book.scores, [0.5, 0.25])
    assert book.hotkeys == ("a", "b")
    assert book.organic_weight == 0.7
    assert book.gap_window == 64
    assert not book.consistency().significant.any()
    np.testing.assert_allclose(book.weights(), [2 / 3, 1 / 3])  # no per-kind record yet


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"version": np.array(FORMAT_VERSION + 1)}, f"unknown format version {FORMAT_VERSION + 1}"),
        ({"version": np.array(0)}, "unknown format version 0"),
        ({"version": None}, "version"),
        ({"version": np.array("1")}, "version"),
        ({"format": np.array("something.else")}, "not a score book"),
        ({"format": None}, "not a score book"),
        ({"scores": None}, "missing entries: scores"),
        ({"scores": np.array([[0.0]])}, "one-dimensional"),
        ({"scores": np.array([0.0, np.nan])}, "NaN"),
        ({"alpha": np.array(2.0)}, "alpha"),
        ({"hotkeys": np.array(["a"])}, "1 hotkeys recorded for 2 scores"),
        ({"hotkeys": np.array([1, 2])}, "strings"),
        ({"has_hotkeys": np.array(1)}, "has_hotkeys"),
        ({"has_kinds": None}, "missing entries: has_kinds"),
        ({"has_kinds": np.array(1)}, "has_kinds"),
        ({**_KINDS, "kind_averages": np.zeros((2, 3))}, r"kind_averages .* shape \(2, 2\)"),
        ({**_KINDS, "kind_counts": np.zeros((2, 2))}, "kind_counts must be an int array"),
        ({**_KINDS, "kind_counts": -np.ones((2, 2), dtype=np.int64)}, "negative"),
        ({**_KINDS, "kind_windows": np.zeros((2, 2))}, "kind_windows"),
        ({**_KINDS, "kind_windows": np.zeros((2, 2, 0))}, "kind_windows"),
        ({**_KINDS, "kind_windows": np.full((2, 2, 4), np.inf)}, "NaN or infinity"),
    ],
)
def test_mismatched_archive_is_a_clear_error(
    tmp_path: Path, overrides: dict[str, Any], match: str
) -> None:
    path = tmp_path / "scores.npz"
    _write_archive(path, **overrides)
    with pytest.raises(ScoreBookFileError, match=match):
        ScoreBook.load(path)


def test_crash_between_write_and_rename_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scores.npz"
    old = _filled_book()
    old.save(path)
    before = path.read_bytes()

    def crash(src: Any, dst: Any) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    newer = ScoreBook(7, alpha=0.9)
    with pytest.raises(OSError, match="simulated crash"):
        newer.save(path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["scores.npz"]  # no temporary file left behind
    np.testing.assert_array_equal(ScoreBook.load(path).scores, old.scores)


def test_crash_while_writing_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scores.npz"
    _filled_book().save(path)
    before = path.read_bytes()

    def crash(fd: int) -> None:
        raise OSError("simulated disk failure")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="simulated disk failure"):
        ScoreBook(3).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["scores.npz"]


# -- threads -----------------------------------------------------------------------------------


def test_concurrent_updates_and_reads() -> None:
    n_writers, rounds, per_writer = 4, 300, 8
    book = ScoreBook(n_writers * per_writer, alpha=0.5)
    start = threading.Barrier(n_writers + 1)
    writers_done = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def writer(w: int) -> None:
        try:
            own = list(range(w * per_writer, (w + 1) * per_writer))
            start.wait(timeout=10)
            for r in range(rounds):
                book.update(own, [float(r % 3)] * per_writer)
                book.update_from({own[0]: 1.0})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        nonlocal reads
        try:
            start.wait(timeout=10)
            while not writers_done.is_set() or reads == 0:
                weights = book.weights()
                total = float(weights.sum())
                assert not np.isnan(weights).any()
                assert total == 0.0 or abs(total - 1.0) < 1e-9
                assert (weights >= 0).all()
                book.as_dict()
                reads += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(n_writers)]
    read_thread = threading.Thread(target=reader)
    read_thread.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    writers_done.set()
    read_thread.join(timeout=30)
    assert not any(t.is_alive() for t in [*threads, read_thread])
    assert errors == []
    assert reads > 0

    # Each writer owns its uids, so the end state is exact whatever the interleaving.
    expected_own0 = expected_rest = 0.0
    for r in range(rounds):
        expected_own0 = 0.5 * (0.5 * float(r % 3) + 0.5 * expected_own0) + 0.5
        expected_rest = 0.5 * float(r % 3) + 0.5 * expected_rest
    scores = book.scores.reshape(n_writers, per_writer)
    np.testing.assert_allclose(scores[:, 0], expected_own0)
    np.testing.assert_allclose(scores[:, 1:], expected_rest)


# -- emit_weights ------------------------------------------------------------------------------


class _Recorder:
    """Stands in for bittensor's set_weights with its real signature: a wrong keyword fails."""

    def __init__(self, real: Callable[..., Any], answer: Callable[[], Any]) -> None:
        self.signature = inspect.signature(real)
        self.__signature__ = self.signature  # what emit_weights checks keywords against
        self.answer = answer
        self.calls: list[inspect.BoundArguments] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bound = self.signature.bind(*args, **kwargs)
        self.calls.append(bound)
        return self.answer()


def _subtensor_class() -> type[Any]:
    module = pytest.importorskip("bittensor.core.subtensor")
    cls: type[Any] = module.Subtensor
    return cls


def _fake_subtensor(answer: Callable[[], Any]) -> tuple[Any, _Recorder]:
    real = _subtensor_class().set_weights
    recorder = _Recorder(real, answer)

    class FakeSubtensor:
        def set_weights(self, *args: Any, **kwargs: Any) -> Any:
            return recorder(self, *args, **kwargs)

        set_weights.__signature__ = inspect.signature(real)  # type: ignore[attr-defined]

    return FakeSubtensor(), recorder


def _success_answer() -> Any:
    if _compat.BT_MAJOR >= 10:
        from bittensor.core.types import ExtrinsicResponse

        return ExtrinsicResponse(True, "weights set")
    return (True, "weights set")


def _failure_answer() -> Any:
    if _compat.BT_MAJOR >= 10:
        from bittensor.core.types import ExtrinsicResponse

        return ExtrinsicResponse(False, "too soon")
    return (False, "too soon")


legacy_only = pytest.mark.skipif(_compat.BT_MAJOR >= 11, reason="bittensor 9/10 path")
sdk_only = pytest.mark.skipif(_compat.BT_MAJOR < 11, reason="bittensor 11 path")


def _book() -> ScoreBook:
    book = ScoreBook(4, alpha=1.0)
    book.update([1, 3], [1.0, 3.0])
    return book


@pytest.mark.bittensor
@legacy_only
def test_emit_through_subtensor_with_real_signature() -> None:
    subtensor, recorder = _fake_subtensor(_success_answer)
    wallet = object()
    result = emit_weights(_book(), netuid=7, wallet=wallet, subtensor=subtensor, version_key=123)
    assert isinstance(result, WeightsResult)
    assert result.success is True
    assert result.message == "weights set"
    assert bool(result)
    success, message = result
    assert (success, message) == (True, "weights set")
    (call,) = recorder.calls
    args = call.arguments
    assert args["wallet"] is wallet
    assert args["netuid"] == 7
    assert args["version_key"] == 123
    assert args["uids"].dtype == np.int64
    assert args["weights"].dtype == np.float32
    assert args["uids"].tolist() == [1, 3]
    np.testing.assert_allclose(args["weights"], [0.25, 0.75])


@pytest.mark.bittensor
@legacy_only
def test_emit_through_subtensor_reports_failure() -> None:
    subtensor, _ = _fake_subtensor(_failure_answer)
    result = emit_weights({0: 1.0}, netuid=1, wallet=object(), subtensor=subtensor)
    assert result == WeightsResult(False, "too soon", result.raw, outcome="rate_limited")
    assert not result


@pytest.mark.bittensor
@legacy_only
def test_emit_through_subtensor_rejects_unknown_keyword_before_sending() -> None:
    subtensor, recorder = _fake_subtensor(_success_answer)
    with pytest.raises(TypeError):
        emit_weights(_book(), netuid=1, wallet=object(), subtensor=subtensor, network="test")
    assert recorder.calls == []


@pytest.mark.bittensor
@legacy_only
def test_emit_needs_subtensor_and_wallet_on_legacy() -> None:
    subtensor, _ = _fake_subtensor(_success_answer)
    with pytest.raises(ValueError, match="subtensor is required"):
        emit_weights(_book(), netuid=1, wallet=object())
    with pytest.raises(ValueError, match="wallet is required"):
        emit_weights(_book(), netuid=1, subtensor=subtensor)


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], _Recorder]:
    import bittensor as bt

    def install(answer: Callable[[], Any]) -> _Recorder:
        recorder = _Recorder(bt.set_weights, answer)
        monkeypatch.setattr(bt, "set_weights", recorder)
        return recorder

    return install


@pytest.mark.bittensor
@sdk_only
def test_emit_through_sdk_with_real_signature(
    sdk: Callable[[Callable[[], Any]], _Recorder],
) -> None:
    import bittensor as bt

    recorder = sdk(lambda: bt.ExtrinsicResult(success=True, message="included"))
    result = emit_weights(_book(), netuid=7, wallet="validator", hotkey="default", network="local")
    assert tuple(result) == (True, "included")
    assert isinstance(result.raw, bt.ExtrinsicResult)
    (call,) = recorder.calls
    assert call.arguments["netuid"] == 7
    assert call.arguments["weights"] == {1: 0.25, 3: 0.75}
    assert call.arguments["wallet"] == "validator"
    assert call.arguments["hotkey"] == "default"
    assert call.arguments["network"] == "local"


@pytest.mark.bittensor
@sdk_only
def test_emit_through_sdk_turns_chain_error_into_failure(
    sdk: Callable[[Callable[[], Any]], _Recorder],
) -> None:
    import bittensor as bt

    def refuse() -> Any:
        raise bt.ChainError("rate limited")

    sdk(refuse)
    result = emit_weights({2: 0.5}, netuid=1)
    assert not result
    assert result.message == "rate limited"
    assert isinstance(result.raw, bt.ChainError)


@pytest.mark.bittensor
@sdk_only
def test_emit_through_sdk_rejects_unknown_keyword_and_subtensor(
    sdk: Callable[[Callable[[], Any]], _Recorder],
) -> None:
    import bittensor as bt

    recorder = sdk(lambda: bt.ExtrinsicResult(success=True))
    with pytest.raises(TypeError):
        emit_weights(_book(), netuid=1, wait_for_inclusion=True)
    with pytest.raises(ValueError, match="network="):
        emit_weights(_book(), netuid=1, subtensor=object())
    assert recorder.calls == []


@pytest.mark.bittensor
def test_emit_sends_nothing_when_nothing_to_weigh(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sdk() -> Any:
        raise AssertionError("must not reach bittensor")

    monkeypatch.setattr(_compat, "sdk_set_weights", lambda: no_sdk)

    result = emit_weights(ScoreBook(3), netuid=1, wallet=object())
    assert result == WeightsResult(
        False, "no uid has a positive weight; nothing was sent", outcome="rejected"
    )
    assert emit_weights({0: 0.0}, netuid=1, wallet=object()).success is False


@pytest.mark.bittensor
@pytest.mark.parametrize(
    ("weights", "netuid", "match"),
    [
        ({0: 1.0}, -1, "netuid"),
        ({0: 1.0}, True, "netuid"),
        ({-1: 1.0}, 1, "keys"),
        ({"0": 1.0}, 1, "keys"),
        ({0: float("nan")}, 1, "finite"),
        ({0: -1.0}, 1, ">= 0"),
        ({0: "1"}, 1, "number"),
        ([1.0], 1, "mapping"),
    ],
)
def test_emit_validates_input(weights: Any, netuid: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        emit_weights(weights, netuid=netuid, wallet=object(), subtensor=None)


# -- benchmark smoke ---------------------------------------------------------------------------


def test_benchmark_runs_quick() -> None:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_weights.py"
    spec = importlib.util.spec_from_file_location("bench_weights", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.run(quick=True)
    assert rows
    assert {row["n_uids"] for row in rows} == {256, 4096}
    for row in rows:
        assert set(row) == {"name", "n_uids", "ours_ns", "bare_ns", "ratio"}
        assert isinstance(row["name"], str)
        assert row["ours_ns"] > 0
        assert row["bare_ns"] > 0
        assert row["ratio"] == pytest.approx(row["ours_ns"] / row["bare_ns"])
