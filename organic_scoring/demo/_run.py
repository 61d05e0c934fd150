"""Run the demo subnet for a while, show it live, and sum it up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from organic_scoring._compat import BT_VERSION
from organic_scoring._loop.stats import ScoringStats
from organic_scoring.demo._intake import IntakeChoice, choose_intake, open_intake
from organic_scoring.demo._miners import default_miners
from organic_scoring.demo._scorer import SETTINGS, DemoScorer, Opener
from organic_scoring.demo._view import Frame, LiveView
from organic_scoring.synth_dataset import OrganicReplayDataset, default_dataset, splice_words
from organic_scoring.weights import ScoreBook

__all__ = ["run_demo"]

BURST_SIZE = 4
BURST_EVERY = 0.8
QUIET, BUSY = 2.5, 2.0  # seconds of silence (the synthetic fallback's turn), then of bursts
SHORTEST_USEFUL = 5.0  # seconds to score both kinds: the first organic burst is scored ~3 s in
TRIGGER_JITTER = 0.5  # each period drawn within ±50 % of its mean, so probes keep no clock
REFRESH = 0.5  # seconds between redraws of the live view
EXIT_INTERRUPTED = 130  # after Ctrl-C, as shells report a SIGINT (128 + 2)

USER_PROMPTS = (
    "What is the tallest mountain in Africa",
    "Summarise the plot of Hamlet in one line",
    "Translate good morning into Spanish",
    "Why is the sky blue",
    "Suggest a name for a grey cat",
    "How do I reverse a list in Python",
    "What is seven times eight",
    "Recommend a book about the ocean",
)


def run_demo(
    duration: float = 20.0,
    as_json: bool = False,
    out: TextIO | None = None,
    intake: str | None = None,
    protocol: str | None = None,
    metrics_port: int | None = None,
) -> int:
    """Run the demo subnet for ``duration`` seconds; return the process exit code.

    The live view goes to ``out`` (default: stdout, or stderr with ``as_json``); with
    ``as_json`` the final summary is printed to stdout as JSON, always, also after an
    interruption. With ``metrics_port`` the scorer's Prometheus metrics are served at
    ``http://127.0.0.1:PORT/metrics`` while it runs (needs the ``metrics`` extra; 0
    picks a free port). Ctrl-C (SIGINT) ends the run at once, with the summary.

    ``intake`` is ``"axon"`` (bittensor 9/10, the default there) or ``"http"``
    (signed HTTP, any major; the default on 11), ``protocol`` the latter's signing:
    ``"btauth/1"`` (11, the default there) or ``"epistula"`` (any major).

    Returns 130 after an interruption; otherwise 0 if the loop scored both organic
    and synthetic samples, else 1.

    Raises:
        ValueError: An intake or protocol this bittensor cannot run.
    """
    choice = choose_intake(intake, protocol)
    view_out = out or (sys.stderr if as_json else sys.stdout)
    with _interruptible() as interrupted:
        summary = _simulate(duration, view_out, choice, interrupted, metrics_port)
    return _finish(summary, as_json, _why_not)


def _finish(
    summary: dict[str, Any], as_json: bool, why_not: Callable[[dict[str, Any]], str | None]
) -> int:
    """Print the JSON summary if asked; return the exit code, saying why a run failed."""
    if as_json:
        print(json.dumps(summary, indent=2), flush=True)
    if summary["interrupted"]:
        return EXIT_INTERRUPTED
    why = why_not(summary)
    if why is not None:
        print(why, file=sys.stderr)
    return 0 if why is None else 1


@contextlib.contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """An event Ctrl-C sets (on the main thread), so the run winds down in order."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _why_not(summary: dict[str, Any]) -> str | None:
    """Why a run did not score both kinds of sample, and what to do; None if it did."""
    reasons = []
    if summary["organic_iterations"] == 0:
        reasons.append(
            "no organic sample was scored: the simulated user is quiet for the first "
            f"{QUIET:g} s (the synthetic fallback's turn), so its first burst is scored "
            f"about 3 s in, and this run lasted {summary['duration']:g} s"
        )
    if summary["synthetic_iterations"] == 0:
        reasons.append("no synthetic sample was scored")
    if not reasons:
        return None
    hint = ""
    if summary["duration"] < SHORTEST_USEFUL:
        hint = (
            f"; run it for at least {SHORTEST_USEFUL:g} s "
            f"(organic-scoring demo --duration {SHORTEST_USEFUL * 2:g})"
        )
    return "demo failed: " + "; ".join(reasons) + hint


def _simulate(
    duration: float,
    view_out: TextIO,
    choice: IntakeChoice,
    interrupted: threading.Event,
    metrics_port: int | None,
) -> dict[str, Any]:
    miners = default_miners()
    book = ScoreBook(len(miners), alpha=0.2)

    def build(cls: type[DemoScorer], **intake: Any) -> DemoScorer:
        jitter = {"trigger_jitter": TRIGGER_JITTER, "seed": 1}
        return cls(miners, book, synth_dataset=_probes(), **jitter, **SETTINGS, **intake)

    with (
        tempfile.TemporaryDirectory(prefix="organic-scoring-demo-") as directory,
        open_intake(choice, directory, build) as (scorer, open_user, where),
        _metrics(scorer, book, metrics_port) as metrics_url,
    ):
        traffic = _Traffic(open_user, duration)
        frame = _framer(scorer, book, lambda: scorer.received)
        with LiveView(view_out, where, duration, metrics_url) as view:
            scorer.start()
            try:
                started = _drive(traffic, view, frame, interrupted)
            finally:
                scorer.stop()
            view.update(frame(time.monotonic() - started))
            view.close()
            stats = scorer.stats
            summary = {
                "bittensor": ".".join(map(str, BT_VERSION)),
                "intake": choice.intake,
                "protocol": choice.protocol,
                "duration": round(time.monotonic() - started, 3),
                "interrupted": interrupted.is_set(),
                **_scoring_summary(stats, book, len(miners)),
                "organic_received": scorer.received,
                "organic_answered": traffic.answered,
                "organic_queued": stats.queue_size,
            }
            if metrics_url is not None:
                summary["metrics_url"] = metrics_url
            view.summary(summary)
        return summary


def _drive(
    traffic: _Traffic, view: LiveView, frame: Callable[[float], Frame], interrupted: threading.Event
) -> float:
    """Send traffic and redraw ``frame(elapsed)`` until its duration passes or Ctrl-C;
    return when it started."""
    started = time.monotonic()
    traffic.start()
    try:
        deadline = started + traffic.duration
        while not interrupted.is_set() and (left := deadline - time.monotonic()) > 0:
            interrupted.wait(min(REFRESH, left))
            view.update(frame(time.monotonic() - started))
    finally:
        traffic.stop()
    return started


def _scoring_summary(stats: ScoringStats, book: ScoreBook, miners: int) -> dict[str, Any]:
    """What every demo's summary says of the scoring: iterations, share, weights, times."""
    return {
        "iterations": stats.iterations,
        "organic_iterations": stats.organic_iterations,
        "synthetic_iterations": stats.synthetic_iterations,
        "failed_iterations": stats.failed_iterations,
        "organic_share": round(stats.organic_share, 4),
        "top_weights": {str(uid): round(w, 4) for uid, w in _top(book, miners)},
        "stage_p50_ms": {
            name: round(times.p50 * 1000, 3) for name, times in stats.stage_times.items()
        },
    }


def _framer(
    scorer: DemoScorer, book: ScoreBook, received: Callable[[], int], fleet: bool = False
) -> Callable[[float], Frame]:
    """What the live view shows ``elapsed`` seconds in: ``frame(elapsed)``."""
    config = scorer.config

    def frame(elapsed: float) -> Frame:
        return Frame(
            elapsed=elapsed,
            stats=scorer.stats,
            received=received(),
            period=scorer.sample_rate_dynamic(),
            idle_period=config.trigger_frequency,
            jitter=config.trigger_jitter,
            top=_top(book, 3),
            fleet=fleet,
        )

    return frame


@contextlib.contextmanager
def _metrics(scorer: DemoScorer, book: ScoreBook, port: int | None) -> Iterator[str | None]:
    """Serve the scorer's metrics on 127.0.0.1:port while the demo runs (None: don't)."""
    if port is None:
        yield None
        return
    from prometheus_client import CollectorRegistry

    from organic_scoring.metrics import PrometheusMetrics, serve_metrics

    with PrometheusMetrics(scorer, CollectorRegistry()) as metrics:
        metrics.track(book)
        with serve_metrics(metrics, "127.0.0.1", port) as server:
            yield server.url


def _probes() -> OrganicReplayDataset:
    """Users' requests spliced with each other; the bundled dataset until there are a few."""

    def splice(sample: dict[str, str], rng: random.Random) -> dict[str, str] | None:
        for _ in range(5):
            spliced = splice_words(sample, replay.peek(), rng)
            if spliced is not None:
                return spliced
        return None

    replay = OrganicReplayDataset(
        200, transform=splice, fallback=default_dataset(seed=1), seed=1, min_samples=5
    )
    return replay


def _top(book: ScoreBook, k: int) -> list[tuple[int, float]]:
    return sorted(book.as_dict().items(), key=lambda item: -item[1])[:k]


class _Traffic:
    """A user on its own thread and event loop, sending bursts of organic requests."""

    def __init__(self, open_user: Opener, duration: float) -> None:
        self._open_user = open_user
        self.duration = duration
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._send()), name="demo-user", daemon=True
        )
        self._random = random.Random(7)
        self.answered = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    async def _send(self) -> None:
        async with self._open_user() as ask:
            started = time.monotonic()
            while not self._stop.is_set():
                phase = (time.monotonic() - started) % (QUIET + BUSY)
                if phase >= QUIET:
                    prompts = self._random.choices(USER_PROMPTS, k=BURST_SIZE)
                    replies = await asyncio.gather(
                        *(ask(p) for p in prompts), return_exceptions=True
                    )
                    self.answered += sum(1 for r in replies if isinstance(r, str))
                    pause = BURST_EVERY
                else:
                    pause = QUIET - phase
                await asyncio.to_thread(self._stop.wait, pause)
