"""splice_words: a perturbation of text that keeps to the word pairs of its inputs."""

from __future__ import annotations

import itertools
import random

from organic_scoring.synth_dataset import splice_words


def _pairs(words: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(words))


def test_every_word_pair_of_a_splice_comes_from_an_input() -> None:
    rng = random.Random(1)
    a = "how do I reverse a list in Python without a loop"
    b = "what is the fastest way to sort a list of tuples by the second item"
    results = {splice_words(a, b, rng) for _ in range(50)}
    assert None not in results
    for result in results:
        assert result is not None
        assert result not in (a, b)
        assert _pairs(result.split()) <= _pairs(a.split()) | _pairs(b.split())


def test_a_longer_shared_run_is_preferred() -> None:
    a = "tell me a story about a dragon and a knight"
    b = "write me a story about the sea"
    rng = random.Random(2)
    for _ in range(20):
        result = splice_words(a, b, rng)
        assert result is not None
        # "me a story about" is shared: the join is made inside that run, so the
        # result's word triples also come from an input.
        assert "about the sea" in result or "a dragon" in result
        triples = set(zip(*(result.split()[k:] for k in range(3)), strict=False))
        allowed = set(zip(*(a.split()[k:] for k in range(3)), strict=False)) | set(
            zip(*(b.split()[k:] for k in range(3)), strict=False)
        )
        assert triples <= allowed


def test_nothing_to_splice_gives_none() -> None:
    rng = random.Random(3)
    assert splice_words("alpha beta", "gamma delta", rng) is None
    assert splice_words("same text", "same text", rng) is None
    assert splice_words("", "anything", rng) is None


def test_seeded_splices_repeat() -> None:
    a, b = "the cat sat on the mat today", "the dog sat on the rug at noon"

    def run(seed: int) -> list[str | None]:
        rng = random.Random(seed)
        return [splice_words(a, b, rng) for _ in range(10)]

    assert run(5) == run(5)
