"""The test matrix: lint and type checks once, the test suite once per bittensor major,
and the newest major again on the oldest and newest Python the package supports.

Run it through ``python3 scripts/test.py`` (it keeps nox in a virtualenv of its own);
extra arguments go to nox: ``python3 scripts/test.py -s "tests(11)"`` runs one
session, ``python3 scripts/test.py -s "tests(11)" -- -x tests/test_config.py`` hands
pytest its arguments, ``python3 scripts/test.py -s benchmarks`` runs every benchmark
(not part of the default run).

The main sessions run on the Python that runs nox (any of 3.10 to 3.13). The
``tests_python`` sessions need ``python3.10`` and ``python3.13``: found on the PATH,
or among pyenv's versions; a session whose Python is on neither is skipped, not failed.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = False  # the extra Pythons are optional
nox.options.download_python = "never"  # use the interpreters this machine has

EDGE_PYTHONS = ["3.10", "3.13"]
"""The oldest and newest Python supported, beside the one that runs nox."""

# What each supported bittensor major needs beside it to install and import.
BITTENSOR = {
    "9": ["bittensor==9.12.2", "async-substrate-interface<1.6"],
    "10": ["bittensor==10.5.0"],
    "11": ["bittensor>=11,<12"],
}
NEWEST = "11"

# Which tests a session runs. tests(11) runs every test (bar the `slow` ones) once;
# the others run only what can differ where they run, chosen by a pytest marker:
#   tests(9), tests(10)   `bittensor`: axon, signed HTTP per protocol, _compat, imports,
#                         logging, weights emission, the demo's intake, the original
#                         package's paths ... (what differs by bittensor major);
#   tests_python-3.x      `python_version`: the loop's concurrency, cancellation and
#                         timeouts, typing and pydantic, imports (what differs by Python).
# A test marked neither (queues, datasets, config, stats, statistics, the demo's
# terminal, benchmark smoke ...) runs in tests(11) only. The markers are set in tests/
# (see tests/conftest.py). Arguments after `--` come after these, so
# `-- -m "not slow"` runs the whole suite in any session.
SELECT = {"9": "bittensor", "10": "bittensor", "python": "python_version"}
EXTRAS = "dev,http,metrics,demo,redis"
"""The extras every test session installs (``hf``, for the Hugging Face adapter's tests,
only on the newest major)."""

# Each benchmark runs where it can: the axon intake needs bittensor 9/10; the rest run on
# 11, where the HTTP benchmark measures both protocols (btauth/1 exists only there).
BENCHMARKS = {
    "10": ["bench_axon"],
    "11": [
        "bench_engine",
        "bench_queue",
        "bench_sqlite_queue",
        "bench_weights",
        "bench_http",
        "bench_distinguisher",
        "bench_metrics",
        "bench_redis_queue",
        "bench_fleet_intake",
    ],
}


def _works(command: str) -> bool:
    path = shutil.which(command)
    if path is None:
        return False
    try:
        done = subprocess.run([path, "-c", "pass"], capture_output=True, timeout=30, check=False)
    except OSError:
        return False
    return done.returncode == 0


def _find_edge_pythons() -> None:
    """Make ``python3.10`` and ``python3.13`` findable when only pyenv has them.

    pyenv's shim answers for a version only when it is selected, so a link to each
    installed version's interpreter goes in a folder put first on the PATH.
    """
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    links = Path(__file__).resolve().parent / ".nox" / "pythons"
    for version in EDGE_PYTHONS:
        command = f"python{version}"
        if _works(command):
            continue
        found = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", command)))
        if not found:
            continue
        links.mkdir(parents=True, exist_ok=True)
        link = links / command
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(found[-1])
    if links.is_dir() and str(links) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = str(links) + os.pathsep + os.environ.get("PATH", "")


_find_edge_pythons()


def _install(session: nox.Session, major: str) -> None:
    extras = f"{EXTRAS},hf" if major == NEWEST else EXTRAS
    session.install("-e", f".[{extras}]", *BITTENSOR[major])
    session.run("python", "-c", "import bittensor, organic_scoring; print(bittensor.__version__)")


def _pytest(session: nox.Session, marker: str | None) -> None:
    """pytest on the tests marked ``marker`` (every test when None), then the posargs.

    Each run ends with its ten slowest tests: how long tests take is measured, never
    asserted.
    """
    select = ["-m", f"{marker} and not slow"] if marker else []
    session.run("pytest", "--durations=10", *select, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) over the tree, strict mypy over the package, and the docs
    site built with ``mkdocs build --strict`` (a broken link, anchor or API reference
    fails it)."""
    session.install("-e", f".[{EXTRAS},hf,docs]", *BITTENSOR[NEWEST])
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    site = Path(session.create_tmp()) / "site"
    # NO_MKDOCS_2_WARNING: Material's notice about MkDocs 2, printed on every build.
    env = {"NO_MKDOCS_2_WARNING": "1"}
    session.run("mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site), env=env)
    _check_api_pages(session, site)


def _check_api_pages(session: nox.Session, site: Path) -> None:
    """Fail when an API page shows reStructuredText markup instead of its meaning.

    docs/griffe_docstrings.py converts the docstrings' roles, literal blocks and
    grouped parameters while the site is built; this is what they look like when it
    did not.
    """
    leftovers = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`|::</p>|<p>Args:")
    pages = sorted((site / "api").rglob("*.html"))
    if not pages:
        session.error(f"no API pages under {site / 'api'}")
    for page in pages:
        found = leftovers.search(page.read_text(encoding="utf-8"))
        if found:
            session.error(f"{page.relative_to(site)} shows {found.group()!r} as text")


@nox.session
@nox.parametrize("major", list(BITTENSOR), ids=list(BITTENSOR))
def tests(session: nox.Session, major: str) -> None:
    """The test suite against one bittensor major: all of it on the newest, the tests
    marked ``bittensor`` on the others."""
    _install(session, major)
    _pytest(session, SELECT.get(major))


@nox.session(python=EDGE_PYTHONS)
def tests_python(session: nox.Session) -> None:
    """The tests marked ``python_version``, on the newest bittensor major, on Python 3.10
    and 3.13."""
    _install(session, NEWEST)
    _pytest(session, SELECT["python"])


@nox.session(default=False)
@nox.parametrize("major", list(BENCHMARKS), ids=list(BENCHMARKS))
def benchmarks(session: nox.Session, major: str) -> None:
    """Every benchmark, each under a bittensor that has what it measures (not run by default).

    ``-- --quick`` makes the runs small.
    """
    session.install("-e", ".[http,metrics,redis]", *BITTENSOR[major])
    session.run("python", "-m", "benchmarks", *session.posargs, *BENCHMARKS[major])
