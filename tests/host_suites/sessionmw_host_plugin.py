"""A pytest plugin for running a host framework's own test suite with sessionmw attached.

``scripts/host-suites`` loads it (``-p sessionmw_host_plugin``) into Flask's test suite. The mode
comes from ``SESSIONMW_HOST_MODE``:

- ``bare``: nothing attached (the reference run);
- ``extension``: ``SessionMW(app)`` on every Flask app, right after ``Flask.__init__``;
- ``middleware``: ``app.wsgi_app = SessionMiddleware(app.wsgi_app)`` on every Flask app.

Every mode also adds ``_pytest.monkeypatch.notset`` (renamed ``NOTSET`` in pytest 9), which
Flask 3.1's ``conftest.py`` imports.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import _pytest.monkeypatch

MODES = ("bare", "extension", "middleware")

if not hasattr(_pytest.monkeypatch, "notset"):
    _pytest.monkeypatch.notset = _pytest.monkeypatch.NOTSET  # type: ignore[attr-defined]


def _attach(mode: str) -> None:
    """Patch ``Flask.__init__`` so that every app gets sessionmw in ``mode``."""
    from flask import Flask

    from sessionmw import SessionManager

    manager = SessionManager(store="memory://")
    original = Flask.__init__

    @functools.wraps(original)
    def __init__(self: Flask, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if mode == "extension":
            from sessionmw.integrations.flask import SessionMW

            SessionMW(self, manager=manager, secret_key="host-suite")
        else:
            from sessionmw.integrations.wsgi import SessionMiddleware

            self.wsgi_app = SessionMiddleware(  # type: ignore[method-assign]
                self.wsgi_app, manager=manager, secret_key="host-suite"
            )

    Flask.__init__ = __init__  # type: ignore[method-assign]


_mode = os.environ.get("SESSIONMW_HOST_MODE", "bare")
if _mode not in MODES:
    raise RuntimeError(f"SESSIONMW_HOST_MODE={_mode!r}: use one of {', '.join(MODES)}")
if _mode != "bare":
    _attach(_mode)
