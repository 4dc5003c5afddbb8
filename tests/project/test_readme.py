"""The README's first contact: the quick start prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _quick_start() -> tuple[str, str]:
    """The quick start's code and the output the README shows for it."""
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```\s*prints\s*```text\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the quick start shows no code followed by what it prints"
    return match.group(1), match.group(2)


def test_quick_start_prints_what_the_readme_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader who runs the quick start sees the output printed below it, not nothing."""
    monkeypatch.chdir(tmp_path)
    code, expected = _quick_start()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README quick start", "exec"), {"__name__": "readme"})
    assert out.getvalue() == expected


def test_readme_names_the_port_option_and_the_secret_key() -> None:
    """The set-up names --port and explains what the secret-key warning means."""
    text = README.read_text(encoding="utf-8")
    assert "sessionmw demo --port" in text
    assert "SESSIONMW_SECRET_KEY" in text and "several worker processes" in text


def _run_quick_start(cwd: Path, code: str) -> subprocess.CompletedProcess[str]:
    """The quick start run with this Python from ``cwd`` (read from stdin: ``cwd`` comes first on
    the import path, as the folder of a saved ``quickstart.py`` does), without SESSIONMW_* settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIONMW_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-"], input=code, cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_quick_start_works_where_the_readme_says_to_run_it(tmp_path: Path) -> None:
    """Inside the clone the saved quick start prints what the README shows; in the folder that
    holds a clone (a folder named ``sessionmw``), it fails as the README warns when the package is
    installed from the clone (``pip install -e .``): the README names the place and the message
    (issue 27)."""
    code, expected = _quick_start()
    root = README.parent
    inside = _run_quick_start(root, code)
    assert inside.returncode == 0 and inside.stdout == expected, inside.stderr
    (tmp_path / "sessionmw").mkdir()  # the clone, as `git clone ... sessionmw` names it
    beside = _run_quick_start(tmp_path, code)
    import sessionmw

    if Path(sessionmw.__file__).resolve().is_relative_to(root.resolve()):  # an editable install
        assert beside.returncode != 0
        assert "cannot import name" in beside.stderr and "(unknown location)" in beside.stderr
        readme = README.read_text(encoding="utf-8")
        assert "inside the clone" in readme and "(unknown location)" in readme
