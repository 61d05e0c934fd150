"""Every Python block in the README works as pasted: the Quick start is
``examples/quickstart.py`` word for word (run by tests/test_examples.py), the blocks
marked ``<!-- runs in tests/test_readme.py -->`` run here, and every other block at
least compiles (they are fragments that name the reader's own objects)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
QUICKSTART = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
RUNS = "<!-- runs in tests/test_readme.py -->"

_BLOCK = re.compile(r"^(?P<indent> *)```python\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def python_blocks() -> list[tuple[int, str, bool]]:
    """Each block as (line number, source without its indent, whether it is marked to run)."""
    blocks = []
    for match in _BLOCK.finditer(README):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        before = README[: match.start()].rstrip().splitlines()
        marked = bool(before) and before[-1].strip() == RUNS
        blocks.append((README.count("\n", 0, match.start()) + 1, body, marked))
    return blocks


BLOCKS = python_blocks()


def test_the_quick_start_is_the_example_file_word_for_word() -> None:
    assert QUICKSTART in [body for _, body, _ in BLOCKS]
    # The names a reader brings are marked as theirs.
    lines = QUICKSTART.splitlines()
    for name in ("class ChatRequest", "class YourValidator", "def your_score"):
        (start,) = [i for i, line in enumerate(lines) if line.startswith(name)]
        assert "YOURS" in "\n".join(lines[start : start + 3]), name


@pytest.mark.parametrize(("line", "body"), [(line, body) for line, body, _ in BLOCKS], ids=str)
def test_every_block_compiles(line: int, body: str) -> None:
    compile(body, f"README.md, line {line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


MARKED = [(line, body) for line, body, marked in BLOCKS if marked]


@pytest.mark.bittensor  # the README promises them on every major
@pytest.mark.parametrize(("line", "body"), MARKED, ids=str)
def test_marked_blocks_run(
    line: int,
    body: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(body, f"README.md, line {line}", "exec"), namespace)
    capsys.readouterr()


def test_some_blocks_run_and_none_size_a_score_book_by_metagraph_n() -> None:
    assert len(MARKED) >= 2
    assert "ScoreBook(metagraph.n" not in README.replace("`ScoreBook(metagraph.n)` works", "")
    assert "ScoreBook(validator.metagraph.n" not in README
