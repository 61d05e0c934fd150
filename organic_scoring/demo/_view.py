"""The demo's live view: a ``rich`` panel redrawn in place on a terminal, plain lines
otherwise (or without ``rich``)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from organic_scoring._loop.stats import ScoringStats

__all__ = ["Frame", "LiveView"]

MAX_WIDTH = 80  # the panel's widest; narrower terminals get a narrower panel
_TWO_COLUMNS = 56  # narrower panels put each label and its value on one wrapped line

_STAGES = ("query", "reference", "rewards", "weights", "total")


@dataclass(frozen=True)
class Frame:
    """What one redraw shows."""

    elapsed: float
    stats: ScoringStats
    received: int
    period: float  # the annealed period now
    idle_period: float  # trigger_frequency
    top: Sequence[tuple[int, float]]  # the largest weights, (uid, weight)
    jitter: float = 0.0
    fleet: bool = False  # the queue and received are the whole fleet's, the rest this process's

    @property
    def organic_share(self) -> float | None:
        return self.stats.organic_share if self.stats.iterations else None


class LiveView:
    """Renders frames to ``out``; use it as a context manager around the updates."""

    def __init__(
        self, out: TextIO, title: str, duration: float, metrics_url: str | None = None
    ) -> None:
        self._out = out
        self._title = title
        self._duration = duration
        self._note = metrics_url
        self._live: Any = None
        self._console: Any = None
        self.is_live = False
        if _isatty(out):
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:
                self._out.write("(for a live panel: pip install 'organic-scoring[demo]')\n")
            else:
                self._console = Console(file=out, highlight=False)
                self._live = Live(
                    console=self._console,
                    auto_refresh=False,
                    transient=False,
                    redirect_stdout=False,
                    redirect_stderr=False,
                    vertical_overflow="ellipsis",
                )
                self.is_live = True
        if not self.is_live:
            self._out.write(f"{title}\n" + (f"metrics at {metrics_url}\n" if metrics_url else ""))
            self._out.flush()

    def __enter__(self) -> LiveView:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the last frame on screen and put the cursor below it. Idempotent."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def update(self, frame: Frame) -> None:
        if self._live is not None:
            self._live.update(_Panel(self._title, self._duration, self._note, frame), refresh=True)
            return
        self._out.write(plain_line(frame) + "\n")
        self._out.flush()

    def summary(self, summary: dict[str, Any]) -> None:
        text = summary_text(summary)
        if self._console is not None:
            self._console.print(text, soft_wrap=False, overflow="fold")
        else:
            self._out.write(text + "\n")
            self._out.flush()


def plain_line(frame: Frame) -> str:
    stats = frame.stats
    where = " in this process" if frame.fleet else ""
    return (
        f"[{frame.elapsed:5.1f}s] iterations{where} {_scored(stats)} "
        f"(organic {stats.organic_iterations}, synthetic {stats.synthetic_iterations}, "
        f"failed {stats.failed_iterations}); organic share {_share(frame.organic_share)}; "
        f"{'fleet-wide: ' if frame.fleet else ''}received {frame.received}"
        f"{', ' if frame.fleet else '; '}queue {stats.queue_size}; "
        f"period {frame.period:.2f}s{' mean' if frame.jitter else ''} between iterations; "
        f"stage p50 {_stage_times(stats, ', ')}; top weights {_weights(frame.top, ', ')}"
    )


def summary_text(summary: dict[str, Any]) -> str:
    how = "interrupted" if summary.get("interrupted") else "done"
    share = summary.get("organic_share")
    text = (
        f"{how} after {summary['duration']:.1f}s: {summary['iterations']} iterations scored "
        f"({summary['organic_iterations']} organic, {summary['synthetic_iterations']} "
        f"synthetic, organic share {_share(share)}), {summary['failed_iterations']} failed; "
        f"{summary['organic_received']} organic requests received"
    )
    fleet = summary.get("fleet")
    if fleet:
        standby = "was running" if fleet["standby_was_running"] else "was not running"
        text += (
            f"\nfleet accounting (every process, from Redis): {fleet['accepted']} accepted: "
            f"{fleet['scored']} scored, {fleet['failed']} failed, {fleet['dropped']} dropped, "
            f"{fleet['in_flight']} in flight, {fleet['queued']} queued, "
            f"{fleet['unaccounted']} unaccounted; {fleet['redelivered']} redelivered; "
            f"the standby {standby}"
        )
    return text


@dataclass(frozen=True)
class _Panel:
    """One frame as a rich renderable, sized to the console at render time."""

    title: str
    duration: float
    note: str | None
    frame: Frame

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        frame, stats = self.frame, self.frame.stats
        # Two columns to spare: a ^C echoed after the last line must not wrap it.
        width = max(20, min(MAX_WIDTH, options.max_width - 2))
        rows = [
            (
                "iterations",
                f"{_scored(stats)} scored{' in this process' if frame.fleet else ''}: "
                f"{stats.organic_iterations} organic, {stats.synthetic_iterations} "
                f"synthetic; {stats.failed_iterations} failed",
            ),
            ("organic share", f"{_share(frame.organic_share)} of scored samples came from users"),
            ("period", _period(frame)),
            ("queue", _queue(frame)),
            ("stage p50", _stage_times(stats, "  ")),
            ("top weights", _weights(frame.top, "  ")),
        ]
        if self.note:
            rows.append(("metrics", self.note))
        body = Table.grid()
        body.add_column(overflow="fold")
        # Wrapped, never cut: it holds the intake's address (the port to send to).
        body.add_row(Text(self.title, style="dim", overflow="fold"))
        if width >= _TWO_COLUMNS:
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold", no_wrap=True)
            table.add_column(overflow="fold")
            for label, value in rows:
                table.add_row(label, value)
            body.add_row(table)
        else:  # too narrow for a column of labels: one wrapped line each
            for label, value in rows:
                body.add_row(Text.assemble((label, "bold"), " ", value, overflow="fold"))
        clock = f"{frame.elapsed:.0f}s of {self.duration:g}s"
        subtitle = f"{clock}, Ctrl-C ends it" if width >= 40 else clock
        # rich widens a panel to fit its title: keep the title within the width.
        title = "organic-scoring demo" if width >= 30 else "demo"
        yield Panel(
            body,
            title=f"[bold]{title}[/]",
            title_align="left",
            subtitle=subtitle,
            subtitle_align="right",
            width=width,
            expand=False,
        )


def _queue(frame: Frame) -> str:
    waiting = frame.stats.queue_size
    if frame.fleet:
        return f"{waiting} waiting, {frame.received} received: the whole fleet's (in Redis)"
    return f"{waiting} waiting; {frame.received} organic requests received"


def _period(frame: Frame) -> str:
    if frame.jitter:
        return (
            f"{frame.period:.2f}s on average between iteration starts "
            f"(±{frame.jitter:.0%}; {frame.idle_period:g}s idle)"
        )
    return (
        f"{frame.period:.2f}s between iteration starts ({frame.idle_period:g}s with an empty queue)"
    )


def _scored(stats: ScoringStats) -> int:
    return stats.organic_iterations + stats.synthetic_iterations


def _share(share: float | None) -> str:
    return "-" if share is None or math.isnan(share) else f"{share:.0%}"


def _stage_times(stats: ScoringStats, sep: str) -> str:
    parts = [
        f"{name} {_ms(stats.stage_times[name].p50)}"
        for name in _STAGES
        if name in stats.stage_times
    ]
    return sep.join(parts) or "-"


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.{0 if ms >= 100 else 1 if ms >= 1 else 2}f}ms"


def _weights(top: Sequence[tuple[int, float]], sep: str) -> str:
    return sep.join(f"uid {uid} {weight:.3f}" for uid, weight in top) or "-"


def _isatty(out: TextIO) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False
