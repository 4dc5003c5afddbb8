"""SessionMWDash on each of Dash's backends (Flask, Quart, FastAPI), without a browser: guarded callbacks,
the reconnect flow, errors where Dash handles them, the demo on each backend; and the layout kinds."""

from __future__ import annotations

import importlib.util
import json
import weakref
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import dash
import pytest
from dash import Input, Output, dcc, html
from support.dash import (
    BANNER_CALLBACK_IDS,
    BOOTSTRAP_CSS,
    THRESHOLD,
    callback_ids,
    component,
    layout_ids,
    missing_ids,
    page_stub,
    side_updates,
    texts_of,
)
from support.servers import BackendClient, callback_payload, fire_callback, session_cookie

from sessionmw import DataLoadError, SessionManager, SessionState, TransientError
from sessionmw.__main__ import main
from sessionmw._guard import guarded
from sessionmw.demo import load_demo
from sessionmw.integrations.dash import SessionMWDash, dash_static_paths, preserve
from sessionmw.integrations.dash_apps import dash_state, server_apps
from sessionmw.integrations.dash_banner import (
    ALERT_ID,
    BANNER_ID,
    HEALTH_STORE_ID,
    POLL_ID,
    status_banner,
)
from sessionmw.integrations.dash_callbacks import guarded_callback
from sessionmw.integrations.flask import SessionMW
from sessionmw.testing import FakeClock
from sessionmw.translation import translate

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


# -- layout -------------------------------------------------------------------------------------


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
    assert component(layout, "sessionmw-config")["props"]["data"]["theme"] == expected
    assert component(layout, "sessionmw-config")["props"]["data"]["prefix"] == "/_sessionmw/"
    assert component(layout, POLL_ID)["props"]["interval"] == 5000
    classes = component(layout, ALERT_ID)["props"]["className"].split()
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
    assert side_updates(body)[ALERT_ID] == {"style": {"display": "none"}}


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
    said = side_updates(body)[HEALTH_STORE_ID]["data"]["statement"]
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
    side = side_updates(body)
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
    assert side_updates(body)[ALERT_ID]["style"] == {"display": "none"}


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
    side = side_updates(body)
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
        data = side_updates(body)[HEALTH_STORE_ID]["data"]
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
    assert side_updates(body)[HEALTH_STORE_ID]["data"]["status"] == "error"
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1
    behaviour.pop("error")
    status, body = _fire(client, [("out", "children")], [("go", "n_clicks", 2)])
    assert status == 200 and body["response"]["out"]["children"] == "done 2"
    assert side_updates(body)[HEALTH_STORE_ID]["data"]["status"] == "healthy"


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


@pytest.mark.skipif(not _ASGI, reason="needs sessionmw.integrations.asgi")
def test_a_callback_websocket_is_checked_when_it_connects(sessions: SessionManager, clock: FakeClock) -> None:
    """FastAPI: Dash's callback websocket of a live session is accepted; of an expired one closed
    before accept with 4401, of a disconnected one with 4503 (the ASGI SessionMiddleware decides)."""
    from starlette.websockets import WebSocketDisconnect

    app = dash.Dash(__name__, backend="fastapi", websocket_callbacks=True)
    app.layout = html.Div([status_banner(), html.Div(id="out")])
    SessionMWDash(app, manager=sessions)  # no warning: its callbacks are tracked (test_dash_websocket.py)
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
    table = texts_of(body["response"]["scan-output"]["children"])
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


# -- the simulated backend ----------------------------------------------------------------------


# -- the command --------------------------------------------------------------------------------


def _component_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = html.Div(page_stub())
    return app


def _list_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = page_stub()
    return app


def _function_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = lambda: html.Div(page_stub())
    return app


def _function_app_with_banner() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = lambda: html.Div([status_banner(), *page_stub()])
    return app


def _validation_layout_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = html.Div([dcc.Location(id="url"), html.Div(id="content")])
    target: Any = app  # Dash annotates validation_layout as None
    target.validation_layout = html.Div([dcc.Location(id="url"), html.Div(id="content"), *page_stub()])
    return app


def _pages_app() -> dash.Dash:
    app = dash.Dash(__name__, use_pages=True, pages_folder="")
    register_page: Callable[..., None] = dash.register_page  # untyped in Dash
    register_page("home", path="/", layout=html.Div(page_stub()))
    register_page("other", path="/other", layout=html.Div([html.P("other", id="other")]))
    app.layout = html.Div([html.H1("Site"), dash.page_container])
    return app


# -- the layout kinds (moved here from the host tests) ------------------------------------------


@pytest.mark.parametrize(
    "build",
    [_component_app, _list_app, _function_app, _function_app_with_banner, _validation_layout_app, _pages_app],
    ids=["component", "list", "function", "function-with-banner", "validation-layout", "pages"],
)
@pytest.mark.usefixtures("pages")
def test_every_layout_kind_validates_the_banners_callbacks(
    build: Callable[[], dash.Dash], sessions: SessionManager
) -> None:
    """Whatever the layout, the ids of every callback (the banner's included) are in the layout
    Dash checks callbacks against: no "ID not found in layout"."""
    app = build()

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def echo(clicks: int | None) -> str:
        return str(clicks)

    SessionMWDash(app, manager=sessions)
    client = app.server.test_client()
    assert callback_ids(client) >= BANNER_CALLBACK_IDS
    assert missing_ids(client) == set()
    served = client.get("/_dash-layout").get_json()
    assert BANNER_ID in layout_ids(served)


def test_validation_layout_set_after_set_up_gets_the_banner(sessions: SessionManager) -> None:
    """An app.validation_layout assigned after SessionMWDash(app) is completed too."""
    app = dash.Dash(__name__)
    app.layout = html.Div([html.Div(id="content")])
    SessionMWDash(app, manager=sessions)
    target: Any = app  # Dash annotates validation_layout as None
    target.validation_layout = html.Div([html.Div(id="content"), *page_stub()])
    assert missing_ids(app.server.test_client()) == set()


def test_a_list_layout_stays_a_list_for_later_layout_hooks(
    sessions: SessionManager, layout_hooks: list[Any]
) -> None:
    """A layout hook registered after ours gets the list it was written for (no TypeError, no 500)."""
    app = _list_app()
    SessionMWDash(app, manager=sessions)
    seen: list[type] = []

    @dash.hooks.layout()  # type: ignore[untyped-decorator]
    def add_header(layout: Any) -> Any:
        seen.append(type(layout))
        return [html.Div("Header", id="header"), *layout]

    response = app.server.test_client().get("/_dash-layout")
    assert response.status_code == 200
    assert seen == [list]
    served = response.get_json()
    assert isinstance(served, list)
    assert {"header", "go", "out", BANNER_ID} <= layout_ids(served)


def test_an_earlier_layout_hook_is_respected(sessions: SessionManager, layout_hooks: list[Any]) -> None:
    """A layout hook registered before ours runs first; its components and ours are both served."""

    @dash.hooks.layout()  # type: ignore[untyped-decorator]
    def add_footer(layout: Any) -> Any:
        return [*layout, html.Div("Footer", id="footer")]

    app = _list_app()
    SessionMWDash(app, manager=sessions)
    served = app.server.test_client().get("/_dash-layout").get_json()
    assert {"footer", "go", BANNER_ID} <= layout_ids(served)


def test_a_component_layout_is_wrapped_as_dash_wraps_its_own_extras(sessions: SessionManager) -> None:
    """A component layout is served inside a Div, the banner first, as Dash serves its own extra
    components; the app's layout object itself is left unchanged."""
    page = html.Div([html.Button("Go", id="go")], id="layout")
    app = dash.Dash(__name__)
    app.layout = page
    SessionMWDash(app, manager=sessions)
    served = app.server.test_client().get("/_dash-layout").get_json()
    assert served["type"] == "Div" and "id" not in served["props"]
    first, second = served["props"]["children"]
    assert (first["props"]["id"], second["props"]["id"]) == ("sessionmw-status", "layout")
    assert [child.id for child in page.children] == ["go"]


def test_a_root_without_children_is_wrapped(sessions: SessionManager) -> None:
    """A root that cannot hold the banner (a graph) is wrapped in a Div, as Dash does for its extras."""
    app = dash.Dash(__name__)
    app.layout = dcc.Graph(id="chart")
    SessionMWDash(app, manager=sessions)
    served = app.server.test_client().get("/_dash-layout").get_json()
    assert served["type"] == "Div"
    assert {"chart", BANNER_ID} <= layout_ids(served)


def test_the_banner_survives_a_reset_of_dash_hooks(sessions: SessionManager, layout_hooks: list[Any]) -> None:
    """dash.hooks reset (as Dash's own tests do) after set-up, or between two apps: every app
    set up still gets its banner in the served layout."""
    first = _component_app()
    SessionMWDash(first, manager=sessions)
    dash.hooks._ns["layout"] = []  # a reset after set-up, before serving
    assert BANNER_ID in layout_ids(first.server.test_client().get("/_dash-layout").get_json())
    dash.hooks._ns["layout"] = []  # and before the next app's set-up
    second = _component_app()
    SessionMWDash(second, manager=sessions)
    assert BANNER_ID in layout_ids(second.server.test_client().get("/_dash-layout").get_json())
