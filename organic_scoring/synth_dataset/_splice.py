"""A perturbation for text prompts that stays within the words of real traffic."""

from __future__ import annotations

import random

__all__ = ["splice_words"]


def splice_words(text: str, other: str, rng: random.Random) -> str | None:
    """The start of ``text`` joined to the end of ``other`` at a place where they agree.

    Both are split on whitespace. The join is made where the two share a run of
    words, longest runs preferred, so every word pair (and, where they share two
    words, every word triple) of the result already occurs in one of the two inputs:
    the result reads like the traffic it came from, yet is neither input. Returns
    None when the two share no word, or every join would give back an input.

    It is meant as (part of) an :class:`OrganicReplayDataset` ``transform``, splicing
    a stored prompt with another drawn by :meth:`OrganicReplayDataset.peek`::

        def transform(sample, rng):
            other = replay.peek()
            spliced = other and splice_words(sample["prompt"], other["prompt"], rng)
            return {**sample, "prompt": spliced} if spliced else sample
    """
    a, b = text.split(), other.split()
    by_overlap: dict[int, list[tuple[int, int]]] = {}
    positions: dict[str, list[int]] = {}
    for j, word in enumerate(b):
        positions.setdefault(word, []).append(j)
    for i, word in enumerate(a):
        for j in positions.get(word, ()):
            overlap = 1
            while (
                overlap < 3
                and i - overlap >= 0
                and j - overlap >= 0
                and a[i - overlap] == b[j - overlap]
            ):
                overlap += 1
            joined = a[:i] + b[j:]
            if joined != a and joined != b:
                by_overlap.setdefault(overlap, []).append((i, j))
    if not by_overlap:
        return None
    i, j = rng.choice(by_overlap[max(by_overlap)])
    return " ".join(a[:i] + b[j:])
