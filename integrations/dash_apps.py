"""The Dash apps sessionmw is set up on, kept per server, and the request each serves.

One :class:`DashState` per app, kept per server (Flask, Quart or FastAPI: Dash's backends).
Several Dash apps may share one server (Dash's ``url_base_pathname`` pattern); a request belongs
to the app whose routes prefix is the longest that its path starts with.

The rest of the Dash integration reads the request through one seam, :func:`current_request`:
the request's session and its marks live in Flask's WSGI ``environ`` on Flask and in the ASGI
``scope`` on Quart and FastAPI (the same ``sessionmw.session`` key); its path, query and JSON body
come from Dash's own request adapter of the backend.
"""

from __future__ import annotations

import dataclasses
import sys
import weakref
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

try:
    import dash
    from flask import has_request_context as flask_has_request
    from flask import request as flask_request
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.dash needs Dash: pip install 'sessionmw[dash]'") from exc

from sessionmw._manager import SessionManager
from sessionmw.integrations.environ import ENVIRON_SESSION
from sessionmw.integrations.request_session import RequestSession

__all__ = [
    "BACKENDS",
    "DASH_EXTENSION_KEY",
    "WEBSOCKET_ACTION",
    "DashRequest",
    "DashState",
    "ServerApps",
    "backend_of",
    "current_request",
    "dash_state",
    "request_dash_app",
    "server_apps",
]

#: ``app.server.extensions`` key of the Dash integration's record of the server's Dash apps
#: (read one app's :class:`DashState` with :func:`dash_state`); on FastAPI, ``app.server.state``
#: holds it under the same name.
DASH_EXTENSION_KEY = "sessionmw.dash"
#: The Dash backends the integration serves (``Dash(backend=...)``).
BACKENDS = ("flask", "quart", "fastapi")


@dataclasses.dataclass(frozen=True)
class DashState:
    """What sessionmw keeps for one Dash app (see :func:`dash_state`)."""

    #: The manager that keeps the app's sessions.
    manager: SessionManager
    #: The endpoints' path prefix.
    prefix: str
    #: Seconds between two health polls.
    interval_seconds: float
    #: The banner's look: ``plain`` or ``bootstrap`` (``auto`` resolved; see
    #: :data:`~sessionmw.integrations.dash_banner.THEMES`).
    theme: str = "plain"
    #: The app's ``routes_pathname_prefix``: its Dash routes live under it.
    routes_prefix: str = "/"
    #: The app's Dash backend: one of :data:`BACKENDS`.
    backend: str = "flask"


class ServerApps:
    """The Dash apps set up on one server (see :func:`server_apps`)."""

    def __init__(self, owns_extension: bool, gate: Any = None) -> None:
        #: True when SessionMWDash installed the server's extension or middleware (so it may add exclusions).
        self.owns_extension = owns_extension
        #: The :class:`~sessionmw.integrations.gate.SessionGate` of the server's extension or
        #: middleware, when sessionmw knows it (None: behind a middleware installed by the app).
        self.gate = gate
        self.states: dict[str, DashState] = {}  # by routes prefix
        self.apps: dict[str, weakref.ref[dash.Dash]] = {}

    def add(self, app: dash.Dash, state: DashState) -> None:
        """Keep ``state`` for ``app`` (weakly: the app may go away)."""
        self.states[state.routes_prefix] = state
        self.apps[state.routes_prefix] = weakref.ref(app)
        # the longest prefix first: a request belongs to the most specific app
        self.states = dict(sorted(self.states.items(), key=lambda item: -len(item[0])))

    def for_path(self, path: str) -> tuple[DashState | None, dash.Dash | None]:
        """The state and the app whose routes ``path`` is under."""
        for routes, state in self.states.items():
            if path.startswith(routes):
                return state, self.apps[routes]()
        return None, None


def backend_of(app: dash.Dash) -> str:
    """``app``'s Dash backend (``flask``, ``quart`` or ``fastapi``), as Dash names it.

    :raises TypeError: for a backend sessionmw does not serve, naming it.
    """
    backend = getattr(app, "backend", None)
    name = getattr(backend, "server_type", None) if backend is not None else "flask"  # Dash < 4.4: Flask
    if name not in BACKENDS:
        raise TypeError(f"SessionMWDash serves Dash's {', '.join(BACKENDS)} backends, not {name!r}")
    return str(name)


def server_apps(server: Any, create: ServerApps | None = None) -> ServerApps | None:
    """The :class:`ServerApps` kept on ``server`` (``extensions`` on Flask and Quart, ``state`` on
    FastAPI); with ``create``, keep that one there first unless the server has one."""
    extensions = getattr(server, "extensions", None)
    if isinstance(extensions, dict):
        if create is not None:
            extensions.setdefault(DASH_EXTENSION_KEY, create)
        apps = extensions.get(DASH_EXTENSION_KEY)
    else:
        state = getattr(server, "state", None)
        if state is None:
            return None
        if create is not None and not isinstance(getattr(state, "sessionmw_dash", None), ServerApps):
            state.sessionmw_dash = create
        apps = getattr(state, "sessionmw_dash", None)
    return apps if isinstance(apps, ServerApps) else None


def dash_state(app: dash.Dash) -> DashState | None:
    """sessionmw's :class:`DashState` for ``app``, or None when
    :class:`~sessionmw.integrations.dash.SessionMWDash` is not set up on it."""
    apps = server_apps(app.server)
    if apps is None:
        return None
    routes = app.config.routes_pathname_prefix or "/"
    ref = apps.apps.get(routes)
    return apps.states[routes] if ref is not None and ref() is app else None


@dataclasses.dataclass(frozen=True)
class DashRequest:
    """The request a Dash app serves now, whatever the backend (see :func:`current_request`)."""

    #: The backend serving it: one of :data:`BACKENDS`.
    backend: str
    #: The server (Flask, Quart or FastAPI app).
    server: Any
    #: The request's path.
    path: str
    #: Where the request's session and marks live: the WSGI environ (Flask) or the ASGI scope.
    marks: MutableMapping[str, Any]
    #: The request's query arguments (Dash's adapter's ``args``).
    args: Any

    @property
    def session(self) -> RequestSession | None:
        """The request's session, as the extension or middleware in front put it (or None)."""
        session = self.marks.get(ENVIRON_SESSION)
        return session if isinstance(session, RequestSession) else None

    @property
    def apps(self) -> ServerApps | None:
        """The Dash apps set up on the request's server."""
        return server_apps(self.server)


#: The callback run over a Dash websocket that the current code serves, as a :class:`DashRequest`
#: of its own (one user action: its own session admission and marks), or None. Set by
#: :mod:`sessionmw.integrations.dash_websocket` for each callback the websocket carries.
WEBSOCKET_ACTION: ContextVar[DashRequest | None] = ContextVar("sessionmw_dash_websocket_action", default=None)


def current_request() -> DashRequest | None:
    """The request being served, on Flask, Quart or FastAPI (or the callback run over a Dash
    websocket: :data:`WEBSOCKET_ACTION`); None outside a request."""
    action = WEBSOCKET_ACTION.get()
    if action is not None:
        return action
    if flask_has_request():
        from flask import current_app

        request = flask_request
        return DashRequest("flask", current_app, request.path, request.environ, request.args)
    quart = sys.modules.get("quart")  # not imported: no Quart request
    if quart is not None and quart.has_request_context():
        request = quart.request
        return DashRequest("quart", quart.current_app, request.path, request.scope, request.args)
    fastapi = sys.modules.get("dash.backends._fastapi")
    if fastapi is not None:
        try:
            starlette_request = fastapi.get_current_request()
        except RuntimeError:  # no Dash request on FastAPI
            return None
        scope = starlette_request.scope
        return DashRequest("fastapi", scope.get("app"), scope["path"], scope, starlette_request.query_params)
    return None


def request_dash_app() -> tuple[DashState | None, dash.Dash | None]:
    """The state and the app of the Dash app serving the current request (None, None outside one)."""
    current = current_request()
    apps = current.apps if current is not None else None
    if current is None or apps is None:
        return None, None
    return apps.for_path(current.path)
