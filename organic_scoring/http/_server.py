"""Serving an ASGI app with uvicorn from a background thread, on a socket bound in the
caller's thread (a taken port fails at once)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from organic_scoring._compat import require_extra
from organic_scoring.intake import IntakeSettings

__all__ = ["OrganicServer", "serve_in_thread", "serve_workers"]

_STARTUP_TIMEOUT = 30.0


class OrganicServer:
    """An ASGI app served by uvicorn on a background thread.

    ``start()`` returns once the server accepts connections; ``stop()`` (or leaving
    the ``with`` block) shuts it down and joins the thread. Not restartable: build a
    new one.

    Args:
        app: The ASGI app, e.g. from :func:`~organic_scoring.http.create_app`.
        host: The address to listen on; ``"127.0.0.1"`` for this machine only,
            ``"0.0.0.0"`` (or ``"::"``) for every interface.
        port: The port; 0 lets the system choose (see :attr:`port`).
        graceful_timeout: Seconds in-flight requests get to finish on stop.
        settings: Where ``header_timeout`` and ``max_header_bytes`` come from;
            default the settings of the intake ``app`` is (from
            :func:`~organic_scoring.http.create_app`), else ``IntakeSettings()``.
        **uvicorn_options: Passed to ``uvicorn.Config`` (e.g. ``ssl_keyfile``,
            ``ssl_certfile``, ``log_level``, ``access_log``). Logging is left as the
            validator configured it: no ``log_config`` is applied unless given.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        graceful_timeout: float = 5.0,
        settings: IntakeSettings | None = None,
        **uvicorn_options: Any,
    ) -> None:
        if settings is None:
            intake = getattr(getattr(app, "state", None), "organic_intake", None)
            found = getattr(intake, "settings", None)
            settings = found if isinstance(found, IntakeSettings) else IntakeSettings()
        elif not isinstance(settings, IntakeSettings):
            raise TypeError(
                f"settings must be an organic_scoring.intake.IntakeSettings, got {settings!r}"
            )
        self.settings = settings
        self._app = app
        self.host = host
        self._port = port
        self._graceful_timeout = graceful_timeout
        self._options = uvicorn_options
        self._socket: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when 0 was asked for)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` (https when TLS options were given)."""
        scheme = "https" if self._options.get("ssl_certfile") else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def is_running(self) -> bool:
        """True while the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = _STARTUP_TIMEOUT) -> OrganicServer:
        """Bind, start serving on a background thread, and wait until ready.

        Raises:
            RuntimeError: Already started, or the server failed to start.
            OSError: The address could not be bound.
        """
        if self._thread is not None:
            raise RuntimeError("this server was already started; build a new one")
        uvicorn = require_extra("uvicorn", "http", "serving")
        options: dict[str, Any] = {
            "log_config": None,
            "access_log": False,
            "http": _bounded_h11(self.settings.header_timeout),
            "h11_max_incomplete_event_size": self.settings.max_header_bytes,
        }
        options.update(self._options)
        config = uvicorn.Config(
            self._app,
            host=self.host,
            port=self._port,
            timeout_graceful_shutdown=max(1, round(self._graceful_timeout)),
            **options,
        )
        self._socket = _bind(self.host, self._port)
        self._port = self._socket.getsockname()[1]
        self._server = _ready_server(config, self._ready)
        self._thread = threading.Thread(
            target=self._run, name=f"organic-scoring-http-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"the server did not start within {timeout:g}s")
        if self._failure is not None or not self._server.started:
            failure = self._failure
            self.stop()
            raise RuntimeError(f"the server failed to start: {failure!r}") from failure
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # SystemExit on a failed lifespan startup
            self._failure = exc
        finally:
            self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down: stop accepting, let requests finish, join the thread. Idempotent;
        from the server's own thread it only asks for the shutdown.

        Raises:
            RuntimeError: The thread did not end within ``timeout`` seconds even
                after in-flight work was abandoned.
        """
        thread = self._thread
        if self._server is not None:
            self._server.should_exit = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                self._server.force_exit = True
                thread.join(5.0)
            if thread.is_alive():
                raise RuntimeError(f"the server thread did not stop within {timeout:g}s")
        if self._socket is not None and (thread is None or not thread.is_alive()):
            self._socket.close()

    def __enter__(self) -> OrganicServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> OrganicServer:
    """Serve ``app`` on ``host:port`` from a background thread; return the running server.

    ``with serve_in_thread(app, port=8091) as server: ...``, or keep it and call
    ``server.stop()`` at shutdown. ``options`` go to :class:`OrganicServer`.
    """
    return OrganicServer(app, host, port, **options).start()


def _bounded_h11(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection that has not sent a request's
    headers within ``header_timeout`` seconds (uvicorn has no such limit)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11(H11Protocol):  # type: ignore[misc]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the headers are in

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (
                self.cycle is None or self.cycle.response_complete
            ):
                self._arm()  # the next request's headers, on a kept-alive connection

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return BoundedH11


def _ready_server(config: Any, ready: threading.Event) -> Any:
    """A ``uvicorn.Server`` that sets ``ready`` once its startup is over, failed or not."""
    import uvicorn

    class Server(uvicorn.Server):  # type: ignore[misc]
        async def startup(self, sockets: Any = None) -> None:
            try:
                await super().startup(sockets=sockets)
            finally:
                ready.set()

    return Server(config)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP, or asyncio leaves Nagle's algorithm on (TCP_NODELAY off) and
    # every small response waits for the peer's delayed ACK (some 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_workers(factory: str, host: str, port: int, workers: int) -> None:
    """Serve an app from ``workers`` processes behind one port, until signalled to stop.

    ``uvicorn --factory FACTORY --workers N``, closing the socket on the way out:
    ``factory`` (``"module:function"``) builds the app in each worker. Blocks.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
    sock = config.bind_socket()
    try:
        try:
            supervisor = Multiprocess(config, sockets=[sock])
        except TypeError:  # uvicorn before 0.30 asks for the worker's target
            supervisor = Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock])
        supervisor.run()
    finally:
        sock.close()
