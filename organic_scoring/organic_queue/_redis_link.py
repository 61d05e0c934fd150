"""Connecting to Redis: the one module that imports the optional ``redis`` package.

Nothing is retried automatically (a lost reply may hide a command that ran).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeGuard, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from organic_scoring._compat import require_extra
from organic_scoring._log import log
from organic_scoring.errors import RedisUnavailable

__all__ = [
    "ALLOW_OOM",
    "COMMAND_TIMEOUT",
    "LuaScript",
    "RedisLink",
    "check_seconds",
    "check_timeout",
    "masked",
]

COMMAND_TIMEOUT = 1.0
"""Seconds a Redis call may take, connecting included, before it counts as failed
(the default ``timeout`` of the Redis pieces)."""

_SCHEMES = ("redis", "rediss", "unix")

ALLOW_OOM = "#!lua flags=allow-oom\n"
"""The first line of a script that may run while Redis refuses writes at
``maxmemory`` (Redis 7 and later; see :attr:`RedisLink.script_flags`)."""

_T = TypeVar("_T")


def _finite(value: object) -> TypeGuard[float]:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_timeout(timeout: object) -> None:
    """Refuse (ValueError) a ``timeout`` that is not a finite number of seconds > 0."""
    if not (_finite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")


def check_seconds(name: str, value: object, least: float) -> float:
    """``value`` as a float; ValueError unless it is a finite number of seconds >= ``least``."""
    if not (_finite(value) and value >= least):
        raise ValueError(f"{name} must be a number of seconds, at least {least:g}, got {value!r}")
    return float(value)


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


class LuaScript:
    """A Lua script, its SHA1 computed once, run by EVALSHA on any client (sync or
    async, single server or Cluster), loaded first where the server lacks it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __call__(self, link: RedisLink, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        client = link.client
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except link.no_script:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    async def acall(
        self, client: Any, link: RedisLink, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except link.no_script:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


# Connection settings copied from a sync client into its async twin (the rest, such as
# retry objects and connect callbacks, belong to the sync client).
_COPIED = (
    "host", "port", "db", "username", "password", "path", "client_name",
    "encoding", "encoding_errors", "decode_responses", "credential_provider",
    "socket_keepalive", "socket_keepalive_options",
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data",
    "ssl_check_hostname", "ssl_min_version", "ssl_ciphers",
)  # fmt: skip


class RedisLink:
    """A redis-py client, its errors as :class:`~organic_scoring.errors.RedisUnavailable`,
    and one ``redis.asyncio`` twin per event loop made from its settings.

    Args:
        client: A redis-py client (a Sentinel one's async calls run on a worker thread).
        what: Names the object using the link in error messages.
        timeout: Seconds an async call may take (sync ones: ``socket_timeout``).
        owned: Close ``client`` in :meth:`close` (it was made here).

    Raises:
        RedisUnavailable: The server did not answer a PING.
    """

    def __init__(self, client: Any, what: str, *, timeout: float, owned: bool = False) -> None:
        module = require_extra("redis", "redis", what)
        if isinstance(client, (str, bytes)) or not callable(getattr(client, "evalsha", None)):
            raise TypeError(
                f"{what} takes a redis-py client (redis.Redis, redis.cluster.RedisCluster); "
                f"for a URL use .from_url(url), got {type(client).__name__}"
            )
        self.client: Any = client
        self.what = what
        self.timeout = timeout
        self.cluster = isinstance(client, module.cluster.RedisCluster)
        self.url = _describe(client, self.cluster)
        """Where the server is, password masked: safe to log."""
        self.errors: type[Exception] = module.exceptions.RedisError
        self.no_script: type[Exception] = module.exceptions.NoScriptError
        self._module = module
        self._owned = owned
        self._aclients: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}
        self._alock = threading.Lock()
        self._closed = False
        self._hung_until = 0.0
        try:
            with self.failures("cannot reach Redis"):
                client.ping()
        except BaseException:
            self.close()
            raise
        if _socket_timeout(client, self.cluster) is None:
            log.warning(
                f"{what}: the Redis client at {self.url} has no socket_timeout, so a plain "
                "(not awaited) call to a Redis that hangs waits for ever; make the client "
                f"with socket_timeout={timeout:g}, or use .from_url()"
            )

    @classmethod
    def connect(cls, client: Any, what: str, *, timeout: float) -> RedisLink:
        """A link on ``client``, or (:meth:`from_url`) on one made from a URL string."""
        if isinstance(client, str):
            return cls.from_url(client, what, timeout=timeout)
        return cls(client, what, timeout=timeout)

    @classmethod
    def from_url(cls, url: str, what: str, *, timeout: float) -> RedisLink:
        """A link owning a client made from ``url`` (``redis://``, ``rediss://``,
        ``unix://``), its connect and socket timeouts set to ``timeout``.

        Raises:
            ValueError: ``url`` is not a Redis URL.
        """
        if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
            raise ValueError(
                f"url must be a Redis URL (redis://host:port/db, rediss://... or "
                f"unix://...), got {masked(url) if isinstance(url, str) else url!r}"
            )
        module = require_extra("redis", "redis", what)
        retry = module.retry.Retry(module.backoff.NoBackoff(), 0)
        try:
            client = module.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=retry
            )
        except ValueError as exc:
            raise ValueError(f"url {masked(url)!r} is not usable: {exc}") from None
        return cls(client, what, timeout=timeout, owned=True)

    @functools.cached_property
    def script_flags(self) -> bool:
        """True when the server reads a script's ``#!lua flags=`` line (Redis 7+)."""
        try:
            with self.failures("cannot read the server's version"):
                info = self.client.info("server")
            if self.cluster and info and "redis_version" not in info:
                info = next(iter(info.values()))
            return int(str(info.get("redis_version", "7")).split(".")[0]) >= 7
        except (RedisUnavailable, ValueError, AttributeError):
            return True

    @contextmanager
    def failures(self, doing: str) -> Iterator[None]:
        """Turn any Redis error inside the block into :class:`RedisUnavailable`."""
        try:
            yield
        except self.errors as exc:
            raise RedisUnavailable(
                f"{self.what}: {doing} at {self.url}: {type(exc).__name__}: {exc}", self.url
            ) from exc

    # -- async -------------------------------------------------------------------

    async def run(
        self, doing: str, call: Callable[[Any], Awaitable[_T]], sync: Callable[[], _T]
    ) -> _T:
        """``await call(async_client)`` on this loop's async client, or ``sync()`` on a
        worker thread where no async twin can be made; either within the deadline.

        Raises:
            RedisUnavailable: The server failed, or did not answer within ``timeout``.
        """
        aclient = await self._aclient()
        silent = f"{self.what}: {doing} at {self.url}: no answer within {self.timeout:g}s"
        if time.monotonic() < self._hung_until:  # a call just timed out: fail at once
            raise RedisUnavailable(f"{silent} (nor to a call just before)", self.url)
        # A worker thread past the deadline is abandoned (socket_timeout ends it).
        pending = asyncio.to_thread(sync) if aclient is None else call(aclient)
        try:
            with self.failures(doing):
                return await asyncio.wait_for(pending, self.timeout)
        except asyncio.TimeoutError as exc:
            self._hung_until = time.monotonic() + self.timeout
            raise RedisUnavailable(silent, self.url) from exc

    async def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._alock:
            if self._closed:
                raise RedisUnavailable(f"{self.what} is closed", self.url)
            if loop in self._aclients:
                return self._aclients[loop][0]
            made = _async_twin(self._module, self.client, self.timeout)
            closer = None if made is None else _closing(made)
            self._aclients[loop] = (made, closer)
        if closer is not None:
            # An async generator: the loop's shutdown_asyncgens() closes the client.
            await closer.__anext__()
        return made

    async def aforget(self) -> None:
        """Close the async client of the running loop (made again if needed)."""
        with self._alock:
            _, closer = self._aclients.pop(asyncio.get_running_loop(), (None, None))
        if closer is not None:
            await closer.aclose()

    def close(self) -> None:
        """Close every async twin (those of loops still running, on their loop) and,
        if owned, the client's connections. Idempotent."""
        with self._alock:
            self._closed = True
            twins, self._aclients = self._aclients, {}
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, (made, closer) in twins.items():
            if closer is None or loop.is_closed():
                continue
            if loop is here:
                _close_soon(here, made, closer)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(closer.aclose(), loop)
                try:
                    future.result(self.timeout)
                except Exception:  # it timed out, or the close failed
                    future.cancel()
            else:
                loop.run_until_complete(closer.aclose())
        if self._owned:
            self.client.close()


async def _closing(aclient: Any) -> AsyncIterator[None]:
    """Yields once; closes ``aclient`` when closed itself."""
    try:
        yield
    finally:
        _closing_soon.pop(id(aclient), None)
        await aclient.aclose()


_closing_soon: dict[int, AsyncIterator[None]] = {}
"""Closers :func:`_close_soon` scheduled, by their client's id, kept until they ran."""


def _close_soon(loop: asyncio.AbstractEventLoop, aclient: Any, closer: AsyncIterator[None]) -> None:
    """Close ``closer`` (a :func:`_closing`) on ``loop``, the running one, from plain
    code: in a task, or in the loop's ``shutdown_asyncgens()`` if it ends first."""
    _closing_soon[id(aclient)] = closer

    async def close() -> None:
        try:
            await closer.aclose()  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            await aclient.aclose()  # the loop is ending: close before it does
            raise

    loop.create_task(close())


def _async_twin(module: ModuleType, client: Any, timeout: float) -> Any:
    """A ``redis.asyncio`` client with ``client``'s connection settings, or None when
    they cannot be carried over (a Sentinel pool, say)."""
    asyncio_module = importlib.import_module("redis.asyncio")
    if isinstance(client, module.cluster.RedisCluster):
        nodes = [asyncio_module.cluster.ClusterNode(n.host, n.port) for n in client.get_nodes()]
        node = _settings(_pool(client, cluster=True))
        if node is None:
            return None
        shared = {k: v for k, v in node[1].items() if k not in ("host", "port", "db", "path")}
        return asyncio_module.RedisCluster(startup_nodes=nodes, **shared)
    found = _settings(getattr(client, "connection_pool", None))
    if found is None or type(client.connection_pool) is not module.ConnectionPool:
        return None
    kind, settings = found
    if kind not in ("Connection", "SSLConnection", "UnixDomainSocketConnection"):
        return None
    pool = asyncio_module.ConnectionPool(connection_class=getattr(asyncio_module, kind), **settings)
    return asyncio_module.Redis.from_pool(pool)


def _settings(pool: Any) -> tuple[str, dict[str, Any]] | None:
    given = getattr(pool, "connection_kwargs", None)
    if not isinstance(given, dict):
        return None
    settings = {key: given[key] for key in _COPIED if key in given}
    for key in ("socket_timeout", "socket_connect_timeout"):
        if given.get(key) is not None:
            settings[key] = given[key]
    return pool.connection_class.__name__, settings


def _pool(client: Any, cluster: bool) -> Any:
    """The connection pool of ``client`` (a Cluster's: its default node's)."""
    if cluster:
        return client.get_default_node().redis_connection.connection_pool
    return client.connection_pool


def _socket_timeout(client: Any, cluster: bool) -> float | None:
    """The client's ``socket_timeout`` (None: none, or it cannot be told)."""
    try:
        found = _pool(client, cluster).connection_kwargs.get("socket_timeout")
    except AttributeError:
        return 0.0  # cannot tell: say nothing
    return None if found is None else float(found)


def _describe(client: Any, cluster: bool) -> str:
    """``redis://host:port/db`` (or ``unix://path``) of ``client``, for messages."""
    try:
        if cluster:
            node = client.get_default_node()
            return f"redis-cluster://{node.host}:{node.port}"
        given = client.connection_pool.connection_kwargs
        if "path" in given:
            return f"unix://{given['path']}?db={given.get('db', 0)}"
        scheme = "rediss" if "ssl_cert_reqs" in given else "redis"
        host, port = given.get("host", "localhost"), given.get("port", 6379)
        user = given.get("username") or ""
        auth = f"{user}:***@" if given.get("password") else (f"{user}@" if user else "")
        return f"{scheme}://{auth}{host}:{port}/{given.get('db', 0)}"
    except (AttributeError, TypeError):
        return type(client).__name__
