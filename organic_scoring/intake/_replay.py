"""Replay protection that survives a restart: a freshness window, a start-time
watermark, and a pluggable store of nonces already seen (``docs/intake.md``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import ClassVar, Protocol, runtime_checkable

from organic_scoring.errors import NonceStoreFailure

__all__ = [
    "Freshness",
    "InMemoryNonceStore",
    "NonceStore",
    "NonceStoreFailure",
    "aremember",
    "check_retention",
]


@runtime_checkable
class NonceStore(Protocol):
    """Remembers accepted (hotkey, nonce) pairs; bittensor's ``http_auth.NonceStore``."""

    def check_and_store(self, hotkey_ss58: str, nonce: int | str, /) -> bool:
        """Record the pair; True if it was never seen, False if it was."""
        ...


class InMemoryNonceStore:
    """The default :class:`NonceStore`: pairs kept in this process for ``retention`` s.

    Thread-safe; memory is bounded by the traffic of one retention period.
    """

    blocking: ClassVar[bool] = False  # microseconds under a lock: called inline

    def __init__(self, retention: float = 60.0) -> None:
        if not retention > 0:
            raise ValueError(f"retention must be a positive number of seconds, got {retention!r}")
        self.retention = float(retention)
        self._seen: set[tuple[str, int | str]] = set()
        self._expiry: deque[tuple[float, tuple[str, int | str]]] = deque()
        self._lock = threading.Lock()

    def check_and_store(self, hotkey_ss58: str, nonce: int | str, /) -> bool:
        """Record the pair; True if it was never seen (within ``retention``)."""
        key = (hotkey_ss58, nonce)
        now = time.monotonic()
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                self._seen.discard(self._expiry.popleft()[1])
            if key in self._seen:
                return False
            self._seen.add(key)
            self._expiry.append((now + self.retention, key))
            return True

    def __len__(self) -> int:
        return len(self._seen)


class Freshness:
    """The window a signed request must have been signed in, watermark included.

    Args:
        max_age: Seconds a request stays fresh after it was signed.
        allowed_skew: Seconds a caller's clock may run ahead of ours.
        started_ns: ``time.time_ns()`` when the intake started.
        store: The nonce store; unless it says ``persistent = True``, requests signed
            in the first ``allowed_skew`` seconds after the start are put off
            (:meth:`settling`), as the previous process may have accepted them.
    """

    __slots__ = ("allowed_skew", "max_age", "not_before_ns", "persistent", "started_ns")

    def __init__(
        self, max_age: float, allowed_skew: float, started_ns: int, store: object = None
    ) -> None:
        self.max_age = max_age
        self.allowed_skew = allowed_skew
        self.started_ns = started_ns
        self.persistent = getattr(store, "persistent", False) is True
        self.not_before_ns = started_ns + (0 if self.persistent else int(allowed_skew * 1e9))

    @property
    def window(self) -> float:
        """How long a nonce must be remembered: ``max_age + allowed_skew`` seconds."""
        return self.max_age + self.allowed_skew

    def problem(
        self, signed_at_ns: int, now_ns: int | None = None, resolution_ns: int = 1
    ) -> str | None:
        """Why a request signed at ``signed_at_ns`` is not fresh, or None if it is.

        ``resolution_ns``: a signing time known only to that precision (Epistula's
        milliseconds) gives ``signed_at_ns`` as its latest moment; it is judged from
        its earliest, so it stays fresh no longer than ``window``.
        """
        now = time.time_ns() if now_ns is None else now_ns
        earliest = signed_at_ns - (resolution_ns - 1)
        if now - earliest > self.max_age * 1e9:
            return f"the request was signed more than {self.max_age:g}s ago"
        if earliest - now > self.allowed_skew * 1e9:
            return f"the request was signed more than {self.allowed_skew:g}s in the future"
        if signed_at_ns < self.started_ns:
            return "the request was signed before this intake started; sign it again"
        return None

    def settling(self, signed_at_ns: int, now_ns: int | None = None) -> float | None:
        """Seconds to wait before a request signed at ``signed_at_ns`` can be told from
        one the previous process accepted, or None when it can be told now."""
        if self.started_ns <= signed_at_ns < self.not_before_ns:
            now = time.time_ns() if now_ns is None else now_ns
            return max(0.0, (self.not_before_ns - now) / 1e9)
        return None


async def aremember(store: NonceStore, hotkey: str, nonce: int | str) -> bool:
    """``store.check_and_store(hotkey, nonce)``, awaited: the store's own
    ``acheck_and_store`` when it has one, else on a worker thread unless the store
    says ``blocking = False``.

    Raises:
        NonceStoreFailure: The store raised (a server down, say).
    """
    check = getattr(store, "acheck_and_store", None)
    try:
        if callable(check):
            return bool(await check(hotkey, nonce))
        if getattr(store, "blocking", True) is not False:
            return bool(await asyncio.to_thread(store.check_and_store, hotkey, nonce))
        return bool(store.check_and_store(hotkey, nonce))
    except Exception as exc:
        raise NonceStoreFailure(f"the nonce store failed: {exc!r}") from exc


def check_retention(store: NonceStore, window: float) -> None:
    """Refuse a store that forgets nonces before they go stale.

    Raises:
        ValueError: ``store.retention`` is shorter than ``window``.
        TypeError: ``store`` has no ``check_and_store``.
    """
    if not callable(getattr(store, "check_and_store", None)):
        raise TypeError(
            "nonce_store must have a check_and_store(hotkey, nonce) method, "
            f"got {type(store).__name__}"
        )
    retention = getattr(store, "retention", None)
    if isinstance(retention, (int, float)) and retention < window:
        raise ValueError(
            f"nonce_store keeps nonces for {retention:g}s but requests stay fresh for "
            f"{window:g}s (max_age + allowed_skew); replays in the gap would be accepted"
        )
