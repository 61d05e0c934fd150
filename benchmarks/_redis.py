"""A Redis server for the benchmarks: the one the environment names, or a throwaway one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

__all__ = ["redis_server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str | None]:
    """The URL of a Redis server for the run: the one named in the environment, or a
    throwaway one on 127.0.0.1; None when there is neither."""
    named = os.environ.get("ORGANIC_SCORING_BENCH_REDIS")
    if named:
        yield named
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", tmp, "--save", ""]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url)
            for _ in range(500):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.01)
            client.close()
            yield url
        finally:
            process.terminate()
            process.wait()
