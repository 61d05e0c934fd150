"""Import hygiene: offline, no heavy optional dependency, nothing beyond the core deps.

Each check runs in a fresh interpreter, so what this test process has already
imported cannot hide a problem. Every socket connection and name lookup in that
interpreter raises, so an import that reaches for the network fails loudly. Each
interpreter takes seconds to import bittensor, so they all start together, on the
first test that needs one (see :func:`offline`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

pytestmark = [pytest.mark.bittensor, pytest.mark.python_version]

# Prepended to every child script: any attempt to reach the network raises.
OFFLINE = textwrap.dedent(
    """
    import socket

    def _offline(*args, **kwargs):
        raise OSError("network access is disabled in this import test")

    socket.socket.connect = _offline
    socket.socket.connect_ex = _offline
    socket.create_connection = _offline
    socket.getaddrinfo = _offline
    """
)

# Recursively import every module of the package except the signed-HTTP transport
# and the demo's side of it (they need the http extra by design), the metrics
# exporter (the metrics extra, by design), __main__ (it runs
# the CLI), and on bittensor 11 the demo's axon side. A module that
# fails only because an optional extra is missing is reported as skipped.
WALK = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    OPTIONAL = {"datasets", "starlette", "httpx", "uvicorn", "prometheus_client", "rich", "redis"}
    import bittensor, pydantic, numpy
    SKIP = (
        "organic_scoring.http",
        "organic_scoring.demo._http_side",
        "organic_scoring.metrics",
        "organic_scoring.__main__",
    )
    if not hasattr(bittensor, "Synapse"):  # the demo's axon side is for 9/10 only
        SKIP += ("organic_scoring.demo._axon_side",)
    baseline = set(sys.modules)
    import organic_scoring

    report = {"imported": [], "skipped": [], "failed": []}

    def walk(path, prefix):
        for info in pkgutil.iter_modules(path, prefix):
            if any(info.name == s or info.name.startswith(s + ".") for s in SKIP):
                report["skipped"].append(info.name)
                continue
            try:
                module = importlib.import_module(info.name)
            except ImportError as exc:
                if (exc.name or "").partition(".")[0] in OPTIONAL:
                    report["skipped"].append(info.name)
                else:
                    report["failed"].append([info.name, repr(exc)])
                continue
            except Exception as exc:
                report["failed"].append([info.name, repr(exc)])
                continue
            report["imported"].append(info.name)
            if info.ispkg:
                walk(module.__path__, info.name + ".")

    walk(organic_scoring.__path__, "organic_scoring.")
    report["new_modules"] = sorted(set(sys.modules) - baseline)
    report["baseline"] = sorted(baseline)
    report["stdlib"] = sorted(sys.stdlib_module_names)
    print(json.dumps(report))
    """
)

HEAVY = ("datasets", "starlette", "httpx", "uvicorn", "prometheus_client", "rich", "redis")
CORE_DEPENDENCIES = (
    "bittensor",
    "pydantic",
    "pydantic_core",
    "numpy",
    "anyio",
    "sniffio",  # what AnyIO before 4.12 imports beside it
    "exceptiongroup",  # Python 3.10
)


CORE_MODULES = [
    "organic_scoring",
    "organic_scoring.organic_queue",
    "organic_scoring.synth_dataset",
    "organic_scoring.config",
]
DATASET_AND_QUEUE = textwrap.dedent(
    """
    from organic_scoring.organic_queue import OrganicQueue
    from organic_scoring.synth_dataset import default_dataset

    queue = OrganicQueue(seed=0)
    queue.add(default_dataset(seed=0).sample())
    print(queue.sample().messages[-1])
    """
)
LISTING = "import json, sys, {}; print(json.dumps(sorted(sys.modules)))"
CHILDREN = [
    *(LISTING.format(module) for module in CORE_MODULES),
    DATASET_AND_QUEUE,
    LISTING.format("bittensor"),
    WALK,
]
"""The code of every child interpreter the tests below run (importing a core module,
each lists what it imported, for :func:`test_import_does_not_pull_optional_dependencies`)."""


def run_offline(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the network disabled; fail on error."""
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE + code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def last_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON document the child printed last (libraries may print before it)."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def top(module: str) -> str:
    return module.partition(".")[0]


@pytest.fixture(scope="module")
def offline() -> Iterator[Callable[[str], subprocess.CompletedProcess[str]]]:
    """``offline(code)``: :func:`run_offline` for one of :data:`CHILDREN`, which all
    start at once (as many at a time as there are cores) when the first test asks."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        runs: dict[str, Future[subprocess.CompletedProcess[str]]] = {
            code: pool.submit(run_offline, code) for code in CHILDREN
        }
        yield lambda code: runs[code].result()


@pytest.fixture(scope="module")
def walk_report(offline: Callable[[str], subprocess.CompletedProcess[str]]) -> dict[str, Any]:
    report: dict[str, Any] = last_json(offline(WALK))
    return report


def test_the_network_guard_works() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            OFFLINE + "socket.create_connection(('127.0.0.1', 9))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "network access is disabled" in result.stderr


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_import_offline(
    offline: Callable[[str], subprocess.CompletedProcess[str]], module: str
) -> None:
    offline(LISTING.format(module))


def test_default_dataset_and_queue_work_offline(
    offline: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    assert offline(DATASET_AND_QUEUE).stdout.strip()


def test_import_does_not_pull_optional_dependencies(
    offline: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    loaded = set(last_json(offline(LISTING.format("organic_scoring"))))
    assert "datasets" not in loaded
    baseline = set(last_json(offline(LISTING.format("bittensor"))))
    # bittensor 9/10 import uvicorn and starlette for their axon; we must add none.
    assert {m for m in HEAVY if m in loaded} <= baseline


def test_every_module_imports_offline(walk_report: dict[str, Any]) -> None:
    assert walk_report["failed"] == []
    imported = set(walk_report["imported"])
    assert {"organic_scoring.organic_queue", "organic_scoring.synth_dataset"} <= imported
    assert "organic_scoring.config" in imported


def test_modules_add_nothing_heavy(walk_report: dict[str, Any]) -> None:
    baseline = {top(m) for m in walk_report["baseline"]}
    added = {top(m) for m in walk_report["new_modules"]}
    assert not {m for m in HEAVY if m in added - baseline}


def test_only_our_modules_come_in_beyond_the_core_dependencies(
    walk_report: dict[str, Any],
) -> None:
    allowed = set(CORE_DEPENDENCIES) | set(walk_report["stdlib"]) | {"organic_scoring"}
    outside = [m for m in walk_report["new_modules"] if top(m) not in allowed]
    assert outside == [], f"third-party modules imported by organic_scoring: {outside}"
