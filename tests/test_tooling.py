"""The tooling a newcomer meets first: the test command, the CI script, the nox matrix,
and what a test run prints about skipped tests."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from organic_scoring._compat import HAS_AXON

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = "python3 scripts/test.py"


def noxfile_sessions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("session" in ast.unparse(d) for d in node.decorator_list)
    }


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```shell\n{TEST_COMMAND}\n```" in readme
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    # Whatever it installs first, it ends with the test command and runs no other tests.
    assert lines[-1] == TEST_COMMAND
    assert not [line for line in lines[:-1] if "nox" in line or "pytest" in line]


def test_the_test_command_never_installs_into_the_interpreter() -> None:
    script = (ROOT / "scripts" / "test.py").read_text(encoding="utf-8")
    installs = [line for line in script.splitlines() if '"install"' in line]
    assert installs
    assert all("python" in line for line in installs)  # the runner venv's python
    assert "sys.executable" not in script


def test_the_matrix_skips_missing_pythons_and_leaves_benchmarks_out() -> None:
    source = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert "nox.options.error_on_missing_interpreters = False" in source
    assert 'EDGE_PYTHONS = ["3.10", "3.13"]' in source
    sessions = noxfile_sessions()
    assert {"lint", "tests", "tests_python", "benchmarks"} <= set(sessions)
    benchmark_decorators = [ast.unparse(d) for d in sessions["benchmarks"].decorator_list]
    assert "nox.session(default=False)" in benchmark_decorators
    # The benchmarks session runs every benchmark module, each once.
    from benchmarks import MODULES

    tree = ast.parse(source)
    (table,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "BENCHMARKS"
    ]
    per_major = ast.literal_eval(table)
    assert sorted(name for names in per_major.values() for name in names) == sorted(MODULES)
    # Every session the docstring, the README and the docs pages tell people to run
    # exists, by its name or its full id: `-s tests-11` (a session that never existed)
    # fails here.
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    named = re.findall(r'-s "?([^"\s`]+)', (ast.get_docstring(tree) or "") + text)
    assert {"lint", "tests(10)", "tests(11)", "benchmarks"} <= set(named)
    assert set(named) <= session_ids(tree)


def session_ids(tree: ast.Module) -> set[str]:
    """What ``nox -s`` accepts for the noxfile: each session's name and full ids."""
    tables = {
        ast.unparse(node.targets[0]): ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]).isupper()
    }
    ids = {"lint", "tests", "tests_python", "benchmarks"}
    ids |= {f"tests({major})" for major in tables["BITTENSOR"]}
    ids |= {f"benchmarks({major})" for major in tables["BENCHMARKS"]}
    ids |= {f"tests_python-{version}" for version in tables["EDGE_PYTHONS"]}
    return ids


def test_a_session_id_that_does_not_exist_is_caught() -> None:
    ids = session_ids(ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8")))
    assert "tests(11)" in ids
    assert "tests-11" not in ids


def test_an_unsupported_python_hands_over_to_a_supported_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("test_script", ROOT / "scripts" / "test.py")
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    called = tmp_path / "called"
    fake = tmp_path / "python3.12"
    fake.write_text(f'#!/bin/sh\necho "$@" > {called}\nexit 7\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert script.main(["-s", "lint"], version=(3, 9)) == 7  # the other one's status
    assert called.read_text().split() == [str(ROOT / "scripts" / "test.py"), "-s", "lint"]
    fake.unlink()
    assert script.main(["-s", "lint"], version=(3, 14)) == 1  # none on the PATH


def with_our_conftest(pytester: pytest.Pytester) -> None:
    """Give ``pytester`` the suite's conftest.py and markers."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nmarkers =\n    bittensor: differs by bittensor major\n")


def test_skips_are_summed_up_in_one_line(pytester: pytest.Pytester) -> None:
    with_our_conftest(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.bittensor
        @pytest.mark.parametrize("n", range(3))
        @pytest.mark.skip(reason="bittensor 11 only")
        def test_new(n):
            pass

        @pytest.mark.skipif(True, reason="needs redis-server")
        def test_redis():
            pass

        def test_runs():
            pass
        """
    )
    result = pytester.runpytest("-rfE")
    result.assert_outcomes(passed=1, skipped=4)
    lines = result.stdout.lines
    assert [line for line in lines if "skipped" in line.lower() and "passed" not in line] == [
        "skipped 4: bittensor 11 only (3); needs redis-server (1)"
    ]


# -- the docs site -----------------------------------------------------------------------

PUBLIC_MODULES = (
    "organic_scoring",
    "organic_scoring.config",
    "organic_scoring.errors",
    "organic_scoring.organic_queue",
    "organic_scoring.synth_dataset",
    "organic_scoring.intake",
    "organic_scoring.axon",
    "organic_scoring.http",
    "organic_scoring.weights",
    "organic_scoring.metrics",
    "organic_scoring.wallet",
    "organic_scoring.demo",
)


def test_the_lint_session_builds_the_docs_strictly() -> None:
    lint = ast.unparse(noxfile_sessions()["lint"])
    assert "'mkdocs', 'build', '--strict'" in lint
    assert "docs]" in lint  # it installs the docs extra
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (extra,) = re.findall(r"^docs = \[(.*?)^\]", pyproject, re.M | re.S)
    assert {"mkdocs", "mkdocs-material", "mkdocstrings[python]"} <= set(
        re.findall(r'"([\w\-\[\]]+)[<>=]', extra)
    )
    assert "site/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_every_page_is_in_the_nav_and_every_public_module_has_an_api_page() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.findall(r"^ *- (?:[^:\n]+: )?(\S+\.md)$", config, re.M)
    docs = ROOT / "docs"
    assert sorted(nav) == sorted(str(p.relative_to(docs)) for p in docs.rglob("*.md"))
    documented = {}
    for page in (docs / "api").glob("*.md"):
        first = page.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("::: organic_scoring"), page.name
        documented[first.removeprefix("::: ")] = page.name
    assert sorted(documented) == sorted(PUBLIC_MODULES)
    for name in documented:
        importlib.import_module(name)


@pytest.mark.skipif(HAS_AXON, reason="checked where unmarked tests run: the newest bittensor")
def test_a_test_no_session_would_run_fails(pytester: pytest.Pytester) -> None:
    # tests(11) alone runs unmarked tests: one it skips for want of another bittensor
    # major must be marked `bittensor`, or it runs nowhere.
    with_our_conftest(pytester)
    pytester.makepyfile(
        """
        import pytest

        needs_axon = pytest.mark.skipif(True, reason="bittensor 11 has no axon")

        @needs_axon
        def test_forgotten():
            pass

        @pytest.mark.bittensor
        @needs_axon
        def test_marked():
            pass

        @pytest.mark.skipif(True, reason="needs redis-server")
        def test_other_reason():
            pass
        """
    )
    result = pytester.runpytest("-rfE", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1, skipped=2)
    result.stdout.fnmatch_lines(["*test_forgotten*not marked bittensor*"])


def test_the_leak_check_sees_a_task_left_pending(pytester: pytest.Pytester) -> None:
    # no_leaks collects only what the test made: a task it leaves pending is still found.
    with_our_conftest(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        pytestmark = pytest.mark.usefixtures("no_leaks")

        async def forever():
            await asyncio.Event().wait()

        async def start_one():
            asyncio.get_running_loop().create_task(forever())
            await asyncio.sleep(0)

        def test_leaves_a_task_pending():
            loop = asyncio.new_event_loop()
            loop.run_until_complete(start_one())
            loop.close()

        def test_leaves_nothing():
            asyncio.run(asyncio.sleep(0))
        """
    )
    result = pytester.runpytest("-rfE", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_a_task_pending*"])
    assert "Task was destroyed but it is pending" in result.stdout.str()
