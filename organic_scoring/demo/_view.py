"""The demo's live view: a block redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import Any, TextIO

from organic_scoring._stats import ScoringStats

__all__ = ["LiveView"]

_STAGES = ("query", "reference", "rewards", "weights", "total")


class LiveView:
    """Renders the scorer's state; call :meth:`update` about once a second."""

    def __init__(self, out: TextIO, title: str, duration: float) -> None:
        self._out = out
        self._title = title
        self._duration = duration
        self._tty = out.isatty()
        self._drawn = 0
        self._started = time.monotonic()

    def update(
        self, stats: ScoringStats, received: int, period: float, top: list[tuple[int, float]]
    ) -> None:
        """Show the current counters, queue, period, stage times and top weights."""
        elapsed = time.monotonic() - self._started
        counts = (
            f"iterations {stats.iterations} (organic {stats.organic_iterations}, "
            f"synthetic {stats.synthetic_iterations}, failed {stats.failed_iterations})"
        )
        if not self._tty:
            self._out.write(
                f"[{elapsed:5.1f}s] {counts}; received {received}; queue {stats.queue_size}; "
                f"period {period:.2f}s\n"
            )
            self._out.flush()
            return
        times = "  ".join(
            f"{name} {stats.stage_times[name].p50 * 1000:.1f}"
            for name in _STAGES
            if name in stats.stage_times
        )
        weights = "  ".join(f"uid {uid}: {w:.3f}" for uid, w in top) or "-"
        lines = [
            f"{self._title}   {elapsed:5.1f}s / {self._duration:g}s",
            counts,
            f"organic received {received}   queue {stats.queue_size}   period {period:.2f}s",
            f"stage p50 (ms)   {times or '-'}",
            f"top weights      {weights}",
        ]
        if self._drawn:
            self._out.write(f"\x1b[{self._drawn}F\x1b[J")
        self._out.write("\n".join(lines) + "\n")
        self._out.flush()
        self._drawn = len(lines)

    def summary_line(self, summary: dict[str, Any]) -> None:
        """One closing line in either mode."""
        self._out.write(
            f"done: {summary['iterations']} iterations, {summary['organic_iterations']} organic, "
            f"{summary['synthetic_iterations']} synthetic, {summary['failed_iterations']} failed, "
            f"{summary['organic_received']} organic requests received\n"
        )
        self._out.flush()
