"""A synthetic dataset made of past organic traffic (a reservoir, Vitter's Algorithm R).

Replay file (format version 2), written by :meth:`OrganicReplayDataset.save`::

    {"format": "organic_scoring.replay", "version": 2, "seen": 1234,
     "samples": [{"kind": "json", "model": null, "body": "{\\"prompt\\": \\"...\\"}"}, ...],
     "sent": {"capacity": 250000, "count": 17, "newer": "...", "older": "..."}}

``seen`` counts samples offered; ``sent`` is what went out to miners, as digests in
two compressed Bloom filters (version 1 files have none); samples are stored as
:class:`~organic_scoring.organic_queue.SQLiteOrganicQueue` stores them (never
pickled). Loading imports the modules stored models name: load only trusted files.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from organic_scoring._atomic import atomic_write
from organic_scoring._log import log
from organic_scoring.errors import ReplayFileError
from organic_scoring.organic_queue._codec import (
    SampleDecodeError,
    SampleNotStorable,
    decode,
    encode,
)
from organic_scoring.synth_dataset._base import SynthDatasetBase
from organic_scoring.synth_dataset._sent import Sent
from organic_scoring.synth_dataset._text import (
    digest,
    message_turns,
    prefix_digests,
    request_digest,
    texts,
    turn_lists,
)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "OrganicReplayDataset", "ReplayFileError"]

FORMAT_NAME = "organic_scoring.replay"
"""What the ``format`` entry of every replay file says."""

FORMAT_VERSION = 2
"""The replay file format version written, and the newest read (version 1 is read too)."""

Transform = Callable[[Any, random.Random], Any]
Redact = Callable[[Any], Any]

DEFAULT_MIN_SAMPLES = 50
"""Distinct samples stored before any is replayed."""

DEFAULT_COOLDOWN = 4
"""Offers and draws a newly stored sample waits before it may be replayed."""

DEFAULT_REMEMBER = 250_000
"""Digests of what went out remembered (at least): a request costs one to a few."""

_ATTEMPTS = 4
"""Stored samples tried per draw before the fallback is sampled."""


def _history_digest(turns: list[list[str]]) -> bytes:
    return digest(b"history", ["\x1f".join(turn) for turn in turns])


def _shared_digest(turn: list[str]) -> bytes:
    return digest(b"shared", ["\x1f".join(turn)])


def _message_digest(turn: list[str]) -> bytes:
    return digest(b"message", ["\x1f".join(turn)])


class OrganicReplayDataset(SynthDatasetBase):
    """Synthetic samples drawn from past organic traffic; never one a miner received.

    The scorer offers it every organic sample it takes from the queue; :meth:`sample`
    returns one changed by ``transform``, or falls back (the docs' Probes page,
    "Replaying organic traffic", says what counts as received).

    Args:
        capacity: The most samples kept; an int, at least 1. Memory is bounded by it.
        transform: ``transform(sample, rng)`` returns what :meth:`sample` hands out
            for a stored ``sample`` (a deep copy of the whole sample, every turn and
            field, free to modify), or None when it cannot change it; ``rng`` is a
            :class:`random.Random` of this dataset's, seeded by ``seed``. None hands
            out nothing stored: every probe then comes from ``fallback``.
        redact: ``redact(sample)`` runs on every offered sample before anything is
            kept, and on every sample :meth:`load` reads; what it returns is stored
            instead (return None to keep nothing of that sample). None stores a
            deep copy of the sample.
        fallback: The dataset sampled when no stored sample makes a new probe (none
            stored yet, too few, or the transform failed). None returns None then,
            which makes the scorer skip that trigger.
        seed: Seeds this dataset's random generators (the reservoir, the choice of
            sample, and the ``rng`` handed to ``transform``).
        min_samples: No replay until this many distinct samples are stored (at most
            ``capacity``: a reservoir cannot hold more, and would never replay).
        cooldown: A stored sample is not replayed until this many more offers and
            draws have passed through this dataset (about as many loop iterations).
        remember: How many digests of what went out are remembered: at least the last
            this many, in a fixed memory of about 3.6 bytes each. A request costs one
            for itself and one per opening and message of it not remembered yet (a
            single prompt two, a conversation about two per turn it adds).

    Thread-safe; ``transform`` and ``redact`` run outside the lock, on the scorer's
    event loop, so keep them quick.
    """

    def __init__(
        self,
        capacity: int = 1000,
        *,
        transform: Transform | None = None,
        redact: Redact | None = None,
        fallback: SynthDatasetBase | None = None,
        seed: int | None = None,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        cooldown: int = DEFAULT_COOLDOWN,
        remember: int = DEFAULT_REMEMBER,
    ) -> None:
        for name, value, least in (
            ("capacity", capacity, 1),
            ("min_samples", min_samples, 1),
            ("cooldown", cooldown, 0),
            ("remember", remember, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int of at least {least}, got {value!r}")
        for name, function in (("transform", transform), ("redact", redact)):
            if function is not None and not callable(function):
                raise ValueError(f"{name} must be callable or None, got {type(function).__name__}")
        if fallback is not None and not callable(getattr(fallback, "sample", None)):
            raise ValueError(
                f"fallback must be a dataset with a sample() method or None, "
                f"got {type(fallback).__name__}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        self._capacity = capacity
        self._transform = transform
        self._redact = redact
        self._fallback = fallback
        self._min_samples = min(min_samples, capacity)
        self._cooldown = cooldown
        self._random = random.Random(seed)
        self._transform_random = random.Random(self._random.getrandbits(64))
        self._lock = threading.Lock()
        # Per slot: the sample, its serial, its request digest and when it arrived.
        self._samples: list[Any]
        self._serials: list[int]
        self._digests: list[bytes]
        self._ticks: list[int]
        self._distinct: Counter[bytes] = Counter()
        self._last: tuple[int, int] | None  # (slot, serial) handed out last
        self._empty()
        self._next_serial = itertools.count()
        self._tick = 0
        self._seen = 0
        self._sent = Sent(remember)

    # -- feeding -------------------------------------------------------------------

    def offer(self, sample: Any) -> bool:
        """Offer one organic sample (the scorer offers each it takes); True if stored.

        The sample is remembered as sent, as it came and as ``redact`` returns it. A
        None sample, or a None from ``redact``, is neither counted nor stored; any other
        counts as seen and a deep copy is kept with the probability that keeps the
        reservoir uniform (always, until ``capacity`` are stored).

        Raises:
            Whatever ``redact`` raises, or :func:`copy.deepcopy` for an object that
            cannot be copied; nothing is stored then.
        """
        if sample is None:
            return False
        sample = self._received(sample)
        if sample is None:
            return False
        key = request_digest(sample)
        with self._lock:
            self._tick += 1
            seen = self._seen + 1
            size = len(self._samples)
            slot = size if size < self._capacity else self._random.randrange(seen)
            if slot >= self._capacity:
                self._seen = seen
                return False
            kept = copy.deepcopy(sample)  # before any change, in case it raises
            self._seen = seen
            self._store(slot, kept, key, self._tick)
        return True

    def _store(self, slot: int, kept: Any, key: bytes, tick: int) -> None:
        """Put ``kept`` in ``slot`` (the next free one, or one to replace); locked."""
        if slot == len(self._samples):
            self._samples.append(kept)
            self._serials.append(next(self._next_serial))
            self._digests.append(key)
            self._ticks.append(tick)
        else:
            old = self._digests[slot]
            self._distinct[old] -= 1
            if not self._distinct[old]:
                del self._distinct[old]
            self._samples[slot] = kept
            self._serials[slot] = next(self._next_serial)
            self._digests[slot] = key
            self._ticks[slot] = tick
        self._distinct[key] += 1

    def _empty(self) -> None:
        """Drop every stored sample; locked."""
        self._samples, self._serials, self._digests, self._ticks = [], [], [], []
        self._distinct.clear()
        self._last = None

    def _received(self, sample: Any) -> Any:
        """Remember an organic ``sample`` as sent; return what of it may be kept (None: nothing)."""
        self._remember(sample)
        if self._redact is None:
            return sample
        kept = self._redact(sample)
        if kept is not None:
            self._remember(kept, copy_of_last=True)
        return kept

    def _remember(self, sample: Any, copy_of_last: bool = False) -> None:
        """Remember ``sample`` as sent: its request, every opening of its conversations
        and every message in it but their first turns. ``copy_of_last``: it is the
        redacted copy of the request just remembered, not another request (what it
        shares with that one is not shared by two requests)."""
        keys = [request_digest(sample)]
        new_request = not copy_of_last and keys[0] not in self._sent
        for turns in turn_lists(sample):
            # Every opening, in one pass: one digest per prefix was quadratic in turns.
            openings = prefix_digests(b"history", ["\x1f".join(turn) for turn in turns])
            if new_request and openings[0] in self._sent and openings[1] not in self._sent:
                # Its first turn went out before with another second turn: shared by
                # several conversations, as a system prompt is.
                keys.append(_shared_digest(turns[0]))
            keys.extend(openings)
        _, turns, singles = message_turns(sample)
        keys.extend(_message_digest(turn) for turn in turns)
        for single in singles:
            key = _message_digest(single)
            if new_request and key in self._sent:
                # A text outside a conversation that went out in another request (a
                # system prompt beside the prompt, a tag): shared, not one request's.
                keys.append(_shared_digest(single))
            keys.append(key)
        for key in dict.fromkeys(keys):  # each once: a repeat costs no memory
            self._sent.add(key)

    def _repeats(self, sample: Any) -> bool:
        """Whether ``sample`` is a request, or carries a history or a message, that
        already went out."""
        key = request_digest(sample)
        if key in self._sent or key in self._distinct:
            return True
        found = texts(sample)
        if len(found) == 1 and _history_digest([found]) in self._sent:
            return True  # the opening turn of a conversation that went out
        for turns in turn_lists(sample):
            if len(turns) == 2 and _shared_digest(turns[0]) in self._sent:
                continue  # a first turn many requests share (a system prompt)
            if _history_digest(turns[:-1]) in self._sent:
                return True
        # A message that went out, under a new history or beside new metadata: a
        # miner remembers it. (A conversation's first turn, often a system prompt
        # every request shares, is not remembered as one.)
        openers, turns, singles = message_turns(sample)
        sent = self._sent
        return any(_message_digest(turn) in sent for turn in openers + turns) or any(
            _message_digest(single) in sent and _shared_digest(single) not in sent
            for single in singles
        )

    # -- sampling ------------------------------------------------------------------

    def sample(self) -> Any:
        """A new probe made of a stored sample by ``transform``, or one of ``fallback``
        (None without one); what is handed out is remembered as sent."""
        with self._lock:
            self._tick += 1
            ready = self._transform is not None and len(self._distinct) >= self._min_samples
        tried: set[int] = set()
        for _ in range(_ATTEMPTS if ready else 0):
            with self._lock:
                slot = self._draw_slot(tried)
                if slot is None:
                    break
                tried.add(slot)
                serial, chosen = self._serials[slot], self._samples[slot]
            assert self._transform is not None
            handed = self._transform(copy.deepcopy(chosen), self._transform_random)
            if handed is None or self._repeats(handed):
                continue
            with self._lock:
                self._last = (slot, serial)
            self._remember(handed)
            return handed
        with self._lock:
            self._last = None  # the fallback's turn: any stored sample may come next
        if self._fallback is None:
            return None
        handed = self._fallback.sample()
        if handed is not None:
            self._remember(handed)
        return handed

    def _draw_slot(self, tried: set[int]) -> int | None:
        """A uniformly drawn eligible slot not in ``tried``; None if there is none. Locked."""
        size = len(self._samples)
        if size == 0:
            return None
        last_slot = -1
        if self._last is not None:
            slot, serial = self._last
            if slot < size and self._serials[slot] == serial:
                last_slot = slot
        ticks, newest = self._ticks, self._tick - self._cooldown
        return _pick(
            self._random,
            size,
            lambda slot: slot != last_slot and slot not in tried and ticks[slot] < newest,
        )

    def peek(self) -> Any:
        """A deep copy of one stored sample chosen at random, untransformed, not counted as
        handed out; None until ``min_samples`` are stored, never one within ``cooldown``."""
        with self._lock:
            if len(self._distinct) < self._min_samples:
                return None
            # As a draw now would see it (a draw counts a tick first).
            ticks, newest = self._ticks, self._tick - self._cooldown
            slot = _pick(self._transform_random, len(self._samples), lambda s: ticks[s] <= newest)
            if slot is None:
                return None
            chosen = self._samples[slot]
        return copy.deepcopy(chosen)

    # -- state ---------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """The most samples kept."""
        return self._capacity

    @property
    def seen(self) -> int:
        """Samples counted by :meth:`offer` (and carried over by :meth:`load`)."""
        return self._seen

    @property
    def redact(self) -> Redact | None:
        """The function offered samples go through before they are kept, or None."""
        return self._redact

    @property
    def fallback(self) -> SynthDatasetBase | None:
        """The dataset sampled while nothing is stored, or None."""
        return self._fallback

    def stored(self) -> list[Any]:
        """Deep copies of every stored sample, in slot order."""
        with self._lock:
            samples = list(self._samples)
        return copy.deepcopy(samples)

    @property
    def min_samples(self) -> int:
        """How many distinct samples must be stored before any is replayed."""
        return self._min_samples

    def clear(self) -> None:
        """Forget every stored sample and reset :attr:`seen` to 0.

        What went out stays remembered: miners remember it too.
        """
        with self._lock:
            self._empty()
            self._seen = 0

    def __len__(self) -> int:
        return len(self._samples)

    def __repr__(self) -> str:
        return f"OrganicReplayDataset({len(self)} of {self._capacity} stored, seen={self._seen})"

    # -- persistence ---------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the reservoir to ``path`` (JSON, see the module docs), atomically.

        A crash or error mid-save leaves whatever file was at ``path`` untouched.

        Raises:
            SampleNotStorable: A stored sample is neither a pydantic model nor a JSON
                value (the message names its position); make ``redact`` return
                something storable. Nothing is written then. It is a ValueError and a
                TypeError.
        """
        with self._lock:
            samples, seen = list(self._samples), self._seen
        records = []
        for index, sample in enumerate(samples):
            try:
                kind, model, body = encode(sample)
            except SampleNotStorable as exc:
                raise SampleNotStorable(f"stored sample {index}: {exc}") from exc
            records.append({"kind": kind, "model": model, "body": body})
        document = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "seen": seen,
            "samples": records,
            "sent": self._sent.dump(),
        }
        data = json.dumps(document, ensure_ascii=False).encode("utf-8")
        atomic_write(path, lambda handle: handle.write(data))

    def load(self, path: str | os.PathLike[str]) -> int:
        """Replace the reservoir with the one saved at ``path``; return how many are stored.

        Every sample read goes through ``redact`` (None leaves it out); more than
        ``capacity`` keeps a uniform random subset; one that no longer decodes is left
        out with a warning. What the file remembers as sent (with the same
        ``remember``) and every sample read are remembered as sent.

        Raises:
            FileNotFoundError: There is no file at ``path``.
            ReplayFileError: The file is not a replay file of a known version.
        """
        try:
            with open(path, "rb") as handle:
                document = json.loads(handle.read().decode("utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReplayFileError(path, f"not valid JSON ({exc})") from exc
        seen, records = _check(path, document)
        if "sent" in document and not self._sent.restore(document["sent"]):
            log.warning(
                f"replay file {os.fspath(path)!r}: what was sent was remembered with another "
                "remember setting; only the samples read are remembered as sent"
            )
        # Decoded in a random order until the reservoir is full: a uniform subset of
        # the readable samples, without decoding more than ``capacity`` of them; kept
        # in the file's order.
        kept: dict[int, Any] = {}
        left_out = 0
        for index in self._random.sample(range(len(records)), len(records)):
            if len(kept) == self._capacity:
                break
            record = records[index]
            try:
                sample = decode(record["kind"], record["model"], record["body"])
            except SampleDecodeError as exc:
                left_out += 1
                if left_out == 1:
                    log.warning(f"replay file {os.fspath(path)!r}: left out a sample: {exc}")
                continue
            sample = self._received(sample)
            if sample is None and self._redact is not None:
                continue
            kept[index] = sample
        if left_out > 1:
            log.warning(
                f"replay file {os.fspath(path)!r}: left out {left_out} samples that do not load"
            )
        samples = [kept[index] for index in sorted(kept)]
        with self._lock:
            self._empty()
            # The file does not say when its samples arrived: the last ones may have come
            # a period before a restart. All wait out the cooldown, as if just arrived.
            for sample in samples:
                self._store(len(self._samples), sample, request_digest(sample), self._tick)
            self._seen = max(seen, len(samples))
            return len(samples)


def _pick(rng: random.Random, size: int, eligible: Callable[[int], bool]) -> int | None:
    """A uniformly drawn slot below ``size`` that is ``eligible``; None if there is none."""
    for _ in range(8):  # cheap while most are eligible
        slot = rng.randrange(size)
        if eligible(slot):
            return slot
    slots = [slot for slot in range(size) if eligible(slot)]
    return rng.choice(slots) if slots else None


def _check(path: str | os.PathLike[str], document: Any) -> tuple[int, list[dict[str, Any]]]:
    """``(seen, sample records)`` of a well-formed replay document, or ReplayFileError."""
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ReplayFileError(path, "not a replay file (no replay format marker)")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ReplayFileError(path, "the format version is missing or malformed")
    if not 1 <= version <= FORMAT_VERSION:
        raise ReplayFileError(
            path,
            f"unknown format version {version}; this library reads versions 1 to {FORMAT_VERSION}",
        )
    seen = document.get("seen")
    if isinstance(seen, bool) or not isinstance(seen, int) or seen < 0:
        raise ReplayFileError(path, "seen must be an int >= 0")
    records = document.get("samples")
    if not isinstance(records, list):
        raise ReplayFileError(path, "samples must be a list")
    for index, record in enumerate(records):
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("kind"), str)
            or not isinstance(record.get("body"), str)
            or not isinstance(record.get("model"), (str, type(None)))
        ):
            raise ReplayFileError(
                path, f"samples[{index}] must be an object with kind, model and body"
            )
    return seen, records
