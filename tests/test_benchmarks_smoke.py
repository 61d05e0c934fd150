"""The benchmarks run and return well-formed rows (their timings are not checked)."""

from __future__ import annotations

import math

from benchmarks import bench_fleet_intake, bench_queue, bench_redis_queue


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


def test_bench_redis_queue_rows(redis_url: str) -> None:
    rows = bench_redis_queue.run(quick=True, url=redis_url)
    assert {(row["name"], row["size"]) for row in rows} == {
        (name, size)
        for name in bench_redis_queue.WORKLOADS
        for size in bench_redis_queue.QUICK_SIZES
    }
    for row in rows:
        assert set(row) == {"name", "size", "ours_ns", "bare_ns", "ratio"}
        assert math.isclose(row["ratio"], row["ours_ns"] / row["bare_ns"])


def test_bench_fleet_intake_row(redis_url: str) -> None:
    (row,) = bench_fleet_intake.run(quick=True, url=redis_url)
    assert set(row) == {"name", "ours_rps", "bare_rps", "ratio"}
    assert row["ours_rps"] > 0
    assert row["bare_rps"] > 0
    assert math.isclose(row["ratio"], row["ours_rps"] / row["bare_rps"])
