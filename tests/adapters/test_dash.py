"""The Dash integration without a browser: layout, guarded callbacks, the demo's backend and command."""

from __future__ import annotations

import importlib.util
import json
import math
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dash
import pytest
from dash import Input, Output, html
from support.servers import BackendClient, callback_payload, fire_callback, session_cookie

from sessionmw import DataLoadError, SessionManager, SessionState, TransientError
from sessionmw.__main__ import main
from sessionmw._guard import guarded
from sessionmw.demo import DemoUnavailableError, load_demo
from sessionmw.integrations.dash import SessionMWDash, dash_static_paths, preserve
from sessionmw.integrations.dash_apps import dash_state, server_apps
from sessionmw.integrations.dash_banner import (
    ALERT_ID,
    BANNER_ID,
    HEALTH_STORE_ID,
    POLL_ID,
    RECONNECT_ID,
    error_alert,
    status_banner,
    uses_bootstrap_css,
)
from sessionmw.integrations.dash_callbacks import guarded_callback
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.problem import problem_errors
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.testing import FakeClock
from sessionmw.translation import translate

THRESHOLD = 3
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
#: The Dash app behind each server a test client talks to.
_DASH_APPS: weakref.WeakKeyDictionary[Any, dash.Dash] = weakref.WeakKeyDictionary()
#: The clients a test opened (closed after it: Quart's event loop, FastAPI's lifespan).
_OPEN: list[BackendClient] = []
#: Dash's backends. FastAPI needs the ASGI middleware (sessionmw.integrations.asgi, the asgi
#: branch's milestone 2): until it is merged here, its runs are skipped with that reason.
_ASGI = importlib.util.find_spec("sessionmw.integrations.asgi") is not None
_FASTAPI = pytest.param(
    "fastapi", marks=pytest.mark.skipif(not _ASGI, reason="needs sessionmw.integrations.asgi")
)
BACKENDS = ["flask", "quart", _FASTAPI]


@pytest.fixture(name="backend", params=BACKENDS)
def _backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each of Dash's backends (``Dash(backend=...)``); the clients the test opened are closed after it."""
    yield str(request.param)
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture(name="demo_module", scope="module")
def _demo_module() -> ModuleType:
    """The demo app's module, loaded from examples/."""
    return load_demo()


@pytest.fixture(name="sessions")
def _sessions(clock: FakeClock) -> Iterator[SessionManager]:
    """A manager with a small error threshold and a 5-second health interval."""
    manager = SessionManager(
        store="memory://", clock=clock, max_error_threshold=THRESHOLD, health_check_interval_seconds=5
    )
    yield manager
    manager.close()


def _open(app: dash.Dash) -> BackendClient:
    """A test client of ``app``'s server, whatever its backend."""
    _DASH_APPS[app.server] = app
    client = BackendClient(app)
    _OPEN.append(client)
    return client


def _client(app: dash.Dash) -> BackendClient:
    """A test client that has loaded the page once, so it holds a stored session."""
    client = _open(app)
    assert client.get("/").status_code == 200  # issues the session id
    assert client.get("/").status_code == 200  # sent back: the session is stored
    return client


_sid = session_cookie


def _fire(
    client: BackendClient,
    outputs: list[tuple[str, str]],
    inputs: list[tuple[str, str, Any]],
    state: list[tuple[str, str, Any]] | None = None,
    *,
    accept: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    """POST one callback request of the client's Dash app (outputs as ``(id, prop)``)."""
    wanted = [f"{oid}.{prop}" for oid, prop in outputs]
    return fire_callback(_DASH_APPS[client.application], client, wanted, inputs, state, accept=accept)


def _side(body: dict[str, Any]) -> dict[str, Any]:
    """The set_props updates of a callback response, by component id."""
    side: dict[str, Any] = body.get("sideUpdate", {})
    return side


def _plain(node: Any) -> Any:
    """A component tree as plain JSON data."""
    if hasattr(node, "to_plotly_json"):
        return _plain(node.to_plotly_json())
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(value) for value in node]
    return node


def _texts(component: Any) -> str:
    """A component tree (objects or their JSON) as one JSON string."""
    return json.dumps(_plain(component), ensure_ascii=False)


# -- layout -------------------------------------------------------------------------------------


def test_status_banner_is_hidden_and_complete() -> None:
    """The banner starts hidden and holds the poll, the report store, a Reconnect button and the alert."""
    banner = status_banner(interval_seconds=12)
    nodes: list[Any] = list(banner._traverse())  # type: ignore[no-untyped-call]  # untyped in dash
    ids = {getattr(node, "id", None) for node in nodes}
    assert {POLL_ID, HEALTH_STORE_ID, BANNER_ID, ALERT_ID, "sessionmw-reconnect"} <= ids
    poll = next(node for node in nodes if getattr(node, "id", None) == POLL_ID)
    assert poll.interval == 12000
    box = next(node for node in nodes if getattr(node, "id", None) == BANNER_ID)
    assert box.style == {"display": "none"}


@pytest.mark.parametrize("seconds", [0, -1, math.nan])
def test_status_banner_rejects_a_bad_interval(seconds: float) -> None:
    """A non-positive poll interval is refused with a message naming it."""
    with pytest.raises(ValueError, match="interval_seconds"):
        status_banner(interval_seconds=seconds)


def test_error_alert_shows_title_message_and_numbered_steps() -> None:
    """The alert lists the recovery steps as an ordered list and leaks no exception text."""
    err = translate(RuntimeError("This session is not running"))
    rendered = _plain(error_alert(err))
    text = json.dumps(rendered, ensure_ascii=False)
    assert err.title in text and err.message in text
    steps = next(node for node in rendered if node["type"] == "Ol")
    assert [item["props"]["children"] for item in steps["props"]["children"]] == err.recovery
    assert "RuntimeError" not in text


def test_error_alert_shows_detail_only_in_debug() -> None:
    """In debug mode the alert adds the technical detail."""
    err = translate(ValueError("secret internals"), debug=True)
    assert "secret internals" in _texts(error_alert(err))
    quiet = translate(ValueError("secret internals"))
    assert "secret internals" not in _texts(error_alert(quiet))


def test_preserve_keeps_a_value_in_local_storage() -> None:
    """preserve() turns on Dash persistence in local storage by default."""
    field = preserve(dash.dcc.Input(id="symbols"))
    assert field.persistence is True and field.persistence_type == "local"


def test_preserve_refuses_bad_arguments() -> None:
    """preserve() needs an id and a known storage."""
    with pytest.raises(ValueError, match="needs an id"):
        preserve(dash.dcc.Input())
    with pytest.raises(ValueError, match="storage"):
        preserve(dash.dcc.Input(id="x"), storage="cookie")


# -- the extension ------------------------------------------------------------------------------


def _app(
    sessions: SessionManager,
    *,
    backend: str = "flask",
    layout: Any = None,
    guard_all: bool = False,
    stylesheets: list[Any] | None = None,
    theme: str = "auto",
) -> dash.Dash:
    app = dash.Dash(__name__, external_stylesheets=stylesheets, backend=backend)
    app.layout = layout if layout is not None else html.Div([status_banner(), html.Div(id="out")])
    SessionMWDash(app, manager=sessions, guard_all=guard_all, theme=theme)
    return app


def test_installs_the_flask_extension_once(backend: str, sessions: SessionManager) -> None:
    """SessionMWDash installs SessionMW on app.server (SessionMWQuart on Quart, the ASGI
    SessionMiddleware on FastAPI); a second set-up is refused."""
    app = _app(sessions, backend=backend)
    if backend == "fastapi":
        apps = server_apps(app.server)
        assert apps is not None and apps.gate is not None and apps.gate.manager is sessions
    else:
        assert app.server.extensions["sessionmw"].manager is sessions
    state = dash_state(app)
    assert state is not None and state.interval_seconds == 5
    with pytest.raises(RuntimeError, match="already set up"):
        SessionMWDash(app)


def test_reuses_an_existing_flask_extension(sessions: SessionManager) -> None:
    """An app whose server already has SessionMW keeps it."""
    app = dash.Dash(__name__)
    app.layout = html.Div(status_banner())
    SessionMW(app.server, manager=sessions)
    state = SessionMWDash().init_app(app)
    assert state.manager is sessions


def test_layout_gets_the_settings_interval_and_prefix(backend: str, sessions: SessionManager) -> None:
    """The served layout polls every HEALTH_CHECK_INTERVAL_SECONDS at the extension's prefix."""
    app = _app(sessions, backend=backend)
    layout = _open(app).get("/_dash-layout").get_json()
    text = json.dumps(layout)
    assert '"interval": 5000' in text
    assert '"prefix": "/_sessionmw/"' in text


def test_layout_without_a_banner_gets_one(backend: str, sessions: SessionManager) -> None:
    """An app that did not place status_banner() still gets it, at the top."""
    app = _app(sessions, backend=backend, layout=html.Div([html.Div(id="out")]))
    layout = _open(app).get("/_dash-layout").get_json()
    assert BANNER_ID in json.dumps(layout)


# -- the banner's theme -----------------------------------------------------------------------

#: A Bootstrap stylesheet as apps name it (dash_bootstrap_components.themes.BOOTSTRAP's URL).
BOOTSTRAP_CSS = "https://cdn.jsdelivr.net/npm/bootstrap@5.3.6/dist/css/bootstrap.min.css"


def _component(layout: Any, component_id: str) -> dict[str, Any]:
    """The served (JSON) component with ``component_id``."""
    stack = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") == component_id:
                return node
            stack.append(props.get("children"))
    raise AssertionError(f"no component {component_id!r} in the layout")


def test_bootstrap_banner_uses_dash_bootstrap_components() -> None:
    """theme="bootstrap": a dash-bootstrap-components Reconnect button and Bootstrap alert classes."""
    import dash_bootstrap_components as dbc

    root = _plain(status_banner(theme="bootstrap"))
    assert _component(root, RECONNECT_ID)["namespace"] == "dash_bootstrap_components"
    alert = _component(root, ALERT_ID)["props"]
    assert alert["className"] == "sessionmw-alert alert alert-danger"
    assert "btn-close" in json.dumps(alert["children"])
    assert _component(root, "sessionmw-config")["props"]["data"]["theme"] == "bootstrap"
    assert dbc.themes.BOOTSTRAP == BOOTSTRAP_CSS  # the URL the theme tests stand for


def test_plain_banner_needs_no_framework() -> None:
    """The default banner is plain Dash HTML with inline styles."""
    root = _plain(status_banner())
    assert _component(root, RECONNECT_ID)["namespace"] == "dash_html_components"
    assert "alert" not in _component(root, ALERT_ID)["props"]["className"].split()


def test_unknown_theme_is_refused() -> None:
    """A theme that does not exist is named in the error."""
    with pytest.raises(ValueError, match="'fancy'"):
        status_banner(theme="fancy")
    with pytest.raises(ValueError, match="'fancy'"):
        SessionMWDash(theme="fancy")


@pytest.mark.parametrize(
    ("stylesheets", "expected"),
    [
        ([BOOTSTRAP_CSS], True),
        ([{"href": "https://cdn.example/bootswatch/5/darkly/bootstrap.min.css", "rel": "stylesheet"}], True),
        (["/assets/site.css"], False),
        (None, False),
    ],
)
def test_uses_bootstrap_css_reads_the_apps_stylesheets(stylesheets: list[Any] | None, expected: bool) -> None:
    """A stylesheet URL naming bootstrap or bootswatch (string or dict) counts as Bootstrap."""
    assert uses_bootstrap_css(dash.Dash(__name__, external_stylesheets=stylesheets)) is expected


@pytest.mark.parametrize(
    ("stylesheets", "theme", "installed", "expected"),
    [
        ([BOOTSTRAP_CSS], "auto", True, "bootstrap"),
        ([BOOTSTRAP_CSS], "auto", False, "plain"),  # dash-bootstrap-components is never required
        (None, "auto", True, "plain"),  # Bootstrap's classes without its stylesheet would be bare
        (None, "bootstrap", True, "bootstrap"),
        ([BOOTSTRAP_CSS], "plain", True, "plain"),
    ],
)
def test_theme_follows_the_app(
    backend: str,
    sessions: SessionManager,
    monkeypatch: pytest.MonkeyPatch,
    stylesheets: list[Any] | None,
    theme: str,
    installed: bool,
    expected: str,
) -> None:
    """auto: Bootstrap when dash-bootstrap-components is installed and the app loads Bootstrap;
    the served layout's banner is rebuilt for the app's theme."""
    import sessionmw.integrations.dash_banner as dash_banner

    monkeypatch.setattr(dash_banner, "_bootstrap_installed", lambda: installed)
    app = _app(sessions, backend=backend, stylesheets=stylesheets, theme=theme)
    state = dash_state(app)
    assert state is not None and state.theme == expected
    layout = _open(app).get("/_dash-layout").get_json()
    assert _component(layout, "sessionmw-config")["props"]["data"]["theme"] == expected
    assert _component(layout, "sessionmw-config")["props"]["data"]["prefix"] == "/_sessionmw/"
    assert _component(layout, POLL_ID)["props"]["interval"] == 5000
    classes = _component(layout, ALERT_ID)["props"]["className"].split()
    assert ("alert-danger" in classes) is (expected == "bootstrap")


def test_failing_callback_on_a_bootstrap_app_shows_the_bootstrap_alert(
    backend: str, sessions: SessionManager
) -> None:
    """On a Bootstrap-themed app the alert is shown without the plain inline colours."""
    app = _app(sessions, backend=backend, stylesheets=[BOOTSTRAP_CSS])

    def compute(clicks: int | None) -> str:
        raise RuntimeError("This session is not running")

    guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)(compute)
    status, body = _fire(_client(app), [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200
    assert "Session not running" in _said(body)  # folded into the (Bootstrap) banner
    assert _side(body)[ALERT_ID] == {"style": {"display": "none"}}


def test_a_disconnected_session_can_still_load_the_page(backend: str, sessions: SessionManager) -> None:
    """Layout, dependencies and scripts are served to a disconnected session, so its banner can show."""
    app = _app(sessions, backend=backend)
    client = _client(app)
    sid = _sid(client)
    for _ in range(THRESHOLD):
        sessions.record_error(sid, "boom")
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200
    for path in ("/_dash-layout", "/_dash-dependencies"):
        assert client.get(path, headers={"Accept": "application/json"}).status_code == 200, path
    before = sessions.get_session(sid)
    assert before is not None and before.state is SessionState.DISCONNECTED
    assert client.get("/_sessionmw/health").get_json()["session"]["status"] == "disconnected"


def test_dash_static_paths_follow_the_routes_prefix() -> None:
    """The excluded page-loading paths live under the app's routes prefix."""
    app = dash.Dash(__name__, routes_pathname_prefix="/app/", requests_pathname_prefix="/app/")
    paths = dash_static_paths(app)
    assert "/app/_dash-layout" in paths and "/app/assets/" in paths
    assert "/app/_dash-update-component" not in paths


def test_health_polls_neither_create_nor_touch_sessions(
    backend: str, sessions: SessionManager, clock: FakeClock
) -> None:
    """GET /_sessionmw/health (what the banner polls) is not activity."""
    app = _app(sessions, backend=backend)
    client = _client(app)
    sid = _sid(client)
    before = sessions.get_session(sid)
    assert before is not None
    clock.advance(60)
    body = client.get("/_sessionmw/health").get_json()
    assert body["session"]["status"] == "healthy"
    after = sessions.get_session(sid)
    assert after is not None and after.last_activity == before.last_activity


# -- guarded callbacks --------------------------------------------------------------------------


def _guarded_app(sessions: SessionManager, behaviour: dict[str, Any], backend: str) -> dash.Dash:
    app = _app(sessions, backend=backend)

    def compute(clicks: int | None) -> str:
        calls = behaviour.setdefault("calls", 0)
        behaviour["calls"] = calls + 1
        error = behaviour.get("error")
        if error is not None:
            raise error
        return f"done {clicks}"

    guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)(compute)
    return app


def _said(body: dict[str, Any]) -> str:
    """What the banner's statement says in a callback response (the failure is folded there)."""
    said = _side(body)[HEALTH_STORE_ID]["data"]["statement"]
    return " ".join([said["title"], said["message"], *said["steps"], said["context"]])


def test_guarded_callback_failure_shows_alert_and_records_error(
    backend: str, sessions: SessionManager
) -> None:
    """A raising callback answers with the friendly alert, leaves outputs alone and records the error."""
    behaviour: dict[str, Any] = {"error": RuntimeError("This session is not running")}
    client = _client(_guarded_app(sessions, behaviour, backend))
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200
    assert "out" not in body.get("response", {})
    side = _side(body)
    assert "The background process serving your session is not running" in _said(body)
    assert "RuntimeError" not in json.dumps(body)
    assert side[ALERT_ID]["style"] == {"display": "none"}  # one voice: the banner says it
    assert side[HEALTH_STORE_ID]["data"]["status"] == "error"
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1


def test_guarded_callback_success_returns_outputs_and_hides_alert(
    backend: str, sessions: SessionManager
) -> None:
    """A successful guarded callback updates its outputs and hides an earlier alert."""
    client = _client(_guarded_app(sessions, {}, backend))
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 2)])
    assert status == 200
    assert body["response"]["out"]["children"] == "done 2"
    assert _side(body)[ALERT_ID]["style"] == {"display": "none"}


def test_repeated_failures_disconnect_the_session(backend: str, sessions: SessionManager) -> None:
    """Failures in a row reach the threshold: the session disconnects and later calls do not run."""
    behaviour: dict[str, Any] = {"error": TransientError("busy")}
    client = _client(_guarded_app(sessions, behaviour, backend))
    for clicks in range(1, THRESHOLD + 1):
        _fire(client, [("out", "children")], [("go", "n_clicks", clicks)])
    record = sessions.get_session(_sid(client))
    assert record is not None and record.state is SessionState.DISCONNECTED
    calls = behaviour["calls"]
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 9)])
    assert status == 200 and "Session disconnected" in _said(body)  # refused, in the banner
    assert behaviour["calls"] == calls


def test_guarded_callback_does_not_run_on_a_disconnected_session(
    backend: str, sessions: SessionManager
) -> None:
    """Even when the request gets through (no JSON Accept), a disconnected session's callback is skipped."""
    behaviour: dict[str, Any] = {}
    client = _client(_guarded_app(sessions, behaviour, backend))
    sid = _sid(client)
    for _ in range(THRESHOLD):
        sessions.record_error(sid, "boom")
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)], accept="*/*")
    assert status == 200
    assert behaviour.get("calls", 0) == 0
    assert "Session disconnected" in _said(body)


def test_guarded_callback_skips_an_expired_session(
    backend: str, sessions: SessionManager, clock: FakeClock
) -> None:
    """An expired session's callback is skipped; the alert and the banner say it expired."""
    behaviour: dict[str, Any] = {}
    client = _client(_guarded_app(sessions, behaviour, backend))
    clock.advance(31 * 60)
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)], accept="*/*")
    assert status == 200
    assert behaviour.get("calls", 0) == 0
    side = _side(body)
    assert "Session expired" in _said(body)
    assert side[HEALTH_STORE_ID]["data"]["status"] == "expired"
    assert side[HEALTH_STORE_ID]["data"]["sticky"] is True


@pytest.mark.parametrize(
    ("lost", "title"), [(False, "Session expired"), (True, "Session not found")], ids=["expired", "not_found"]
)
def test_callback_of_an_expired_or_lost_session_is_refused_until_a_refresh(
    backend: str, sessions: SessionManager, clock: FakeClock, lost: bool, title: str
) -> None:
    """A click on an expired session, or sent with an id the server lost (a restart), is refused
    every time: the banner says why, no new cookie is handed out, nothing runs, no session is
    created and nothing counts; a page load starts a new session on which the click runs."""
    behaviour: dict[str, Any] = {"error": TransientError("busy")}
    client = _client(_guarded_app(sessions, behaviour, backend))
    sid = _sid(client)
    if lost:
        assert sessions.delete_session(sid)
    clock.advance(31 * 60)
    for clicks in (1, 2):  # every click, not only the first
        status, body = _fire(client, [("out", "children")], [("go", "n_clicks", clicks)])
        assert status == 200 and title in _said(body)
        data = _side(body)[HEALTH_STORE_ID]["data"]
        assert data["status"] == ("not_found" if lost else "expired") and data["sticky"] is True
        assert _sid(client) == sid  # no new session behind the user's back
    assert behaviour.get("calls", 0) == 0
    assert [record.session_id for record in sessions.store.records()] == ([] if lost else [sid])
    assert all(record.error_count == 0 for record in sessions.store.records())
    assert client.get("/").status_code == 200  # a refresh
    fresh = _sid(client)
    assert fresh != sid
    behaviour.pop("error")
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 3)])
    assert status == 200 and body["response"]["out"]["children"] == "done 3"
    record = sessions.get_session(fresh)
    assert record is not None and record.error_count == 0


def test_guarded_callback_behind_the_wsgi_middleware(sessions: SessionManager) -> None:
    """Without the Flask extension (SessionMiddleware in front), failures are still recorded once."""
    app = dash.Dash(__name__)
    app.layout = html.Div([status_banner(), html.Div(id="out")])
    app.server.wsgi_app = SessionMiddleware(app.server.wsgi_app, manager=sessions, secret_key="k" * 32)

    def compute(clicks: int | None) -> str:
        raise TransientError("busy")

    guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)(compute)
    client = _client(app)
    _, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert "Temporary problem" in _said(body)
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1


def test_error_recorded_by_guarded_code_is_not_counted_twice(backend: str, sessions: SessionManager) -> None:
    """A failure that @guarded backend code already recorded counts once, and still shows the alert."""
    app = _app(sessions, backend=backend)

    @guarded(retry=None)
    def fetch() -> str:
        raise DataLoadError("prices.csv is corrupt")

    def compute(clicks: int | None) -> str:
        return fetch()

    guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)(compute)
    client = _client(app)
    _, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert translate(DataLoadError("x")).title in _said(body)
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1
    _fire(client, [("out", "children")], [("go", "n_clicks", 2)])
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 2


def test_guard_all_guards_plain_callbacks(backend: str, sessions: SessionManager) -> None:
    """With guard_all=True an ordinary app.callback that raises shows the alert and is recorded."""
    app = _app(sessions, backend=backend, guard_all=True)

    def explode(clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    register: Any = app.callback(Output("out", "children"), Input("go", "n_clicks"))
    register(explode)
    client = _client(app)
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200
    assert "prices.csv" not in json.dumps(body)
    assert translate(DataLoadError("x")).title in _said(body)
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1


def test_an_unguarded_callback_error_is_recorded_once(backend: str, sessions: SessionManager) -> None:
    """Without a guard, a callback's exception is recorded on the session once, and answered by
    whoever answers it without sessionmw's guard: the extension's friendly error on Flask and
    Quart (the server has no 500 handler of its own), Dash's own 500 on FastAPI (its middleware
    catches callback exceptions: sessionmw records it there and lets it through)."""
    app = _app(sessions, backend=backend)

    def explode(clicks: int | None) -> str:
        raise RuntimeError("This session is not running")

    register: Any = app.callback(Output("out", "children"), Input("go", "n_clicks"))
    register(explode)
    client = _client(app)
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == (500 if backend == "fastapi" else 503)
    assert "This session is not running" not in json.dumps(body)
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1


def test_reconnect_brings_a_disconnected_session_back(backend: str, sessions: SessionManager) -> None:
    """POST /_sessionmw/reconnect (the banner's button) answers before Dash's routes on every
    backend: the session is active again and its callbacks run."""
    behaviour: dict[str, Any] = {}
    client = _client(_guarded_app(sessions, behaviour, backend))
    sid = _sid(client)
    for _ in range(THRESHOLD):
        sessions.record_error(sid, "boom")
    reply = client.post("/_sessionmw/reconnect", headers={"Accept": "application/json"})
    assert reply.status_code == 200 and reply.get_json()["session"]["status"] == "healthy"
    record = sessions.get_session(sid)
    assert record is not None and record.state is SessionState.ACTIVE
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 4)])
    assert status == 200 and body["response"]["out"]["children"] == "done 4"


def test_an_async_guarded_callback_is_guarded_the_same(backend: str, sessions: SessionManager) -> None:
    """An ``async def`` callback under ``@guarded_callback``: its failure is recorded (through the
    async store path) and said in the banner; its success updates the outputs and clears it."""
    app = _app(sessions, backend=backend)
    behaviour: dict[str, Any] = {"error": DataLoadError("prices.csv is corrupt")}

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    @guarded_callback
    async def compute(clicks: int | None) -> str:
        error = behaviour.get("error")
        if error is not None:
            raise error
        return f"done {clicks}"

    client = _client(app)
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and translate(DataLoadError("x")).title in _said(body)
    assert "prices.csv" not in json.dumps(body)
    assert _side(body)[HEALTH_STORE_ID]["data"]["status"] == "error"
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1
    behaviour.pop("error")
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 2)])
    assert status == 200 and body["response"]["out"]["children"] == "done 2"
    assert _side(body)[HEALTH_STORE_ID]["data"]["status"] == "healthy"


def test_guard_all_chains_the_apps_own_on_error(backend: str, sessions: SessionManager) -> None:
    """guard_all=True on an app with its own on_error: the banner first, then the app's handler,
    whose value becomes the output; the error is recorded once, sync and async callbacks alike."""
    seen: list[str] = []

    def app_handler(exc: Exception) -> str:
        seen.append(type(exc).__name__)
        return "handled by the app"

    app = dash.Dash(__name__, backend=backend, on_error=app_handler)
    app.layout = html.Div([status_banner(), html.Div(id="out"), html.Div(id="out2")])
    SessionMWDash(app, manager=sessions, guard_all=True)

    def explode(clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    async def aexplode(clicks: int | None) -> str:
        raise TransientError("busy")

    register: Any = app.callback
    register(Output("out", "children"), Input("go", "n_clicks"))(explode)
    register(Output("out2", "children"), Input("go2", "n_clicks"))(aexplode)
    client = _client(app)
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and body["response"]["out"]["children"] == "handled by the app"
    assert translate(DataLoadError("x")).title in _said(body)
    status, body = _fire(client, [("out2", "children")], [("go2", "n_clicks", 1)])
    assert status == 200 and body["response"]["out2"]["children"] == "handled by the app"
    assert "Temporary problem" in _said(body)
    assert seen == ["DataLoadError", "TransientError"]
    client.get("/_sessionmw/health")  # a request later, on the same loop: the task has recorded it
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 2


@pytest.mark.parametrize("asgi_backend", ["quart", _FASTAPI])
def test_websocket_callbacks_are_named_at_set_up(asgi_backend: str, sessions: SessionManager) -> None:
    """An app that carries callbacks over a websocket is warned at set-up that sessionmw does not
    track them yet: never a quiet gap."""
    app = dash.Dash(__name__, backend=asgi_backend, websocket_callbacks=True)
    app.layout = html.Div([status_banner(), html.Div(id="out")])
    with pytest.warns(RuntimeWarning, match="websocket"):
        SessionMWDash(app, manager=sessions)


@pytest.mark.skipif(not _ASGI, reason="needs sessionmw.integrations.asgi")
def test_a_callback_websocket_is_checked_when_it_connects(sessions: SessionManager, clock: FakeClock) -> None:
    """FastAPI: Dash's callback websocket of a live session is accepted; of an expired one closed
    before accept with 4401, of a disconnected one with 4503 (the ASGI SessionMiddleware decides)."""
    from starlette.websockets import WebSocketDisconnect

    app = dash.Dash(__name__, backend="fastapi", websocket_callbacks=True)
    app.layout = html.Div([status_banner(), html.Div(id="out")])
    with pytest.warns(RuntimeWarning):
        SessionMWDash(app, manager=sessions)
    client = _client(app)
    starlette_client: Any = client._client
    origin = {"origin": "http://testserver"}
    with starlette_client.websocket_connect("/_dash-ws-callback", headers=origin) as ws:
        ws.send_json({"type": "heartbeat"})
        assert ws.receive_json() == {"type": "heartbeat_ack"}
    sid = _sid(client)
    for _ in range(THRESHOLD):
        sessions.record_error(sid, "boom")
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        starlette_client.websocket_connect("/_dash-ws-callback", headers=origin),
    ):
        pass
    assert closed.value.code == 4503
    clock.advance(31 * 60)
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        starlette_client.websocket_connect("/_dash-ws-callback", headers=origin),
    ):
        pass
    assert closed.value.code == 4401


def test_a_backend_sessionmw_does_not_serve_is_named(sessions: SessionManager) -> None:
    """SessionMWDash refuses an app whose backend is not one of Dash's three, naming it."""
    app = dash.Dash(__name__)
    app.backend.server_type = "tornado"
    with pytest.raises(TypeError, match="'tornado'"):
        SessionMWDash(app, manager=sessions)


def _server(backend: str) -> Any:
    """A bare server of ``backend``'s kind, for several Dash apps."""
    if backend == "quart":
        from quart import Quart

        return Quart(__name__)
    if backend == "fastapi":
        from fastapi import FastAPI

        return FastAPI()
    from flask import Flask

    return Flask(__name__)


def test_several_apps_on_one_server(backend: str) -> None:
    """Dash's url_base_pathname pattern on every backend: each app its banner and its excluded
    page-loading paths, one extension or middleware (one manager, one cookie) for all.

    Not on Quart: Dash 4.4 itself cannot build a second app on one Quart server (both register
    the websocket route's endpoint ``websocket_handler``: Quart's AssertionError in ``Dash()``)."""
    if backend == "quart":
        pytest.skip("Dash 4.4 builds no second app on one Quart server (endpoint websocket_handler)")
    server = _server(backend)
    shared = SessionManager(store="memory://")
    parts = []
    for base in ("/reports/", "/admin/"):
        part = dash.Dash(__name__, server=server, url_base_pathname=base)
        part.layout = html.Div([html.H1(base), html.Div(id="out")])
        SessionMWDash(part, manager=shared)
        parts.append(part)
    assert [state.routes_prefix for state in map(dash_state, parts) if state] == ["/reports/", "/admin/"]
    client = _open(parts[1])
    layout = client.get("/admin/_dash-layout")
    assert layout.status_code == 200 and BANNER_ID in layout.get_data(as_text=True)
    assert client.get_cookie("sessionmw") is None  # page-loading paths are not tracked
    assert client.get("/reports/_dash-layout").status_code == 200
    assert client.get_cookie("sessionmw") is None
    shared.close()


def test_debug_mode_raises_again_for_the_dev_tools(backend: str, sessions: SessionManager) -> None:
    """With Dash's dev tools UI on, a guarded callback's exception is recorded once and raised
    again (an error answer, the dev tools' to show), on every backend."""
    behaviour: dict[str, Any] = {"error": DataLoadError("prices.csv is corrupt")}
    app = _guarded_app(sessions, behaviour, backend)
    app.enable_dev_tools(debug=True, dev_tools_hot_reload=False)
    client = _client(app)
    payload = callback_payload(app, ["out.children"], [("go", "n_clicks", 1)], None)
    reply = client.post("/_dash-update-component", data=json.dumps(payload), headers=JSON_HEADERS)
    assert reply.status_code >= 500  # Dash's debug answer (a traceback page), not the banner's update
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1


# -- the demo app -------------------------------------------------------------------------------


def test_demo_scan_renders_a_table(backend: str, demo_module: ModuleType, sessions: SessionManager) -> None:
    """The Scanner page's callback returns a table of the requested symbols, on every backend."""
    app = demo_module.create_app(manager=sessions, retry_sleep=lambda seconds: None, server=backend)
    client = _client(app)
    status, body = _fire(
        client,
        [("scan-output", "children")],
        [("scan-run", "n_clicks", 1)],
        [("scan-symbols", "value", "acme wayne")],
    )
    assert status == 200
    table = _texts(body["response"]["scan-output"]["children"])
    assert "ACME" in table and "WAYNE" in table


def test_demo_knobs_and_a_fault_on_every_backend(
    backend: str, demo_module: ModuleType, sessions: SessionManager
) -> None:
    """The knobs' route (outside session tracking) turns "Backend down" on; the scan then says
    "Session not running" in the banner and the failure is recorded on the session."""
    app = demo_module.create_app(manager=sessions, retry_sleep=lambda seconds: None, server=backend)
    client = _client(app)
    knobs = _open(app)  # the operator: no session
    reply = knobs.post("/demo/faults", data=json.dumps({"flags": ["down"]}), headers=JSON_HEADERS)
    assert reply.status_code == 200 and reply.get_json()["flags"] == ["down"]
    assert knobs.get_cookie("sessionmw") is None
    bad = knobs.post("/demo/faults", data=json.dumps({"transient": 0}), headers=JSON_HEADERS)
    assert bad.status_code == 400 and "transient" in bad.get_json()["error"]
    status, body = _fire(
        client,
        [("scan-output", "children")],
        [("scan-run", "n_clicks", 1)],
        [("scan-symbols", "value", "acme")],
    )
    assert status == 200 and "Session not running" in _said(body)
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1


@pytest.mark.parametrize(("server", "runner"), [("fastapi", "uvicorn"), ("quart", "hypercorn")])
def test_demo_command_serves_fastapi_and_quart_itself(
    server: str, runner: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sessionmw demo --backend fastapi|quart` starts uvicorn or Hypercorn itself, on 127.0.0.1:PORT."""
    served: list[tuple[str, Any]] = []
    if runner == "uvicorn":
        import uvicorn

        monkeypatch.setattr(
            uvicorn.Server, "run", lambda self: served.append((self.config.host, self.config.port))
        )
    else:
        import hypercorn.asyncio

        async def fake_serve(app: Any, config: Any, **_: Any) -> None:
            served.append(("bind", config.bind))

        monkeypatch.setattr(hypercorn.asyncio, "serve", fake_serve)
    assert main(["demo", "--port", "18124", "--backend", server]) == 0
    assert served == [("127.0.0.1", 18124)] if runner == "uvicorn" else [("bind", ["127.0.0.1:18124"])]
    assert "http://127.0.0.1:18124/" in capsys.readouterr().out


def test_demo_command_rejects_an_unknown_backend(capsys: pytest.CaptureFixture[str]) -> None:
    """A backend Dash does not offer is a usage error naming the value."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--backend", "tornado"])
    assert exit_info.value.code == 2
    assert "tornado" in capsys.readouterr().err


def test_demo_scan_names_a_bad_symbol(demo_module: ModuleType, sessions: SessionManager) -> None:
    """Bad input gets a clear message naming it, not an error."""
    app = demo_module.create_app(manager=sessions)
    client = _client(app)
    _, body = _fire(
        client,
        [("scan-output", "children")],
        [("scan-run", "n_clicks", 1)],
        [("scan-symbols", "value", "ACME, $$$")],
    )
    assert "'$$$' is not a ticker symbol" in _texts(body["response"]["scan-output"]["children"])
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 0


def test_demo_backtests_progress_to_done(demo_module: ModuleType, sessions: SessionManager) -> None:
    """Starting a batch and ticking it shows progress until every symbol has a result."""
    app = demo_module.create_app(manager=sessions)
    client = _client(app)
    start_outputs = [
        ("bt-job", "data"),
        ("bt-tick", "disabled"),
        ("bt-output", "children"),
        ("bt-progress", "value"),
        ("bt-progress-label", "children"),
    ]
    state = [("bt-symbols", "value", "ACME, WAYNE"), ("bt-fast", "value", 5), ("bt-slow", "value", 20)]
    _, body = _fire(client, start_outputs, [("bt-run", "n_clicks", 1)], state)
    job_id = body["response"]["bt-job"]["data"]
    assert body["response"]["bt-tick"]["disabled"] is False
    tick_outputs = [
        ("bt-progress", "value"),
        ("bt-progress-label", "children"),
        ("bt-output", "children"),
        ("bt-tick", "disabled"),
    ]
    labels = []
    for ticks in (1, 2):
        _, body = _fire(
            client, tick_outputs, [("bt-tick", "n_intervals", ticks)], [("bt-job", "data", job_id)]
        )
        labels.append(body["response"]["bt-progress-label"]["children"])
    assert labels == ["1 of 2 done", "2 of 2 done"]
    assert body["response"]["bt-progress"]["value"] == "100"
    assert body["response"]["bt-tick"]["disabled"] is True


# -- the simulated backend ----------------------------------------------------------------------


def test_prices_are_deterministic_per_symbol(demo_module: ModuleType) -> None:
    """The same symbol always gives the same prices; different symbols differ."""
    backend = demo_module.MarketBackend()
    assert backend.prices("ACME") == demo_module.MarketBackend().prices("ACME")
    assert backend.prices("ACME") != backend.prices("WAYNE")
    assert all(price > 0 for price in backend.prices("ACME"))


def test_fault_transient_fails_the_next_calls_only(demo_module: ModuleType) -> None:
    """The transient knob fails exactly that many calls, then the backend answers."""
    backend = demo_module.MarketBackend()
    backend.faults.transient_failures = 2
    for _ in range(2):
        with pytest.raises(TransientError):
            backend.prices("ACME")
    assert backend.prices("ACME")


def test_fault_backend_down_is_the_seed_symptom(demo_module: ModuleType) -> None:
    """A dead backend raises the seed's 'This session is not running'."""
    backend = demo_module.MarketBackend(demo_module.Faults(backend_down=True))
    with pytest.raises(RuntimeError, match="This session is not running"):
        backend.scan(["ACME"])


def test_fault_bad_data_is_a_data_error(demo_module: ModuleType) -> None:
    """Gaps in a price series are rejected as a DataLoadError naming the symbol."""
    backend = demo_module.MarketBackend(demo_module.Faults(bad_data=True))
    with pytest.raises(DataLoadError, match="ACME"):
        backend.prices("ACME")


def test_fault_latency_uses_the_injected_sleep(demo_module: ModuleType) -> None:
    """Slow responses wait through the injected sleep function."""
    waits: list[float] = []
    backend = demo_module.MarketBackend(demo_module.Faults(latency_seconds=2.0), sleep=waits.append)
    backend.prices("ACME")
    assert waits == [2.0]


@pytest.mark.parametrize(
    ("text", "expected"), [("acme, wayne acme", ["ACME", "WAYNE"]), ("BRK.B;X", ["BRK.B", "X"])]
)
def test_parse_symbols(demo_module: ModuleType, text: str, expected: list[str]) -> None:
    """Symbols are split on commas, spaces and semicolons, upper-cased and de-duplicated."""
    assert demo_module.parse_symbols(text) == expected


@pytest.mark.parametrize(("text", "message"), [("", "at least one"), ("ACME, 12345678901", "12345678901")])
def test_parse_symbols_rejects_bad_input(demo_module: ModuleType, text: str, message: str) -> None:
    """Empty input or a malformed symbol is refused with a message naming it."""
    with pytest.raises(ValueError, match=message):
        demo_module.parse_symbols(text)


def test_backtest_windows_are_checked(demo_module: ModuleType) -> None:
    """A fast window not below the slow one is refused with the values named."""
    with pytest.raises(ValueError, match="30/10"):
        demo_module.MarketBackend().start_backtests(["ACME"], 30, 10)


def test_apply_fault_names_unknown_faults(demo_module: ModuleType) -> None:
    """An unknown fault name is refused with the choices listed."""
    with pytest.raises(ValueError, match="choose from transient"):
        demo_module.apply_fault(demo_module.Faults(), "meteor")


# -- the command --------------------------------------------------------------------------------


def test_load_demo_without_checkout_fails_in_one_line(tmp_path: Path) -> None:
    """Outside a repository checkout the demo explains where the app should be."""
    with pytest.raises(DemoUnavailableError, match="clone of the repository"):
        load_demo(tmp_path / "missing.py")


def test_demo_command_without_checkout_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sessionmw demo` without the app prints one friendly line and exits 1."""
    import sessionmw.demo

    monkeypatch.setattr(sessionmw.demo, "DEMO_FILE", tmp_path / "missing.py")
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sessionmw demo: the demo app is not here") and err.count("\n") == 1


def test_demo_command_serves_on_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sessionmw demo --port N` runs the app on 127.0.0.1:N with debug off and prints the URL."""
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(dash.Dash, "run", lambda self, **kwargs: runs.append(kwargs))
    assert main(["demo", "--port", "18123", "--fault", "down"]) == 0
    assert runs == [{"host": "127.0.0.1", "port": 18123, "debug": False}]
    assert "http://127.0.0.1:18123/" in capsys.readouterr().out


def test_demo_command_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    """A port outside 1-65535 is a usage error naming the value."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "70000" in capsys.readouterr().err


def test_the_dash_server_answers_api_clients_with_problem_documents(sessions: SessionManager) -> None:
    """A disconnected session: an API route on the Dash app's server gets a problem document,
    while the page's own callback gets the banner's update (Dash's protocol, not an API answer).

    Flask only: the problem documents are the WSGI gate's (issue 28); the Quart extension's JSON
    refusals are the quart branch's to bring to the same shape."""
    behaviour: dict[str, Any] = {}
    app = _guarded_app(sessions, behaviour, "flask")
    app.server.add_url_rule("/api/orders", "orders", lambda: {"orders": []})
    client = _client(app)
    for _ in range(THRESHOLD):
        sessions.record_error(_sid(client), "backend down")
    api = client.get("/api/orders", headers={"Accept": "application/problem+json"})
    assert (api.status_code, api.content_type) == (503, "application/problem+json")
    assert problem_errors(api.get_data(), status=503) == []
    assert api.get_json()["type"] == "https://sessionmw.readthedocs.io/problems/session-disconnected"
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and _side(body)[HEALTH_STORE_ID]["data"]["status"] == "disconnected"
    assert behaviour.get("calls", 0) == 0
