"""Run the test matrix: ``python3 scripts/test.py [nox arguments]``.

Works with the system Python of Debian or Ubuntu (which refuses ``pip install``
into itself) as with any other Python 3.10 to 3.13; run by another, it hands over to
the newest ``python3.1x`` of those on the PATH. nox and uv go into a virtualenv of
their own under ``.nox/runner``, made on the first run and reused after, and nothing
is installed into the interpreter that runs this script. Then nox runs the
sessions of ``noxfile.py`` (lint, then the suite on each bittensor major, then on
the edge Pythons), each in its own virtualenv under ``.nox/``.

Needs: the ``venv`` module with ``ensurepip`` (Debian/Ubuntu: ``apt-get install
python3-venv``) and access to the package index.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / ".nox" / "runner"
REQUIREMENTS = ["nox>=2025.2.9", "uv>=0.4.16"]
"""nox with ``default=False`` sessions and ``download_python``; uv it can drive."""
SUPPORTED = ((3, 10), (3, 13))


CANDIDATES = ("python3.13", "python3.12", "python3.11", "python3.10")
"""The interpreters looked for on the PATH, newest first, when this one is not supported."""


def main(argv: list[str], version: tuple[int, int] = sys.version_info[:2]) -> int:
    if not SUPPORTED[0] <= version <= SUPPORTED[1]:
        other = supported_python()
        if other is None:
            return fail(
                f"this is Python {version[0]}.{version[1]} and the tests need 3.10 to 3.13, "
                f"but none of {', '.join(CANDIDATES)} is on the PATH"
            )
        print(f"scripts/test.py: this is Python {version[0]}.{version[1]}; using {other}")
        return subprocess.call([other, str(Path(__file__).resolve()), *argv])
    python = runner_python()
    if python is None:
        return 1
    command = [str(python), "-m", "nox", "--noxfile", str(ROOT / "noxfile.py"), *argv]
    return subprocess.call(command, cwd=ROOT)


def supported_python() -> str | None:
    """The first of :data:`CANDIDATES` on the PATH, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def runner_python() -> Path | None:
    """The runner virtualenv's interpreter, with nox and uv in it; None on failure."""
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = RUNNER / bindir / ("python.exe" if os.name == "nt" else "python")
    stamp = RUNNER / "organic-scoring-runner.json"
    wanted = {"python": sys.version, "requirements": REQUIREMENTS}
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return python
    if importlib.util.find_spec("ensurepip") is None:
        fail(
            "this Python has no ensurepip, so it cannot make the virtualenv the tests run "
            "from; on Debian or Ubuntu: apt-get install python3-venv"
        )
        return None
    print(f"scripts/test.py: making {RUNNER.relative_to(ROOT)} with {' and '.join(REQUIREMENTS)}")
    venv.EnvBuilder(with_pip=True, clear=True).create(RUNNER)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.check_call([*pip, *REQUIREMENTS])
    stamp.write_text(json.dumps(wanted))
    return python


def fail(message: str) -> int:
    print(f"scripts/test.py: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
