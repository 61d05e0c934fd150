"""Connecting to Redis: the one module that imports the optional ``redis`` package.

``redis`` is imported lazily (the error says how to install it); the server is
pinged at construction; nothing is retried automatically (a lost reply may hide a
command that ran); every failure comes out as
:class:`~organic_scoring.errors.RedisUnavailable`, and broken pool connections are
replaced, so users recover once the server is back.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from organic_scoring.errors import RedisUnavailable

if TYPE_CHECKING:
    import redis

__all__ = [
    "ALLOW_OOM",
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "RedisLink",
    "masked",
    "require_redis",
]

CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a TCP connection to the server."""
COMMAND_TIMEOUT = 5.0
"""Seconds to wait for the server's reply to one command."""

_SCHEMES = ("redis", "rediss", "unix")

ALLOW_OOM = "#!lua flags=allow-oom\n"
"""The first line of a script that may run while Redis refuses writes at
``maxmemory`` (Redis 7 and later; see :attr:`RedisLink.script_flags`)."""


def require_redis(feature: str) -> ModuleType:
    """The ``redis`` package, or an ImportError saying which extra installs it."""
    try:
        return importlib.import_module("redis")
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs the redis client package: pip install 'organic-scoring[redis]'"
        ) from exc


def masked(url: str) -> str:
    """``url`` with its password (in the user part or the query string) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        shown = url
        if parts.password is not None:
            user, _, host = parts.netloc.rpartition("@")
            shown = shown.replace(parts.netloc, f"{user.partition(':')[0]}:***@{host}", 1)
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            query = urlencode(
                [(key, "***" if key.lower() == "password" else value) for key, value in pairs],
                safe="*",
            )
            shown = shown.replace("?" + parts.query, "?" + query, 1)
        return shown
    except ValueError:
        return "<unparseable url>"


class RedisLink:
    """A client for one server, made and checked once, plus the error translation.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS,
            or ``unix:///path/to/socket``.
        what: Names the object using the link in error messages.

    Raises:
        ValueError: ``url`` is not a Redis URL.
        ImportError: The ``redis`` package is not installed.
        RedisUnavailable: The server did not answer a PING.
    """

    def __init__(self, url: str, what: str) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
            raise ValueError(
                f"url must be a Redis URL (redis://host:port/db, rediss://... or "
                f"unix://...), got {masked(url) if isinstance(url, str) else url!r}"
            )
        module = require_redis(what)
        self.url = masked(url)
        """The server's URL, password masked: safe to log."""
        self.what = what
        self._script_flags: bool | None = None
        self.errors: type[Exception] = module.exceptions.RedisError
        retry = module.retry.Retry(module.backoff.NoBackoff(), 0)
        try:
            self.client: redis.Redis = module.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=COMMAND_TIMEOUT,
                retry=retry,
            )
        except ValueError as exc:
            raise ValueError(f"url {self.url!r} is not usable: {exc}") from None
        try:
            with self.failures("cannot reach Redis"):
                self.client.ping()
        except BaseException:
            self.close()
            raise

    @property
    def script_flags(self) -> bool:
        """True when the server reads flags in a script's first line (Redis 7 and
        later): ``#!lua flags=allow-oom``, say. Asked once."""
        flags = self._script_flags
        if flags is None:
            try:
                with self.failures("cannot read the server's version"):
                    info = self.client.info("server")
                version = str(info.get("redis_version", "7"))
                flags = int(version.split(".")[0]) >= 7
            except (RedisUnavailable, ValueError):
                flags = True
            self._script_flags = flags
        return flags

    @contextmanager
    def failures(self, doing: str) -> Iterator[None]:
        """Turn any Redis error inside the block into :class:`RedisUnavailable`."""
        try:
            yield
        except self.errors as exc:
            raise RedisUnavailable(
                f"{self.what}: {doing} at {self.url}: {type(exc).__name__}: {exc}", self.url
            ) from exc

    def script(self, source: str) -> Any:
        """Register a Lua script with the client and load it into the server now.

        Calls then cost one round trip (EVALSHA); a server that lost its script cache
        (a restart) gets the script again on the next call, transparently.
        """
        script = self.client.register_script(source)
        with self.failures("cannot load a script"):
            self.client.script_load(source)
        return script

    def close(self) -> None:
        """Close the client's connections. Idempotent."""
        self.client.close()
