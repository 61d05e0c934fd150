"""The demo's live view: rendered at many widths, then run for real in tmux terminals."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console

from organic_scoring.demo._view import MAX_WIDTH, Frame, LiveView, _Panel, plain_line
from support.scorers import Letters, Recorder
from support.terminal import terminal

LABELS = ("iterations", "organic share", "period", "queue", "stage p50", "top weights")
TOP, BOTTOM = "╭", "╰"


def _frame() -> Frame:
    scorer = Recorder(synth_dataset=Letters("a"))
    scorer._organic_queue.add({"organic": 1})

    async def run() -> None:
        for _ in range(3):
            await scorer.loop_iteration()

    asyncio.run(run())
    return Frame(
        elapsed=12.3,
        stats=scorer.stats,
        received=7,
        period=0.75,
        idle_period=1.0,
        top=[(0, 0.3125), (4, 0.25), (11, 0.125)],
    )


def _render(frame: Frame, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, record=True)
    title = "bittensor 10.5.0, axon on 127.0.0.1:54321 with a rather long description"
    console.print(_Panel(title, 20, "http://127.0.0.1:9108/metrics", frame))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [24, 40, 60, 79, 80, 81, 120, 200])
def test_the_panel_never_exceeds_the_terminal_or_80_columns(width: int) -> None:
    lines = _render(_frame(), width)
    assert max(len(line) for line in lines) <= min(width - 2, MAX_WIDTH)
    assert lines[0].startswith(TOP)
    assert lines[-1].startswith(BOTTOM)
    if width >= 60:
        text = "\n".join(lines)
        for label in LABELS:
            assert label in text, label


def test_the_panel_says_what_the_numbers_are() -> None:
    text = "\n".join(_render(_frame(), 80))
    assert "3 scored: 1 organic, 2 synthetic; 0 failed" in text
    assert "33% of scored samples came from users" in text
    assert "0.75s between iteration starts (1s with an empty queue)" in text
    assert "uid 0 0.312" in text
    assert "http://127.0.0.1:9108/metrics" in text
    assert "12s of 20s" in text


def test_a_jittered_period_says_it_is_a_mean() -> None:
    frame = dataclasses.replace(_frame(), jitter=0.5)
    text = "\n".join(_render(frame, 80))
    assert "0.75s on average between iteration starts (±50%; 1s idle)" in text
    assert "period 0.75s mean between iterations" in plain_line(frame)


def test_plain_lines_carry_stage_times_and_weights() -> None:
    line = plain_line(_frame())
    assert "organic share 33%" in line
    assert "period 0.75s between iterations" in line
    assert re.search(r"stage p50 query [\d.]+ms, reference [\d.]+ms", line)
    assert "top weights uid 0 0.312, uid 4 0.250, uid 11 0.125" in line


def test_off_a_terminal_the_view_writes_plain_lines() -> None:
    out = io.StringIO()
    with LiveView(out, "the title", 5.0, "http://127.0.0.1:1/metrics") as view:
        assert not view.is_live
        view.update(_frame())
        view.summary(
            {
                "duration": 5.0,
                "iterations": 3,
                "organic_iterations": 1,
                "synthetic_iterations": 2,
                "failed_iterations": 0,
                "organic_share": 1 / 3,
                "organic_received": 7,
            }
        )
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "the title"
    assert lines[1] == "metrics at http://127.0.0.1:1/metrics"
    assert lines[2].startswith("[ 12.3s] iterations 3")
    assert lines[3] == (
        "done after 5.0s: 3 iterations scored (1 organic, 2 synthetic, organic share 33%), "
        "0 failed; 7 organic requests received"
    )


# -- in a real terminal ----------------------------------------------------------------


def _demo(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("organic-scoring")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "organic_scoring"]
    return [*command, "demo", *args]


def _elapsed(lines: list[str]) -> int:
    for line in lines:
        found = re.search(r"(\d+)s of \d+s", line)
        if found:
            return int(found.group(1))
    return -1


def _check_one_panel(lines: list[str], width: int) -> list[str]:
    """Every line fits, and the screen holds exactly one panel: no stale line around it.

    Returns the lines after the panel.
    """
    too_wide = [line for line in lines if len(line.rstrip()) > width]
    assert not too_wide, "a line wrapped:\n" + "\n".join(too_wide)
    shown = [line.rstrip() for line in lines if line.strip()]
    tops = [i for i, line in enumerate(shown) if line.startswith(TOP)]
    bottoms = [i for i, line in enumerate(shown) if line.startswith(BOTTOM)]
    screen = "\n".join(shown)
    assert len(tops) == 1, screen
    assert len(bottoms) == 1, screen
    assert tops[0] == 0, f"something above the panel:\n{screen}"
    inside = shown[tops[0] + 1 : bottoms[0]]
    assert inside, screen
    assert all(line.startswith("│") and line.endswith("│") for line in inside), screen
    assert len({len(line) for line in shown[tops[0] : bottoms[0] + 1]}) == 1, screen
    for label in LABELS:
        assert sum(line.startswith(f"│ {label}") for line in inside) == 1, (label, screen)
    return shown[bottoms[0] + 1 :]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("width", "height"), [(60, 24), (80, 24), (160, 48)])
def test_the_live_view_fits_and_redraws_in_place(tmp_path: Path, width: int, height: int) -> None:
    with terminal(tmp_path, _demo("--duration", "8"), width=width, height=height) as term:
        # Redrawn twice a second: by 6 s of 8 the panel has been drawn a dozen times.
        lines = term.wait_for(lambda s: _elapsed(s) >= 6, "a dozen redraws", timeout=120)
        assert _check_one_panel(lines, width) == []
        # The intake's address is whole (its port readable), not cut to "http://127.…".
        assert re.search(r"127\.0\.0\.1:\d+(/organic)?\b", "\n".join(lines)), lines
        assert term.wait_exit(timeout=60) == 0
        final = term.screen(history=True)
    after = _check_one_panel(final, width)
    text = "\n".join(after)
    assert text.startswith("done after"), text
    assert "organic requests received" in " ".join(after)  # wrapped on a narrow terminal
    assert "Traceback" not in text


@pytest.mark.timeout(180)
def test_ctrl_c_ends_the_live_view_at_once_with_the_summary(tmp_path: Path) -> None:
    with terminal(tmp_path, _demo("--duration", "120"), width=80, height=24) as term:
        term.wait_for(lambda s: _elapsed(s) >= 1, "the live view", timeout=120)
        term.press("C-c")
        status = term.wait_exit()  # at once: well within the bound of any wait
        final = term.screen(history=True)
    assert status == 130
    after = _check_one_panel(final, 80)
    text = "\n".join(after)
    assert text.startswith("interrupted after"), text
    assert "iterations scored" in text
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text


def test_the_fleet_summary_ends_with_the_fleet_accounting() -> None:
    out = io.StringIO()
    summary = {
        "duration": 8.0,
        "iterations": 30,
        "organic_iterations": 24,
        "synthetic_iterations": 6,
        "failed_iterations": 0,
        "organic_share": 0.8,
        "organic_received": 26,
        "fleet": {
            "accepted": 26,
            "stored": 26,
            "scored": 24,
            "failed": 0,
            "dropped": 0,
            "in_flight": 1,
            "queued": 1,
            "redelivered": 0,
            "unaccounted": 0,
            "standby_was_running": True,
        },
    }
    with LiveView(out, "the title", 8.0) as view:
        view.summary(summary)
    lines = out.getvalue().splitlines()
    assert lines[-2].startswith("done after 8.0s: 30 iterations scored")
    assert lines[-1] == (
        "fleet accounting (every process, from Redis): 26 accepted: 24 scored, 0 failed, "
        "0 dropped, 1 in flight, 1 queued, 0 unaccounted; 0 redelivered; "
        "the standby was running"
    )


@pytest.mark.parametrize("width", [40, 60, 80])
def test_the_intake_address_stays_readable_on_a_narrow_terminal(width: int) -> None:
    url = "http://127.0.0.1:54321/organic"
    title = (
        f"organic-scoring demo (fleet): 2 intake workers at {url}, Redis redis://127.0.0.1:6379/0"
    )
    console = Console(file=io.StringIO(), width=width, force_terminal=True, record=True)
    console.print(_Panel(title, 20, None, _frame()))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= min(width - 2, MAX_WIDTH)
    assert any(url in line for line in lines), "\n".join(lines)  # whole, on one line
    assert any("redis://127.0.0.1:6379/0" in line for line in lines), "\n".join(lines)
    assert "…" not in "\n".join(lines)


def test_a_fleet_frame_says_what_is_this_process_and_what_is_the_fleet() -> None:
    frame = dataclasses.replace(_frame(), fleet=True)
    text = "\n".join(_render(frame, 80))
    assert "3 scored in this process: 1 organic, 2 synthetic; 0 failed" in text
    assert "0 waiting, 7 received: the whole fleet's" in text
    line = plain_line(frame)
    assert "iterations in this process 3 (organic 1, synthetic 2, failed 0)" in line
    assert "fleet-wide: received 7, queue 0;" in line
    # One process alone keeps its words.
    assert "3 scored: 1 organic" in "\n".join(_render(_frame(), 80))
    assert "received 7; queue 0;" in plain_line(_frame())
