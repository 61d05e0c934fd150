"""A perturbation for text prompts that stays within the words of real traffic."""

from __future__ import annotations

import random
import re
import string
from typing import Any, TypeVar, overload

from organic_scoring.synth_dataset._text import Path, is_text, map_strings, strings

__all__ = ["splice_words"]

T = TypeVar("T")

_WORD = re.compile(r"\S+")
_PUNCTUATION = (
    string.punctuation + "\u00ab\u00bb\u201c\u201d\u2018\u2019\u00bf\u00a1\u2026\u2013\u2014"
)


def _key(word: str) -> str:
    return word.casefold().strip(_PUNCTUATION) or word.casefold()


@overload
def splice_words(text: str, other: Any, rng: random.Random) -> str | None: ...
@overload
def splice_words(text: T, other: Any, rng: random.Random) -> T | None: ...
def splice_words(text: Any, other: Any, rng: random.Random) -> Any:
    """The start of ``text`` joined to the end of ``other`` where they share a run of
    words (compared without case and surrounding punctuation, longest runs preferred),
    each side's layout kept; None when they share no word or every join gives back an
    input.

    ``text`` and ``other`` may also be whole samples (dicts, lists, tuples, pydantic
    models): every text of ``text`` is spliced with one of ``other`` (the same place
    first, then the same field), a text both hold is left alone, and the sample comes
    back in its shape, or None when no text changed. Meant as an
    :class:`OrganicReplayDataset` ``transform`` with :meth:`OrganicReplayDataset.peek`
    as ``other`` (the docs' Probes page, "Transforms").
    """
    if isinstance(text, str):
        return _splice_text(text, other, rng) if isinstance(other, str) else None
    if other is None:
        return None
    # A text both samples hold (a system prompt every request carries) stays as it
    # is and lends nothing: spliced, it would be a system prompt no request has, or
    # a question ending in one.
    shared = {_keys(value) for _, value in strings(text) if is_text(value)}
    at: dict[Path, list[str]] = {}  # by place, list positions included
    near: dict[Path, list[str]] = {}  # by field, any position
    every: list[str] = []
    for place, value in strings(other, positions=True):
        if is_text(value) and _keys(value) not in shared:
            at.setdefault(place, []).append(value)
            near.setdefault(_field(place), []).append(value)
            every.append(value)
    shared &= {_keys(value) for _, value in strings(other) if is_text(value)}
    changed = False

    def splice(place: Path, value: str) -> str:
        nonlocal changed
        if not is_text(value) or _keys(value) in shared:
            return value
        first = at.get(place, [])
        second = [d for d in near.get(_field(place), []) if d not in first]
        rest = [d for d in every if d not in first and d not in second]
        for candidates in (first, second, rest):
            for donor in rng.sample(candidates, len(candidates)):
                spliced = _splice_text(value, donor, rng)
                if spliced is not None:
                    changed = True
                    return spliced
        return value

    result = map_strings(text, splice, positions=True)
    return result if changed else None


def _keys(text: str) -> tuple[str, ...]:
    return tuple(_key(word) for word in text.split())


def _field(place: Path) -> Path:
    """``place`` without its list positions."""
    return tuple(part for part in place if not part.startswith("#"))


_PAIRS_PER_WORD = 32
"""Places in the other text tried per word: repetitive texts stay quick."""

_MODULUS = (1 << 61) - 1
_BASE = 1_000_003


def _hashes(ids: list[int]) -> list[int]:
    """``out[i]``: a hash of ``ids[:i]`` (a prefix), for ``i`` in ``0..len(ids)``."""
    out = [0]
    for value in ids:
        out.append((out[-1] * _BASE + value) % _MODULUS)
    return out


def _splice_text(text: str, other: str, rng: random.Random) -> str | None:
    a = [(m.start(), _key(m.group())) for m in _WORD.finditer(text)]
    b = [(m.start(), _key(m.group())) for m in _WORD.finditer(other)]
    a_keys, b_keys = [k for _, k in a], [k for _, k in b]
    # Whether a join gives back an input, in constant time from hashed prefixes and
    # suffixes (a collision only skips a join): it took time cubic in the length of
    # a repetitive text (the same word over and over), on the scorer's event loop.
    ids: dict[str, int] = {}
    a_ids = [ids.setdefault(k, len(ids) + 1) for k in a_keys]
    b_ids = [ids.setdefault(k, len(ids) + 1) for k in b_keys]
    a_prefix, b_prefix = _hashes(a_ids), _hashes(b_ids)
    a_suffix, b_suffix = _hashes(a_ids[::-1])[::-1], _hashes(b_ids[::-1])[::-1]
    by_overlap: dict[int, list[tuple[int, int]]] = {}
    positions: dict[str, list[int]] = {}
    for j, word in enumerate(b_keys):
        positions.setdefault(word, []).append(j)
    for found in positions.values():
        if len(found) > _PAIRS_PER_WORD:
            step = len(found) / _PAIRS_PER_WORD
            found[:] = [found[int(n * step)] for n in range(_PAIRS_PER_WORD)]
    for i, word in enumerate(a_keys):
        for j in positions.get(word, ()):
            overlap = 1
            while (
                overlap < 3
                and i - overlap >= 0
                and j - overlap >= 0
                and a_keys[i - overlap] == b_keys[j - overlap]
            ):
                overlap += 1
            gives_a = len(a_keys) - i == len(b_keys) - j and a_suffix[i] == b_suffix[j]
            gives_b = i == j and a_prefix[i] == b_prefix[j]
            if not gives_a and not gives_b:
                by_overlap.setdefault(overlap, []).append((i, j))
    if not by_overlap:
        return None
    i, j = rng.choice(by_overlap[max(by_overlap)])
    return text[: a[i][0]] + other[b[j][0] :]
