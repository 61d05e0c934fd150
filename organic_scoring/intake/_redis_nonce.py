"""Replay protection shared by every intake process: a nonce store in Redis.

Implements bittensor's ``http_auth.NonceStore`` protocol; each check is one
``SET key 1 NX PX retention`` (atomic, one round trip, self-expiring, one key: fine
on a Redis Cluster).
"""

from __future__ import annotations

from typing import Any, ClassVar

from organic_scoring.organic_queue._redis_link import (
    COMMAND_TIMEOUT,
    RedisLink,
    check_seconds,
    check_timeout,
)

__all__ = ["RedisNonceStore"]


class RedisNonceStore:
    """Remembers accepted ``(hotkey, nonce)`` pairs in Redis for ``retention`` seconds,
    shared by every store on the same server and ``namespace``. Nonces may be ints
    (``btauth/1``) or strings (Epistula's UUIDs). Thread-safe; share one per process.

    Args:
        client: A redis-py client (``redis.Redis``, ``redis.cluster.RedisCluster``,
            a Sentinel master); the caller keeps it and closes it. A URL string is
            read as :meth:`from_url` would.
        retention: Seconds a nonce is remembered; at least ``max_age + allowed_skew``.
        namespace: Prefix of the keys, so several validators can share one server.
        timeout: Seconds one awaited check may take before it raises
            ``RedisUnavailable`` (plain calls: the client's ``socket_timeout``, which
            :meth:`from_url` sets to this).

    Raises:
        ValueError: A parameter is out of range (the message names it).
        TypeError: ``client`` is not a redis-py client.
        ImportError: The ``redis`` package is missing (install ``organic-scoring[redis]``).
        RedisUnavailable: The server cannot be reached.
    """

    blocking: ClassVar[bool] = True  # a round trip per call: the intake calls it off-loop
    persistent: ClassVar[bool] = True  # outlives a restart of the intake

    def __init__(
        self,
        client: Any,
        *,
        retention: float = 60.0,
        namespace: str = "organic-scoring",
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        retention = check_seconds("retention", retention, 0.001)
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
        check_timeout(timeout)
        self.retention = retention
        """Seconds a nonce is remembered (read by ``bt.http_auth.verify``)."""
        self._retention_ms = max(1, round(self.retention * 1000))
        self._prefix = f"{namespace}:nonce:"
        self._link = RedisLink.connect(client, "RedisNonceStore", timeout=float(timeout))

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> RedisNonceStore:
        """A store on a client made from ``url`` (``redis://[[user]:password@]host[:port][/db]``,
        ``rediss://`` for TLS, ``unix:///path``), its timeouts set to ``timeout``; the
        store owns that client. ``settings``: as for the class.

        Raises:
            ValueError: ``url`` is not a Redis URL, or a setting is out of range.
        """
        if not isinstance(url, str):
            raise ValueError(f"url must be a Redis URL string, got {type(url).__name__}")
        return cls(url, **settings)

    def _key(self, hotkey_ss58: str, nonce_ns: int | str) -> str:
        if not isinstance(hotkey_ss58, str):
            raise TypeError(f"hotkey_ss58 must be a str, got {type(hotkey_ss58).__name__}")
        if isinstance(nonce_ns, bool) or not isinstance(nonce_ns, (int, str)):
            raise TypeError(f"nonce_ns must be an int or a str, got {type(nonce_ns).__name__}")
        return f"{self._prefix}{hotkey_ss58}:{nonce_ns}"

    async def acheck_and_store(self, hotkey_ss58: str, nonce_ns: int | str) -> bool:
        """:meth:`check_and_store`, awaitable, on this event loop's async client."""
        key = self._key(hotkey_ss58, nonce_ns)
        ms = self._retention_ms
        return bool(
            await self._link.run(
                "cannot check a nonce",
                lambda client: client.set(key, b"1", nx=True, px=ms),
                lambda: self.check_and_store(hotkey_ss58, nonce_ns),
            )
        )

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int | str) -> bool:
        """True (and remember it) if ``nonce_ns`` from ``hotkey_ss58`` is new, else False.

        Raises:
            TypeError: ``hotkey_ss58`` is not a str, or ``nonce_ns`` is neither an
                int nor a str.
            RedisUnavailable: The server did not answer.
        """
        key = self._key(hotkey_ss58, nonce_ns)
        with self._link.failures("cannot check a nonce"):
            return bool(self._link.client.set(key, b"1", nx=True, px=self._retention_ms))

    @property
    def url(self) -> str:
        """Where the server is, password masked."""
        return self._link.url

    def close(self) -> None:
        """Close the async clients it made (and the client, if :meth:`from_url` made
        it). Idempotent."""
        self._link.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaitable: this loop's async client is closed before it returns."""
        await self._link.aforget()
        self.close()

    def __enter__(self) -> RedisNonceStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisNonceStore({self._link.url!r}, retention={self.retention:g})"
