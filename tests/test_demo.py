"""The main job: ``organic-scoring demo`` runs a whole subnet on loopback and says so."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from organic_scoring.__main__ import main
from organic_scoring._compat import HAS_AXON, HAS_HTTP_AUTH
from organic_scoring.demo._intake import IntakeChoice, choose_intake
from organic_scoring.demo._miners import SimulatedMiner, ideal_answer, similarity
from organic_scoring.http._signing import default_protocol
from support.waiting import WAIT


def _command() -> list[str]:
    script = Path(sys.executable).with_name("organic-scoring")
    return [str(script)] if script.exists() else [sys.executable, "-m", "organic_scoring"]


@pytest.mark.bittensor
@pytest.mark.timeout(120)
def test_demo_scores_organic_and_synthetic_traffic() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run(
        [*_command(), "demo", "--duration", "10", "--json"],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for key in (
        "iterations",
        "organic_iterations",
        "synthetic_iterations",
        "failed_iterations",
        "organic_received",
    ):
        assert isinstance(summary[key], int), key
    assert summary["organic_iterations"] > 0
    assert summary["synthetic_iterations"] > 0
    assert summary["failed_iterations"] == 0
    assert summary["organic_received"] >= summary["organic_iterations"]
    assert summary["iterations"] == summary["organic_iterations"] + summary["synthetic_iterations"]
    # The best miner ends up with the largest weight.
    assert next(iter(summary["top_weights"])) in {"0", "1"}
    assert summary["interrupted"] is False
    assert summary["organic_share"] == pytest.approx(
        summary["organic_iterations"] / summary["iterations"], abs=1e-4
    )
    # Plain lines (stderr is not a terminal) with stage times and top weights, no
    # traceback, no warning.
    frames = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert frames, done.stderr
    assert all("stage p50 query" in line and "top weights uid" in line for line in frames[2:])
    assert "between iterations" in frames[-1]
    assert done.stderr.splitlines()[-1].startswith("done after")
    assert "\x1b[" not in done.stderr
    assert "Traceback" not in done.stderr
    assert "Warning" not in done.stderr


@pytest.mark.bittensor
def test_version_names_the_package_and_bittensor(capsys: pytest.CaptureFixture[str]) -> None:
    import bittensor as bt

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("organic-scoring 1.")
    assert f"(bittensor {bt.__version__})" in out


@pytest.mark.timeout(60)
def test_a_run_too_short_for_organic_traffic_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    from organic_scoring.demo import run_demo

    assert run_demo(duration=1.0, out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert "no organic sample was scored" in err
    assert "about 3 s in" in err
    assert "--duration 10" in err


@pytest.mark.timeout(120)
def test_ctrl_c_ends_the_demo_at_once_with_the_json_summary() -> None:
    demo = subprocess.Popen(
        [*_command(), "demo", "--duration", "100", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    try:
        assert demo.stderr is not None
        seen = []
        for line in demo.stderr:  # the first frame: the loop is running
            seen.append(line)
            if line.startswith("["):
                break
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=WAIT)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    err = "".join(seen) + err
    assert demo.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert summary["duration"] < 100
    assert isinstance(summary["iterations"], int)
    assert err.splitlines()[-1].startswith("interrupted after"), err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err


def test_metrics_port_must_be_a_port(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("-1", "65536", "http"):
        with pytest.raises(SystemExit) as exited:
            main(["demo", "--metrics-port", bad])
        assert exited.value.code == 2
        assert "--metrics-port" in capsys.readouterr().err


@pytest.mark.bittensor
@pytest.mark.timeout(120)
def test_demo_takes_its_organic_traffic_over_signed_http_on_every_major() -> None:
    # Epistula on every major (bittensor 11 would pick btauth/1, which the test above runs).
    extra = ["--protocol", "epistula"] if HAS_HTTP_AUTH else []
    done = subprocess.run(
        [*_command(), "demo", "--duration", "6", "--json", "--intake", "http", *extra],
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["intake"], summary["protocol"]) == ("http", "epistula")
    assert summary["organic_received"] > 0
    assert summary["organic_answered"] > 0
    assert summary["organic_iterations"] > 0
    assert summary["failed_iterations"] == 0
    assert "Traceback" not in done.stderr
    assert "Warning" not in done.stderr


@pytest.mark.bittensor
def test_an_intake_this_bittensor_cannot_run_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused = [["--intake", "smoke-signals"], ["--intake", "axon", "--protocol", "epistula"]]
    refused.append(["--protocol", "btauth/1"] if HAS_AXON else ["--intake", "axon"])
    for args in refused:
        with pytest.raises(SystemExit) as exited:
            main(["demo", "--duration", "1", *args])
        assert exited.value.code == 2, args
        assert "error:" in capsys.readouterr().err


@pytest.mark.bittensor
def test_the_default_intake_fits_the_installed_bittensor() -> None:
    if HAS_AXON:
        assert choose_intake() == IntakeChoice("axon")
        assert choose_intake("http") == IntakeChoice("http", "epistula")
        with pytest.raises(ValueError, match="bittensor 11"):
            choose_intake(protocol="btauth/1")
    else:
        assert choose_intake() == IntakeChoice("http", "btauth/1")
        with pytest.raises(ValueError, match="bittensor 9 or 10"):
            choose_intake("axon")
    assert choose_intake(protocol="epistula") == IntakeChoice("http", "epistula")


def test_duration_must_be_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "-3", "soon", "inf"):
        with pytest.raises(SystemExit) as exited:
            main(["demo", "--duration", bad])
        assert exited.value.code == 2
        assert "--duration" in capsys.readouterr().err


def test_the_toy_task_rewards_accuracy() -> None:
    reference = ideal_answer("Why is the sky blue")
    assert reference == "blue sky the is why"
    assert similarity(reference, reference) == 1.0
    assert similarity("blue sky ? is why", reference) == pytest.approx(0.8)
    assert similarity("", reference) == 0.0
    perfect = SimulatedMiner(uid=0, quality=1.0, latency=0.0)
    assert asyncio.run(perfect.answer("Why is the sky blue")) == reference


@pytest.mark.timeout(180)
def test_demo_runs_as_a_fleet_on_redis(redis_url: str) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run(
        [*_command(), "demo", "--redis", redis_url, "--workers", "2", "--duration", "8", "--json"],
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["intake"], summary["protocol"], summary["workers"]) == (
        "http",
        default_protocol(),
        2,
    )
    assert summary["organic_iterations"] > 0
    assert summary["synthetic_iterations"] > 0
    fleet = summary["fleet"]
    assert fleet["unaccounted"] == 0
    assert fleet["accepted"] == fleet["scored"] + fleet["failed"] + fleet["dropped"] > 0
    assert fleet["standby_was_running"]
    assert "Traceback" not in done.stderr
    assert "Warning" not in done.stderr
    import redis

    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("*") == []  # the demo cleaned up after itself


@pytest.mark.bittensor
def test_workers_need_redis(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--workers", "2"])
    assert "--workers needs --redis" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--redis", "redis://127.0.0.1:1/0", "--intake", "axon"])
    assert "not an axon" in capsys.readouterr().err
    for bad in ("0", "two", "100"):
        with pytest.raises(SystemExit):
            main(["demo", "--redis", "redis://127.0.0.1:1/0", "--workers", bad])


def test_fleet_demo_names_an_unreachable_redis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--redis", "redis://:pw@127.0.0.1:1/0", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "redis://:***@127.0.0.1:1/0" in err
    assert "start a Redis server" in err


@pytest.mark.parametrize(
    ("hidden", "extras"),
    [(("redis",), "redis"), (("uvicorn",), "http"), (("redis", "httpx"), "http,redis")],
)
def test_fleet_demo_without_its_extras_is_a_usage_error(
    hidden: tuple[str, ...],
    extras: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in hidden:  # as if not installed: an import of it fails
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--redis", "redis://127.0.0.1:1/0", "--duration", "1"])
    assert exited.value.code == 2  # as --metrics-port without prometheus_client
    err = capsys.readouterr().err
    assert err.startswith("usage: ")
    assert f"pip install 'organic-scoring[{extras}]'" in err
    assert "Traceback" not in err
