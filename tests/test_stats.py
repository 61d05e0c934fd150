"""StatsRecorder's observer seam: told of every scored iteration, one test when unused."""

from __future__ import annotations

import asyncio
import logging

import pytest

from organic_scoring._stats import TIMED, StatsRecorder
from organic_scoring.base import stats_recorder
from organic_scoring.errors import IterationError
from support.scorers import Letters, Recorder


def test_observers_hear_every_scored_iteration_with_its_times() -> None:
    scorer = Recorder(synth_dataset=Letters("a"))
    heard: list[tuple[float, ...]] = []
    recorder = stats_recorder(scorer)
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

    recorder = stats_recorder(scorer)
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
