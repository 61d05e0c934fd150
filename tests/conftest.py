"""Shared fixtures: leak checks for threads, tasks and asyncio's own complaints."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest


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
