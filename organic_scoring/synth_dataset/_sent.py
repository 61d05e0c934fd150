"""What went out to miners, remembered compactly: two rotating Bloom filters of
``capacity`` digests each at a false-positive rate of about 1/1000 (the older is
dropped when the newer fills), so the last ``capacity`` to ``2 * capacity`` digests."""

from __future__ import annotations

import base64
import math
import threading
import zlib
from typing import Any

__all__ = ["Sent"]

_ERROR = 1e-3


class Sent:
    """A set of 16-byte digests that forgets the oldest beyond ``capacity``. Thread-safe."""

    __slots__ = ("_bits", "_capacity", "_count", "_hashes", "_lock", "_newer", "_older")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._bits = max(64, math.ceil(-capacity * math.log(_ERROR) / math.log(2) ** 2))
        self._hashes = max(1, round(self._bits / capacity * math.log(2)))
        self._lock = threading.Lock()
        self._newer = bytearray((self._bits + 7) // 8)
        self._older = bytearray(len(self._newer))
        self._count = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def _positions(self, key: bytes) -> list[int]:
        first = int.from_bytes(key[:8], "little")
        step = int.from_bytes(key[8:16], "little") | 1
        bits = self._bits
        return [(first + i * step) % bits for i in range(self._hashes)]

    def add(self, key: bytes) -> None:
        """Remember ``key``; one the newer generation already holds costs nothing."""
        positions = self._positions(key)
        with self._lock:
            newer = self._newer
            if all(newer[p >> 3] & (1 << (p & 7)) for p in positions):
                return
            if self._count >= self._capacity:
                self._older, self._newer = self._newer, bytearray(len(self._newer))
                self._count = 0
            newer = self._newer
            for position in positions:
                newer[position >> 3] |= 1 << (position & 7)
            self._count += 1

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        positions = self._positions(key)
        with self._lock:
            return any(
                all(table[p >> 3] & (1 << (p & 7)) for p in positions)
                for table in (self._newer, self._older)
            )

    def clear(self) -> None:
        with self._lock:
            self._newer = bytearray(len(self._newer))
            self._older = bytearray(len(self._newer))
            self._count = 0

    def dump(self) -> dict[str, Any]:
        """A JSON value :meth:`restore` takes back."""
        with self._lock:
            newer, older, count = bytes(self._newer), bytes(self._older), self._count
        return {
            "capacity": self._capacity,
            "count": count,
            "newer": base64.b64encode(zlib.compress(newer)).decode("ascii"),
            "older": base64.b64encode(zlib.compress(older)).decode("ascii"),
        }

    def restore(self, state: Any) -> bool:
        """Add what :meth:`dump` gave to what is remembered; False (nothing changed) if
        it does not fit."""
        try:
            if state["capacity"] != self._capacity:
                return False
            count = state["count"]
            newer = bytearray(zlib.decompress(base64.b64decode(state["newer"])))
            older = bytearray(zlib.decompress(base64.b64decode(state["older"])))
        except (KeyError, TypeError, ValueError, zlib.error):
            return False
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 0 <= count <= self._capacity
            or len(newer) != len(self._newer)
            or len(older) != len(self._newer)
        ):
            return False
        with self._lock:
            for mine, theirs in ((self._newer, newer), (self._older, older)):
                merged = int.from_bytes(mine, "little") | int.from_bytes(theirs, "little")
                mine[:] = merged.to_bytes(len(mine), "little")
            self._count = max(self._count, count)
        return True
