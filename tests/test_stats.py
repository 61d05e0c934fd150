"""ScoringStats as a person reads it, and StatsRecorder's observer seam (told of every
scored iteration, one test when unused)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from organic_scoring._loop.stats import TIMED, StatsRecorder
from organic_scoring.base import runtime
from organic_scoring.errors import IterationError
from support.scorers import Letters, Recorder


def test_observers_hear_every_scored_iteration_with_its_times() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    heard: list[tuple[float, ...]] = []
    recorder = runtime(scorer).stats
    recorder.add_observer(heard.append)
    scorer._organic_queue.add({"organic": 1})

    async def run() -> None:
        await scorer.loop_iteration()  # the organic sample
        await scorer.loop_iteration()  # then a synthetic one

    asyncio.run(run())
    assert len(heard) == 2
    for times in heard:
        assert len(times) == len(TIMED)
        assert all(t >= 0 for t in times)
        total = times[TIMED.index("total")]
        assert times[TIMED.index("sample")] <= total


def test_failed_iterations_are_not_heard_and_removed_observers_hear_nothing() -> None:
    class Failing(Recorder):
        async def _query_miners(self, sample: object) -> object:
            raise RuntimeError("down")

    scorer = Failing(synth_dataset=Letters("a"))
    heard: list[tuple[float, ...]] = []

    def observer(times: tuple[float, ...]) -> None:
        heard.append(times)

    recorder = runtime(scorer).stats
    recorder.add_observer(observer)
    with pytest.raises(IterationError):
        asyncio.run(scorer.loop_iteration())
    assert heard == []
    recorder.remove_observer(observer)
    recorder.remove_observer(observer)  # not there any more: nothing happens
    recorder.succeeded(False, (0.0,) * len(TIMED))
    assert heard == []


def test_a_raising_observer_is_logged_and_the_iteration_stays_scored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = StatsRecorder()

    def broken(times: tuple[float, ...]) -> None:
        raise ValueError("observer bug")

    heard: list[tuple[float, ...]] = []
    recorder.add_observer(broken)
    recorder.add_observer(heard.append)
    recorder.started()
    with caplog.at_level(logging.ERROR):
        recorder.succeeded(True, (0.001,) * len(TIMED))
    assert heard == [(0.001,) * len(TIMED)]  # the next observer still heard it
    assert recorder.snapshot(0, {}).iterations == 1
    assert "observer bug" in caplog.text


def test_printed_stats_are_a_few_readable_lines() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    for prompt in ("one", "two", "three"):
        asyncio.run(scorer.receive_organic(prompt))
    for _ in range(4):
        asyncio.run(scorer.loop_iteration())
    text = str(scorer.stats)
    lines = text.splitlines()
    assert lines[0] == "iterations: 4 (organic 3, synthetic 1), skipped 0, failed 0, in flight 0"
    assert lines[1] == (
        "organic requests: accepted 3, scored 3, failed 0, in flight 0, queued 0, "
        "dropped 0, unaccounted 0, handler errors 0"
    )
    assert lines[2].startswith("queue: added 3, sampled 3, dropped 0, size 0, max_size 10000")
    assert lines[3].startswith("stage times in ms")
    assert any(line.strip().startswith("query ") for line in lines[4:])
    # No mapping proxies, no long unrounded floats: every figure has at most 2 decimals.
    assert "mappingproxy" not in text
    figures = [part for line in lines[4:] for part in line.split() if "." in part]
    assert figures
    assert all(len(part.split(".")[1]) <= 2 for part in figures), figures
    assert "mappingproxy" in repr(scorer.stats)  # repr stays the dataclass's, for debugging


def test_a_fleet_scorers_stats_say_what_is_this_process_and_what_is_the_fleet() -> None:
    # The intake workers accepted all 26 requests; this scorer process scored 2 of them.
    recorder = StatsRecorder()
    for _ in range(2):
        recorder.started()
        recorder.sampled(True)
        recorder.succeeded(True, (0.001,) * len(TIMED))
    ledger = {  # what RedisOrganicQueue.counters() reads from Redis
        "added": 26,
        "sampled": 3,
        "dropped": 0,
        "size": 23,
        "max_size": 10000,
        "leased": 1,
        "acked": 2,
        "redelivered": 0,
        "scored": 2,
        "failed": 0,
        "accepted": 26,
        "dead_lettered": 0,
        "lost": 0,
        "data_losses": 0,
    }
    stats = recorder.snapshot(23, ledger, active=True)
    lines = str(stats).splitlines()
    assert lines[0] == (
        "iterations in this process: 2 (organic 2, synthetic 0), skipped 0, failed 0, in flight 0"
    )
    assert lines[1] == (
        "organic requests in this process: accepted 0, handler errors 0, scored 2, "
        "failed 0, in flight 0"
    )
    assert lines[2] == (
        "organic requests fleet-wide (the shared queue): accepted 26, scored 2, failed 0, "
        "dropped 0, in flight 1, queued 23, unaccounted 0, redelivered 0"
    )
    assert lines[3].startswith("queue (fleet-wide): added 26, sampled 3")
    text = repr(stats)
    assert "organic_accepted=0, " in text
    assert "queue_size=23 (fleet-wide), queue_counters=mappingproxy(" in text
