"""The benchmarks run and return well-formed rows (their timings are not checked), and
``python -m benchmarks`` never reports success having measured nothing."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from benchmarks import __main__ as bench_main
from benchmarks import (
    bench_distinguisher,
    bench_fleet_intake,
    bench_metrics,
    bench_queue,
    bench_redis_queue,
    bench_weights,
)
from organic_scoring._compat import HAS_AXON, HAS_HTTP_AUTH


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


def test_a_run_that_measured_nothing_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As outside an environment with the package: every module fails to import.
    def no_bittensor(name: str) -> Any:
        raise ModuleNotFoundError("No module named 'bittensor'", name="bittensor")

    monkeypatch.setattr(bench_main.importlib, "import_module", no_bittensor)
    assert bench_main.main([]) == 1
    err = capsys.readouterr().err
    assert "measured nothing" in err
    assert "scripts/test.py -s benchmarks" in err


def test_a_named_benchmark_that_measured_nothing_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_queue, "run", lambda quick: [])
    assert bench_main.main(["--quick", "bench_queue", "bench_weights"]) == 1
    assert "bench_queue (nothing to measure on this bittensor)" in capsys.readouterr().err


@pytest.mark.skipif(HAS_AXON, reason="bittensor 9/10 have an axon")
def test_the_axon_benchmark_on_bittensor_11_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["bench_axon"]) == 1
    assert "bench_axon (nothing to measure on this bittensor)" in capsys.readouterr().err


def test_a_named_benchmark_that_measures_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["--quick", "bench_weights"]) == 0
    out = capsys.readouterr().out
    assert "## bench_weights" in out
    assert "ratio" in out


def test_an_unknown_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_main.main(["bench_nothing"])
    assert exited.value.code == 2
    assert "unknown benchmark" in capsys.readouterr().err


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


@pytest.mark.timeout(300)  # two fleets start, each importing bittensor: a busy machine is slow
def test_bench_fleet_intake_row(redis_url: str) -> None:
    (row,) = bench_fleet_intake.run(quick=True, url=redis_url)
    assert set(row) == {"name", "ours_rps", "bare_rps", "ratio"}
    assert row["ours_rps"] > 0
    assert row["bare_rps"] > 0
    assert math.isclose(row["ratio"], row["ours_rps"] / row["bare_rps"])


def test_bench_distinguisher_rows() -> None:
    rows = bench_distinguisher.run(quick=True)
    assert [(row["name"][:3], row["view"]) for row in rows] == [
        (key, view) for key in ("(a)", "(b)", "(c)") for view in ("every", "one of 16")
    ]
    for row in rows:
        assert row["queries"] > 0
        for key in ("auc_content", "auc_timing", "auc_both", "auc_memory"):
            assert 0.0 <= row[key] <= 1.0 or math.isnan(row[key])
        for key in ("exact_repeats", "normalised_repeats"):
            assert 0.0 <= row[key] <= 1.0
        best = max(row["auc_content"], row["auc_timing"], row["auc_both"])
        assert row["ours_auc"] == best or math.isnan(best)
    assert {goal for goal, _, _ in bench_distinguisher.goals([rows])} == {
        "replay (b): exact repeats 0 %",
        "replay (b): normalised repeats 0 %",
        f"generator (c): content AUC <= {bench_distinguisher.GOAL_CONTENT}",
        f"generator (c): timing AUC <= {bench_distinguisher.GOAL_TIMING}",
    }


def test_bench_weights_detection_rows() -> None:
    rows = bench_weights.run_detection(quick=True)
    assert [row["name"] for row in rows] == [
        f"smallest gap flagged 9 in 10, rate {rate:g}, 64 of each kind"
        for rate in bench_weights.DETECTION_RATES
    ]
    for row in rows:
        # The check is Welch's t at the stated rate: near the floor of a test that knew
        # the noise (within the bisection's step and 200 miners' sampling).
        assert 0.8 < row["ratio"] < 1.25
        assert math.isclose(row["shirked_share"], row["ours_gap"] / bench_weights.HONEST_MEAN)
    strict, loose = rows
    assert strict["ours_gap"] > loose["ours_gap"]  # fewer false flags need a larger gap


def test_the_oracle_floor_is_the_z_test_gap() -> None:
    # With very many rewards the shirked share is tiny and barely moves the variance:
    # the floor is (z(0.025) + z(0.1)) * sqrt(2 * var / N), var = 21 / 1100 for Beta(7, 3).
    expected = (1.959964 + 1.281552) * math.sqrt(2 * 21 / 1100 / 1e8)
    assert bench_weights.oracle_gap(0.05, 10**8) == pytest.approx(expected, rel=0.01)
    assert bench_weights._normal_quantile(0.025) == pytest.approx(1.959964, abs=1e-6)


def test_the_memory_recognises_repeats_splices_and_histories() -> None:
    memory = bench_distinguisher.Memory()
    Query = bench_distinguisher.Query
    for text, history in (
        ("how do i fix a loop that hangs in python", ()),
        ("my sourdough sinks in the middle every time", ("hi", "hello, how can i help?")),
    ):
        memory.add(Query(0.0, text, True, history))
    names = ("exact", "normalised", "coverage", "start", "end", "splice", "history")

    def features(text: str, history: tuple[str, ...] = ()) -> dict[str, float]:
        return dict(zip(names, memory.features(Query(0.0, text, None, history)), strict=True))

    seen = features("how do i fix a loop that hangs in python")
    assert seen["exact"] == seen["normalised"] == 1.0
    assert seen["coverage"] == 1.0
    layout = features("How  do I fix a loop\nthat hangs in Python")
    assert (layout["exact"], layout["normalised"]) == (0.0, 1.0)
    spliced = features("how do i fix a loop that sinks in the middle every time")
    assert (spliced["normalised"], spliced["splice"]) == (0.0, 1.0)
    fresh = features("what should i plant in a shady garden bed", ("Hi", "hello,  how can i help?"))
    assert fresh["coverage"] == fresh["splice"] == fresh["exact"] == 0.0
    assert fresh["history"] == 1.0
    assert features("what should i plant", ("hi", "something else"))["history"] == 0.0


def test_the_distinguisher_sees_a_planted_difference() -> None:
    # The classifier is not blind: texts from two different vocabularies, or a gap
    # that differs by kind, are told apart almost perfectly.
    rng = random.Random(3)
    queries = []
    at = 0.0
    for i in range(300):
        organic = i % 2 == 0
        at += rng.uniform(0.9, 1.1) * (1.0 if organic else 3.0)
        text = " ".join(rng.choice(("a", "b", "c") if organic else ("x", "y")) for _ in range(6))
        queries.append(bench_distinguisher.Query(at, text, organic))
    aucs = bench_distinguisher.distinguish(queries)
    assert aucs["text"] > 0.95
    assert aucs["timing"] > 0.95


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
