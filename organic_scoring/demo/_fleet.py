"""The demo as a fleet: intake workers, an active scorer and a standby, sharing Redis.

Needs the ``http`` and ``redis`` extras. The demo's Redis keys are deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, TextIO

from organic_scoring._compat import BT_VERSION
from organic_scoring.demo._loopback import free_port
from organic_scoring.demo._miners import default_miners
from organic_scoring.demo._run import (
    _drive,
    _finish,
    _framer,
    _interruptible,
    _metrics,
    _scoring_summary,
    _Traffic,
)
from organic_scoring.demo._scorer import SETTINGS, DemoScorer
from organic_scoring.demo._view import LiveView
from organic_scoring.errors import RedisUnavailable
from organic_scoring.organic_queue import RedisOrganicQueue
from organic_scoring.synth_dataset import default_dataset
from organic_scoring.wallet import throwaway_wallet as make_wallet
from organic_scoring.weights import ScoreBook

__all__ = ["run_fleet_demo"]

_ENV = "ORGANIC_SCORING_DEMO_FLEET"  # how the intake workers learn their settings
_READY_TIMEOUT = 120.0  # seconds for the worker processes to import and start serving


def _scorer(redis_url: str, name: str, book: ScoreBook | None = None) -> DemoScorer:
    from organic_scoring.demo._http_side import HttpDemoScorer  # needs the http extra

    miners = default_miners()
    return HttpDemoScorer(
        miners,
        book or ScoreBook(len(miners), alpha=0.2),
        organic_queue=RedisOrganicQueue.from_url(redis_url, name=name, lock_period=2.0),
        synth_dataset=default_dataset(seed=1),
        **SETTINGS,
    )


def intake_app() -> Any:
    """The ASGI app of one intake worker (a uvicorn factory: settings from the environment)."""
    from organic_scoring.http import create_app
    from organic_scoring.intake import RedisNonceStore

    settings = json.loads(os.environ[_ENV])
    scorer = _scorer(settings["redis"], settings["name"])
    nonces = RedisNonceStore.from_url(settings["redis"], namespace=settings["name"])
    return create_app(
        scorer,
        hotkey_ss58=settings["hotkey"],
        protocol=settings["protocol"],
        nonce_store=nonces,
        allowed_hotkeys=[settings["user"]],
    )


def run_fleet_demo(
    redis_url: str,
    workers: int,
    duration: float = 20.0,
    as_json: bool = False,
    out: TextIO | None = None,
    protocol: str | None = None,
    metrics_port: int | None = None,
) -> int:
    """:func:`run_demo` as a fleet on ``redis_url``, ``workers`` intake processes.

    ``metrics_port`` serves the metrics of the active scorer (this process's). Returns
    as :func:`run_demo` does, and 1 also when the fleet's accounting does not balance;
    2 if Redis cannot be reached.
    """
    from organic_scoring.http._signing import default_protocol

    protocol = protocol or default_protocol()
    view_out = out or (sys.stderr if as_json else sys.stdout)
    name = f"organic-scoring-demo-{uuid.uuid4().hex[:12]}"
    with _interruptible() as interrupted:
        try:
            probe = RedisOrganicQueue.from_url(redis_url, name=name)
        except RedisUnavailable as exc:
            print(f"demo: {exc}; start a Redis server first", file=sys.stderr)
            return 2
        try:
            summary = _simulate(
                redis_url,
                name,
                workers,
                protocol,
                duration,
                view_out,
                probe,
                interrupted,
                metrics_port,
            )
        finally:
            _forget(probe, name)
            probe.close()
    return _finish(summary, as_json, _why_not)


def _why_not(summary: dict[str, Any]) -> str | None:
    if (
        summary["organic_iterations"] > 0
        and summary["synthetic_iterations"] > 0
        and summary["fleet"]["unaccounted"] == 0
    ):
        return None
    return (
        "demo failed: the fleet did not score both organic and synthetic samples, "
        "or its accounting does not balance"
    )


def _simulate(
    redis_url: str,
    name: str,
    workers: int,
    protocol: str,
    duration: float,
    view_out: TextIO,
    queue: Any,
    interrupted: threading.Event,
    metrics_port: int | None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="organic-scoring-demo-") as directory:
        validator, user = make_wallet(directory, "validator"), make_wallet(directory, "user")
        hotkey = validator.hotkey.ss58_address
        port = free_port()
        url = f"http://127.0.0.1:{port}/organic"
        miners = default_miners()
        book = ScoreBook(len(miners), alpha=0.2)
        scorer = _scorer(redis_url, name, book)
        standby: subprocess.Popen[bytes] | None = None
        started = None
        # Closed in reverse: the view, the standby, this scorer, the intake, the metrics,
        # this scorer's connections to Redis.
        with contextlib.ExitStack() as stack:
            if isinstance(own := scorer.organic_queue, RedisOrganicQueue):
                stack.callback(own.close)
            metrics_url = stack.enter_context(_metrics(scorer, book, metrics_port))
            shared = {"redis": redis_url, "name": name}
            serving = {"hotkey": hotkey, "port": port, "workers": workers, "protocol": protocol}
            intake = stack.enter_context(
                _process("intake", **shared, **serving, user=user.hotkey.ss58_address)
            )
            up = _wait_for(
                lambda: _serving(port), "the intake workers to serve", interrupted, intake
            )
            if up:
                scorer.start()
                stack.callback(scorer.stop)
                up = _wait_for(
                    lambda: scorer.stats.active_scorer, "the scorer to take the lock", interrupted
                )
            if up:
                standby = stack.enter_context(_process("scorer", **shared))

            from organic_scoring.demo._http_side import user_opener

            open_user = user_opener(user, url, hotkey, protocol)
            where = f"{workers} intake workers at {url}, Redis {queue.url}"
            traffic = _Traffic(open_user, duration)
            frame = _framer(scorer, book, lambda: queue.counters().added, fleet=True)
            view = stack.enter_context(
                LiveView(view_out, f"organic-scoring demo (fleet): {where}", duration, metrics_url)
            )
            if up:
                started = _drive(traffic, view, frame, interrupted)
                # Let the fleet finish what it accepted (not after Ctrl-C), then stop it.
                _wait_for(
                    lambda: _settled(queue), "the queue to drain", interrupted, None, duration + 10
                )
            scorer.stop()
            stats = scorer.stats
            counters = queue.counters()
            standby_alive = standby is not None and standby.poll() is None
            elapsed = time.monotonic() - started if started is not None else 0.0
        summary = {
            "bittensor": ".".join(map(str, BT_VERSION)),
            "intake": "http",
            "protocol": protocol,
            "workers": workers,
            "redis": queue.url,
            "duration": round(elapsed, 3),
            "interrupted": interrupted.is_set(),
            **_scoring_summary(stats, book, len(miners)),
            "organic_received": counters.added,
            "organic_answered": traffic.answered,
            "organic_queued": counters.size,
            "fleet": {
                "accepted": counters.accepted,
                "stored": counters.added,
                "scored": counters.scored,
                "failed": counters.failed,
                "dropped": counters.dropped,
                "in_flight": counters.leased,
                "queued": counters.size,
                "redelivered": counters.redelivered,
                "unaccounted": stats.organic_unaccounted,
                "standby_was_running": standby_alive,
            },
        }
        if metrics_url is not None:
            summary["metrics_url"] = metrics_url
        view.summary(summary)
        return summary


def _settled(queue: Any) -> bool:
    counters = queue.counters()
    return bool(counters.size == 0 and counters.leased == 0)


def _serving(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_for(
    predicate: Any,
    what: str,
    interrupted: threading.Event,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = _READY_TIMEOUT,
) -> bool:
    """Wait until ``predicate()`` holds (True) or Ctrl-C (False); raise RuntimeError if
    ``process`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not interrupted.is_set():
        if predicate():
            return True
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"demo: waiting for {what}, the process exited ({process.returncode})"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo: waited {timeout:g}s for {what}")
        interrupted.wait(0.05)
    return False


@contextlib.contextmanager
def _process(role: str, **settings: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m organic_scoring.demo._fleet ROLE SETTINGS``; stopped and waited for on exit.

    In a session of its own: Ctrl-C reaches only the demo, which stops it in order (a
    SIGINT while it still imports would end it with a traceback).
    """
    command = [sys.executable, "-m", "organic_scoring.demo._fleet", role, json.dumps(settings)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            if role == "scorer":
                assert process.stdin is not None
                process.stdin.close()  # the standby stops cleanly when its stdin closes
            else:
                # uvicorn's supervisor shuts down its workers; one still starting just ends.
                process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.close()


def _forget(queue: Any, name: str) -> None:
    """Delete what the demo left in Redis: the queue, its scorer lock, the nonces."""
    client = queue._link.client
    for pattern in (f"organic-scoring:{{{name}}}:*", f"{name}:nonce:*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)


def _serve_intake(settings: dict[str, Any]) -> None:
    """``uvicorn --workers N --factory organic_scoring.demo._fleet:intake_app``."""
    from organic_scoring.http._server import serve_workers

    os.environ[_ENV] = json.dumps(settings)
    threading.Thread(target=_end_with_stdin, name="demo-intake-stdin", daemon=True).start()
    app = "organic_scoring.demo._fleet:intake_app"
    serve_workers(app, "127.0.0.1", settings["port"], settings["workers"])


def _end_with_stdin() -> None:
    """SIGTERM this process once its stdin closes: the demo has ended, however it ended.

    Reads the file descriptor, not ``sys.stdin``, whose lock a blocked daemon thread
    would hold at the interpreter's exit.
    """
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    os.kill(os.getpid(), signal.SIGTERM)


def _stand_by(redis_url: str, name: str) -> None:
    scorer = _scorer(redis_url, name)
    scorer.start()
    try:
        sys.stdin.read()  # until the demo closes our stdin
    finally:
        scorer.stop()
        queue = scorer.organic_queue
        if isinstance(queue, RedisOrganicQueue):
            queue.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m organic_scoring.demo._fleet")
    parser.add_argument("role", choices=["intake", "scorer"])
    parser.add_argument("settings", type=json.loads)
    args = parser.parse_args(argv)
    if args.role == "intake":
        _serve_intake(args.settings)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            _stand_by(args.settings["redis"], args.settings["name"])


if __name__ == "__main__":
    main()
