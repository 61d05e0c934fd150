"""A real ``redis-server`` for the tests: on 127.0.0.1, a free port, a temporary directory.

:class:`RedisServer` runs one server process and can stop it, kill it and start it
again on the same port (for outage tests). :func:`redis_server_binary` finds the
program, or skips the test (fails it when ``CI`` is set) with how to install it.
:func:`shared_redis` is one server per test process, for tests that only need a
place to put keys (the queue contract suite); conftest stops it at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.loopback import free_port
from support.waiting import WAIT

__all__ = ["INSTALL_HINT", "RedisServer", "redis_server_binary", "running_redis", "shared_redis"]

INSTALL_HINT = (
    "the Redis tests need a real redis-server on PATH; install it with "
    "`apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)"
)


def redis_server_binary() -> str:
    """The ``redis-server`` program; skip the test without one (fail it when ``CI`` is set)."""
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT, pytrace=False)
        pytest.skip(INSTALL_HINT)
    return found


def _pong(port: int) -> bool:
    """True when something on ``port`` answers a Redis PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, its data and log in ``directory``.

    Nothing is persisted unless ``appendonly`` is True (then every write is in the
    append-only file before it is acknowledged, and a restart brings it all back).
    """

    def __init__(
        self, directory: Path, *, appendonly: bool = False, extra: tuple[str, ...] = ()
    ) -> None:
        self.binary = redis_server_binary()
        self.extra = extra
        self.directory = directory
        self.appendonly = appendonly
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server: on a free port the first time, on the same port after that."""
        assert not self.running, "already running"
        for _ in range(5):
            port = self.port or free_port()
            args = [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always",
                "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"),
                *self.extra,
            ]  # fmt: skip
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + WAIT
            while process.poll() is None and not _pong(port):
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    raise AssertionError(f"redis-server did not answer on port {port}")
                time.sleep(0.01)
            if process.poll() is None:
                self.port, self.process = port, process
                return
            if self.port:  # the port we must keep was taken meanwhile: retry it a little
                time.sleep(0.2)
        log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        raise AssertionError(f"redis-server would not start:\n{log}")

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM) and wait for it. Idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """Kill the server outright (SIGKILL), as a crash would. Idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The server frozen for the block, and resumed after it whatever happens."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def restart(self) -> None:
        """Kill the server and start it again on the same port."""
        self.kill()
        self.start()


@contextmanager
def running_redis(
    directory: Path | None = None, *, appendonly: bool = False
) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` in ``directory`` (a fresh temporary one when None)."""
    with tempfile.TemporaryDirectory(prefix="redis-") as tmp:
        server = RedisServer(directory or Path(tmp), appendonly=appendonly)
        server.start()
        try:
            yield server
        finally:
            server.stop()


_shared: tuple[RedisServer, tempfile.TemporaryDirectory[str]] | None = None


def shared_redis() -> RedisServer:
    """This test process's shared server, started on first use."""
    global _shared
    if _shared is None:
        tmp = tempfile.TemporaryDirectory(prefix="redis-shared-")
        server = RedisServer(Path(tmp.name))
        server.start()
        _shared = (server, tmp)
    return _shared[0]


def stop_shared_redis() -> None:
    """Stop the shared server, if it was started."""
    global _shared
    if _shared is not None:
        server, tmp = _shared
        _shared = None
        server.kill()
        tmp.cleanup()
