"""The tests' helpers (tests/support/) stay the tests' own: shipped code, benchmarks and scripts
never import them, nor put tests/ on their import path."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The test helper modules: tests/support/ and what it holds (and the tests' conftest).
TEST_MODULES = {"support", "conftest", "tests"} | {
    path.stem for path in (ROOT / "tests" / "support").glob("*.py")
}


def python_files() -> list[Path]:
    """Every Python file of sessionmw/, integrations/, bench/ and scripts/ (scripts by their shebang)."""
    files = [
        path for folder in ("sessionmw", "integrations", "bench") for path in (ROOT / folder).rglob("*.py")
    ]
    for path in (ROOT / "scripts").iterdir():
        if path.suffix == ".py" or path.read_text(errors="replace").startswith("#!/usr/bin/env python"):
            files.append(path)
    return [path for path in files if not path.is_symlink()]


def test_test_helpers_are_imported_by_tests_only() -> None:
    offenders = []
    for path in python_files():
        source = path.read_text()
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] in {"support", "tests", "conftest"}
            ]
        offenders += [
            f"{path.relative_to(ROOT)}:{number} puts tests/ on the import path"
            for number, line in enumerate(source.splitlines(), 1)
            if '"tests"' in line
            and any(word in line.lower() for word in ("sys.path", "python_path", "pythonpath"))
        ]
    assert not offenders, offenders


def test_the_check_finds_the_files_it_guards() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in python_files()}
    assert {
        "sessionmw/_manager.py",
        "integrations/flask.py",
        "bench/bench_wsgi.py",
        "scripts/dash_suite_plugin.py",
    } <= names
