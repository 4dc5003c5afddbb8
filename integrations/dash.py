"""Dash integration: guarded callbacks, a session status banner, and work that survives a refresh.

.. code-block:: python

    app = Dash(__name__)
    app.layout = html.Div([status_banner(), my_page])
    SessionMWDash(app)  # installs the Flask extension on app.server

:class:`SessionMWDash` installs :class:`sessionmw.integrations.flask.SessionMW` on ``app.server``
(so each callback runs inside the request's session scope), registers the banner's callbacks
and, with ``guard_all=True``, guards every callback through Dash's own ``on_error`` handler.
:func:`guarded_callback` guards one callback: an exception becomes a friendly alert (title,
message, numbered recovery steps) instead of Dash's error, and is recorded on the session.

The banner polls ``GET /_sessionmw/health`` from the browser (a clientside callback): every
Dash callback is a POST that counts as activity, so a server-side poll would keep sessions alive
forever. Its Reconnect button posts to ``/_sessionmw/reconnect`` the same way, without a reload.
A Dash request refused because the session expired or disconnected updates the banner at once.

This module is the extension; the banner (layout, looks, its JavaScript) is
:mod:`sessionmw.integrations.dash_banner`, guarded callbacks are
:mod:`sessionmw.integrations.dash_callbacks`, and the per-app state is
:mod:`sessionmw.integrations.dash_apps`: import their names from there (one path per name).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Sequence
from typing import Any

try:
    import dash
    from dash import html
    from flask import Flask, request
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.dash needs Dash: pip install 'sessionmw[dash]'") from exc

from sessionmw._manager import SessionManager
from sessionmw.integrations.dash_apps import DASH_EXTENSION_KEY, DashState, ServerApps, dash_state
from sessionmw.integrations.dash_banner import (
    STATUS_ID,
    check_theme,
    refusal_in_banner,
    register_banner_callbacks,
    resolve_theme,
    speak,
    status_banner,
)
from sessionmw.integrations.dash_callbacks import (
    guard_all_callbacks,
    mark_background_requests,
)
from sessionmw.integrations.flask import EXTENSION_KEY, SessionMW, SessionMWState

__all__ = ["SessionMWDash", "dash_static_paths", "preserve"]


def preserve(component: Any, storage: str = "local") -> Any:
    """Keep ``component``'s value in the browser (Dash persistence) so a refresh loses nothing.

    Returns the component. ``storage`` is ``"local"`` (survives closing the tab), ``"session"``
    or ``"memory"``.

    :raises ValueError: for another storage, or a component without an ``id``.
    """
    if storage not in ("local", "session", "memory"):
        raise ValueError(f"storage must be 'local', 'session' or 'memory', not {storage!r}")
    if getattr(component, "id", None) is None:
        raise ValueError(f"{type(component).__name__} needs an id to be preserved across refreshes")
    component.persistence = True
    component.persistence_type = storage
    return component


class SessionMWDash:
    """Sessions, the status banner and guarded callbacks for a Dash app.

    Several Dash apps on one Flask server (Dash's ``url_base_pathname`` pattern) each get
    their own set-up; they share the server's Flask extension.

    :param app: the Dash app to set up now; or call :meth:`init_app` later.
    :param manager: the session manager; by default the Flask extension builds one from
        ``app.server.config``'s ``SESSIONMW_*`` keys and the environment.
    :param guard_all: guard every callback of the app at once (Dash's app-level ``on_error``):
        an exception is recorded on the session and shown as the friendly alert; the app's own
        ``on_error`` runs after it. In debug mode (dev tools UI) an exception it does not handle
        is raised again for the dev tools.
    :param theme: the banner's look (:data:`THEMES`): ``auto`` (default) uses Bootstrap's
        classes when dash-bootstrap-components is installed and the app loads a Bootstrap
        stylesheet, plain CSS otherwise.
    :param options: passed to :class:`~sessionmw.integrations.flask.SessionMW` (``cookie_name``,
        ``prefix``, ``secret_key``, ...).
    """

    def __init__(
        self,
        app: dash.Dash | None = None,
        *,
        manager: SessionManager | None = None,
        guard_all: bool = False,
        theme: str = "auto",
        **options: Any,
    ) -> None:
        self._manager = manager
        self._guard_all = guard_all
        self._theme = check_theme(theme)
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: dash.Dash) -> DashState:
        """Install the Flask extension on ``app.server`` (unless there already) and the banner's callbacks.

        :raises RuntimeError: if sessionmw's Dash integration is already set up on ``app``.
        :raises TypeError: if ``app`` is not served by Flask.
        :raises ValueError: if ``manager`` is not the one of the extension already on the server.
        """
        server = app.server
        if not isinstance(server, Flask):
            raise TypeError(f"SessionMWDash needs a Dash app served by Flask, not by {type(server).__name__}")
        if dash_state(app) is not None:
            raise RuntimeError("SessionMWDash is already set up on this Dash app")
        apps = server.extensions.get(DASH_EXTENSION_KEY)
        if not isinstance(apps, ServerApps):
            apps = ServerApps(owns_extension=EXTENSION_KEY not in server.extensions)
            if apps.owns_extension:
                options = dict(self._options)
                exclude = options.pop("exclude", ())
                exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
                paths = (*exclude, *dash_static_paths(app))
                SessionMW(server, manager=self._manager, exclude=paths, **options)
            server.extensions[DASH_EXTENSION_KEY] = apps
            server.after_request(refusal_in_banner)
            server.before_request(mark_background_requests)
        flask_state: SessionMWState = server.extensions[EXTENSION_KEY]
        if self._manager is not None and self._manager is not flask_state.manager:
            raise ValueError(
                "app.server already has sessionmw with another manager: the apps of one server share one"
            )
        if apps.owns_extension:
            _exclude(flask_state, dash_static_paths(app))
        manager = flask_state.manager
        state = DashState(
            manager=manager,
            prefix=flask_state.gate.options.prefix,
            interval_seconds=manager.settings.health_check_interval_seconds,
            theme=resolve_theme(app, self._theme),
            routes_prefix=app.config.routes_pathname_prefix or "/",
        )
        apps.add(app, state)
        register_banner_callbacks(app)
        if self._guard_all:
            guard_all_callbacks(app)
        _install_layout_hook()
        server.before_request(_banner_keeper(app, state.routes_prefix))
        return state


def dash_static_paths(app: dash.Dash) -> tuple[str, ...]:
    """The paths Dash loads a page with (layout, dependencies, scripts, assets, favicon, health).

    :class:`SessionMWDash` excludes them from session tracking: they are not user activity, and a
    disconnected session must still be able to load the page that shows its banner. Pass them as
    ``exclude=`` if you install :class:`~sessionmw.integrations.flask.SessionMW` yourself.
    """
    prefix = app.config.routes_pathname_prefix or "/"
    assets = str(app.config.assets_url_path or "assets").strip("/")
    names = ["_dash-layout", "_dash-dependencies", "_dash-component-suites/", "_reload-hash", "_favicon.ico"]
    health = app.config.get("health_endpoint")
    if isinstance(health, str) and health.strip("/"):
        names.append(health.strip("/"))
    return (*(prefix + name for name in names), f"{prefix}{assets}/")


def _exclude(flask_state: SessionMWState, paths: Sequence[str]) -> None:
    """Add ``paths`` to the exclusions of the Flask extension's gate (shared by a server's apps)."""
    gate = flask_state.gate
    new = tuple(path for path in paths if path not in gate.options.exclude)
    if new:
        gate.options = dataclasses.replace(gate.options, exclude=(*gate.options.exclude, *new))


def _install_layout_hook() -> None:
    """Register the Dash layout hook that configures or adds the banner, unless it is registered.

    Checked at every set-up and before a layout is served: tests (Dash's own among them) reset
    ``dash.hooks``, and the banner must not lose its configuration then.
    """
    if not any(hook.func is _layout_hook for hook in dash.hooks.get_hooks("layout")):
        dash.hooks.layout()(_layout_hook)


def _banner_keeper(app: dash.Dash, routes_prefix: str) -> Callable[[], None]:
    """A ``before_request`` function for ``app``: keep the layout hook and the validation layout.

    Dash checks the callbacks' ids against ``app.validation_layout`` when there is one (a layout
    function, ``use_pages=True``, or one set by the app); the banner's components are added to
    it (once per validation layout object), so that the banner's callbacks are valid.
    """
    app_ref = weakref.ref(app)
    layout_path = routes_prefix + "_dash-layout"
    checked: list[Any] = [None]  # the last validation layout seen with the banner

    def keep_banner() -> None:
        path = request.path
        if not path.startswith(routes_prefix):
            return
        if path == layout_path:
            _install_layout_hook()
        target = app_ref()
        if target is None:
            return
        validation = target.validation_layout
        if validation is None or validation is checked[0] or target.config.suppress_callback_exceptions:
            return
        if _find(validation, STATUS_ID) is None:
            children = list(validation) if isinstance(validation, list | tuple) else [validation]
            validation = html.Div([*children, status_banner()])
            target.validation_layout = validation
        checked[0] = validation

    return keep_banner


def _layout_hook(layout: Any) -> Any:
    """Fill the banner's interval, prefix and theme from the app's settings and its words in the
    request's language; add the banner if missing.

    Apps without :class:`SessionMWDash` are returned unchanged. A list layout stays a list (the
    banner first), so that layout hooks that run after this one get the kind they were given.
    """
    get_app: Callable[[], dash.Dash] = dash.get_app  # untyped in Dash
    try:
        app = get_app()
    except dash.exceptions.AppNotFoundError:
        return layout
    state = dash_state(app)
    if state is None:
        return layout
    root = _find(layout, STATUS_ID)
    if root is None:
        root = status_banner()
        layout = [root, *layout] if isinstance(layout, list) else html.Div([root, layout])
    interval, _store, config = root.children[:3]
    if not config.data.get("theme_fixed") and config.data.get("theme") != state.theme:
        fixed = config.data.get("fixed")
        seconds = interval.interval / 1000 if fixed else None
        root.children = status_banner(interval_seconds=seconds, theme=state.theme).children
        interval, _store, config = root.children[:3]
        config.data = {**config.data, "theme_fixed": False}
    if not config.data.get("fixed"):
        interval.interval = int(state.interval_seconds * 1000)
    config.data = {**config.data, "prefix": state.prefix}
    speak(root)  # in the language of the browser that asked for the page
    return layout


def _find(component: Any, component_id: str) -> Any:
    """The component with ``component_id`` in a layout tree, or None."""
    stack: list[Any] = list(component) if isinstance(component, Sequence) else [component]
    while stack:
        node = stack.pop()
        if getattr(node, "id", None) == component_id:
            return node
        children = getattr(node, "children", None)
        if isinstance(children, list | tuple):
            stack.extend(children)
        elif children is not None and hasattr(children, "to_plotly_json"):
            stack.append(children)
    return None
