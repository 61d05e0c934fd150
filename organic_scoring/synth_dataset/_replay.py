"""A synthetic dataset made of past organic traffic (a reservoir, Vitter's Algorithm R).

Replay file (format version 1), written by :meth:`OrganicReplayDataset.save`::

    {"format": "organic_scoring.replay", "version": 1, "seen": 1234,
     "samples": [{"kind": "json", "model": null, "body": "{\\"prompt\\": \\"...\\"}"}, ...]}

``seen`` counts samples offered; samples are stored as
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

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "OrganicReplayDataset", "ReplayFileError"]

FORMAT_NAME = "organic_scoring.replay"
"""What the ``format`` entry of every replay file says."""

FORMAT_VERSION = 1
"""The replay file format version written, and the newest read."""

Transform = Callable[[Any, random.Random], Any]
Redact = Callable[[Any], Any]


class OrganicReplayDataset(SynthDatasetBase):
    """Synthetic samples drawn from past organic traffic.

    The scorer offers it every organic sample it takes from the queue;
    :meth:`sample` returns one, perturbed by ``transform`` (:func:`splice_words` is
    one perturbation for text). Without a transform a replay is an exact copy a
    miner may recognise.

    Args:
        capacity: The most samples kept; an int, at least 1. Memory is bounded by it.
        transform: ``transform(sample, rng)`` returns what :meth:`sample` hands out
            for a stored ``sample`` (a deep copy, free to modify); ``rng`` is a
            :class:`random.Random` of this dataset's, seeded by ``seed``. None hands
            out the copy as it is.
        redact: ``redact(sample)`` runs on every offered sample before anything is
            kept; what it returns is stored instead (return None to keep nothing of
            that sample). Use it for what must not be kept. None stores a deep copy
            of the sample.
        fallback: A dataset to sample while nothing is stored yet. None returns None
            then, which makes the scorer skip that trigger.
        seed: Seeds this dataset's random generators (the reservoir, the choice of
            sample, and the ``rng`` handed to ``transform``).

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
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int of at least 1, got {capacity!r}")
        for name, value in (("transform", transform), ("redact", redact)):
            if value is not None and not callable(value):
                raise ValueError(f"{name} must be callable or None, got {type(value).__name__}")
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
        self._random = random.Random(seed)
        self._transform_random = random.Random(self._random.getrandbits(64))
        self._lock = threading.Lock()
        self._samples: list[Any] = []
        self._serials: list[int] = []
        self._next_serial = itertools.count()
        self._seen = 0
        self._last: tuple[int, int] | None = None  # (slot, serial) handed out last

    # -- feeding -------------------------------------------------------------------

    def offer(self, sample: Any) -> bool:
        """Offer one organic sample to the reservoir; True if it was stored.

        ``redact`` runs first; a None from it (or a None sample) is not counted and
        not stored. Otherwise the sample counts as seen and is kept with the
        probability that keeps the reservoir uniform (always, until ``capacity``
        samples are stored). What is kept is a deep copy, so later changes to the
        offered object do not reach the reservoir.

        The scorer calls this for every organic sample it takes from the queue.

        Raises:
            Whatever ``redact`` raises, or :func:`copy.deepcopy` for an object that
            cannot be copied; nothing is stored then.
        """
        if sample is None:
            return False
        if self._redact is not None:
            sample = self._redact(sample)
            if sample is None:
                return False
        with self._lock:
            seen = self._seen + 1
            size = len(self._samples)
            slot = size if size < self._capacity else self._random.randrange(seen)
            if slot >= self._capacity:
                self._seen = seen
                return False
            kept = copy.deepcopy(sample)  # before any change, in case it raises
            self._seen = seen
            if slot == size:
                self._samples.append(kept)
                self._serials.append(next(self._next_serial))
            else:
                self._samples[slot] = kept
                self._serials[slot] = next(self._next_serial)
        return True

    # -- sampling ------------------------------------------------------------------

    def sample(self) -> Any:
        """One stored sample, through ``transform``; never the same one twice in a row.

        With two or more stored, the sample handed out last is left out of the draw,
        so consecutive probes always differ; the rest are equally likely. With one
        stored, it takes turns with ``fallback`` (without one, it is all there is).
        With none stored yet, a sample of ``fallback`` (not transformed), or None
        without one.
        """
        with self._lock:
            size = len(self._samples)
            chosen = None
            if size == 1 and self._fallback is not None and self._last == (0, self._serials[0]):
                self._last = None  # the fallback's turn; the stored one's next time
                size = 0
            elif size:
                slot = self._draw_slot(size)
                self._last = (slot, self._serials[slot])
                chosen = self._samples[slot]
        if size == 0:
            return None if self._fallback is None else self._fallback.sample()
        handed = copy.deepcopy(chosen)
        if self._transform is not None:
            handed = self._transform(handed, self._transform_random)
        return handed

    def _draw_slot(self, size: int) -> int:
        last = self._last
        if size < 2 or last is None:
            return self._random.randrange(size)
        slot, serial = last
        if slot >= size or self._serials[slot] != serial:
            return self._random.randrange(size)  # the last one is no longer stored
        drawn = self._random.randrange(size - 1)
        return drawn + 1 if drawn >= slot else drawn

    def peek(self) -> Any:
        """A deep copy of one stored sample chosen at random, untransformed; None when empty.

        For transforms that recombine stored samples (see :func:`splice_words`); it
        does not count as handed out.
        """
        with self._lock:
            if not self._samples:
                return None
            chosen = self._samples[self._transform_random.randrange(len(self._samples))]
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

    def clear(self) -> None:
        """Forget every stored sample and reset :attr:`seen` to 0."""
        with self._lock:
            self._samples, self._serials = [], []
            self._seen, self._last = 0, None

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
        }
        data = json.dumps(document, ensure_ascii=False).encode("utf-8")
        atomic_write(path, lambda handle: handle.write(data))

    def load(self, path: str | os.PathLike[str]) -> int:
        """Replace the reservoir with the one saved at ``path``; return how many are stored.

        A file that holds more samples than this dataset's ``capacity`` keeps a
        uniform random subset of them. A stored sample that no longer loads (its
        model class was renamed, say) is left out with a warning.

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
        # Decoded in a random order until the reservoir is full: a uniform subset of
        # the readable samples, without decoding more than ``capacity`` of them; kept
        # in the file's order.
        kept: dict[int, Any] = {}
        unreadable = 0
        for index in self._random.sample(range(len(records)), len(records)):
            if len(kept) == self._capacity:
                break
            record = records[index]
            try:
                kept[index] = decode(record["kind"], record["model"], record["body"])
            except SampleDecodeError as exc:
                unreadable += 1
                if unreadable == 1:
                    log.warning(f"replay file {os.fspath(path)!r}: left out a sample: {exc}")
        if unreadable > 1:
            log.warning(
                f"replay file {os.fspath(path)!r}: left out {unreadable} samples that do not load"
            )
        samples = [kept[index] for index in sorted(kept)]
        with self._lock:
            self._samples = samples
            self._serials = [next(self._next_serial) for _ in samples]
            self._seen = max(seen, len(samples))
            self._last = None
            return len(samples)


def _check(path: str | os.PathLike[str], document: Any) -> tuple[int, list[dict[str, Any]]]:
    """``(seen, sample records)`` of a well-formed replay document, or ReplayFileError."""
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ReplayFileError(path, "not a replay file (no replay format marker)")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ReplayFileError(path, "the format version is missing or malformed")
    if version != FORMAT_VERSION:
        raise ReplayFileError(
            path, f"unknown format version {version}; this library reads version {FORMAT_VERSION}"
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
