"""A pytest plugin for running Dash's own test suite with sessionmw attached (``scripts/dash-suite``).

With ``SESSIONMW_DASH_ATTACH=1``, every Dash app the tests build gets ``SessionMWDash(app)`` (on
the memory store) as soon as it has its Flask server: ``Dash.init_app`` is patched, which
``Dash.__init__`` calls. Without it nothing is attached (the reference run). Either way the
browser tests get a headless Debian chromium, as sessionmw's own tests do.
"""

from __future__ import annotations

import os
from typing import Any

import dash

ATTACHED = [0]

if os.environ.get("SESSIONMW_DASH_ATTACH") == "1":
    from flask import Flask

    from sessionmw import SessionManager
    from sessionmw.integrations.dash import SessionMWDash
    from sessionmw.integrations.dash_apps import dash_state

    _init_app = dash.Dash.init_app

    def _init_app_attached(self: dash.Dash, app: Any = None, **kwargs: Any) -> None:
        _init_app(self, app, **kwargs)
        if isinstance(self.server, Flask) and dash_state(self) is None:
            SessionMWDash(self, manager=SessionManager(store="memory://"), secret_key="k" * 32)
            ATTACHED[0] += 1

    dash.Dash.init_app = _init_app_attached  # type: ignore[method-assign]


def pytest_setup_options() -> Any:
    """dash.testing's hook: headless Debian chromium, as root in CI (``DASH_TEST_CHROMEPATH`` wins)."""
    import shutil

    from selenium.webdriver.chrome.options import Options

    options = Options()
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1100,900",
    ):
        options.add_argument(argument)
    binary = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium")
    if binary:
        options.binary_location = binary
    return options


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("SESSIONMW_DASH_ATTACH") == "1":
        terminalreporter.write_line(f"sessionmw: SessionMWDash attached to {ATTACHED[0]} Dash apps")
