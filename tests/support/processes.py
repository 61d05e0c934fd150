"""Child Python processes for the tests that need several: start, read, kill, clean up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.waiting import WAIT

TESTS = Path(__file__).resolve().parents[1]


def spawn_module(module: str, *args: object) -> subprocess.Popen[str]:
    """``python -m module args...`` with ``support`` importable; stdin and stdout are text pipes."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", module, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        cwd=TESTS,
    )


def read_line(process: subprocess.Popen[str]) -> str:
    """The next line the process prints, without its newline; fail if it exited instead."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the process exited (code {process.poll()}) instead of printing"
    return line.rstrip("\n")


def finish(process: subprocess.Popen[str]) -> None:
    """Close the process's stdin (its signal to stop) and wait for it to exit with 0."""
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(6 * WAIT) == 0


def stop(processes: list[subprocess.Popen[str]]) -> None:
    """Kill whatever is still running (SIGKILL) and close every pipe."""
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
