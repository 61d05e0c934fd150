"""The score book's organic/synthetic record: per-kind averages, the gap test, weighing."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from organic_scoring.weights import Consistency, ScoreBook, _book
from organic_scoring.weights._consistency import t_two_sided

HONEST, ORGANIC_BETTER, SYNTHETIC_BETTER, NOISY_HONEST = 0, 1, 2, 3


def _simulate(seed: int, rounds: int = 240, organic_share: float = 0.4, **kwargs: Any) -> ScoreBook:
    """Four miners answering a stream of organic and synthetic samples.

    The honest miners draw the same reward distribution on both kinds; one miner
    serves organic samples well and synthetic ones badly, another the reverse.
    """
    rng = np.random.default_rng(seed)
    book = ScoreBook(4, alpha=0.1, **kwargs)
    for _ in range(rounds):
        organic = bool(rng.random() < organic_share)
        rewards = [
            rng.beta(7, 3),  # mean 0.7 either way
            rng.beta(9, 1) if organic else rng.beta(6, 4),  # 0.9 on organic, 0.6 on probes
            rng.beta(6, 4) if organic else rng.beta(9, 1),
            rng.uniform(0.0, 1.0),  # mean 0.5, very noisy, either way
        ]
        book.update([0, 1, 2, 3], rewards, organic=organic)
    return book


@pytest.mark.parametrize("seed", range(12))
def test_consistency_flags_miners_that_serve_the_kinds_differently(seed: int) -> None:
    verdict = _simulate(seed).consistency()
    assert isinstance(verdict, Consistency)
    assert verdict.flagged() == [ORGANIC_BETTER, SYNTHETIC_BETTER]
    assert verdict.t[ORGANIC_BETTER] > 0 > verdict.t[SYNTHETIC_BETTER]
    assert verdict.p[ORGANIC_BETTER] <= verdict.false_flag_rate
    assert verdict.p[SYNTHETIC_BETTER] <= verdict.false_flag_rate
    assert verdict.gap[ORGANIC_BETTER] == pytest.approx(0.3, abs=0.1)
    assert verdict.gap[SYNTHETIC_BETTER] == pytest.approx(-0.3, abs=0.1)
    assert verdict.p[HONEST] > verdict.false_flag_rate
    assert verdict.p[NOISY_HONEST] > verdict.false_flag_rate


def test_the_verdict_reports_its_inputs() -> None:
    book = _simulate(0, rounds=100)
    verdict = book.consistency()
    assert verdict.organic_count.sum() + verdict.synthetic_count.sum() == 400
    assert (verdict.organic_count + verdict.synthetic_count == 100).all()
    assert verdict.false_flag_rate == 1e-4
    assert verdict.min_count == 8
    with pytest.raises(ValueError, match="read-only"):
        verdict.gap[0] = 1.0


def test_the_p_value_is_students_t() -> None:
    # Closed forms: df = 1 is Cauchy, df = 2 has an algebraic tail; a large df is normal.
    t = np.array([0.0, 0.5, 1.0, 3.0, 12.0, 300.0])
    np.testing.assert_allclose(
        t_two_sided(t, np.ones_like(t)), 1 - 2 / np.pi * np.arctan(t), rtol=1e-9
    )
    np.testing.assert_allclose(
        t_two_sided(t, np.full_like(t, 2.0)), 1 - t / np.sqrt(2 + t**2), rtol=1e-9
    )
    normal = [math.erfc(v / math.sqrt(2)) for v in (1.0, 3.0, 5.0)]
    np.testing.assert_allclose(t_two_sided(np.array([1.0, 3.0, 5.0]), np.full(3, 1e7)), normal,
                               rtol=1e-4)  # fmt: skip
    # Known quantiles: |t| = 2.228 at df 10 and 3.291 at df 1e7 leave 5 % and 0.1 %.
    assert t_two_sided(np.array([2.2281389]), np.array([10.0]))[0] == pytest.approx(0.05, rel=1e-6)
    assert t_two_sided(np.array([3.2905267]), np.array([1e7]))[0] == pytest.approx(1e-3, rel=1e-4)


def _honest_book(rate: float, per_kind: int, draw: str, seed: int, uids: int = 20_000) -> ScoreBook:
    """``uids`` honest miners (one reward distribution for both kinds), ``per_kind``
    rewards of each kind, alternating."""
    rng = np.random.default_rng(seed)
    book = ScoreBook(uids, gap_false_flag_rate=rate, gap_window=per_kind, gap_min_count=per_kind)
    everyone = np.arange(uids)
    for i in range(2 * per_kind):
        if draw == "normal":
            rewards = rng.normal(0.6, 0.2, uids)
        elif draw == "beta":
            rewards = rng.beta(7.0, 3.0, uids)
        else:
            rewards = rng.uniform(0.0, 1.0, uids)
        book.update(everyone, rewards, organic=bool(i % 2))
    return book


@pytest.mark.parametrize(
    ("rate", "per_kind", "draw", "low", "high"),
    [
        # 20 000 honest uids at 0.01: 200 flags expected, standard deviation 14.
        (0.01, 64, "normal", 120, 300),
        (0.01, 10, "normal", 120, 300),
        (0.01, 64, "beta", 120, 300),
        (0.01, 64, "uniform", 120, 300),
        # At 0.001: 20 expected, standard deviation 4.5.
        (0.001, 64, "normal", 4, 60),
        (0.001, 10, "beta", 4, 60),
    ],
)
def test_honest_miners_are_flagged_at_the_stated_rate(
    rate: float, per_kind: int, draw: str, low: int, high: int
) -> None:
    # Seeded, so the count is fixed; the bounds are five or more standard deviations
    # wide on the side a wrong test would go. A fixed |t| >= 4 flags 0.06 % at ten
    # rewards of each kind whatever rate was meant, and the normal quantile for 0.01
    # (|t| >= 2.58) flags 2 % there: neither passes both rates.
    flagged = len(_honest_book(rate, per_kind, draw, seed=per_kind).consistency().flagged())
    assert low <= flagged <= high


def test_a_lower_rate_needs_more_evidence() -> None:
    rng = np.random.default_rng(4)
    books = [ScoreBook(1, gap_false_flag_rate=r) for r in (1e-2, 1e-6)]
    for i in range(128):  # 64 of each kind, 0.06 apart: here t = 4.9, p = 3e-6
        organic = bool(i % 2)
        reward = rng.normal(0.7 if organic else 0.64, 0.1)
        for book in books:
            book.update([0], [reward], organic=organic)
    loose, strict = (book.consistency() for book in books)
    assert loose.p[0] == strict.p[0] < 1e-2
    assert loose.flagged() == [0]
    assert strict.flagged() == []


def test_too_few_rewards_of_a_kind_are_not_judged() -> None:
    book = ScoreBook(1, gap_min_count=5)
    for _ in range(4):
        book.update([0], [1.0], organic=True)
    for _ in range(50):
        book.update([0], [0.0], organic=False)
    verdict = book.consistency()
    assert not verdict.significant[0]
    assert verdict.gap[0] == 0.0
    assert verdict.t[0] == 0.0
    book.update([0], [1.0], organic=True)
    verdict = book.consistency()
    assert verdict.significant[0]
    assert verdict.t[0] == np.inf  # no spread on either side and different means
    assert verdict.p[0] == 0.0


def test_identical_rewards_on_both_kinds_are_consistent() -> None:
    book = ScoreBook(1, gap_min_count=2)
    for organic in (True, False) * 5:
        book.update([0], [0.5], organic=organic)
    verdict = book.consistency()
    assert verdict.t[0] == 0.0
    assert not verdict.significant[0]


def test_only_the_recent_window_is_judged() -> None:
    book = ScoreBook(1, gap_window=10, gap_min_count=5)
    for _ in range(40):  # a miner that used to game organic traffic...
        book.update([0], [1.0], organic=True)
        book.update([0], [0.0], organic=False)
    assert book.consistency().significant[0]
    rng = np.random.default_rng(1)
    for _ in range(10):  # ...and has stopped
        book.update([0], [rng.uniform(0.4, 0.6)], organic=True)
        book.update([0], [rng.uniform(0.4, 0.6)], organic=False)
    verdict = book.consistency()
    assert not verdict.significant[0]
    assert verdict.organic_count[0] == 50


def test_per_kind_averages_match_hand_computation() -> None:
    book = ScoreBook(2, alpha=0.5)
    book.update([0, 1], [1.0, 0.4], organic=True)
    book.update([0], [0.2], organic=False)
    book.update([0], [0.6], organic=True)
    np.testing.assert_allclose(book.organic_scores, [0.5 * 0.6 + 0.5 * 0.5, 0.2])
    np.testing.assert_allclose(book.synthetic_scores, [0.1, 0.0])
    # The plain average takes every reward, whatever its kind.
    np.testing.assert_allclose(book.scores, [0.5 * 0.6 + 0.5 * (0.5 * 0.2 + 0.5 * 0.5), 0.2])


def test_updates_without_a_kind_keep_the_plain_behaviour() -> None:
    book = ScoreBook(3, alpha=0.5, organic_weight=0.9, gap_penalty=1.0)
    book.update([0, 1], [1.0, 0.5])
    np.testing.assert_allclose(book.weights(), [2 / 3, 1 / 3, 0.0])
    np.testing.assert_array_equal(book.organic_scores, [0.0, 0.0, 0.0])
    assert book.consistency().flagged() == []


def test_organic_weight_mixes_the_kinds() -> None:
    book = ScoreBook(4, alpha=1.0, organic_weight=0.75)
    book.update([0, 1, 2], [0.8, 0.4, 0.2], organic=True)
    book.update([0, 1], [0.0, 0.4], organic=False)
    book.update([3], [0.5])  # no per-kind record: its plain average counts
    # uid 0: 0.75 * 0.8 + 0.25 * 0.0; uid 1: 0.4 either way; uid 2: organic only.
    expected = np.array([0.6, 0.4, 0.2, 0.5])
    np.testing.assert_allclose(book.weights(), expected / expected.sum())


def test_organic_weight_zero_weighs_only_synthetic_rewards() -> None:
    book = ScoreBook(2, alpha=1.0, organic_weight=0.0)
    book.update([0, 1], [1.0, 0.0], organic=True)
    book.update([0, 1], [0.2, 0.6], organic=False)
    np.testing.assert_allclose(book.weights(), [0.25, 0.75])


def test_gap_penalty_takes_a_share_off_flagged_miners() -> None:
    plain = _simulate(3)
    penalised = _simulate(3, gap_penalty=0.5)
    np.testing.assert_array_equal(plain.scores, penalised.scores)
    flagged = penalised.consistency().flagged()
    assert flagged == [ORGANIC_BETTER, SYNTHETIC_BETTER]
    raw = np.maximum(plain.scores, 0.0)
    raw[flagged] *= 0.5
    np.testing.assert_allclose(penalised.weights(), raw / raw.sum())
    zeroed = _simulate(3, gap_penalty=1.0).weights()
    assert (zeroed[flagged] == 0).all()
    assert zeroed.sum() == pytest.approx(1.0)


def test_decay_scales_the_kind_averages_too() -> None:
    book = ScoreBook(2, alpha=1.0)
    book.update([0, 1], [1.0, 1.0], organic=True)
    book.decay(0.5, exclude=[1])
    np.testing.assert_allclose(book.organic_scores, [0.5, 1.0])
    np.testing.assert_allclose(book.scores, [0.5, 1.0])


def test_sync_forgets_the_kind_record_of_a_replaced_miner_and_resizes() -> None:
    book = _simulate(4, gap_min_count=4)
    book.sync(["a", "b", "c", "d"])
    assert book.consistency().flagged() == [ORGANIC_BETTER, SYNTHETIC_BETTER]
    book.sync(["a", "B", "c", "d", "e"])
    verdict = book.consistency()
    assert verdict.flagged() == [SYNTHETIC_BETTER]
    assert verdict.organic_count[1] == verdict.synthetic_count[1] == 0
    assert verdict.organic_count.shape == (5,)
    book.update([4], [1.0], organic=True)
    book.sync(["a", "B", "c"])
    assert book.organic_scores.shape == (3,)
    assert book.consistency().flagged() == [SYNTHETIC_BETTER]


def test_save_load_round_trip_keeps_the_record_and_takes_settings(tmp_path: Path) -> None:
    book = _simulate(5, gap_window=32)
    path = tmp_path / "scores.npz"
    book.save(path)
    loaded = ScoreBook.load(path, organic_weight=0.8, gap_penalty=0.25, gap_false_flag_rate=0.01)
    assert loaded.gap_window == 32
    assert (loaded.organic_weight, loaded.gap_penalty, loaded.gap_false_flag_rate) == (
        0.8,
        0.25,
        0.01,
    )
    np.testing.assert_array_equal(loaded.organic_scores, book.organic_scores)
    np.testing.assert_array_equal(loaded.synthetic_scores, book.synthetic_scores)
    before, after = book.consistency(), loaded.consistency()
    np.testing.assert_array_equal(before.t, after.t)
    np.testing.assert_array_equal(before.organic_count, after.organic_count)
    # The loaded book carries on where the saved one stopped.
    book.update([0], [0.3], organic=True)
    loaded.update([0], [0.3], organic=True)
    np.testing.assert_array_equal(book.consistency().t, loaded.consistency().t)
    with pytest.raises(ValueError, match="gap_window=16 differs from the window of 32"):
        ScoreBook.load(path, gap_window=16)


def test_a_book_without_a_kind_record_round_trips(tmp_path: Path) -> None:
    book = ScoreBook(2)
    book.update([0], [1.0])
    book.save(tmp_path / "s.npz")
    loaded = ScoreBook.load(tmp_path / "s.npz", gap_window=10)
    assert loaded.gap_window == 10
    np.testing.assert_array_equal(loaded.scores, book.scores)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"organic_weight": 1.5}, "organic_weight must be a number in"),
        ({"organic_weight": True}, "organic_weight"),
        ({"gap_penalty": -0.1}, "gap_penalty must be a number in"),
        ({"gap_false_flag_rate": 0}, "gap_false_flag_rate must be a number in"),
        ({"gap_false_flag_rate": 1.0}, "gap_false_flag_rate must be a number in"),
        ({"gap_false_flag_rate": float("nan")}, "gap_false_flag_rate"),
        ({"gap_window": 1}, "gap_window must be an int >= 2"),
        ({"gap_min_count": 2.0}, "gap_min_count must be an int"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ScoreBook(3, **kwargs)


def test_bad_kind_is_refused_and_changes_nothing() -> None:
    book = ScoreBook(2)
    with pytest.raises(ValueError, match="organic must be True, False or None"):
        book.update([0], [1.0], organic="yes")  # type: ignore[arg-type]
    np.testing.assert_array_equal(book.scores, [0.0, 0.0])


@pytest.mark.parametrize("read", ["weights", "consistency"])
def test_the_gap_test_runs_outside_the_books_lock(
    read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The t-test takes milliseconds for thousands of uids; the loop's update() and the
    # weight setter's reads must not wait for it.
    book = ScoreBook(4, gap_penalty=0.5, gap_min_count=2)
    for organic in (True, False, True, False):
        book.update([0, 1], [0.9, 0.1], organic=organic)
    judging, go_on = threading.Event(), threading.Event()

    def slow_compare(*args: Any, **kwargs: Any) -> Consistency:
        judging.set()
        go_on.wait(60)
        return real_compare(*args, **kwargs)

    real_compare = _book.compare
    monkeypatch.setattr(_book, "compare", slow_compare)
    reader = threading.Thread(target=getattr(book, read))
    reader.start()
    try:
        assert judging.wait(30)
        updated = threading.Thread(target=book.update, args=([2], [0.5]), kwargs={"organic": True})
        updated.start()
        updated.join(10)
        assert not updated.is_alive(), f"update() waited for {read}()'s t-test"
        assert book.scores[2] > 0
    finally:
        go_on.set()
        reader.join()
