"""The README's first contact: the quick start prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
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
