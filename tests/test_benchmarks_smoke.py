"""The benchmarks run and return well-formed rows (their timings are not checked)."""

from __future__ import annotations

import math

from benchmarks import bench_metrics, bench_queue


def test_bench_queue_rows() -> None:
    rows = bench_queue.run(quick=True)
    assert {(row["name"], row["size"]) for row in rows} == {
        (name, size) for name in ("add+sample", "add (full)") for size in bench_queue.SIZES
    }
    for row in rows:
        assert set(row) == {"name", "size", "ours_ns", "bare_ns", "ratio"}
        assert row["ours_ns"] > 0
        assert row["bare_ns"] > 0
        assert math.isclose(row["ratio"], row["ours_ns"] / row["bare_ns"])


def test_bench_metrics_rows() -> None:
    engine, intake, histogram = bench_metrics.run(quick=True)
    assert intake["name"].startswith("intake requests/s with metrics")
    assert math.isclose(intake["ratio"], intake["ours_per_s"] / intake["bare_per_s"])
    assert engine["name"].startswith("engine iterations/s with metrics")
    assert engine["ours_per_s"] > 0
    assert engine["bare_per_s"] > 0
    assert math.isclose(engine["ratio"], engine["ours_per_s"] / engine["bare_per_s"])
    assert histogram["name"].startswith("7 stage times")
    assert math.isclose(histogram["ratio"], histogram["ours_ns"] / histogram["bare_ns"])
