"""The demo as a fleet on a real Redis: Ctrl-C sums it up and stops it all; --metrics-port
serves the active scorer's metrics.

The fleet's main run (``organic-scoring demo --redis URL --workers 2``) and its usage
errors are tested in test_demo.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from support.loopback import free_port
from support.waiting import WAIT, wait_until

STARTUP = 12 * WAIT
"""A ceiling for the fleet to start: the demo, two intake workers and a standby, each
importing bittensor, on a loaded machine."""


def _command() -> list[str]:
    script = Path(sys.executable).with_name("organic-scoring")
    return [str(script)] if script.exists() else [sys.executable, "-m", "organic_scoring"]


def _fleet(redis_url: str, *args: str) -> subprocess.Popen[str]:
    """The fleet demo in a process group of its own, so that the test can Ctrl-C it as a
    terminal does (SIGINT to the whole foreground group)."""
    return subprocess.Popen(
        [*_command(), "demo", "--redis", redis_url, "--workers", "2", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "default"},
        start_new_session=True,
    )


@contextlib.contextmanager
def _reaped(demo: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """Kill the demo's whole group if the test fails before it exits; close its pipes."""
    try:
        yield demo
    finally:
        if demo.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(demo.pid, signal.SIGKILL)
            demo.communicate()


def _read_until_running(pipe: IO[str], seen: list[str]) -> None:
    """Read the live view until its first frame: the fleet is up and scoring."""
    for line in pipe:
        seen.append(line)
        if line.startswith("["):
            return
    raise AssertionError("the demo ended before it ran:\n" + "".join(seen))


def _intake_port(view: str) -> int:
    found = re.search(r"intake workers at http://127\.0\.0\.1:(\d+)/organic", view)
    assert found, view
    return int(found.group(1))


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def _assert_all_stopped(redis_url: str, intake_port: int) -> None:
    """Nothing the demo started outlives it: no intake worker listens, no process is
    connected to Redis, and no key is left there."""
    import redis

    assert _refused(intake_port), "an intake worker still listens"
    with redis.Redis.from_url(redis_url) as client:
        wait_until(
            lambda: len(client.client_list()) == 1,  # only this test's own connection
            "the demo's processes to leave Redis",
        )
        assert client.keys("*") == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "as_json",
    [
        pytest.param(True, id="json-terminal-ctrl-c"),
        pytest.param(False, id="plain-sigint-to-the-demo"),
    ],
)
def test_ctrl_c_ends_the_fleet_demo_with_its_summary(redis_url: str, as_json: bool) -> None:
    demo = _fleet(redis_url, "--duration", "600", *(["--json"] if as_json else []))
    with _reaped(demo):
        assert demo.stdout is not None
        assert demo.stderr is not None
        seen: list[str] = []
        if as_json:  # the live view is on stderr; Ctrl-C reaches the whole group
            _read_until_running(demo.stderr, seen)
            os.killpg(demo.pid, signal.SIGINT)
            out, err = demo.communicate(timeout=3 * WAIT)
            err = view = "".join(seen) + err
        else:  # the live view is on stdout; SIGINT to the demo alone
            _read_until_running(demo.stdout, seen)
            demo.send_signal(signal.SIGINT)
            out, err = demo.communicate(timeout=3 * WAIT)
            out = view = "".join(seen) + out
    assert demo.returncode == 130, err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert "Warning" not in err
    if as_json:
        summary = json.loads(out)
        assert summary["interrupted"] is True
        assert summary["duration"] < 600
        assert isinstance(summary["iterations"], int)
        assert summary["fleet"]["standby_was_running"]
        closing = err.splitlines()[-2:]
    else:
        closing = out.splitlines()[-2:]
    # The closing sentence, then the fleet's accounting, in either mode.
    assert closing[0].startswith("interrupted after"), closing
    assert closing[1].startswith("fleet accounting (every process, from Redis): "), closing
    _assert_all_stopped(redis_url, _intake_port(view))


@pytest.mark.timeout(120)
def test_ctrl_c_while_the_fleet_starts_stops_it_quietly(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C before the intake workers serve: nothing waits for them, and nothing it
    # started prints a traceback on the way down.
    from organic_scoring.demo import _fleet

    @contextlib.contextmanager
    def interrupted_at_once() -> Iterator[threading.Event]:
        event = threading.Event()
        event.set()
        yield event

    monkeypatch.setattr(_fleet, "_interruptible", interrupted_at_once)
    assert _fleet.run_fleet_demo(redis_url, 2, duration=600, as_json=True) == 130
    out, err = capfd.readouterr()
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert summary["iterations"] == 0
    assert "Traceback" not in err
    closing = err.splitlines()[-2:]
    assert closing[0].startswith("interrupted after"), err
    assert closing[1].startswith("fleet accounting (every process, from Redis): 0 accepted")
    _assert_all_stopped(redis_url, _intake_port(err))


def _metrics(url: str) -> dict[str, float]:
    """The samples at ``url`` (``name{labels}``: value); empty while nothing answers."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=WAIT) as answer:
            text = answer.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


@pytest.mark.timeout(300)
def test_metrics_port_serves_the_fleet_scorers_metrics(redis_url: str) -> None:
    pytest.importorskip("prometheus_client")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    demo = _fleet(redis_url, "--duration", "600", "--json", "--metrics-port", str(port))
    with _reaped(demo):
        scored = 'organic_scoring_iterations_total{outcome="scored",source="synthetic"}'
        wait_until(lambda: _metrics(url).get(scored, 0) > 0, "a scored iteration", STARTUP)
        samples = _metrics(url)
        for name in (
            'organic_scoring_iterations_total{outcome="scored",source="organic"}',
            "organic_scoring_queue_size{}",
            "organic_scoring_fleet_organic_accepted_total{}",  # the workers' requests
            "organic_scoring_period_seconds{}",
            'organic_scoring_weight{uid="0"}',
        ):
            assert name in samples, sorted(samples)
        os.killpg(demo.pid, signal.SIGINT)
        out, err = demo.communicate(timeout=3 * WAIT)
    assert demo.returncode == 130, err
    assert "Traceback" not in err
    assert f"metrics at {url}" in err
    assert json.loads(out)["metrics_url"] == url
    assert _refused(port), "the metrics server outlived the demo"
