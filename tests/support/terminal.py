"""A real terminal for tests: a command running in a detached tmux pane of a given size.

::

    with terminal(tmp_path, [sys.executable, "-m", "prog"], width=80, height=24) as term:
        term.wait_for(lambda screen: "ready" in screen, "the prompt")
        term.press("C-c")
        status = term.wait_exit()
        print(term.screen(history=True))

Each terminal is its own tmux server on a socket in the test's temp directory, killed
on the way out, so nothing is shared with another test or with a tmux the developer
runs. The pane stays around after the command exits (``remain-on-exit``) so its
last screen can be read; tmux then adds a "Pane is dead" line, which may scroll the
top line into the history (``screen(history=True)`` has it). tmux comes from
Debian's ``tmux`` package; without it the test fails under CI (which installs it, see
``.ci/run``) and skips elsewhere, saying how to install it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.waiting import WAIT

__all__ = ["Terminal", "require_tmux", "terminal"]

INSTALL = "apt-get install -y tmux"


def require_tmux() -> str:
    """The path of ``tmux``; fail under CI or skip elsewhere when it is missing."""
    path = shutil.which("tmux")
    if path is None:
        message = f"tmux is not installed; the terminal tests need it ({INSTALL})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Terminal:
    """One tmux pane running one command; see :func:`terminal`."""

    def __init__(self, tmux: str, socket: Path, status: Path, width: int, height: int) -> None:
        self._tmux = tmux
        self._socket = socket
        self._status = status
        self.width = width
        self.height = height

    def tmux(self, *args: str) -> str:
        """Run a tmux command against this terminal's server; return its output."""
        done = subprocess.run(
            [self._tmux, "-S", str(self._socket), *args],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        return done.stdout

    def screen(self, history: bool = False) -> list[str]:
        """The visible lines (with ``history``, the scrolled-off ones first), wraps joined.

        A line the terminal wrapped comes back as one line longer than :attr:`width`.
        """
        args = ["capture-pane", "-p", "-J"]
        if history:
            args += ["-S", "-"]
        lines = self.tmux(*args).split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines

    def press(self, *keys: str) -> None:
        """Type keys into the pane, tmux key names (``"C-c"``) or text."""
        self.tmux("send-keys", *keys)

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        try:
            text = self._status.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.strip() else None

    def wait_for(
        self, predicate: Callable[[list[str]], bool], what: str, timeout: float = WAIT
    ) -> list[str]:
        """Poll the screen until ``predicate(lines)`` holds; return those lines."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                shown = "\n".join(lines)
                raise AssertionError(f"waited {timeout:g}s for {what}; the screen:\n{shown}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float = WAIT) -> int:
        """Wait for the command to end; return its exit status."""
        deadline = time.monotonic() + timeout
        while (status := self.exit_status()) is None:
            if time.monotonic() > deadline:
                shown = "\n".join(self.screen())
                raise AssertionError(f"waited {timeout:g}s for the command to end:\n{shown}")
            time.sleep(0.05)
        return status


@contextmanager
def terminal(
    directory: Path,
    command: Sequence[str],
    *,
    width: int,
    height: int,
    env: dict[str, str] | None = None,
) -> Iterator[Terminal]:
    """Run ``command`` in a fresh ``width`` x ``height`` tmux pane; kill it on the way out."""
    tmux = require_tmux()
    socket = directory / "tmux.sock"
    config = directory / "tmux.conf"
    config.write_text("set -g remain-on-exit on\nset -g history-limit 2000\n")
    status = directory / "exit-status"
    # A shell runs the command and writes down its exit status: tmux's own record of a
    # dead pane's status is not reliable (3.3 sometimes never reaps the process). The
    # shell survives Ctrl-C (a trap, which its child does not inherit) to do so.
    line = f"trap : INT; {shlex.join(command)}; echo $? > {shlex.quote(str(status))}"
    environment = {**os.environ, **(env or {})}
    environment.setdefault("TERM", "xterm-256color")
    size = ["-x", str(width), "-y", str(height)]
    subprocess.run(
        [tmux, "-S", str(socket), "-f", str(config), "new-session", "-d", *size, line],
        check=True,
        timeout=WAIT,
        env=environment,
    )
    term = Terminal(tmux, socket, status, width, height)
    try:
        yield term
    finally:
        subprocess.run([tmux, "-S", str(socket), "kill-server"], capture_output=True, timeout=WAIT)
