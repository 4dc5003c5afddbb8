"""Dash integration: guarded callbacks, a session status banner, and work that survives a refresh.

.. code-block:: python

    app = Dash(__name__)
    app.layout = html.Div([status_banner(), my_page])
    SessionMWDash(app)  # sessions on app.server, whichever backend serves it

:class:`SessionMWDash` installs sessions on ``app.server`` by the app's Dash backend (Flask:
:class:`sessionmw.integrations.flask.SessionMW`; Quart:
:class:`sessionmw.integrations.quart.SessionMWQuart`; FastAPI: the ASGI
:class:`sessionmw.integrations.asgi.SessionMiddleware`), so each callback runs inside the
request's session scope; it registers the banner's callbacks and, with ``guard_all=True``,
guards every callback through Dash's own ``on_error`` handler. Callbacks over Dash's websocket
(Quart, FastAPI) are user actions too: :mod:`sessionmw.integrations.dash_websocket`.
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

import copy
import dataclasses
import weakref
from collections.abc import Callable, Sequence
from typing import Any

try:
    import dash
    from dash import html
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.dash needs Dash: pip install 'sessionmw[dash]'") from exc

from sessionmw._manager import SessionManager, get_session_manager
from sessionmw.integrations.dash_apps import (
    DashState,
    ServerApps,
    backend_of,
    current_request,
    dash_state,
    server_apps,
)
from sessionmw.integrations.dash_banner import (
    STATUS_ID,
    BannerRefusals,
    arefusal_in_banner,
    check_theme,
    refusal_in_banner,
    register_banner_callbacks,
    resolve_theme,
    speak,
    status_banner,
)
from sessionmw.integrations.dash_callbacks import (
    CallbackErrors,
    amark_background_requests,
    guard_all_callbacks,
    mark_background_requests,
)
from sessionmw.integrations.dash_websocket import install_websocket_hooks
from sessionmw.integrations.flask import EXTENSION_KEY

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

    Several Dash apps on one server (Dash's ``url_base_pathname`` pattern) each get their own
    set-up; they share the server's extension (Flask, Quart) or middleware (FastAPI).

    :param app: the Dash app to set up now; or call :meth:`init_app` later.
    :param manager: the session manager; by default the Flask or Quart extension builds one from
        ``app.server.config``'s ``SESSIONMW_*`` keys and the environment; on FastAPI (no config),
        the process default (:func:`sessionmw.get_session_manager`).
    :param guard_all: guard every callback of the app at once (Dash's app-level ``on_error``):
        an exception is recorded on the session and shown as the friendly alert; the app's own
        ``on_error`` runs after it. In debug mode (dev tools UI) an exception it does not handle
        is raised again for the dev tools.
    :param theme: the banner's look (:data:`THEMES`): ``auto`` (default) uses Bootstrap's
        classes when dash-bootstrap-components is installed and the app loads a Bootstrap
        stylesheet, plain CSS otherwise.
    :param options: passed to the server's extension or middleware (``cookie_name``, ``prefix``,
        ``secret_key``, ``exclude``, ...).
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
        """Set sessions up on ``app.server`` (unless there already) and the banner's callbacks.

        By ``app``'s Dash backend: on Flask the Flask extension
        (:class:`~sessionmw.integrations.flask.SessionMW`), on Quart the Quart extension
        (:class:`~sessionmw.integrations.quart.SessionMWQuart`), on FastAPI the ASGI
        :class:`~sessionmw.integrations.asgi.SessionMiddleware` (outside Dash's own middleware, so
        the health and reconnect endpoints answer before Dash's catch-all route).

        :raises RuntimeError: if sessionmw's Dash integration is already set up on ``app``.
        :raises TypeError: if ``app``'s backend is not one Dash offers (Flask, Quart, FastAPI).
        :raises ValueError: if ``manager`` is not the one of the extension already on the server.
        """
        backend = backend_of(app)
        if dash_state(app) is not None:
            raise RuntimeError("SessionMWDash is already set up on this Dash app")
        server = app.server
        apps = server_apps(server)
        if apps is None:
            apps = _ATTACH[backend](self, app)
            server_apps(server, create=apps)
        gate = apps.gate
        if self._manager is not None and gate is not None and self._manager is not gate.manager:
            raise ValueError(
                "app.server already has sessionmw with another manager: the apps of one server share one"
            )
        if apps.owns_extension and gate is not None:
            _exclude(gate, dash_static_paths(app))
        manager = gate.manager if gate is not None else self._manager
        if manager is None:  # pragma: no cover - every attach path knows its manager
            raise RuntimeError("SessionMWDash found no session manager on app.server")
        state = DashState(
            manager=manager,
            prefix=gate.options.prefix if gate is not None else "/_sessionmw/",
            interval_seconds=manager.settings.health_check_interval_seconds,
            theme=resolve_theme(app, self._theme),
            routes_prefix=app.config.routes_pathname_prefix or "/",
            backend=backend,
        )
        apps.add(app, state)
        register_banner_callbacks(app)
        if self._guard_all:
            guard_all_callbacks(app)
        _install_layout_hook()
        keeper = _banner_keeper(app, state.routes_prefix)
        if backend == "flask":
            server.before_request(keeper)
        else:  # Quart: a Quart hook; FastAPI: Dash's middleware runs it for the app's Dash routes
            app.backend.before_request(keeper)
        if backend == "fastapi":  # each app's Dash middleware serves its own routes
            app.backend.before_request(mark_background_requests)
        if backend != "flask":  # Dash carries callbacks over a websocket on Quart and FastAPI only
            install_websocket_hooks()
        return state

    def _attach_flask(self, app: dash.Dash) -> ServerApps:
        """The Flask extension on ``app.server`` (unless the app installed it) and the banner's hooks."""
        from sessionmw.integrations.flask import SessionMW, SessionMWState

        server = app.server
        owns = EXTENSION_KEY not in server.extensions
        if owns:
            SessionMW(server, manager=self._manager, exclude=self._exclusions(app), **self._plain_options())
        flask_state: SessionMWState = server.extensions[EXTENSION_KEY]
        server.after_request(refusal_in_banner)
        server.before_request(mark_background_requests)
        return ServerApps(owns_extension=owns, gate=flask_state.gate)

    def _attach_quart(self, app: dash.Dash) -> ServerApps:
        """The Quart extension on ``app.server`` (unless the app installed it) and the banner's hooks."""
        from sessionmw.integrations.quart import SessionMWQuart

        server = app.server
        owns = EXTENSION_KEY not in server.extensions
        if owns:
            SessionMWQuart(
                server, manager=self._manager, exclude=self._exclusions(app), **self._plain_options()
            )
        state = server.extensions[EXTENSION_KEY]
        server.after_request(arefusal_in_banner)
        server.before_request(amark_background_requests)
        return ServerApps(owns_extension=owns, gate=state.gate)

    def _attach_fastapi(self, app: dash.Dash) -> ServerApps:
        """The ASGI ``SessionMiddleware`` around ``app.server``'s routes (and Dash's middleware),
        the banner's refusal rewrite outside it, and the background-callback marking as a Dash
        ``before_request`` hook."""
        from sessionmw.integrations.asgi import SessionMiddleware

        server = app.server
        options = self._plain_options()
        manager = self._manager if self._manager is not None else get_session_manager()
        # Built now, so that its gate is known (and later apps of the server add their exclusions
        # to it); Starlette builds its middleware stack when the server starts, around the routes.
        middleware = SessionMiddleware(_unbound, manager=manager, exclude=self._exclusions(app), **options)

        def session_middleware(inner: Any) -> Any:
            middleware.app = inner
            return middleware

        server.add_middleware(session_middleware)
        server.add_middleware(BannerRefusals, cookie_name=middleware.gate.options.cookie_name)
        # Innermost, inside Dash's own middleware (which answers callback exceptions itself):
        # Starlette's list of user middleware, outermost first; add_middleware puts one first.
        from starlette.middleware import Middleware

        server.user_middleware.append(Middleware(CallbackErrors, gate=middleware.gate))
        return ServerApps(owns_extension=True, gate=middleware.gate)

    def _plain_options(self) -> dict[str, Any]:
        options = dict(self._options)
        options.pop("exclude", None)
        return options

    def _exclusions(self, app: dash.Dash) -> tuple[str, ...]:
        exclude = self._options.get("exclude", ())
        exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        return (*exclude, *dash_static_paths(app))


_ATTACH: dict[str, Callable[[SessionMWDash, dash.Dash], ServerApps]] = {
    "flask": SessionMWDash._attach_flask,
    "quart": SessionMWDash._attach_quart,
    "fastapi": SessionMWDash._attach_fastapi,
}


async def _unbound(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - replaced at start
    raise RuntimeError("sessionmw's SessionMiddleware was called before the server started")


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


def _exclude(gate: Any, paths: Sequence[str]) -> None:
    """Add ``paths`` to the exclusions of the server's gate (shared by a server's apps)."""
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
        current = current_request()
        path = current.path if current is not None else ""
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
    owned = _with_own_banner(layout)
    if owned is None:
        root = status_banner()
        layout = [root, *layout] if isinstance(layout, list) else html.Div([root, layout])
    else:  # the app's own banner: this page load's copy (the layout is shared by every load)
        layout, root = owned
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


def _with_own_banner(layout: Any) -> tuple[Any, Any] | None:
    """``layout`` with its banner (:data:`STATUS_ID`) copied for one page load, and that copy; None
    when it has none. The banner is copied whole and its ancestors shallowly (their other children
    are the app's, shared and left alone), so that what the layout hook writes in it (the words
    of the browser that asked) never reaches another load of the same layout."""
    if isinstance(layout, list | tuple):
        for index, child in enumerate(layout):
            found = _with_own_banner(child)
            if found is not None:
                copied = list(layout)
                copied[index] = found[0]
                return (copied if isinstance(layout, list) else tuple(copied)), found[1]
        return None
    if getattr(layout, "id", None) == STATUS_ID:
        own = copy.deepcopy(layout)
        return own, own
    children = getattr(layout, "children", None)
    if isinstance(children, list | tuple) or (children is not None and hasattr(children, "to_plotly_json")):
        found = _with_own_banner(children)
        if found is not None:
            parent = copy.copy(layout)
            parent.children = found[0]
            return parent, found[1]
    return None


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
