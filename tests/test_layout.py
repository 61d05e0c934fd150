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
    "organic_scoring._loop",
    "organic_scoring._defaults",
    "organic_scoring.config",
    "organic_scoring.errors",
    "organic_scoring.organic_queue",
    "organic_scoring.synth_dataset",
    "organic_scoring.weights",
    "organic_scoring.intake",
)
LAZY = {("organic_scoring.base", "organic_scoring.axon")}
"""Imports made inside a function, where an optional transport is used: the
constructor's ``axon=`` (the original package's way) attaches the axon transport."""


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
    """The package's modules that ``name`` imports, at any depth of its code, less the
    lazy imports listed in :data:`LAZY`."""
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
    return {t for t in targets if t in MODULES and t != name and (name, t) not in LAZY}


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


def test_lazy_imports_are_lazy() -> None:
    """Each import in :data:`LAZY` exists, and only inside a function."""
    for importer, imported in LAZY:
        tree = ast.parse(MODULES[importer].read_text())
        top = {
            node.module
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module is not None
        }
        nested = {
            node.module
            for func in ast.walk(tree)
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(func)
            if isinstance(node, ast.ImportFrom)
        }
        assert imported not in top
        assert imported in nested


def test_the_root_is_small() -> None:
    """A newcomer reads the package root in a minute: at most 16 modules there."""
    root = [path.name for path in PACKAGE.glob("*.py")]
    assert len(root) <= 16, sorted(root)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, CORE)))
def test_the_core_imports_no_transport(module: str) -> None:
    assert not [t for t in GRAPH[module] if _within(t, TRANSPORTS)]


SHIMS = {
    "organic_scoring.organic_scoring_base",
    "organic_scoring.utils",
    "organic_scoring.organic_queue.organic_queue",
    "organic_scoring.organic_queue.organic_queue_base",
    "organic_scoring.synth_dataset.synth_dataset_base",
    "organic_scoring.synth_dataset.synth_dataset_conversation",
}
"""The original package's import paths, kept for migration; they add no name."""


def _public_names() -> dict[str, set[str]]:
    """Each public module's ``__all__``, read from its source."""
    found: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if any(part.startswith("_") for part in name.split(".")) or name in SHIMS:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
            ):
                found[name] = set(ast.literal_eval(node.value))
    return found


def test_the_public_surface_is_curated() -> None:
    """At most 70 public names, each exported by a module that defines or gathers it."""
    names = _public_names()
    assert "organic_scoring.weights" in names
    assert len(set().union(*names.values())) <= 70, sorted(set().union(*names.values()))


def test_every_public_exception_lives_in_errors() -> None:
    """One home for exceptions: ``organic_scoring.errors`` (the package root re-exports
    the few every validator meets)."""
    import importlib

    for module, names in _public_names().items():
        if module in ("organic_scoring", "organic_scoring.errors"):
            continue
        loaded = importlib.import_module(module)
        for name in names:
            value = getattr(loaded, name)
            is_exception = isinstance(value, type) and issubclass(value, BaseException)
            assert not is_exception, f"{module} exports the exception {name}"
