"""A pytest plugin for running Starlette's, FastAPI's and Quart's own test suites with sessionmw attached.

``scripts/host-suites`` loads it (``-p sessionmw_asgi_host_plugin``) into each framework's test suite.
The mode comes from ``SESSIONMW_HOST_MODE``:

- ``bare``: nothing attached (the reference run);
- ``middleware`` (Starlette, FastAPI): ``SessionMiddleware`` as the outermost user middleware of every
  ``Starlette``/``FastAPI`` app, the place ``app.add_middleware(SessionMiddleware)`` puts it, added when
  the app builds its middleware stack (the app's own ``user_middleware`` list is left as the test made it);
- ``outer`` (Starlette, FastAPI): ``SessionMiddleware`` around the whole middleware stack the app
  builds, outside Starlette's ``ServerErrorMiddleware``, as ``app = SessionMiddleware(app)`` would;
- ``extension`` (Quart): ``SessionMWQuart(app)`` on every Quart app, right after ``Quart.__init__``.

Every app shares one manager on the memory store, as the apps of one process would.
"""

from __future__ import annotations

import functools
import os
from typing import Any

MODES = ("bare", "middleware", "outer", "extension")
_SECRET = "host-suite"


def _manager() -> Any:
    from sessionmw import SessionManager

    return SessionManager(store="memory://")


def _attach_starlette(mode: str) -> None:
    """Patch ``build_middleware_stack`` of Starlette and FastAPI so that every app gets the middleware."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from sessionmw.integrations.asgi import SessionMiddleware

    manager = _manager()
    classes: list[type[Any]] = [Starlette]
    try:
        from fastapi import FastAPI
    except ImportError:  # Starlette's suite without FastAPI installed
        pass
    else:
        classes.append(FastAPI)
    for cls in classes:
        original = cls.__dict__["build_middleware_stack"]
        if mode == "middleware":

            @functools.wraps(original)
            def build(self: Any, _original: Any = original) -> Any:
                own = self.user_middleware
                ours = Middleware(SessionMiddleware, manager=manager, secret_key=_SECRET)
                self.user_middleware = [ours, *own]
                try:
                    return _original(self)
                finally:
                    self.user_middleware = own

        else:

            @functools.wraps(original)
            def build(self: Any, _original: Any = original) -> Any:
                return SessionMiddleware(_original(self), manager=manager, secret_key=_SECRET)

        cls.build_middleware_stack = build


def _attach_quart() -> None:
    """Patch ``Quart.__init__`` so that every app gets ``SessionMWQuart``."""
    from quart import Quart

    from sessionmw.integrations.quart import SessionMWQuart

    manager = _manager()
    original = Quart.__init__

    @functools.wraps(original)
    def __init__(self: Quart, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        SessionMWQuart(self, manager=manager, secret_key=_SECRET)

    Quart.__init__ = __init__  # type: ignore[method-assign]


_mode = os.environ.get("SESSIONMW_HOST_MODE", "bare")
if _mode not in MODES:
    raise RuntimeError(f"SESSIONMW_HOST_MODE={_mode!r}: use one of {', '.join(MODES)}")
if _mode in ("middleware", "outer"):
    _attach_starlette(_mode)
elif _mode == "extension":
    _attach_quart()
