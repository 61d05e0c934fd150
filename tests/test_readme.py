"""Every Python block in the README and the docs pages works as pasted.

The README's Quick start is ``examples/quickstart.py`` word for word (run by
tests/test_examples.py) and the docs' quick start includes that file. Every other
block runs here, as the reader would paste it:

* a block runs as it is, in a fresh namespace, unless its first lines say otherwise;
* ``# Continues the quick start`` as its first line: it runs after the quick start's
  file (its classes and functions in scope, ``main()`` not called);
  ``# Continues the block above``: after the page's block before it, in the same way;
* ``# Yours: a, b.`` names what stands for the reader's own objects: the chain, a
  wallet, hotkeys, an axon. Those names, and only those, get local stand-ins here
  (``STAND_INS``); a block naming one this major lacks (an axon on 11) is skipped;
* a line whose comment starts ``# 9/10`` or ``# 11`` runs on those majors only.

Every relative link of the README and the pages reaches a file, and a heading of it
where it names one. (The lint session builds the pages with ``mkdocs build --strict``,
which checks the links again and the API reference.)
"""

from __future__ import annotations

import ast
import importlib
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bittensor as bt
import pytest
import redis

from organic_scoring import OrganicScoringBase
from organic_scoring._compat import BT_MAJOR, HAS_AXON
from organic_scoring.http import OrganicServer
from organic_scoring.metrics import PrometheusMetrics
from organic_scoring.organic_queue import OrganicQueueBase
from organic_scoring.wallet import throwaway_wallet
from support.axons import BITTENSOR_WARNINGS
from support.chain import SetWeightsRecorder, real_metagraph
from support.identity import hotkey
from support.loopback import free_port
from support.weights_chain import SimChain, close_sync_client, sim_for

ROOT = Path(__file__).resolve().parent.parent
README_PATH = ROOT / "README.md"
README = README_PATH.read_text(encoding="utf-8")
DOCS = ROOT / "docs"
PAGES = [README_PATH, *sorted(DOCS.rglob("*.md"))]
QUICKSTART_PATH = ROOT / "examples" / "quickstart.py"
QUICKSTART = QUICKSTART_PATH.read_text(encoding="utf-8")
AFTER_QUICKSTART = "# Continues the quick start"
AFTER_ABOVE = "# Continues the block above"
README_MAX_LINES = 450

_BLOCK = re.compile(r"^(?P<indent> *)```python\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
# A file included where the site is built (pymdownx.snippets, block form: ruff leaves it be).
_SNIPPET = re.compile(r"^ *--8<--\n *(?P<path>[^\n]+?)\n *--8<--$", re.M)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(?P<title>.+?) *#*$", re.M)
_FENCE = re.compile(r"^ *```.*?^ *```", re.M | re.S)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def python_blocks(path: Path) -> list[tuple[str, str]]:
    """Each block of ``path`` as (where, source without its indent)."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _BLOCK.finditer(text):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        where = f"{_name(path)}, line {text.count(chr(10), 0, match.start()) + 1}"
        blocks.append((where, body))
    return blocks


BLOCKS = [block for page in PAGES for block in python_blocks(page)]
# Blocks that include a file when the site is built hold no code here.
CODE = [(where, body) for where, body in BLOCKS if not _SNIPPET.fullmatch(body.strip())]
# The quick start itself runs in tests/test_examples.py.
RUN = [(where, body) for where, body in CODE if body != QUICKSTART]
_YOURS = re.compile(r"^# Yours: (?P<names>\w+(?:, \w+)*)\.?$")
_MAJORS = re.compile(r"^(?P<indent> *)\S.*?  # (?P<majors>9/10|11)\b.*$")


def header(body: str) -> list[str]:
    """The block's leading comment lines."""
    lines = []
    for line in body.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def yours(body: str) -> list[str]:
    """The names a block's ``# Yours:`` line gives the reader."""
    found = [_YOURS.match(line) for line in header(body)]
    return [name for match in found if match for name in match["names"].split(", ")]


def for_this_major(body: str) -> str:
    """``body`` with each line meant for another bittensor major made a ``pass``."""
    here = "9/10" if BT_MAJOR < 11 else "11"
    lines = []
    for line in body.splitlines():
        match = _MAJORS.match(line)
        lines.append(line if match is None or match["majors"] == here else f"{match['indent']}pass")
    return "\n".join(lines) + "\n"


def context(where: str, body: str) -> list[tuple[str, str]]:
    """What runs before the block: the quick start, or the page's block above (and
    what runs before that), in that order."""
    first = header(body)[:1]
    if first and first[0].startswith(AFTER_QUICKSTART):
        return [(_name(QUICKSTART_PATH), QUICKSTART)]
    if first and first[0].startswith(AFTER_ABOVE):
        page = where.partition(",")[0]
        above = [block for block in RUN if block[0].partition(",")[0] == page]
        index = above.index((where, body))
        assert index > 0, f"{where}: no block above"
        return [*context(*above[index - 1]), above[index - 1]]
    return []


def test_the_quick_start_is_the_example_file_word_for_word() -> None:
    assert QUICKSTART in [body for _, body in python_blocks(README_PATH)]
    # The names a reader brings are marked as theirs.
    lines = QUICKSTART.splitlines()
    for name in ("class ChatRequest", "class YourValidator", "def your_score"):
        (start,) = [i for i, line in enumerate(lines) if line.startswith(name)]
        assert "YOURS" in "\n".join(lines[start : start + 3]), name


def test_the_docs_quick_start_includes_the_example_file() -> None:
    page = DOCS / "getting-started.md"
    included = [_SNIPPET.fullmatch(body.strip()) for _, body in python_blocks(page)]
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


class Stage:
    """The stand-ins one block gets, made on first use, closed after it."""

    def __init__(
        self, directory: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.directory = directory
        self.request = request
        self.monkeypatch = monkeypatch
        self.closers: list[Callable[[], None]] = []
        self._made: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._made:
            self._made[name] = STAND_INS[name](self)
        return self._made[name]

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def _chain(stage: Stage) -> SimChain:
    """Subnet 1: the validator's wallet is uid 0, seven miners after it."""
    chain = SimChain(netuid=1, n=8, rate_limit=2, weights_version=0, block_time=0.01)
    chain.register(stage.get("wallet").hotkey.ss58_address, 0)
    for uid in range(1, 8):
        chain.register(hotkey(f"miner-{uid}"), uid)
    return chain


def _subtensor(stage: Stage) -> Any:
    """The installed major's own client over a simulated chain; on 11, the
    module-level ``bt.set_weights`` (which ``emit_weights`` calls) is recorded too."""
    handle = sim_for(stage.get("_chain"))
    if BT_MAJOR >= 11:
        stage.closers.append(lambda: close_sync_client(handle))
        stage.monkeypatch.setattr(bt, "set_weights", SetWeightsRecorder())
    return handle


def _axon(stage: Stage) -> Any:
    if not HAS_AXON:
        pytest.skip(f"an axon needs bittensor 9/10, this is {BT_MAJOR}")
    from organic_scoring._compat import axon_class

    wallet = stage.get("wallet")
    return axon_class()(wallet=wallet, ip="127.0.0.1", external_ip="127.0.0.1", port=free_port())


def _redis_url(stage: Stage) -> str:
    """A real Redis on a free port, named in the environment too (as the fleet's is)."""
    url: str = stage.request.getfixturevalue("redis_url")
    stage.monkeypatch.setenv("REDIS_URL", url)
    return url


STAND_INS: dict[str, Callable[[Stage], Any]] = {
    "_chain": _chain,
    "netuid": lambda stage: stage.get("_chain").netuid,
    "wallet": lambda stage: throwaway_wallet(stage.directory / "wallets", "validator"),
    "subtensor": _subtensor,
    "client": _subtensor,
    "metagraph": lambda stage: real_metagraph([hotkey(f"miner-{uid}") for uid in range(8)]),
    "REPLAY_KEY": lambda stage: "a secret of the reader's",
    "hotkey": lambda stage: stage.get("wallet").hotkey.ss58_address,
    "VALIDATOR_HOTKEY": lambda stage: stage.get("wallet").hotkey.ss58_address,
    "gateway_wallet": lambda stage: throwaway_wallet(stage.directory / "wallets", "gateway"),
    "GATEWAY": lambda stage: stage.get("gateway_wallet").hotkey.ss58_address,
    "GATEWAY_HOTKEY": lambda stage: stage.get("gateway_wallet").hotkey.ss58_address,
    "GATEWAYS": lambda stage: [stage.get("gateway_wallet").hotkey.ss58_address],
    "port": lambda stage: free_port(),
    "axon": _axon,
    "REDIS_URL": _redis_url,
}
"""Each name a block may give the reader (``# Yours: ...``), and what stands for it."""


def _run(where: str, body: str, namespace: dict[str, Any]) -> None:
    namespace["__name__"] = "__main__"
    exec(compile(for_this_major(body), where, "exec"), namespace)


@pytest.mark.bittensor  # the docs promise them on every major
@pytest.mark.usefixtures("no_leaks")
@BITTENSOR_WARNINGS  # bittensor 9/10's own, from the axon and dendrite blocks
@pytest.mark.parametrize(("where", "body"), RUN, ids=[where for where, _ in RUN])
def test_every_block_runs(
    where: str,
    body: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    stage = Stage(tmp_path, request, monkeypatch)
    namespace: dict[str, Any] = {}
    try:
        given = {name for _, code in [*context(where, body), (where, body)] for name in yours(code)}
        for name in sorted(given):
            namespace[name] = stage.get(name)
        for before in context(where, body):
            if before[1] == QUICKSTART:
                namespace["__name__"] = "quickstart"  # its main() is not called
                exec(compile(QUICKSTART, before[0], "exec"), namespace)
            else:
                _run(*before, namespace)
        _run(where, body, namespace)
    finally:
        # What a block leaves running for the reader's validator to go on with.
        for value in namespace.values():
            if isinstance(value, (OrganicScoringBase, OrganicServer)):
                value.stop()
            elif isinstance(value, (PrometheusMetrics, OrganicQueueBase, redis.Redis)):
                getattr(value, "close", lambda: None)()
        stage.close()
    capsys.readouterr()


def test_every_name_a_block_gives_the_reader_has_a_stand_in() -> None:
    named = {name for _, body in RUN for name in yours(body)}
    assert named <= set(STAND_INS), sorted(named - set(STAND_INS))
    assert "_chain" not in named


def test_no_block_awaits_at_the_top_level() -> None:
    # A script cannot: such a block would fail as pasted.
    for where, body in RUN:
        compile(body, where, "exec")


def test_a_block_for_another_major_loses_those_lines_only() -> None:
    body = "a = 1  # 9/10: old\nif a:\n    b = 2  # 11: new\nc = 3  # 11 pages\n"
    kept = for_this_major(body).splitlines()
    if BT_MAJOR >= 11:
        assert kept == ["pass", "if a:", "    b = 2  # 11: new", "c = 3  # 11 pages"]
    else:
        assert kept == ["a = 1  # 9/10: old", "if a:", "    pass", "pass"]


def test_a_block_that_stops_working_fails() -> None:
    broken = "# Continues the quick start (examples/quickstart.py).\nMyScoring()\n"
    namespace: dict[str, Any] = {"__name__": "quickstart"}
    exec(compile(QUICKSTART, "quickstart", "exec"), namespace)
    with pytest.raises(TypeError):
        _run("broken", broken, namespace)
    assert context("nowhere", broken) == [(_name(QUICKSTART_PATH), QUICKSTART)]
    assert yours("# Yours: netuid, wallet.\nx = 1\n# Yours: axon\n") == ["netuid", "wallet"]


def test_no_block_sizes_a_score_book_by_metagraph_n() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "ScoreBook(metagraph.n" not in text.replace("`ScoreBook(metagraph.n)` works", "")
        assert "ScoreBook(validator.metagraph.n" not in text


_SHELL = re.compile(r"^ *```shell\n(?P<body>.*?)^ *```", re.M | re.S)
INSTALL_PAGES = [README_PATH, DOCS / "getting-started.md"]


def bittensor_pins() -> dict[str, list[str]]:
    """What the test sessions install beside each bittensor major (noxfile.py)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "BITTENSOR"
        ]:
            pins: dict[str, list[str]] = ast.literal_eval(node.value)
            return pins
    raise AssertionError("noxfile.py has no BITTENSOR")


@pytest.mark.parametrize("page", INSTALL_PAGES, ids=_name)
def test_the_install_lines_paste_as_they_are(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "<repository URL>" not in text
    lines = [line.strip() for match in _SHELL.finditer(text) for line in match["body"].splitlines()]
    installs = [i for i, line in enumerate(lines) if re.match(r"pip install '?\.", line)]
    upgrades = [i for i, line in enumerate(lines) if "pip install --upgrade pip" in line]
    assert installs
    assert upgrades
    assert upgrades[0] < installs[0], "upgrade pip first"
    commands = {lines[i].partition("#")[2].strip(): lines[i].partition("#")[0] for i in installs}
    (nine,) = [command for comment, command in commands.items() if "bittensor 9" in comment]
    assert all(f'"{pin}"' in nine for pin in bittensor_pins()["9"]), nine
    (ten,) = [command for comment, command in commands.items() if "bittensor 10" in comment]
    assert all(f'"{pin}"' in ten for pin in bittensor_pins()["10"]), ten
    (eleven,) = [command for comment, command in commands.items() if "bittensor 11" in comment]
    assert eleven.strip() == "pip install '.[http]'"
    # For a real repository: a marked pattern, never a made-up address.
    assert "git+https://<host>/<owner>/organic-scoring.git@<tag>" in text


def test_the_troubleshooting_page_quotes_the_messages_given() -> None:
    from support.scorers import Recorder

    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="synth_dataset") as caught:
        Recorder(synth_dataset="default")
    assert f"ValueError: {caught.value}" in page
    for name in ("MyScoring", "YourValidator", "ChatRequest"):
        assert name in QUICKSTART
    assert AFTER_QUICKSTART in page
    for pin in bittensor_pins()["9"]:
        assert pin in page


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
