"""Run the demo subnet for a while, show it live, and sum it up."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import threading
import time
from typing import Any, TextIO

from organic_scoring._compat import BT_VERSION
from organic_scoring.demo._intake import IntakeChoice, choose_intake, open_intake
from organic_scoring.demo._miners import default_miners
from organic_scoring.demo._scorer import DemoScorer
from organic_scoring.demo._view import LiveView
from organic_scoring.synth_dataset import OrganicReplayDataset, default_dataset, splice_words
from organic_scoring.weights import ScoreBook

__all__ = ["run_demo"]

BURST_SIZE = 4
BURST_EVERY = 0.8
QUIET, BUSY = 2.5, 2.0
"""Seconds of silence (the synthetic fallback's turn), then of bursts, over and over."""

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
) -> int:
    """Run the demo subnet for ``duration`` seconds; return the process exit code.

    The live view goes to ``out`` (default: stdout, or stderr with ``as_json``); with
    ``as_json`` the final summary is printed to stdout as JSON. The exit code is 0
    only if the loop scored both organic and synthetic samples.

    ``intake`` is ``"axon"`` (bittensor 9/10, the default there) or ``"http"``
    (signed HTTP, any major; the default on 11), ``protocol`` the latter's signing:
    ``"btauth/1"`` (11, the default there) or ``"epistula"`` (any major).

    Raises:
        ValueError: An intake or protocol this bittensor cannot run.
    """
    choice = choose_intake(intake, protocol)
    view_out = out or (sys.stderr if as_json else sys.stdout)
    summary = _simulate(duration, view_out, choice)
    if as_json:
        print(json.dumps(summary, indent=2))
    ok = summary["organic_iterations"] > 0 and summary["synthetic_iterations"] > 0
    if not ok:
        print(
            "demo failed: the loop did not score both organic and synthetic samples",
            file=sys.stderr,
        )
    return 0 if ok else 1


def _simulate(duration: float, view_out: TextIO, choice: IntakeChoice) -> dict[str, Any]:
    miners = default_miners()
    book = ScoreBook(len(miners), alpha=0.2)

    def build(cls: type[DemoScorer], **intake: Any) -> DemoScorer:
        return cls(
            miners,
            book,
            synth_dataset=_probes(),
            trigger="seconds",
            trigger_frequency=1.0,
            trigger_jitter=0.5,
            seed=1,
            trigger_frequency_min=0.1,
            trigger_scaling_factor=4,
            max_concurrent_iterations=3,
            query_timeout=2.0,
            **intake,
        )

    with (
        tempfile.TemporaryDirectory(prefix="organic-scoring-demo-") as directory,
        open_intake(choice, directory, build) as (scorer, open_user, where),
    ):
        view = LiveView(view_out, f"organic-scoring demo: {where}", duration)
        traffic = _Traffic(open_user, duration)
        scorer.start()
        traffic.start()
        try:
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                view.update(
                    scorer.stats, scorer.received, scorer.sample_rate_dynamic(), _top(book, 3)
                )
        finally:
            traffic.stop()
            scorer.stop()
        stats = scorer.stats
        summary = {
            "bittensor": ".".join(map(str, BT_VERSION)),
            "intake": choice.intake,
            "protocol": choice.protocol,
            "duration": duration,
            "iterations": stats.iterations,
            "organic_iterations": stats.organic_iterations,
            "synthetic_iterations": stats.synthetic_iterations,
            "organic_share": round(stats.organic_share, 3),
            "failed_iterations": stats.failed_iterations,
            "organic_received": scorer.received,
            "organic_answered": traffic.answered,
            "organic_queued": stats.queue_size,
            "top_weights": {str(uid): round(w, 4) for uid, w in _top(book, len(miners))},
            "stage_p50_ms": {
                name: round(times.p50 * 1000, 3) for name, times in stats.stage_times.items()
            },
        }
        view.summary_line(summary)
        return summary


def _probes() -> OrganicReplayDataset:
    """Synthetic probes made of what the users asked, each spliced with another at a
    shared word; the bundled dataset until the first organic request is scored."""

    def splice(sample: dict[str, str], rng: random.Random) -> dict[str, str]:
        for _ in range(5):
            other = replay.peek()
            spliced = other and splice_words(sample["prompt"], other["prompt"], rng)
            if spliced:
                return {**sample, "prompt": spliced}
        return sample

    replay = OrganicReplayDataset(200, transform=splice, fallback=default_dataset(seed=1), seed=1)
    return replay


def _top(book: ScoreBook, k: int) -> list[tuple[int, float]]:
    """The ``k`` largest normalised weights, largest first."""
    return sorted(book.as_dict().items(), key=lambda item: -item[1])[:k]


class _Traffic:
    """A user on its own thread and event loop, sending bursts of organic requests."""

    def __init__(self, open_user: Any, duration: float) -> None:
        self._open_user = open_user
        self._duration = duration
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="demo-user", daemon=True)
        self._random = random.Random(7)
        self.answered = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _main(self) -> None:
        asyncio.run(self._send())

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
