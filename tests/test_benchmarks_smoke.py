"""The benchmarks run and return well-formed rows (their timings are not checked)."""

from __future__ import annotations

import math

from benchmarks import bench_queue
from organic_scoring._compat import HAS_HTTP_AUTH


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


def test_bench_http_rows_cover_each_protocol_of_this_bittensor() -> None:
    from benchmarks import bench_http

    protocols = bench_http.protocols()
    assert protocols == (["epistula", "btauth/1"] if HAS_HTTP_AUTH else ["epistula"])
    rows = bench_http.run(quick=True)
    assert {row["name"].split(",")[0] for row in rows} == set(protocols)
    assert len(rows) == 4 * len(protocols)  # two transports, two loads
    for row in rows:
        assert set(row) == {"name", "ours_rps", "bare_rps", "ratio"}
        assert math.isclose(row["ratio"], row["ours_rps"] / row["bare_rps"])
    refusals = bench_http.run_refusals(quick=True)
    assert [row["name"].split(":")[0] for row in refusals] == protocols
    for row in refusals:
        assert set(row) == {"name", "ours_ns", "bare_ns", "ratio"}
        assert row["ours_ns"] > 0
        assert row["bare_ns"] > 0
        assert math.isclose(row["ratio"], row["ours_ns"] / row["bare_ns"])
    assert bench_http.TABLES == ("run", "run_refusals")
