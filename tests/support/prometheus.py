"""A real Prometheus server for tests: Debian's ``prometheus``, on 127.0.0.1, in a temp dir.

::

    with prometheus_server(tmp_path, ["127.0.0.1:9108"]) as prometheus:
        prometheus.wait_for('up{job="organic-scoring"} == 1', "the first scrape")
        result = prometheus.query("sum(rate(organic_scoring_iterations_total[30s]))")

The server gets a generated config that scrapes the given targets every second, a
free port on 127.0.0.1 and its own storage directory, and is stopped on the way out.
Without a ``prometheus`` binary the test fails under CI (``.ci/run`` installs it) and
skips elsewhere, saying how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from support.loopback import free_port
from support.waiting import WAIT

__all__ = ["JOB", "PrometheusServer", "prometheus_server", "require_prometheus"]

INSTALL = "apt-get install -y prometheus"
JOB = "organic-scoring"
_START_WAIT = 60.0  # a cold start on a loaded machine replays nothing but is still slow


def require_prometheus() -> str:
    """The path of the ``prometheus`` binary; fail under CI or skip elsewhere if missing."""
    path = shutil.which("prometheus")
    if path is None:
        message = f"prometheus is not installed; the dashboard test needs it ({INSTALL})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class PrometheusServer:
    """A running Prometheus; :meth:`query` evaluates PromQL through its HTTP API."""

    def __init__(self, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._log = log

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; return its ``data``, or raise with Prometheus's error."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=WAIT) as r:
                answer = json.load(r)
        except urllib.error.HTTPError as exc:
            answer = json.load(exc)
        if answer.get("status") != "success":
            raise AssertionError(f"Prometheus refused {params}: {answer.get('error')!r}")
        return answer["data"]

    def query(self, expr: str) -> list[Any]:
        """Evaluate ``expr`` now; the result's series (a scalar or string as one item)."""
        data = self.api("query", query=expr)
        result = data["result"]
        return list(result) if data["resultType"] in ("vector", "matrix") else [result]

    def wait_for(self, expr: str, what: str, timeout: float = 3 * WAIT) -> list[Any]:
        """Poll until ``expr`` has a non-empty result; return it."""
        deadline = time.monotonic() + timeout
        while not (result := self.query(expr)):
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:g}s for {what} ({expr})\n{self.log()}")
            time.sleep(0.2)
        return result

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self._log.read_text(errors="replace")


@contextmanager
def prometheus_server(
    directory: Path, targets: Sequence[str], scrape_interval: str = "1s"
) -> Iterator[PrometheusServer]:
    """Run Prometheus scraping ``targets`` (``host:port``) every ``scrape_interval``."""
    binary = require_prometheus()
    root = directory / "prometheus"
    root.mkdir()
    config = root / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML, and needs no YAML library here
            {
                "global": {
                    "scrape_interval": scrape_interval,
                    "scrape_timeout": scrape_interval,
                    "evaluation_interval": scrape_interval,
                },
                "scrape_configs": [
                    {"job_name": JOB, "static_configs": [{"targets": list(targets)}]}
                ],
            },
            indent=2,
        )
    )
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=root,
        )
    server = PrometheusServer(port, log)
    try:
        _wait_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WAIT)


def _wait_ready(server: PrometheusServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_WAIT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=WAIT) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"prometheus was not ready in {_START_WAIT:g}s:\n{server.log()}")
        time.sleep(0.1)
