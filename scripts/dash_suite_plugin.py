"""A pytest plugin for running Dash's own test suite with sessionmw attached (``scripts/dash-suite``).

With ``SESSIONMW_DASH_ATTACH=1``, every Dash app the tests build gets ``SessionMWDash(app)`` (on
the memory store) as soon as it has its server, on whichever of Dash's backends serves it (Flask,
Quart, FastAPI, or a subclass of one of Dash's backend classes): ``Dash.init_app`` is patched,
which ``Dash.__init__`` calls. Without it nothing is attached (the reference run). Either way the
browser tests get a headless Debian chromium, as sessionmw's own tests do. With
``SESSIONMW_DASH_BACKEND=flask|fastapi|quart``, only the tests of that backend run
(:func:`backend_of_test`).
"""

from __future__ import annotations

import os
from typing import Any

ATTACHED = [0]
BACKENDS = ("flask", "fastapi", "quart")


def backend_of_test(test_id: str) -> str:
    """The Dash backend a test of Dash's suite runs on, from its id (pytest node id or junit
    ``classname::name``): its ``backend`` parameter (``[fastapi-dash_duo]``), else its name
    (``..._quart``, ``test_fastapi_...``, ``test_custom_backend_...``: a FastAPI subclass), else its
    folder (``tests/websocket``: FastAPI, less the Quart ones named so), else Flask (Dash's
    default, every other part of the suite)."""
    for backend in BACKENDS:
        if f"[{backend}" in test_id:
            return backend
    if "quart" in test_id:
        return "quart"
    if "fastapi" in test_id or "custom_backend" in test_id:
        return "fastapi"
    if test_id.startswith(("tests/websocket/", "tests.websocket.")):
        return "fastapi"
    return "flask"


if os.environ.get("SESSIONMW_DASH_ATTACH") == "1":  # dash imported only here: scripts/dash-suite imports this
    import dash

    from sessionmw import SessionManager
    from sessionmw.integrations.dash import SessionMWDash
    from sessionmw.integrations.dash_apps import backend_of, dash_state

    _init_app = dash.Dash.init_app

    def _init_app_attached(self: dash.Dash, app: Any = None, **kwargs: Any) -> None:
        _init_app(self, app, **kwargs)
        try:
            backend_of(self)  # by Dash's backend, as SessionMWDash chooses
        except TypeError:  # a backend of the test's own making: the test is bare either way
            return
        if self.server not in (None, False) and dash_state(self) is None:
            SessionMWDash(self, manager=SessionManager(store="memory://"), secret_key="k" * 32)
            ATTACHED[0] += 1

    dash.Dash.init_app = _init_app_attached  # type: ignore[method-assign]


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """With ``SESSIONMW_DASH_BACKEND``, deselect the tests of the other backends."""
    chosen = os.environ.get("SESSIONMW_DASH_BACKEND")
    if not chosen:
        return
    kept = [item for item in items if backend_of_test(item.nodeid) == chosen]
    dropped = [item for item in items if backend_of_test(item.nodeid) != chosen]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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
