"""The score book's organic/synthetic record: per-kind averages, the gap test, weighing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from organic_scoring.weights import Consistency, ScoreBook

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
    assert verdict.t[ORGANIC_BETTER] >= verdict.threshold
    assert verdict.t[SYNTHETIC_BETTER] <= -verdict.threshold
    assert verdict.gap[ORGANIC_BETTER] == pytest.approx(0.3, abs=0.1)
    assert verdict.gap[SYNTHETIC_BETTER] == pytest.approx(-0.3, abs=0.1)
    assert abs(verdict.t[HONEST]) < verdict.threshold
    assert abs(verdict.t[NOISY_HONEST]) < verdict.threshold


def test_the_verdict_reports_its_inputs() -> None:
    book = _simulate(0, rounds=100)
    verdict = book.consistency()
    assert verdict.organic_count.sum() + verdict.synthetic_count.sum() == 400
    assert (verdict.organic_count + verdict.synthetic_count == 100).all()
    assert verdict.threshold == 4.0
    assert verdict.min_count == 8
    with pytest.raises(ValueError, match="read-only"):
        verdict.gap[0] = 1.0


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
    loaded = ScoreBook.load(path, organic_weight=0.8, gap_penalty=0.25, gap_threshold=3.0)
    assert loaded.gap_window == 32
    assert (loaded.organic_weight, loaded.gap_penalty, loaded.gap_threshold) == (0.8, 0.25, 3.0)
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
        ({"gap_threshold": 0}, "gap_threshold must be a finite number > 0"),
        ({"gap_threshold": float("inf")}, "gap_threshold"),
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
