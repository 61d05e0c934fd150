"""The default organic queue: in memory, bounded, random sampling, O(1) everywhere.

Each entry lives in a dense list (a random index picks it; removal swaps the last slot
into the hole) and in an insertion-ordered dict (the oldest is its first key).
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from organic_scoring._defaults import DEFAULT_QUEUE_SIZE
from organic_scoring._log import log
from organic_scoring.organic_queue._base import OrganicQueueBase, check_count

__all__ = ["OrganicQueue", "QueueCounters"]


@dataclass(frozen=True)
class QueueCounters:
    """A consistent snapshot of an :class:`OrganicQueue`'s counters.

    ``added == sampled + dropped + size`` holds in every snapshot.
    """

    added: int
    """Entries accepted by ``add`` since the queue was made."""
    sampled: int
    """Entries handed out by ``sample``."""
    dropped: int
    """Entries evicted, oldest first, to make room in a full queue."""
    size: int
    """Entries waiting."""
    max_size: int
    """The bound on ``size``."""
    carried_over: int = 0
    """Entries already waiting in a persistent store when this object opened it."""
    dropped_earlier: int = 0
    """The store's ``dropped`` count when this object opened it."""


class _Slot:
    """One waiting entry and its current index in the dense slot list."""

    __slots__ = ("index", "item")

    def __init__(self, item: Any, index: int) -> None:
        self.item = item
        self.index = index


class OrganicQueue(OrganicQueueBase):
    """A bounded, thread-safe organic queue that hands out waiting entries at random.

    One lock; at ``max_size`` entries ``add`` drops the oldest (counted in
    :attr:`dropped`). ``add`` and ``sample`` are O(1).

    Args:
        max_size: The most entries kept waiting; an int, at least 1.
        seed: Seeds this queue's own random generator, so a test can replay the
            order in which entries are sampled. None draws a fresh seed.
    """

    blocking = False  # every call is a few list and dict operations under a lock
    _announces_adds = True  # calls _notify_added after every add

    def __init__(self, max_size: int = DEFAULT_QUEUE_SIZE, seed: int | None = None) -> None:
        check_count("max_size", max_size)
        self._max_size = max_size
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._age: OrderedDict[_Slot, None] = OrderedDict()
        self._added = 0
        self._sampled = 0
        self._dropped = 0

    def add(self, sample: Any) -> None:
        """Store ``sample``; in a full queue, drop the oldest waiting entry first.

        Raises:
            ValueError: ``sample`` is None, which :meth:`sample` uses to mean empty.
        """
        if sample is None:
            raise ValueError("cannot add None: OrganicQueue.sample() returns None for 'empty'")
        with self._lock:
            first_drop = False
            if len(self._slots) >= self._max_size:
                oldest, _ = self._age.popitem(last=False)
                self._unslot(oldest)
                first_drop = self._dropped == 0
                self._dropped += 1
            slot = _Slot(sample, len(self._slots))
            self._slots.append(slot)
            self._age[slot] = None
            self._added += 1
        if first_drop:
            log.warning(
                f"organic queue is full (max_size={self._max_size}); dropping the oldest "
                "entries to make room, see OrganicQueue.counters()"
            )
        self._notify_added()

    def sample(self) -> Any:
        """Remove and return a uniformly random waiting entry, or None when empty."""
        with self._lock:
            count = len(self._slots)
            if count == 0:
                return None
            slot = self._slots[self._random.randrange(count)]
            self._unslot(slot)
            del self._age[slot]
            self._sampled += 1
        return slot.item

    def _unslot(self, slot: _Slot) -> None:
        # Fill the hole with the last slot so the list stays dense. Caller holds the lock.
        last = self._slots.pop()
        if last is not slot:
            last.index = slot.index
            self._slots[slot.index] = last

    @property
    def size(self) -> int:
        """How many entries are waiting."""
        return len(self._slots)

    @property
    def max_size(self) -> int:
        """The most entries kept waiting before the oldest is dropped."""
        return self._max_size

    def counters(self) -> QueueCounters:
        """All counters and the size, taken together under the lock."""
        with self._lock:
            return QueueCounters(
                added=self._added,
                sampled=self._sampled,
                dropped=self._dropped,
                size=len(self._slots),
                max_size=self._max_size,
            )

    def __repr__(self) -> str:
        c = self.counters()
        return (
            f"OrganicQueue(size={c.size}, max_size={c.max_size}, added={c.added}, "
            f"sampled={c.sampled}, dropped={c.dropped})"
        )
