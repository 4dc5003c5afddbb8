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
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast, overload

try:
    import dash
    from dash import dcc, html
    from flask import Flask, current_app, has_request_context, request
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.dash needs Dash: pip install 'sessionmw[dash]'") from exc

from sessionmw import signals
from sessionmw.context import current_manager, current_session_id
from sessionmw.health import HealthReport
from sessionmw.integrations.flask import EXTENSION_KEY, SessionMW, SessionMWState
from sessionmw.integrations.wsgi import ENVIRON_SESSION, RequestSession
from sessionmw.manager import SessionManager
from sessionmw.translation import UserFacingError, translate

__all__ = [
    "ALERT_ID",
    "BANNER_ID",
    "DASH_EXTENSION_KEY",
    "HEALTH_STORE_ID",
    "POLL_ID",
    "RECONNECT_ID",
    "STYLES",
    "THEMES",
    "DashState",
    "SessionMWDash",
    "dash_state",
    "dash_static_paths",
    "error_alert",
    "guarded_callback",
    "handle_callback_error",
    "preserve",
    "status_banner",
    "uses_bootstrap_css",
]

_log = logging.getLogger("sessionmw.dash")

#: The id of the status banner (the visible box).
BANNER_ID = "sessionmw-banner"
#: The ``dcc.Store`` holding the latest health report the browser received.
HEALTH_STORE_ID = "sessionmw-health"
#: The ``dcc.Interval`` that paces the health polls.
POLL_ID = "sessionmw-poll"
#: The banner's Reconnect button.
RECONNECT_ID = "sessionmw-reconnect"
#: The friendly alert guarded callbacks fill when they fail.
ALERT_ID = "sessionmw-alert"
#: ``app.server.extensions`` key of the Dash integration's record of the server's Dash apps
#: (read one app's :class:`DashState` with :func:`dash_state`).
DASH_EXTENSION_KEY = "sessionmw.dash"

_ROOT_ID = "sessionmw-status"
_CONFIG_ID = "sessionmw-config"
_ALERT_BODY_ID = "sessionmw-alert-body"
_ALERT_CLOSE_ID = "sessionmw-alert-close"
_PARTS = ("icon", "title", "message", "steps", "context")
_RECORDED = "sessionmw.dash.recorded"  # environ key: an error was recorded on the request's session

F = TypeVar("F", bound=Callable[..., Any])

# -- look -------------------------------------------------------------------------------------

_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
#: Inline styles (plain CSS, no framework needed); override with the ``sessionmw-*`` classes.
STYLES: dict[str, dict[str, str]] = {
    "banner": {
        "fontFamily": _FONT,
        "border": "1px solid",
        "borderLeftWidth": "6px",
        "borderRadius": "6px",
        "padding": "12px 16px",
        "margin": "0 0 16px 0",
        "lineHeight": "1.4",
    },
    "idle": {"background": "#eef5ff", "borderColor": "#3b82f6", "color": "#1e3a8a"},
    "error": {"background": "#fff7e6", "borderColor": "#f59e0b", "color": "#78350f"},
    "disconnected": {"background": "#fdecec", "borderColor": "#dc2626", "color": "#7f1d1d"},
    "expired": {"background": "#f3f4f6", "borderColor": "#6b7280", "color": "#111827"},
    "not_found": {"background": "#f3f4f6", "borderColor": "#6b7280", "color": "#111827"},
    "alert": {
        "fontFamily": _FONT,
        "background": "#fdecec",
        "border": "1px solid #dc2626",
        "borderLeftWidth": "6px",
        "borderRadius": "6px",
        "color": "#7f1d1d",
        "padding": "12px 16px",
        "margin": "0 0 16px 0",
        "position": "relative",
    },
    "button": {
        "fontFamily": _FONT,
        "background": "#dc2626",
        "color": "white",
        "border": "none",
        "borderRadius": "4px",
        "padding": "6px 14px",
        "cursor": "pointer",
        "fontWeight": "600",
    },
    "close": {
        "position": "absolute",
        "top": "6px",
        "right": "10px",
        "background": "transparent",
        "border": "none",
        "fontSize": "18px",
        "cursor": "pointer",
        "color": "inherit",
    },
}
_HIDDEN = {"display": "none"}

#: The banner's looks: ``plain`` (the inline :data:`STYLES`), ``bootstrap`` (Bootstrap's
#: ``alert`` and ``btn`` classes, with dash-bootstrap-components' button when it is installed),
#: and ``auto``: ``bootstrap`` when dash-bootstrap-components is installed and the app loads a
#: Bootstrap stylesheet, else ``plain``.
THEMES = ("auto", "plain", "bootstrap")
#: Bootstrap's alert colour for each health status the banner shows.
_BOOTSTRAP_COLORS = {
    "idle": "info",
    "error": "warning",
    "disconnected": "danger",
    "expired": "secondary",
    "not_found": "secondary",
}


def _check_theme(theme: str) -> str:
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {', '.join(map(repr, THEMES))}, not {theme!r}")
    return theme


def _bootstrap_installed() -> bool:
    return importlib.util.find_spec("dash_bootstrap_components") is not None


def uses_bootstrap_css(app: dash.Dash) -> bool:
    """True when one of ``app``'s external stylesheets is Bootstrap (or a Bootswatch theme).

    ``dash_bootstrap_components.themes`` are such stylesheets; so is any URL naming bootstrap.
    """
    for sheet in app.config.external_stylesheets or ():
        href = sheet.get("href", "") if isinstance(sheet, dict) else str(sheet)
        if "bootstrap" in href.lower() or "bootswatch" in href.lower():
            return True
    return False


def _resolve_theme(app: dash.Dash, theme: str) -> str:
    """``plain`` or ``bootstrap`` for ``app`` (see :data:`THEMES`)."""
    if theme == "auto":
        theme = "bootstrap" if _bootstrap_installed() and uses_bootstrap_css(app) else "plain"
    if theme == "bootstrap" and _bootstrap_installed():
        # Imported now, so that Dash serves its scripts with the app's first page (the banner's
        # dash-bootstrap-components button only appears when the layout is served).
        import dash_bootstrap_components  # noqa: F401
    return theme


# -- layout -----------------------------------------------------------------------------------


def status_banner(
    *, interval_seconds: float | None = None, prefix: str | None = None, theme: str | None = None
) -> html.Div:
    """The session status banner and the guarded-callback alert, as one layout component.

    Hidden while the session is healthy; for idle, error, disconnected, expired and not_found it
    shows the health report's icon, message and recovery steps (and Reconnect when disconnected).
    Left at None, ``interval_seconds`` (``HEALTH_CHECK_INTERVAL_SECONDS``), ``prefix`` (the
    endpoints' path) and ``theme`` (see :data:`THEMES`; ``plain`` or ``bootstrap``) are filled in
    by :class:`SessionMWDash` from the app's settings.

    :raises ValueError: if ``interval_seconds`` is not positive, or ``theme`` is unknown.
    """
    if interval_seconds is not None and not interval_seconds > 0:
        raise ValueError(f"interval_seconds must be a positive number of seconds, not {interval_seconds!r}")
    if theme is not None and _check_theme(theme) == "auto":
        theme = None
    seconds = 30.0 if interval_seconds is None else float(interval_seconds)
    look = theme or "plain"
    config = {
        "prefix": prefix or "/_sessionmw/",
        "styles": STYLES,
        "fixed": interval_seconds is not None,
        "theme": look,
        "theme_fixed": theme is not None,
    }
    bootstrap = look == "bootstrap"
    banner = html.Div(
        id=BANNER_ID,
        className="sessionmw-banner",
        role="status",
        style=_HIDDEN,
        children=[
            html.Span(id=f"{BANNER_ID}-icon", className="sessionmw-icon", style={"marginRight": "8px"}),
            html.Strong(id=f"{BANNER_ID}-title", className="sessionmw-title"),
            html.Span(" — "),
            html.Span(id=f"{BANNER_ID}-message", className="sessionmw-message"),
            html.Ol(id=f"{BANNER_ID}-steps", className="sessionmw-steps", style={"margin": "8px 0"}),
            html.P(id=f"{BANNER_ID}-context", className="sessionmw-context", style={"margin": "4px 0"}),
            _reconnect_button(bootstrap),
        ],
    )
    if bootstrap:
        close = html.Button(
            id=_ALERT_CLOSE_ID,
            title="Dismiss",
            className="btn-close",
            style={"position": "absolute", "top": "12px", "right": "12px"},
        )
    else:
        close = html.Button("×", id=_ALERT_CLOSE_ID, title="Dismiss", style=STYLES["close"])
    alert = html.Div(
        id=ALERT_ID,
        className="sessionmw-alert alert alert-danger" if bootstrap else "sessionmw-alert",
        role="alert",
        style=_HIDDEN,
        children=[close, html.Div(id=_ALERT_BODY_ID)],
    )
    return html.Div(
        id=_ROOT_ID,
        children=[
            dcc.Interval(id=POLL_ID, interval=int(seconds * 1000)),
            dcc.Store(id=HEALTH_STORE_ID),
            dcc.Store(id=_CONFIG_ID, data=config),
            banner,
            alert,
        ],
    )


def _reconnect_button(bootstrap: bool) -> Any:
    """The banner's Reconnect button: dash-bootstrap-components' when themed and installed."""
    if bootstrap and _bootstrap_installed():
        import dash_bootstrap_components as dbc

        return dbc.Button(
            "Reconnect",
            id=RECONNECT_ID,
            color="danger",
            size="sm",
            className="sessionmw-reconnect",
            style=_HIDDEN,
        )
    if bootstrap:
        return html.Button(
            "Reconnect", id=RECONNECT_ID, className="sessionmw-reconnect btn btn-danger btn-sm", style=_HIDDEN
        )
    return html.Button("Reconnect", id=RECONNECT_ID, className="sessionmw-reconnect", style=_HIDDEN)


def error_alert(err: UserFacingError) -> list[Any]:
    """The children of the friendly alert for ``err``: title, message, numbered steps, context.

    The exception's own text appears only when ``err`` was built in debug mode.
    """
    children: list[Any] = [
        html.Strong(err.title, className="sessionmw-alert-title"),
        html.P(err.message, className="sessionmw-alert-message", style={"margin": "4px 0"}),
    ]
    if err.recovery:
        children.append(html.Ol([html.Li(step) for step in err.recovery], className="sessionmw-alert-steps"))
    if err.context:
        children.append(html.P(err.context, className="sessionmw-alert-context", style={"margin": "4px 0"}))
    if err.detail:
        children.append(
            html.Pre(err.detail, className="sessionmw-alert-detail", style={"whiteSpace": "pre-wrap"})
        )
    return children


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


# -- guarding ---------------------------------------------------------------------------------


def _gate_session() -> tuple[SessionMWState | None, RequestSession | None]:
    """The Flask extension's state and the request's session, when inside a request."""
    if not has_request_context():
        return None, None
    state = current_app.extensions.get(EXTENSION_KEY)
    session = request.environ.get(ENVIRON_SESSION)
    return (
        state if isinstance(state, SessionMWState) else None,
        session if isinstance(session, RequestSession) else None,
    )


def _show(err: UserFacingError, report: HealthReport | None) -> None:
    """Fill the alert (and the banner's report) of the page that made the request."""
    state, _app = _request_state()
    bootstrap = state is not None and state.theme == "bootstrap"
    dash.set_props(_ALERT_BODY_ID, {"children": error_alert(err)})
    if bootstrap:  # class and style together, so the alert never ends up with neither look
        dash.set_props(
            ALERT_ID, {"style": {"position": "relative"}, "className": "sessionmw-alert alert alert-danger"}
        )
    else:
        dash.set_props(ALERT_ID, {"style": STYLES["alert"], "className": "sessionmw-alert"})
    if report is not None:
        data = dict(report)
        if report.status == "expired":
            data["sticky"] = True  # stays on screen until the page is refreshed
        dash.set_props(HEALTH_STORE_ID, {"data": data})


def _health_now(manager: SessionManager | None, session_id: str | None) -> HealthReport | None:
    if manager is None or session_id is None:
        return None
    try:
        return manager.check_health(session_id)
    except Exception:
        _log.exception("could not check the session's health")
        return None


def _refusal() -> tuple[UserFacingError, HealthReport | None] | None:
    """Why the current request's session may not run a callback now, and the report the banner
    shows; None when it may.

    The core decides (:meth:`~sessionmw.SessionManager.touch_or_report`): the gate did for the
    request (its :attr:`~sessionmw.integrations.gate.RequestSession.refusal`); in a session scope
    without the gate, the callback is admitted here, as ``@guarded`` admits a call.
    """
    _, session = _gate_session()
    if session is not None:
        refusal = session.refusal
        return None if refusal is None else (UserFacingError.from_health(refusal), refusal)
    manager, session_id = current_manager(), current_session_id()
    if manager is None or session_id is None:
        return None
    try:
        _record, refusal = manager.touch_or_report(session_id)
    except Exception:
        _log.exception("could not check the session's health")
        return None
    return None if refusal is None else (UserFacingError.from_health(refusal), None)


def handle_callback_error(exc: Exception) -> None:
    """Record ``exc`` on the current session and show the user a friendly alert instead of it.

    Usable as Dash's ``on_error`` handler (the callback's outputs are then left unchanged). An
    error that ``@guarded`` code inside the callback already recorded is not recorded twice.
    """
    state, session = _gate_session()
    manager = state.manager if state is not None else current_manager()
    session_id = session.id if session is not None else current_session_id()
    recorded = session is not None and _RECORDED in request.environ
    if state is not None and not recorded:
        err = state.gate.fail(session, exc)  # logs, records on the session, translates
    else:
        _log.error("callback failed", exc_info=exc)
        if not recorded and manager is not None and session_id is not None:
            try:
                manager.record_error(session_id, exc)
            except Exception:
                _log.exception("could not record the error on the session")
        if session is not None:
            session.failed = True  # the response must not count as a success
        debug = manager.settings.debug if manager is not None else False
        err = translate(exc, debug=debug)
    _show(err, _health_now(manager, session_id))


def _note_recorded_error(sender: Any, session_id: str | None = None, **_: Any) -> None:
    """``signals.error_recorded``: mark the request whose session got an error (e.g. from ``@guarded``
    code in a callback), so that its callback's failure is not recorded a second time."""
    if session_id is None or not has_request_context():
        return
    environ = request.environ
    session = environ.get(ENVIRON_SESSION)
    if isinstance(session, RequestSession) and session.id == session_id:
        environ[_RECORDED] = True


# Connected once, for every app (and for handle_callback_error used as a plain on_error handler).
signals.error_recorded.connect(_note_recorded_error)


@overload
def guarded_callback(func: F, /) -> F: ...


@overload
def guarded_callback(
    *args: Any,
    app: dash.Dash | None = None,
    retry: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    clears_alert: bool = True,
    on_error: Callable[[Exception], Any] | None = None,
    **kwargs: Any,
) -> Callable[[F], F]: ...


def guarded_callback(
    *args: Any,
    app: dash.Dash | None = None,
    retry: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    clears_alert: bool = True,
    on_error: Callable[[Exception], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """A Dash callback that fails gracefully: bare beneath ``@app.callback(...)``, or registering it.

    Two forms. Bare (or with only the options below), beneath an existing ``@app.callback(...)``
    or ``@dash.callback(...)`` line, it guards the function and registers nothing. Given the
    callback's arguments (those of ``dash.callback``), it registers the callback: on ``app`` when
    given, else with ``dash.callback`` (every app picks it up).

    - It does not run when the session is expired or disconnected: the alert says why.
    - An exception is recorded on the session and shown as a friendly alert; outputs keep
      their values. ``PreventUpdate`` passes through. The guard is the callback's error handler,
      so, as with Dash's per-callback ``on_error``, the app-level ``on_error`` does not run.
    - ``on_error``: your own handler, called after the alert with the exception; what it returns
      becomes the callback's outputs, as with Dash's ``on_error`` (None: outputs unchanged).
    - In debug mode (Dash's dev tools UI on) an exception no handler of yours takes is recorded
      and raised again, so the dev tools show it with its traceback.
    - ``retry``: opt-in, a :class:`~sessionmw.retry.RetryStrategy` (or any decorator) applied to
      the whole callback. A callback is a POST and may have side effects, so none by default;
      prefer ``@guarded(retry=...)`` on the backend calls that only read.
    - ``clears_alert``: hide a previous alert when this callback succeeds.

    :raises ValueError: if ``app`` is given without the callback's arguments (nothing to register).
    """
    if len(args) == 1 and not kwargs and _is_callback_function(args[0]):
        if app is not None:
            raise ValueError("guarded_callback(app=...) registers a callback: give its Output and Input too")
        return _guard(args[0], retry=retry, clears_alert=clears_alert, on_error=on_error)
    registers = bool(args or kwargs)
    if app is not None and not registers:
        raise ValueError("guarded_callback(app=...) registers a callback: give its Output and Input too")

    def decorate(func: F) -> F:
        wrapper = _guard(func, retry=retry, clears_alert=clears_alert, on_error=on_error)
        if registers:
            register = app.callback if app is not None else dash.callback
            register(*args, **kwargs)(wrapper)
        return wrapper

    return decorate


def _is_callback_function(candidate: Any) -> bool:
    """True for the function of a bare ``@guarded_callback`` (not a Dash dependency or a list of them)."""
    return callable(candidate) and not isinstance(candidate, dash.dependencies.DashDependency)


def _guard(
    func: F,
    *,
    retry: Callable[[Callable[..., Any]], Callable[..., Any]] | None,
    clears_alert: bool,
    on_error: Callable[[Exception], Any] | None,
) -> F:
    """``func`` with the session check, the friendly alert and ``on_error`` chained after it."""
    target: Callable[..., Any] = retry(func) if retry is not None else func

    @functools.wraps(func)
    def wrapper(*call_args: Any, **call_kwargs: Any) -> Any:
        refused = _refusal()
        if refused is not None:
            _show(*refused)
            return _unchanged()
        try:
            result = target(*call_args, **call_kwargs)
        except dash.exceptions.PreventUpdate:
            raise
        except Exception as exc:
            handle_callback_error(exc)
            if on_error is not None:
                value = on_error(exc)
                return _unchanged() if value is None else value
            if _devtools_on(_request_app()):
                raise  # debug mode: Dash's dev tools show the exception and its traceback
            return _unchanged()
        if clears_alert:
            dash.set_props(ALERT_ID, {"style": _HIDDEN})
        return result

    return cast(F, wrapper)


def _unchanged() -> Any:
    """What a callback returns to leave its outputs alone: ``no_update``, or None without outputs."""
    context = dash.callback_context
    try:
        if context.using_outputs_grouping:
            return dash.no_update
        return dash.no_update if context.outputs_list else None
    except dash.exceptions.MissingCallbackContextException:  # called outside a Dash request
        return dash.no_update


def _devtools_on(app: dash.Dash | None) -> bool:
    """True when ``app`` shows callback errors in Dash's dev tools (``debug=True``, ``dev_tools_ui``)."""
    tools = getattr(app, "_dev_tools", None)
    return bool(tools is not None and tools.get("ui"))


# -- clientside -------------------------------------------------------------------------------

# Installed once per page: Dash requests refused because the session expired (401) or
# disconnected (503) put the server's report into the banner at once.
_FETCH_HOOK = """
if (!window.__sessionmwFetch) {
    window.__sessionmwFetch = true;
    const original = window.fetch.bind(window);
    window.fetch = async function (input, init) {
        const response = await original(input, init);
        const url = typeof input === "string" ? input : (input && input.url) || "";
        const refused = response.status === 401 || response.status === 503;
        if (refused && url.indexOf("_dash-update-component") >= 0) {
            try {
                const body = await response.clone().json();
                if (body && body.status && body.message) {
                    // an expired session stays on screen until the page is refreshed
                    const report = Object.assign({sticky: response.status === 401}, body);
                    window.dash_clientside.set_props("__STORE__", {data: report});
                }
            } catch (e) { /* not a sessionmw refusal */ }
        }
        return response;
    };
}
"""

_POLL = """
async function (n, current, config) {
    const prefix = (config && config.prefix) || "/_sessionmw/";
    __HOOK__
    if (current && current.sticky) { return window.dash_clientside.no_update; }
    try {
        const response = await fetch(prefix + "health", {
            credentials: "same-origin", cache: "no-store", headers: {Accept: "application/health+json"}
        });
        const body = await response.json();
        return body.session || window.dash_clientside.no_update;
    } catch (e) {
        return {status: "error", healthy: false, icon: "🔌", title: "Connection problem",
                message: "🔌 The server cannot be reached right now",
                recovery: ["Check your network connection.",
                           "Wait a moment: this page checks again by itself."],
                context: ""};
    }
}
""".replace("__HOOK__", _FETCH_HOOK.replace("__STORE__", HEALTH_STORE_ID))

_RECONNECT = """
async function (clicks, config) {
    const prefix = (config && config.prefix) || "/_sessionmw/";
    try {
        const response = await fetch(prefix + "reconnect", {
            method: "POST", credentials: "same-origin", cache: "no-store",
            headers: {Accept: "application/json"}
        });
        const body = await response.json();
        return body.session || window.dash_clientside.no_update;
    } catch (e) {
        return window.dash_clientside.no_update;
    }
}
"""

_RENDER = """
function (report, config) {
    const styles = (config && config.styles) || {};
    const bootstrap = Boolean(config && config.theme === "bootstrap");
    const hidden = {display: "none"};
    if (!report || report.healthy || report.status === "healthy") {
        return [hidden, "sessionmw-banner", "", "", "", [], "", hidden];
    }
    const status = report.status || "error";
    if (bootstrap) {
        const colors = __COLORS__;
        const steps = (report.recovery || []).map(function (step) {
            return {namespace: "dash_html_components", type: "Li", props: {children: step}};
        });
        const icon = report.icon || "";
        let message = report.message || "";
        if (icon && message.indexOf(icon) === 0) {
            message = message.slice(icon.length).trim();
        }
        const color = colors[status] || "secondary";
        return [{}, "sessionmw-banner sessionmw-" + status + " alert alert-" + color,
                icon, report.title || "", message, steps, report.context || "",
                status === "disconnected" ? {} : hidden];
    }
    const style = Object.assign({}, styles.banner || {}, styles[status] || {});
    const steps = (report.recovery || []).map(function (step) {
        return {namespace: "dash_html_components", type: "Li", props: {children: step}};
    });
    const reconnect = status === "disconnected" ? Object.assign({}, styles.button || {}) : hidden;
    const icon = report.icon || "";
    let message = report.message || "";
    if (icon && message.indexOf(icon) === 0) {
        message = message.slice(icon.length).trim();  // the icon is shown once, in front
    }
    return [style, "sessionmw-banner sessionmw-" + status, icon, report.title || "",
            message, steps, report.context || "", reconnect];
}
"""

_DISMISS = """
function (clicks) { return {display: "none"}; }
"""
_RENDER = _RENDER.replace("__COLORS__", json.dumps(_BOOTSTRAP_COLORS))


# -- the extension ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DashState:
    """What sessionmw keeps for one Dash app (see :func:`dash_state`)."""

    #: The manager that keeps the app's sessions.
    manager: SessionManager
    #: The endpoints' path prefix.
    prefix: str
    #: Seconds between two health polls.
    interval_seconds: float
    #: The banner's look: ``plain`` or ``bootstrap`` (``auto`` resolved, see :data:`THEMES`).
    theme: str = "plain"
    #: The app's ``routes_pathname_prefix``: its Dash routes live under it.
    routes_prefix: str = "/"


class _ServerApps:
    """``server.extensions["sessionmw.dash"]``: the Dash apps set up on one Flask server."""

    def __init__(self, owns_extension: bool) -> None:
        #: True when SessionMWDash installed the Flask extension (so it may add exclusions).
        self.owns_extension = owns_extension
        self.states: dict[str, DashState] = {}  # by routes prefix
        self.apps: dict[str, weakref.ref[dash.Dash]] = {}

    def add(self, app: dash.Dash, state: DashState) -> None:
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
    """sessionmw's :class:`DashState` for ``app``, or None when :class:`SessionMWDash` is not set up on it."""
    apps = app.server.extensions.get(DASH_EXTENSION_KEY) if isinstance(app.server, Flask) else None
    if not isinstance(apps, _ServerApps):
        return None
    routes = app.config.routes_pathname_prefix or "/"
    ref = apps.apps.get(routes)
    return apps.states[routes] if ref is not None and ref() is app else None


def _request_state() -> tuple[DashState | None, dash.Dash | None]:
    """The state and the app of the Dash app serving the current request (None, None outside one)."""
    if not has_request_context():
        return None, None
    apps = current_app.extensions.get(DASH_EXTENSION_KEY)
    if not isinstance(apps, _ServerApps):
        return None, None
    return apps.for_path(request.path)


def _request_app() -> dash.Dash | None:
    return _request_state()[1]


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
        self._theme = _check_theme(theme)
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
        if not isinstance(apps, _ServerApps):
            apps = _ServerApps(owns_extension=EXTENSION_KEY not in server.extensions)
            if apps.owns_extension:
                options = dict(self._options)
                exclude = options.pop("exclude", ())
                exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
                paths = (*exclude, *dash_static_paths(app))
                SessionMW(server, manager=self._manager, exclude=paths, **options)
            server.extensions[DASH_EXTENSION_KEY] = apps
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
            theme=_resolve_theme(app, self._theme),
            routes_prefix=app.config.routes_pathname_prefix or "/",
        )
        apps.add(app, state)
        _register_clientside(app)
        if self._guard_all:
            app._on_error = _chain_on_error(app, app._on_error)
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


def _register_clientside(app: dash.Dash) -> None:
    from dash import Input, Output, State

    part_outputs = [Output(f"{BANNER_ID}-{part}", "children") for part in _PARTS]
    register: Any = app.clientside_callback  # untyped in Dash
    register(
        _POLL,
        Output(HEALTH_STORE_ID, "data"),
        Input(POLL_ID, "n_intervals"),
        State(HEALTH_STORE_ID, "data"),
        State(_CONFIG_ID, "data"),
    )
    register(
        _RECONNECT,
        Output(HEALTH_STORE_ID, "data", allow_duplicate=True),
        Input(RECONNECT_ID, "n_clicks"),
        State(_CONFIG_ID, "data"),
        prevent_initial_call=True,
    )
    register(
        _RENDER,
        Output(BANNER_ID, "style"),
        Output(BANNER_ID, "className"),
        *part_outputs,
        Output(RECONNECT_ID, "style"),
        Input(HEALTH_STORE_ID, "data"),
        State(_CONFIG_ID, "data"),
    )
    register(
        _DISMISS,
        Output(ALERT_ID, "style", allow_duplicate=True),
        Input(_ALERT_CLOSE_ID, "n_clicks"),
        prevent_initial_call=True,
    )


def _chain_on_error(
    app: dash.Dash, previous: Callable[[Exception], Any] | None
) -> Callable[[Exception], Any]:
    """Dash's app-level ``on_error``: our alert first, then the app's own handler, if any.

    In debug mode (dev tools UI on), an exception the app has no handler for is raised again,
    so that the dev tools count and show it as they would without sessionmw.
    """
    app_ref = weakref.ref(app)

    def on_error(exc: Exception) -> Any:
        handle_callback_error(exc)
        if previous is not None:
            return previous(exc)
        if _devtools_on(app_ref()):
            raise exc
        return None

    return on_error


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
        if _find(validation, _ROOT_ID) is None:
            children = list(validation) if isinstance(validation, list | tuple) else [validation]
            validation = html.Div([*children, status_banner()])
            target.validation_layout = validation
        checked[0] = validation

    return keep_banner


def _layout_hook(layout: Any) -> Any:
    """Fill the banner's interval, prefix and theme from the app's settings; add the banner if missing.

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
    root = _find(layout, _ROOT_ID)
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
