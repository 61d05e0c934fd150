"""The Grafana dashboard in examples/grafana, checked against a real Prometheus.

Prometheus scrapes the demo (``organic-scoring demo --metrics-port``) every second;
then every PromQL expression of every panel, with Grafana's variables filled in,
must evaluate through Prometheus's HTTP API to a non-empty result.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.loopback import free_port
from support.prometheus import JOB, prometheus_server, require_prometheus
from support.waiting import WAIT, wait_until

DASHBOARD = Path(__file__).resolve().parent.parent / "examples" / "grafana" / "organic-scoring.json"

# What Grafana substitutes before it sends a query; the windows suit a 1 s scrape.
GRAFANA_VARIABLES = {
    "$__rate_interval": "15s",
    "$__interval": "1s",
    "$__range": "5m",
    "$instance": ".+",
}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def expressions() -> list[tuple[str, str]]:
    """Every ``(panel title, expr)`` of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def fill(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr}"
    return expr


def test_the_dashboard_covers_what_operators_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in _panels(dashboard["panels"])}
    for wanted in (
        "Iterations by source and outcome",
        "Organic share",
        "Stage latency quantiles",
        "Queue depth",
        "Accepted and dropped organic requests",
        "Intake responses by status",
        "Top weights",
    ):
        assert wanted in titles, wanted
    text = " ".join(expr for _, expr in expressions())
    for metric in (
        "organic_scoring_iterations_total",
        "organic_scoring_stage_seconds_bucket",
        "organic_scoring_queue_size",
        "organic_scoring_organic_dropped_total",
        "organic_scoring_intake_requests_total",
        "organic_scoring_weight",
    ):
        assert metric in text, metric
    for panel in _panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


@pytest.mark.timeout(240)
def test_every_panel_query_has_data_in_a_real_prometheus(tmp_path: Path) -> None:
    require_prometheus()
    port = free_port()
    log = (tmp_path / "demo.log").open("w")
    command = [sys.executable, "-m", "organic_scoring", "demo", "--duration", "600"]
    demo = subprocess.Popen(
        [*command, "--metrics-port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/metrics"), "the demo", 6 * WAIT)
        with prometheus_server(tmp_path, [f"127.0.0.1:{port}"]) as prometheus:
            prometheus.wait_for(f'up{{job="{JOB}"}} == 1', "the first scrape")
            # Organic and synthetic samples scored, and enough scrapes for rate().
            prometheus.wait_for(
                'organic_scoring_iterations_total{source="organic",outcome="scored"} > 0',
                "an organic iteration",
            )
            prometheus.wait_for(
                'organic_scoring_iterations_total{source="synthetic",outcome="scored"} > 0',
                "a synthetic iteration",
            )
            prometheus.wait_for(f'count_over_time(up{{job="{JOB}"}}[1m]) >= 5', "five scrapes")
            empty = [
                (title, fill(expr))
                for title, expr in expressions()
                if not prometheus.query(fill(expr))
            ]
            assert empty == [], "queries without data:\n" + "\n".join(map(str, empty))
        demo.send_signal(signal.SIGINT)
        assert demo.wait(WAIT) == 130
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "demo.log").read_text()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False
