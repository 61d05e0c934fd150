"""Every Python block in the README and the docs pages works as pasted.

The README's Quick start is ``examples/quickstart.py`` word for word (run by
tests/test_examples.py) and the docs' quick start includes that file; the blocks marked
``<!-- runs in tests/test_readme.py -->`` run here; every other block at least compiles
(they are fragments that name the reader's own objects), and whatever it imports from
the package exists. Every relative link of the README and the pages reaches a file, and
a heading of it where it names one. (The lint session builds the pages with
``mkdocs build --strict``, which checks the links again and the API reference.)
"""

from __future__ import annotations

import ast
import importlib
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_PATH = ROOT / "README.md"
README = README_PATH.read_text(encoding="utf-8")
DOCS = ROOT / "docs"
PAGES = [README_PATH, *sorted(DOCS.rglob("*.md"))]
QUICKSTART = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
RUNS = "<!-- runs in tests/test_readme.py -->"
README_MAX_LINES = 450

_BLOCK = re.compile(r"^(?P<indent> *)```python\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
# A file included where the site is built (pymdownx.snippets, block form: ruff leaves it be).
_SNIPPET = re.compile(r"^ *--8<--\n *(?P<path>[^\n]+?)\n *--8<--$", re.M)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(?P<title>.+?) *#*$", re.M)
_FENCE = re.compile(r"^ *```.*?^ *```", re.M | re.S)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def python_blocks(path: Path) -> list[tuple[str, str, bool]]:
    """Each block of ``path`` as (where, source without its indent, marked to run)."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _BLOCK.finditer(text):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        before = text[: match.start()].rstrip().splitlines()
        marked = bool(before) and before[-1].strip() == RUNS
        where = f"{_name(path)}, line {text.count(chr(10), 0, match.start()) + 1}"
        blocks.append((where, body, marked))
    return blocks


BLOCKS = [block for page in PAGES for block in python_blocks(page)]
# Blocks that include a file when the site is built hold no code here.
CODE = [(where, body) for where, body, _ in BLOCKS if not _SNIPPET.fullmatch(body.strip())]
MARKED = [(where, body) for where, body, marked in BLOCKS if marked]


def test_the_quick_start_is_the_example_file_word_for_word() -> None:
    assert QUICKSTART in [body for _, body, _ in python_blocks(README_PATH)]
    # The names a reader brings are marked as theirs.
    lines = QUICKSTART.splitlines()
    for name in ("class ChatRequest", "class YourValidator", "def your_score"):
        (start,) = [i for i, line in enumerate(lines) if line.startswith(name)]
        assert "YOURS" in "\n".join(lines[start : start + 3]), name


def test_the_docs_quick_start_includes_the_example_file() -> None:
    page = DOCS / "getting-started.md"
    included = [_SNIPPET.fullmatch(body.strip()) for _, body, _ in python_blocks(page)]
    assert "examples/quickstart.py" in [match["path"] for match in included if match]


def test_every_included_file_exists() -> None:
    included = [
        (page, match["path"])
        for page in PAGES
        for match in _SNIPPET.finditer(page.read_text(encoding="utf-8"))
    ]
    assert included
    missing = [(_name(page), path) for page, path in included if not (ROOT / path).is_file()]
    assert not missing


@pytest.mark.parametrize(("where", "body"), CODE, ids=[where for where, _ in CODE])
def test_every_block_compiles(where: str, body: str) -> None:
    compile(body, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize(("where", "body"), CODE, ids=[where for where, _ in CODE])
def test_what_a_block_imports_from_the_package_exists(where: str, body: str) -> None:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(body, where, "exec", flags=flags)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("organic_scoring"):
            assert node.module is not None
            module = importlib.import_module(node.module)  # a deprecated path fails here
            for alias in node.names:
                assert hasattr(module, alias.name), f"{where}: {node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("organic_scoring"):
                    importlib.import_module(alias.name)


@pytest.mark.bittensor  # the docs promise them on every major
@pytest.mark.parametrize(("where", "body"), MARKED, ids=[where for where, _ in MARKED])
def test_marked_blocks_run(
    where: str,
    body: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(body, where, "exec"), namespace)
    capsys.readouterr()


def test_some_blocks_run_and_none_size_a_score_book_by_metagraph_n() -> None:
    assert len(MARKED) >= 2
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "ScoreBook(metagraph.n" not in text.replace("`ScoreBook(metagraph.n)` works", "")
        assert "ScoreBook(validator.metagraph.n" not in text


def test_the_readme_is_a_landing_page() -> None:
    assert len(README.splitlines()) <= README_MAX_LINES
    # It sends readers to the docs pages, and says how to read them as a site.
    assert "mkdocs serve" in README
    linked = {match["target"].partition("#")[0] for match in _LINK.finditer(README)}
    pages = {_name(page) for page in DOCS.glob("*.md")} - {"docs/index.md"}
    assert pages <= linked, sorted(pages - linked)


def slug(title: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading; GitHub's agrees here."""
    text = re.sub(r"<[^>]+>", "", title).replace("`", "")
    text = unicodedata.normalize("NFKD", text)
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(match["title"]) for match in _HEADING.finditer(text)}


LINKS = [
    (page, match["target"])
    for page in PAGES
    for match in _LINK.finditer(_FENCE.sub("", page.read_text(encoding="utf-8")))
    if "://" not in match["target"] and not match["target"].startswith("mailto:")
]


@pytest.mark.parametrize(
    ("page", "target"), LINKS, ids=[f"{_name(page)}->{target}" for page, target in LINKS]
)
def test_relative_links_reach_a_file_and_a_heading(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.is_file(), f"{_name(page)}: {target}"
    assert ROOT in file.parents
    if page.is_relative_to(DOCS):  # the site holds docs/ alone
        assert file.is_relative_to(DOCS), f"{_name(page)}: {target} leaves docs/"
    if anchor and file.suffix == ".md":
        assert anchor in anchors(file), f"{_name(page)}: {target}"


def test_a_broken_anchor_is_caught() -> None:
    assert "the-hooks" in anchors(DOCS / "loop.md")
    assert "timing-trigger_jitter" in anchors(DOCS / "probes.md")
    assert "organicsynthetic-consistency-per-miner" in anchors(DOCS / "probes.md")
    assert "no-such-heading" not in anchors(DOCS / "loop.md")
