"""The package's shape, checked from its source: who may import whom.

The core (the loop, the queues, the datasets, the settings, the weights, the intake
gate) imports no transport; each transport (the axon, signed HTTP) imports the core;
and no two modules import each other. Read from the import statements of every
module, so the check needs nothing installed beyond the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "organic_scoring"

TRANSPORTS = ("organic_scoring.axon", "organic_scoring.http")
CORE = (
    "organic_scoring.base",
    "organic_scoring._engine",
    "organic_scoring._iteration",
    "organic_scoring._trigger",
    "organic_scoring._stats",
    "organic_scoring._tasks",
    "organic_scoring._workers",
    "organic_scoring._transports",
    "organic_scoring.config",
    "organic_scoring.errors",
    "organic_scoring.organic_queue",
    "organic_scoring.synth_dataset",
    "organic_scoring.weights",
    "organic_scoring.intake",
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_graph_was_read() -> None:
    assert "organic_scoring.intake" in GRAPH["organic_scoring.axon"]
    assert "organic_scoring.base" in GRAPH["organic_scoring.intake._gate"]


def test_no_two_modules_import_each_other() -> None:
    pairs = sorted(
        (a, b) for a, targets in GRAPH.items() for b in targets if a < b and a in GRAPH[b]
    )
    assert pairs == []


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle of any length: the modules can be put in an order."""
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path[path.index(name) :], name))
        if name in done:
            return
        for target in sorted(GRAPH[name]):
            visit(target, (*path, name))
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, ())


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, CORE)))
def test_the_core_imports_no_transport(module: str) -> None:
    assert not [t for t in GRAPH[module] if _within(t, TRANSPORTS)]
