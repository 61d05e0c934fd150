"""Shared fixtures: leak checks for threads, tasks and asyncio's own complaints; Redis."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.redis_server import RedisServer, running_redis, stop_shared_redis


@pytest.fixture
def no_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail if the test leaves a thread of ours running or asyncio logs a complaint.

    asyncio reports "Task was destroyed but it is pending" and "Task exception was
    never retrieved" through its logger (at ERROR), not as warnings, so they are caught
    here. The capture's level is left alone: a test may look for warnings of its own.
    """
    before = {t.ident for t in threading.enumerate()}
    yield
    for thread in threading.enumerate():
        if thread.ident not in before and thread.name.startswith("organic-scoring"):
            thread.join(5)
            assert not thread.is_alive(), f"thread {thread.name} outlived the test"
    gc.collect()
    complaints = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not complaints, complaints


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own on 127.0.0.1 (no persistence), stopped after.

    ``redis_server.url`` is its URL; ``stop()``, ``kill()``, ``start()`` and ``restart()``
    make outages. Skips without redis-server (fails when ``CI`` is set).
    """
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the test's own redis-server: ``redis://127.0.0.1:PORT/0``."""
    return redis_server.url


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_redis() -> Iterator[None]:
    """Stop the per-process shared redis-server (support.redis_server.shared_redis) at the end."""
    yield
    stop_shared_redis()
