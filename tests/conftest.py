"""Shared fixtures (leak checks, the library's log, a real Redis) and a one-line
summary of skips."""

# Where each test runs (noxfile.py picks tests by marker; pyproject.toml registers them):
#   tests(11) runs every test, once.
#   tests(9) and tests(10) run only the tests marked `bittensor`: whatever can differ by
#     bittensor major (an axon, signed HTTP per protocol, _compat, imports, logging,
#     weights emission, the demo's intake, ...).
#   tests_python-3.10 and -3.13 run only the tests marked `python_version`: whatever can
#     differ by Python (the loop's concurrency, cancellation and timeouts, typing and
#     pydantic, imports).
# Mark a whole module with `pytestmark = [pytest.mark.bittensor, ...]`, or one test with a
# decorator. A test over support.transports.TRANSPORTS is marked by its parameters. A
# test left unmarked runs in tests(11) only, so one that bittensor 11 skips for want of
# something another major has must be marked: pytest_runtest_makereport fails it if not.

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path

# numpy's BLAS starts a thread per core that spins while it waits: on two cores shared
# with the tests' own servers and processes, a small matrix product then takes many
# times longer. One thread, set before anything loads numpy; child processes inherit it.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import pytest  # noqa: E402

from organic_scoring._compat import HAS_AXON, library_logger  # noqa: E402
from support.redis_server import RedisServer, running_redis, stop_shared_redis  # noqa: E402


def _ours_to_end(thread: threading.Thread) -> bool:
    """A thread of the library's, or an AnyIO worker thread (which runs plain hooks)
    whose event loop's main task has ended, so it ends too once its call returns. A
    worker of a loop still running (a server a module's tests share) stays idle."""
    if thread.name.startswith("organic-scoring"):
        return True
    if thread.name != "AnyIO worker thread":
        return False
    root = getattr(thread, "root_task", None)  # AnyIO's asyncio backend keeps it here
    return root is None or root.done()


@pytest.fixture
def no_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail if the test leaves a thread of ours running (a plain hook still blocking on
    an AnyIO worker thread included) or asyncio logs a complaint.

    asyncio reports "Task was destroyed but it is pending" and "Task exception was
    never retrieved" through its logger (at ERROR), not as warnings, so they are caught
    here. The capture's level is left alone: a test may look for warnings of its own.
    What existed before the test is frozen out of that collection: the test's own
    garbage is all it looks at, in a small fraction of the time.
    """
    before = {t.ident for t in threading.enumerate()}
    gc.freeze()
    try:
        yield
        for thread in threading.enumerate():
            if thread.ident not in before and _ours_to_end(thread):
                thread.join(5)
                assert not thread.is_alive(), f"thread {thread.name} outlived the test"
        gc.collect()
    finally:
        gc.unfreeze()
    complaints = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not complaints, complaints


@pytest.fixture
def library_log() -> Iterator[list[str]]:
    """The library's log messages (any level) while the test runs, on every major.

    bittensor 9/10 route them through ``bt.logging``, 11 through the standard
    ``organic_scoring`` logger; the ``organic_scoring: `` tag 9/10 need is stripped.
    """
    records: list[logging.LogRecord] = []
    messages: list[str] = []
    with _catching(records, messages):
        yield messages


@pytest.fixture
def library_records() -> Iterator[list[logging.LogRecord]]:
    """The library's log records (any level) while the test runs, as ``library_log``."""
    records: list[logging.LogRecord] = []
    with _catching(records, []):
        yield records


@contextlib.contextmanager
def _catching(records: list[logging.LogRecord], messages: list[str]) -> Iterator[None]:
    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if record.name == "organic_scoring" or message.startswith("organic_scoring: "):
                records.append(record)
                messages.append(message.removeprefix("organic_scoring: "))

    ours = library_logger()
    # bt.logging (9/10) hands its records to the standard "bittensor" logger.
    target = ours if ours.name == "organic_scoring" else logging.getLogger("bittensor")
    catch = Catch(logging.DEBUG)
    level = target.level
    target.addHandler(catch)
    target.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        target.setLevel(level)
        target.removeHandler(catch)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say what was skipped in one line, counted by reason, instead of a line per test."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        parts = [f"{reason} ({count})" for reason, count in reasons.most_common()]
        terminalreporter.write_line(f"skipped {reasons.total()}: " + "; ".join(parts))


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


@pytest.fixture(scope="session", autouse=True)
def _drain_bittensor_logging() -> Iterator[None]:
    """bt.logging (9/10) prints from a listener thread fed through a multiprocessing
    queue, so a record logged by the last tests could reach the terminal at exit, past
    pytest's capture. Stopping the listener drains the queue while output is still
    captured; it is started again for bittensor's own stop at exit."""
    yield
    bt = sys.modules.get("bittensor")
    listener = getattr(getattr(bt, "logging", None), "_listener", None)
    if listener is not None and getattr(listener, "_thread", None) is not None:
        listener.stop()
        listener.start()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On the newest bittensor (the only one that runs unmarked tests), fail an unmarked
    test skipped for a reason that names bittensor: no session would ever run it."""
    report: pytest.TestReport = yield
    if HAS_AXON or not report.skipped or hasattr(report, "wasxfail"):
        return report
    if item.get_closest_marker("bittensor") is not None:
        return report
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    if "bittensor" in reason:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} is skipped here ({reason}) and is not marked bittensor, so "
            "no session runs it: mark it @pytest.mark.bittensor (see tests/conftest.py)"
        )
    return report
