"""The Dash status banner: its layout, its looks (styles, themes), the friendly alert, and the
browser-side callbacks that poll the session's health and reconnect it.

The banner's JavaScript and its inline styles are package files (``assets/banner-*.js``,
``assets/banner-styles.json``), read once with :mod:`importlib.resources`.
:class:`~sessionmw.integrations.dash.SessionMWDash` registers the callbacks
(:func:`register_banner_callbacks`) and puts the banner in the layout.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

try:
    import dash
    from dash import dcc, html
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.dash needs Dash: pip install 'sessionmw[dash]'") from exc

from sessionmw.health import HealthReport
from sessionmw.integrations.dash_apps import current_request
from sessionmw.integrations.environ import ENVIRON_SESSION
from sessionmw.integrations.request_session import RequestSession
from sessionmw.integrations.style import STATUS_ICONS
from sessionmw.texts import DISMISS, RECONNECT, local, paused_countdown
from sessionmw.translation import RECONNECTED, UNREACHABLE, UNREACHABLE_LOCAL, statement

if TYPE_CHECKING:
    from sessionmw.translation import UserFacingError

__all__ = [
    "ALERT_ID",
    "BANNER_ID",
    "HEALTH_STORE_ID",
    "POLL_ID",
    "RECONNECT_ID",
    "STATUS_ID",
    "STYLES",
    "THEMES",
    "UNREACHABLE_RETRY_SECONDS",
    "BannerRefusals",
    "arefusal_in_banner",
    "check_theme",
    "error_alert",
    "hide_alert",
    "refusal_in_banner",
    "register_banner_callbacks",
    "resolve_theme",
    "show_alert",
    "speak",
    "status_banner",
    "uses_bootstrap_css",
    "with_statement",
]


def _asset(name: str) -> str:
    """The text of the package file ``assets/<name>`` (UTF-8)."""
    return importlib.resources.files("sessionmw.integrations").joinpath("assets", name).read_text("utf-8")


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
#: The component that holds the banner, the alert, the poll and their stores.
STATUS_ID = "sessionmw-status"
_CONFIG_ID = "sessionmw-config"
_ALERT_BODY_ID = "sessionmw-alert-body"
_ALERT_CLOSE_ID = "sessionmw-alert-close"
#: Seconds between the page's questions while the server cannot be reached.
UNREACHABLE_RETRY_SECONDS = 2.0
_PARTS = ("icon", "title", "message", "steps", "context")

# -- look -------------------------------------------------------------------------------------

#: Inline styles (plain CSS, no framework needed), by part and by health status; edit them to
#: restyle the plain theme, or override them with the ``sessionmw-*`` classes. Read from the
#: package file ``assets/banner-styles.json``.
STYLES: dict[str, dict[str, str]] = cast(dict[str, dict[str, str]], json.loads(_asset("banner-styles.json")))
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


def check_theme(theme: str) -> str:
    """``theme`` if it is one of :data:`THEMES`.

    :raises ValueError: naming the themes.
    """
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


def resolve_theme(app: dash.Dash, theme: str) -> str:
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
    shows the health report's icon, message and recovery steps (and Reconnect when disconnected);
    for degraded (a paused dependency: an open circuit breaker) the service's countdown, ticking
    every second in the browser, and a health poll as soon as it ends.
    Left at None, ``interval_seconds`` (``HEALTH_CHECK_INTERVAL_SECONDS``), ``prefix`` (the
    endpoints' path) and ``theme`` (see :data:`THEMES`; ``plain`` or ``bootstrap``) are filled in
    by :class:`SessionMWDash` from the app's settings.

    :raises ValueError: if ``interval_seconds`` is not positive, or ``theme`` is unknown.
    """
    if interval_seconds is not None and not interval_seconds > 0:
        raise ValueError(f"interval_seconds must be a positive number of seconds, not {interval_seconds!r}")
    if theme is not None and check_theme(theme) == "auto":
        theme = None
    seconds = 30.0 if interval_seconds is None else float(interval_seconds)
    look = theme or "plain"
    config = {
        **_words(),
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
            title=local(DISMISS),
            className="btn-close",
            style={"position": "absolute", "top": "12px", "right": "12px"},
        )
    else:
        close = html.Button("×", id=_ALERT_CLOSE_ID, title=local(DISMISS), style=STYLES["close"])
    alert = html.Div(
        id=ALERT_ID,
        className="sessionmw-alert alert alert-danger" if bootstrap else "sessionmw-alert",
        role="alert",
        style=_HIDDEN,
        children=[close, html.Div(id=_ALERT_BODY_ID)],
    )
    return html.Div(
        id=STATUS_ID,
        children=[
            dcc.Interval(id=POLL_ID, interval=int(seconds * 1000)),
            dcc.Store(id=HEALTH_STORE_ID),
            dcc.Store(id=_CONFIG_ID, data=config),
            banner,
            alert,
        ],
    )


def _words() -> dict[str, Any]:
    """What the banner's browser code says by itself, in the current request's language."""
    return {
        "reconnected": local(RECONNECTED).as_dict(),
        "unreachable": local(UNREACHABLE).as_dict(),
        "unreachable_local": local(UNREACHABLE_LOCAL).as_dict(),
        "paused": paused_countdown(),
    }


def speak(root: Any) -> None:
    """Put the words of the banner ``root`` (a :func:`status_banner`) in the current request's
    language: the Reconnect button, the alert's Dismiss tooltip and what the browser code says by
    itself. The layout hook calls it for each page load (the browser that asked)."""
    for node in _walk(root):
        node_id = getattr(node, "id", None)
        if node_id == RECONNECT_ID:
            node.children = local(RECONNECT)
        elif node_id == _ALERT_CLOSE_ID:
            node.title = local(DISMISS)
        elif node_id == _CONFIG_ID:
            node.data = {**node.data, **_words()}


def _walk(component: Any) -> list[Any]:
    """``component`` and every component below it."""
    found, stack = [], [component]
    while stack:
        node = stack.pop()
        found.append(node)
        children = getattr(node, "children", None)
        if isinstance(children, list | tuple):
            stack.extend(children)
        elif children is not None and hasattr(children, "to_plotly_json"):
            stack.append(children)
    return found


def _reconnect_button(bootstrap: bool) -> Any:
    """The banner's Reconnect button: dash-bootstrap-components' when themed and installed."""
    if bootstrap and _bootstrap_installed():
        import dash_bootstrap_components as dbc

        return dbc.Button(
            local(RECONNECT),
            id=RECONNECT_ID,
            color="danger",
            size="sm",
            className="sessionmw-reconnect",
            style=_HIDDEN,
        )
    if bootstrap:
        return html.Button(
            local(RECONNECT),
            id=RECONNECT_ID,
            className="sessionmw-reconnect btn btn-danger btn-sm",
            style=_HIDDEN,
        )
    return html.Button(local(RECONNECT), id=RECONNECT_ID, className="sessionmw-reconnect", style=_HIDDEN)


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


def with_statement(
    report: Mapping[str, Any], failure: BaseException | None = None, *, sticky: bool = False
) -> dict[str, Any]:
    """``report`` as the banner's store holds it: the report plus the one statement the page shows
    (:func:`sessionmw.translation.statement`; None while all is well)."""
    data = dict(report)
    said = statement(report, failure=failure) if report.get("status") else None
    data["statement"] = None if said is None else said.as_dict()
    if sticky or report.get("status") == "expired":
        data["sticky"] = True  # stays on screen until the page is refreshed
    return data


def show_alert(err: UserFacingError, report: HealthReport | None, *, bootstrap: bool = False) -> None:
    """From a Dash callback: say in the banner what failed and what to do (one voice).

    The failure is folded into the banner's statement (its title and message, with the steps that
    fit the session's state and the failure's cause); the separate alert stays hidden. Without a
    ``report`` (no session) the alert shows ``err`` as before.

    :param bootstrap: the alert takes Bootstrap's classes (the ``bootstrap`` theme) instead of
        the inline :data:`STYLES`.
    """
    if report is not None:
        dash.set_props(ALERT_ID, {"style": _HIDDEN})
        # Last: a background callback's manager keeps only the last set_props between two polls.
        dash.set_props(HEALTH_STORE_ID, {"data": with_statement(report, err)})
        return
    dash.set_props(_ALERT_BODY_ID, {"children": error_alert(err)})
    if bootstrap:  # class and style together, so the alert never ends up with neither look
        dash.set_props(
            ALERT_ID, {"style": {"position": "relative"}, "className": "sessionmw-alert alert alert-danger"}
        )
    else:
        dash.set_props(ALERT_ID, {"style": STYLES["alert"], "className": "sessionmw-alert"})


def hide_alert() -> None:
    """From a Dash callback that succeeded: the banner clears in the same response (a success ends
    the error state, activity ends idleness), and the alert hides. A dependency still paused (an
    open circuit breaker the callback did not go through) keeps its banner and countdown."""
    dash.set_props(ALERT_ID, {"style": _HIDDEN})
    dash.set_props(HEALTH_STORE_ID, {"data": _after_success()})


def _after_success() -> dict[str, Any]:
    """The banner's report after a callback succeeded: healthy, or degraded while a dependency
    kept in the session's store is paused (no store operation for the session itself)."""
    healthy: dict[str, Any] = {"status": "healthy", "healthy": True, "statement": None}
    current = current_request()
    session = current.session if current is not None else None
    if session is None:
        return healthy
    manager = session.manager
    now = manager.clock()
    report = HealthReport.build(session.id, session.record, now, manager.policy, store=manager.store)
    return with_statement(report) if report["status"] == "degraded" else healthy


def _banner_update(report: Mapping[str, Any], *, sticky: bool) -> str:
    """The body of a Dash callback response that changes nothing but the banner."""
    data = with_statement(report, sticky=sticky)
    return json.dumps({"multi": True, "response": {}, "sideUpdate": {HEALTH_STORE_ID: {"data": data}}})


def _refused_update(session: Any, status: int, path: str) -> str | None:
    """The banner-only body that replaces a refused Dash callback's answer, or None to leave it.

    A Dash callback refused because the session may not work (401, 503) becomes a 200 that
    changes nothing but the banner; no new session cookie is set (the refused id is kept).
    """
    if (
        status not in (401, 503)
        or not path.endswith("_dash-update-component")
        or not isinstance(session, RequestSession)
        or session.refusal is None
    ):
        return None
    session.issue_cookie = False  # keep the refused id: a new one would silently start over
    return _banner_update(session.refusal, sticky=status == 401)


def refusal_in_banner(response: Any) -> Any:
    """Flask ``after_request``: a Dash callback refused because the session may not work (401, 503)
    becomes a 200 that changes nothing but the banner (Dash's ``sideUpdate``).

    The page says why at once, the browser console logs no failed request, and no new session
    cookie is set: an expired session stays refused until the page is refreshed.
    """
    from flask import request

    body = _refused_update(request.environ.get(ENVIRON_SESSION), response.status_code, request.path)
    return response if body is None else _as_banner_update(response, body)


async def arefusal_in_banner(response: Any) -> Any:
    """:func:`refusal_in_banner` for Quart's ``after_request``."""
    import quart

    request = quart.request
    body = _refused_update(request.scope.get(ENVIRON_SESSION), response.status_code, request.path)
    return response if body is None else _as_banner_update(response, body)


def _as_banner_update(response: Any, body: str) -> Any:
    """``response`` (Flask's or Quart's) turned into the 200 that carries ``body``, the banner's
    update, in place of the refusal."""
    response.set_data(body)
    response.status_code = 200
    response.headers["Content-Type"] = "application/json"
    response.headers.pop("Retry-After", None)
    return response


class BannerRefusals:
    """Pure ASGI middleware, outside sessionmw's ``SessionMiddleware`` (FastAPI): the
    :func:`refusal_in_banner` rewrite of a refused Dash callback, at ``http.response.start``.

    Only a refused ``_dash-update-component`` request (its session's ``refusal`` set, 401 or 503)
    is changed: its answer (the middleware's small JSON refusal) is replaced, the session cookie
    the refusal would set is left out. Any other request and every other scope pass untouched.
    """

    def __init__(self, app: Any, *, cookie_name: str = "sessionmw") -> None:
        self.app = app
        self.cookie = cookie_name.encode("latin-1") + b"="

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or not str(scope.get("path", "")).endswith("_dash-update-component"):
            await self.app(scope, receive, send)
            return
        replaced: list[bool] = []

        async def banner_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status = int(message.get("status", 200))
                body = _refused_update(scope.get(ENVIRON_SESSION), status, str(scope.get("path", "")))
                if body is not None:
                    replaced.append(True)
                    data = body.encode("utf-8")
                    headers = [
                        (name, value)
                        for name, value in message.get("headers") or ()
                        if name.lower() not in (b"content-type", b"content-length", b"retry-after")
                        and not (name.lower() == b"set-cookie" and value.startswith(self.cookie))
                    ]
                    headers += [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()),
                    ]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": data, "more_body": False})
                    return
            elif replaced:  # the refusal's own body: already answered
                return
            await send(message)

        await self.app(scope, receive, banner_send)


# -- clientside -------------------------------------------------------------------------------

_POLL = _asset("banner-poll.js").replace(
    "__HOOK__", _asset("banner-fetch-hook.js").replace("__STORE__", HEALTH_STORE_ID)
)
_RECONNECT = _asset("banner-reconnect.js").replace("__STORE__", HEALTH_STORE_ID)
_RENDER = (
    _asset("banner-render.js")
    .replace("__COLORS__", json.dumps({**_BOOTSTRAP_COLORS, "degraded": "warning", "reconnected": "success"}))
    .replace("__ICONS__", json.dumps(STATUS_ICONS))
    .replace("__MESSAGE__", f"{BANNER_ID}-message")
    .replace("__POLL__", POLL_ID)
    .replace("__RETRY_MS__", str(int(UNREACHABLE_RETRY_SECONDS * 1000)))
)
_DISMISS = _asset("banner-dismiss.js")


def register_banner_callbacks(app: dash.Dash) -> None:
    """Register the banner's browser-side callbacks on ``app``: the health poll, Reconnect, the
    rendering of the report, and the alert's close button."""
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
