"""Probes written fresh by the validator's own model, seeded by what organic traffic looks like."""

from __future__ import annotations

import asyncio
import inspect
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

from organic_scoring._log import log
from organic_scoring.synth_dataset._base import SynthDatasetBase
from organic_scoring.synth_dataset._replay import OrganicReplayDataset
from organic_scoring.synth_dataset._text import (
    UNSPACED,
    Path,
    is_text,
    map_strings,
    message_turns,
    texts,
    turn_lists,
)

__all__ = ["GeneratedDataset"]

Generate = Callable[[dict[str, Any]], Any | Awaitable[Any]]

_WORD = re.compile(r"[^\W\d_]{5,}")
_UNSPACED_RUN = re.compile(f"{UNSPACED.pattern}+")
_TOPICS = 4


class GeneratedDataset(SynthDatasetBase):
    """Synthetic samples a generator (the validator's own model) writes from a brief.

    Each draw hands ``generate`` a :meth:`brief` made from one sample of ``reservoir``,
    which copies no text of it (the docs' Probes page, "Generated probes").

    Args:
        generate: ``generate(brief)`` returns the probe, or None when it has none; a
            plain function or an ``async def``. :meth:`asample` (what the scorer
            calls) runs a plain one in a worker thread.
        reservoir: The :class:`OrganicReplayDataset` the briefs are drawn from. A
            probe that repeats a request or history that went out (it remembers) is
            dropped, and every probe is remembered as sent.
        fallback: Sampled when the generator gives None, fails to write something
            new, or raises. None returns None then (the scorer skips that trigger).
        seed: Seeds the choice of sample and of topic words.
    """

    def __init__(
        self,
        generate: Generate,
        *,
        reservoir: OrganicReplayDataset | None = None,
        fallback: SynthDatasetBase | None = None,
        seed: int | None = None,
    ) -> None:
        if not callable(generate):
            raise ValueError(f"generate must be callable, got {type(generate).__name__}")
        if reservoir is not None and not isinstance(reservoir, OrganicReplayDataset):
            raise ValueError(
                f"reservoir must be an OrganicReplayDataset or None, got {type(reservoir).__name__}"
            )
        if fallback is not None and not callable(getattr(fallback, "sample", None)):
            raise ValueError(
                f"fallback must be a dataset with a sample() method or None, "
                f"got {type(fallback).__name__}"
            )
        self._generate = generate
        self._reservoir = reservoir
        self._fallback = fallback
        self._random = random.Random(seed)

    def brief(self) -> dict[str, Any]:
        """What the next probe should look like, from one stored sample peeked without its
        text: ``topics``, ``words``, ``turns``, ``script`` and ``template``; with no
        sample, ``{"topics": [], "words": None, "turns": 1, "script": None, "template": None}``.
        """
        sample = self._reservoir.peek() if self._reservoir is not None else None
        if sample is None:
            return {"topics": [], "words": None, "turns": 1, "script": None, "template": None}
        found = texts(sample)
        words = sorted({w.casefold() for text in found for w in _topic_words(text)})
        conversations = turn_lists(sample)
        return {
            "topics": self._random.sample(words, min(_TOPICS, len(words))),
            "words": _length(found[-1]) if found else 0,
            "turns": max((len(turns) for turns in conversations), default=1),
            "script": _script(" ".join(found)),
            "template": _template(sample),
        }

    def sample(self) -> Any:
        """One generated probe; for a plain ``generate`` (use :meth:`asample` in a loop)."""
        try:
            made = self._generate(self.brief())
            if inspect.isawaitable(made):
                made = _run(made)
        except Exception as exc:
            _failed(exc)
            made = None
        return self._checked(made)

    @property
    def reservoir(self) -> OrganicReplayDataset | None:
        """The replay dataset the briefs come from, or None."""
        return self._reservoir

    @property
    def fallback(self) -> SynthDatasetBase | None:
        """The dataset sampled when the generator has nothing new, or None."""
        return self._fallback

    async def asample(self) -> Any:
        """One generated probe, without blocking the event loop; what the scorer calls."""
        brief = self.brief()
        try:
            if inspect.iscoroutinefunction(self._generate):
                made = await self._generate(brief)
            else:
                made = await anyio.to_thread.run_sync(self._generate, brief)
                if inspect.isawaitable(made):
                    made = await made
        except Exception as exc:
            _failed(exc)
            made = None
        return self._checked(made)

    def _checked(self, made: Any) -> Any:
        reservoir = self._reservoir
        if made is not None and reservoir is not None:
            if reservoir._repeats(made):
                made = None
            else:
                reservoir._remember(made)
        if made is None and self._fallback is not None:
            return self._fallback.sample()
        return made


def _template(sample: Any) -> Any:
    """``sample`` with its texts emptied: its turns and messages, and elsewhere the
    strings with whitespace in them. A long string without any outside the turns (a
    model name, an id, a timestamp) is metadata, and kept."""
    prose = {text for found in message_turns(sample) for turn in found for text in turn}

    def blank(path: Path, text: str) -> str:
        if not is_text(text):
            return text
        if text in prose or any(c.isspace() for c in text.strip()):
            return ""
        return text

    return map_strings(sample, blank)


def _length(text: str) -> int:
    """``text``'s length in words, two letters of a script without spaces counting one."""
    unspaced = len(UNSPACED.findall(text))
    return len(UNSPACED.sub(" ", text).split()) + (unspaced + 1) // 2


def _topic_words(text: str) -> list[str]:
    """Words of five letters or more; in a script written without spaces, pairs of
    letters (a whole run there is a sentence: the topic would be the prompt itself)."""
    found = _WORD.findall(UNSPACED.sub(" ", text))
    for run in _UNSPACED_RUN.findall(text):
        found.extend(run[start : start + 2] for start in range(0, len(run) - 1, 2))
    return found


def _failed(exc: Exception) -> None:
    log.warning(f"the probe generator raised {type(exc).__name__}; falling back")


async def _awaited(made: Awaitable[Any]) -> Any:
    return await made


def _run(made: Awaitable[Any]) -> Any:
    """The result of an awaitable, from synchronous code outside any event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(made))
    close = getattr(made, "close", None)
    if callable(close):
        close()
    raise RuntimeError("an async generate called through sample() inside an event loop")


def _script(text: str) -> str | None:
    """The writing system most letters of ``text`` belong to, by Unicode name."""
    counts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            if name:
                counts[name.split()[0]] += 1
    return counts.most_common(1)[0][0] if counts else None
