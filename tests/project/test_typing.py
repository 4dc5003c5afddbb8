"""mypy sees the adapters under the name users import, ``sessionmw.integrations.*``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """\
from flask import Flask

from sessionmw.integrations.dash import SessionMWDash
from sessionmw.integrations.flask import SessionMW, current_session
from sessionmw.integrations.wsgi import SessionMiddleware

ext = SessionMW(Flask(__name__))
ext.init_app(Flask("another"))
ext.no_such_method()
current_session.no_such_attribute
SessionMiddleware.no_such_thing
SessionMWDash.no_such_option
"""


def test_a_wrong_attribute_on_an_adapter_fails_mypy(tmp_path: Path) -> None:
    """Every wrong name is reported on its line, and the right ones are not: adapters are not Any."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            str(probe),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    reported = {
        int(match[1]): match[2] for match in re.finditer(r"probe\.py:(\d+): error: (.*)", result.stdout)
    }
    assert reported == {
        9: '"SessionMW" has no attribute "no_such_method"  [attr-defined]',
        10: '"RequestSession" has no attribute "no_such_attribute"  [attr-defined]',
        11: '"type[SessionMiddleware]" has no attribute "no_such_thing"  [attr-defined]',
        12: '"type[SessionMWDash]" has no attribute "no_such_option"  [attr-defined]',
    }, result.stdout + result.stderr
    assert result.returncode == 1
