"""A synthetic dataset over entries already in memory."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Generic, TypeVar

from organic_scoring.synth_dataset._base import SynthDatasetBase

__all__ = ["SequenceDataset"]

T = TypeVar("T")


class SequenceDataset(SynthDatasetBase, Generic[T]):
    """Samples uniformly at random, with replacement, from a fixed set of entries
    (:class:`~organic_scoring.synth_dataset.SynthDatasetEntry` objects, prompts, or
    anything the hooks accept), copied at construction.

    Args:
        entries: The samples to draw from; at least one.
        seed: Seeds this dataset's own random generator, for a reproducible order.
    """

    def __init__(self, entries: Iterable[T], seed: int | None = None) -> None:
        if isinstance(entries, (str, bytes)):
            raise ValueError("entries must be a collection of samples, not a single string")
        self._entries: tuple[T, ...] = tuple(entries)
        if not self._entries:
            raise ValueError("entries must hold at least one sample, got an empty collection")
        self._random = random.Random(seed)

    def sample(self) -> T:
        """Return one entry, each equally likely."""
        return self._entries[self._random.randrange(len(self._entries))]

    @property
    def entries(self) -> tuple[T, ...]:
        """Every entry this dataset draws from."""
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._entries)} entries)"
