"""The text inside a sample: its strings, its turns, and their normalised digests.

A sample is walked through dicts (in their order), lists, tuples and pydantic models
(their fields, then their extra fields); other objects are opaque. A *text* is a
string with whitespace inside it, of at least :data:`TEXT_LENGTH` characters, or with
four letters or more of a script written without spaces (Chinese, Japanese, Thai: a
prompt, a turn), as opposed to a label (a role, a model name); a sample with no text
counts its labels as its text. A *turn list* is a list of two or more items that are
strings, dicts or models, at least one of them holding a text: a conversation.
"""

from __future__ import annotations

import copy
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

__all__ = [
    "TEXT_LENGTH",
    "UNSPACED",
    "Path",
    "digest",
    "is_text",
    "map_strings",
    "message_turns",
    "normalise",
    "prefix_digests",
    "request_digest",
    "strings",
    "texts",
    "turn_lists",
]

TEXT_LENGTH = 24
"""A string this long counts as text even without whitespace."""

Path = tuple[str, ...]
"""Where a string sits: dict keys and model field names; list positions are left out."""


_NON_WORD = re.compile(r"[\W_]+")
_INVISIBLE = frozenset(("Mn", "Me", "Cf"))  # accents and other marks, zero-width characters


def normalise(text: str) -> str:
    """What a miner comparing texts would compare: case folded, compatibility forms
    (NFKC: full-width letters, ligatures) and accents reduced to plain letters,
    zero-width characters dropped, and every run of whitespace and punctuation made
    one space, stripped."""
    folded = text.casefold()
    if not folded.isascii():
        folded = "".join(
            c
            for c in unicodedata.normalize("NFKD", folded)
            if unicodedata.category(c) not in _INVISIBLE
        )
    return " ".join(_NON_WORD.sub(" ", folded).split())


UNSPACED = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff"  # Thai, Lao, Tibetan, Myanmar, Khmer
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"  # kana, Han
)
"""A letter of a script written without spaces between words."""


def is_text(value: str) -> bool:
    stripped = value.strip()
    return (
        len(stripped) >= TEXT_LENGTH
        or any(c.isspace() for c in stripped)
        or len(UNSPACED.findall(stripped)) >= 4  # a sentence with no space in it
    )


def _children(value: Any, positions: bool = False) -> Iterator[tuple[str | None, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key), item
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield (f"#{index}" if positions else None), item
    elif isinstance(value, BaseModel):
        for name, item in value:
            yield name, item


def strings(sample: Any, path: Path = (), *, positions: bool = False) -> Iterator[tuple[Path, str]]:
    """Every string of ``sample`` with its path, depth first, in order; with
    ``positions``, list positions are in the path too (``"#0"``, ``"#1"``, ...)."""
    if isinstance(sample, str):
        yield path, sample
        return
    for key, item in _children(sample, positions):
        yield from strings(item, path if key is None else (*path, key), positions=positions)


def texts(sample: Any) -> list[str]:
    """The texts of ``sample`` in order; its non-empty strings when it has no text."""
    found = [s for _, s in strings(sample) if is_text(s)]
    return found or [s for _, s in strings(sample) if s.strip()]


def digest(tag: bytes, parts: list[str]) -> bytes:
    """A 16-byte digest of normalised ``parts``, in its own ``tag`` namespace."""
    hasher = hashlib.blake2b(tag, digest_size=16)
    for part in parts:
        hasher.update(_encoded(part))
    return hasher.digest()


def prefix_digests(tag: bytes, parts: list[str]) -> list[bytes]:
    """``digest(tag, parts[:n])`` for ``n`` from 1 to ``len(parts)``, in one pass."""
    hasher = hashlib.blake2b(tag, digest_size=16)
    found = []
    for part in parts:
        hasher.update(_encoded(part))
        found.append(hasher.digest())
    return found


def _encoded(part: str) -> bytes:
    """One part as :func:`digest` and :func:`prefix_digests` hash it."""
    return b"\x1e" + normalise(part).encode("utf-8", "surrogatepass")


def request_digest(sample: Any) -> bytes:
    """The digest of a whole request: all its texts, normalised (its ``repr`` when it
    has no string at all)."""
    return digest(b"request", texts(sample) or [repr(sample)])


def _lists(sample: Any, least: int) -> list[list[list[str]]]:
    """Each list of ``least`` or more turns in ``sample`` (outermost first), each turn
    its texts; what such a list holds is not looked into further."""
    found: list[list[list[str]]] = []

    def visit(value: Any) -> None:
        if (
            isinstance(value, list)
            and len(value) >= least
            and all(isinstance(item, (str, dict, BaseModel)) for item in value)
        ):
            turns = [
                [s for _, s in strings(item)] if not isinstance(item, str) else [item]
                for item in value
            ]
            if any(is_text(s) for turn in turns for s in turn):
                found.append([[s for s in turn if is_text(s)] or turn for turn in turns])
                return
        for _, item in _children(value):
            visit(item)

    visit(sample)
    return found


def turn_lists(sample: Any) -> list[list[list[str]]]:
    """Each conversation in ``sample``: a list of turns, each turn its texts."""
    return _lists(sample, 2)


def message_turns(sample: Any) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """``(openers, turns, singles)`` of ``sample``, each its texts.

    ``openers`` are the first turns of its conversations (often a system prompt, which
    every request shares), ``turns`` their other turns. ``singles`` are its lone
    messages (the one item, holding a text, of a list such as ``messages=[prompt]``);
    a sample with no conversation and no lone message has each text as one.
    """
    openers: list[list[str]] = []
    turns: list[list[str]] = []
    singles: list[list[str]] = []
    for found in _lists(sample, 1):
        if len(found) == 1:
            singles.append(found[0])
        else:
            openers.append(found[0])
            turns.extend(found[1:])
    if not openers and not singles:
        singles = [[text] for text in texts(sample)]
    return openers, turns, singles


def map_strings(
    sample: Any,
    change: Callable[[Path, str], str],
    path: Path = (),
    *,
    every: bool = False,
    positions: bool = False,
) -> Any:
    """``sample`` rebuilt with every string ``s`` at ``path`` replaced by ``change(path, s)``.

    Containers keep their type; a model is copied with its changed fields; anything
    else is returned as it is. With ``every``, string dict keys (at the dict's path)
    and the strings in sets are changed too; with ``positions``, paths hold list
    positions as :func:`strings` gives them.
    """
    deeper = {"every": every, "positions": positions}
    if isinstance(sample, str):
        return change(path, sample)
    if isinstance(sample, dict):
        rebuilt = {
            (change(path, key) if every and isinstance(key, str) else key): map_strings(
                item, change, (*path, str(key)), **deeper
            )
            for key, item in sample.items()
        }
        if type(sample) is dict:
            return rebuilt
        copied = copy.copy(sample)
        copied.clear()
        copied.update(rebuilt)
        return copied
    if isinstance(sample, (list, tuple)):
        items = [
            map_strings(item, change, (*path, f"#{index}") if positions else path, **deeper)
            for index, item in enumerate(sample)
        ]
        if isinstance(sample, list):
            return type(sample)(items)
        return type(sample)(*items) if hasattr(sample, "_fields") else type(sample)(items)
    if every and isinstance(sample, (set, frozenset)):
        return type(sample)(map_strings(item, change, path, **deeper) for item in sample)
    if isinstance(sample, BaseModel):
        update = {name: map_strings(item, change, (*path, name), **deeper) for name, item in sample}
        return sample.model_copy(update=update)
    return sample
