"""ScoringStats as a person reads it: print(scoring.stats)."""

from __future__ import annotations

import asyncio

from support.scorers import Letters, Recorder


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
