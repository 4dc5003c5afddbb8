"""The Dash apps sessionmw is set up on: one :class:`DashState` per app, kept per Flask server.

Several Dash apps may share one Flask server (Dash's ``url_base_pathname`` pattern); a request
belongs to the app whose routes prefix is the longest that its path starts with.
"""

from __future__ import annotations

import dataclasses
import weakref

try:
    import dash
    from flask import Flask, current_app, has_request_context, request
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.dash needs Dash: pip install 'sessionmw[dash]'") from exc

from sessionmw._manager import SessionManager

__all__ = ["DASH_EXTENSION_KEY", "DashState", "ServerApps", "dash_state", "request_dash_app"]

#: ``app.server.extensions`` key of the Dash integration's record of the server's Dash apps
#: (read one app's :class:`DashState` with :func:`dash_state`).
DASH_EXTENSION_KEY = "sessionmw.dash"


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


class ServerApps:
    """The Dash apps set up on one Flask server (``server.extensions[DASH_EXTENSION_KEY]``)."""

    def __init__(self, owns_extension: bool) -> None:
        #: True when SessionMWDash installed the Flask extension (so it may add exclusions).
        self.owns_extension = owns_extension
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


def dash_state(app: dash.Dash) -> DashState | None:
    """sessionmw's :class:`DashState` for ``app``, or None when
    :class:`~sessionmw.integrations.dash.SessionMWDash` is not set up on it."""
    apps = app.server.extensions.get(DASH_EXTENSION_KEY) if isinstance(app.server, Flask) else None
    if not isinstance(apps, ServerApps):
        return None
    routes = app.config.routes_pathname_prefix or "/"
    ref = apps.apps.get(routes)
    return apps.states[routes] if ref is not None and ref() is app else None


def request_dash_app() -> tuple[DashState | None, dash.Dash | None]:
    """The state and the app of the Dash app serving the current request (None, None outside one)."""
    if not has_request_context():
        return None, None
    apps = current_app.extensions.get(DASH_EXTENSION_KEY)
    if not isinstance(apps, ServerApps):
        return None, None
    return apps.for_path(request.path)
