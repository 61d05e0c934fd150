"""The test matrix: lint and type checks once, the test suite once per bittensor major.

``python -m nox`` runs every session; ``python -m nox -s tests-11`` runs one.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"

# What each supported bittensor major needs beside it to install and import.
BITTENSOR = {
    "9": ["bittensor==9.12.2", "async-substrate-interface<1.6"],
    "10": ["bittensor==10.5.0"],
    "11": ["bittensor>=11,<12"],
}


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format) over the tree, strict mypy over the package."""
    session.install("-e", ".[dev,http,redis]", *BITTENSOR["11"])
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=PYTHON)
@nox.parametrize("major", list(BITTENSOR), ids=list(BITTENSOR))
def tests(session: nox.Session, major: str) -> None:
    """The test suite against one bittensor major."""
    extras = "dev,http,redis,hf" if major == "11" else "dev,http,redis"
    session.install("-e", f".[{extras}]", *BITTENSOR[major])
    session.run("python", "-c", "import bittensor, organic_scoring; print(bittensor.__version__)")
    session.run("pytest", *session.posargs)
