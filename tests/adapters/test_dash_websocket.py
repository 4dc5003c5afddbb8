"""Dash callbacks over a websocket (Quart and FastAPI), served by uvicorn on loopback and driven by
the ``websockets`` client as Dash's renderer drives them: the session checked per callback, one
action per callback, a refusal closed the way Dash documents after the banner heard why, a session
ended elsewhere telling the running callback, the friendly text instead of ``str(exception)``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import pytest
import uvicorn
from dash import Input, Output, html
from support.servers import callback_payload, free_port
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from sessionmw import DataLoadError, SessionManager, SessionState, signals
from sessionmw.integrations.dash import SessionMWDash
from sessionmw.integrations.dash_banner import HEALTH_STORE_ID, status_banner
from sessionmw.integrations.dash_callbacks import guarded_callback
from sessionmw.integrations.dash_websocket import install_websocket_hooks, websocket_close
from sessionmw.testing import FakeClock
from sessionmw.translation import translate

THRESHOLD = 3
DEADLINE = 20.0  # seconds: a wait on this shared, slow machine; never a timing assertion
SECRET = "websocket secret detail"


@pytest.fixture(name="backend", params=["quart", "fastapi"])
def _backend(request: pytest.FixtureRequest) -> str:
    """Dash's backends that carry callbacks over a websocket."""
    return str(request.param)


@pytest.fixture(name="sessions")
def _sessions(clock: FakeClock) -> Iterator[SessionManager]:
    manager = SessionManager(store="memory://", clock=clock, max_error_threshold=THRESHOLD)
    yield manager
    manager.close()


@pytest.fixture(autouse=True)
def _websocket_hooks() -> Iterator[None]:
    """Dash's process-wide websocket hooks, restored after the test."""
    saved = {name: list(dash.hooks._ns[name]) for name in ("websocket_connect", "websocket_message")}
    yield
    for name, hooks in saved.items():
        dash.hooks._ns[name] = hooks


class Page:
    """One browser page of a served Dash app: its HTTP client (the session cookie) and its websocket."""

    def __init__(self, base: str, app: dash.Dash) -> None:
        self.base = base
        self.app = app
        self.http = httpx.Client(base_url=base)
        assert self.http.get("/").status_code == 200  # issues the session id
        assert self.http.get("/").status_code == 200  # sent back: the session is stored
        self.sid = str(self.http.cookies["sessionmw"])
        self.seen: list[dict[str, Any]] = []

    def close(self) -> None:
        self.http.close()

    def open(self) -> ClientConnection:
        url = self.base.replace("http://", "ws://") + "/_dash-ws-callback"
        headers = {"Cookie": f"sessionmw={self.sid}", "Origin": self.base}
        return connect(url, additional_headers=headers, open_timeout=DEADLINE)

    def request(self, ws: ClientConnection, request_id: str, outputs: list[str], inputs: list[Any]) -> None:
        payload = callback_payload(self.app, outputs, inputs)
        ws.send(json.dumps(_request(request_id, "page", payload)))

    def next(self, ws: ClientConnection) -> dict[str, Any]:
        """The next message from the server (Dash batches some into a list)."""
        while True:
            if self.seen:
                return self.seen.pop(0)
            data = json.loads(ws.recv(timeout=DEADLINE))
            self.seen.extend(data if isinstance(data, list) else [data])

    def response(self, ws: ClientConnection, request_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The callback response to ``request_id`` and every message before it."""
        before: list[dict[str, Any]] = []
        while True:
            message = self.next(ws)
            if message.get("type") == "callback_response" and message.get("requestId") == request_id:
                return message["payload"], before
            before.append(message)

    def closed(self, ws: ClientConnection) -> tuple[int | None, list[dict[str, Any]]]:
        """The close code the server sent, and the messages before it."""
        before: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                before.append(self.next(ws))
        received = closed.value.rcvd
        return (received.code if received is not None else None), before


def _request(request_id: str, renderer: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A callback request as Dash's renderer sends it over the websocket."""
    return {"type": "callback_request", "requestId": request_id, "rendererId": renderer, "payload": payload}


@contextlib.contextmanager
def served(app: dash.Dash) -> Iterator[str]:
    """``app``'s server run by uvicorn on a free loopback port, in a thread; stopped after."""
    port = free_port()
    config = uvicorn.Config(app.server, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)  # waiting for the server to listen (a deadline, not a race)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(DEADLINE)


def _app(backend: str, sessions: SessionManager, **options: Any) -> dash.Dash:
    app = dash.Dash(__name__, backend=backend, websocket_callbacks=True)
    app.layout = html.Div([status_banner(), html.Button(id="go"), html.Div(id="out")])
    SessionMWDash(app, manager=sessions, **options)
    return app


def _statement(before: list[dict[str, Any]]) -> dict[str, Any]:
    """The banner's statement the page got (over a websocket, Dash streams set_props at once)."""
    for message in reversed(before):
        payload = message.get("payload") or {}
        if message.get("type") == "set_props" and payload.get("componentId") == HEALTH_STORE_ID:
            said: dict[str, Any] = (payload["props"].get("data") or {}).get("statement") or {}
            return said
    return {}


def test_hooks_are_registered_once(sessions: SessionManager) -> None:
    """SessionMWDash registers its websocket hooks with dash.hooks once, however many apps."""
    _app("fastapi", sessions)
    _app("fastapi", SessionManager(store="memory://"))
    install_websocket_hooks()
    assert len(dash.hooks.get_hooks("websocket_connect")) == 1
    assert len(dash.hooks.get_hooks("websocket_message")) == 1


def test_the_close_names_the_status() -> None:
    """A refused session closes with 4401 (expired, ended, unknown) or 4503 (disconnected)."""
    assert websocket_close({"status": "expired"}) == (4401, "expired")
    assert websocket_close({"status": "not_found"}) == (4401, "not_found")
    assert websocket_close({"status": "disconnected"}) == (4503, "disconnected")


@pytest.mark.parametrize(
    ("how", "code", "status"), [("ended", 4401, "expired"), ("disconnected", 4503, "disconnected")]
)
def test_a_refused_session_is_closed_and_the_banner_says_why(
    backend: str, sessions: SessionManager, how: str, code: int, status: str
) -> None:
    """A callback over the websocket of a session ended (or disconnected) since it connected does
    not run: the page's banner gets the report saying why, then Dash's documented close (4401, 4503)."""
    ran: list[int] = []

    app = _app(backend, sessions)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def work(clicks: int | None) -> str:
        ran.append(1)
        return "done"

    with contextlib.ExitStack() as stack, served(app) as base:
        page = Page(base, app)
        stack.callback(page.close)
        with page.open() as ws:
            page.request(ws, "1", ["out.children"], [("go", "n_clicks", 1)])
            payload, _ = page.response(ws, "1")
            assert payload["data"]["response"]["out"]["children"] == "done"
            if how == "ended":
                sessions.end_session(page.sid)
            else:
                for _ in range(THRESHOLD):
                    sessions.record_error(page.sid, "boom")
            page.request(ws, "2", ["out.children"], [("go", "n_clicks", 2)])
            closed, before = page.closed(ws)
    assert closed == code
    assert ran == [1]
    banner = [m for m in before if m.get("type") == "set_props"]
    assert banner and banner[0]["rendererId"] == "page"
    data = banner[0]["payload"]["props"]["data"]
    assert banner[0]["payload"]["componentId"] == HEALTH_STORE_ID
    assert data["status"] in (status, "not_found") and data["statement"]["title"]


def test_each_callback_is_one_action_and_the_user_reads_the_friendly_text(
    backend: str, sessions: SessionManager, clock: FakeClock
) -> None:
    """Each callback over the websocket is one action: its error is recorded once (the session
    reaches the error state as over HTTP), a success clears it; the page reads the friendly message
    in the banner, never Dash's str(exception)."""
    app = _app(backend, sessions)
    fail = [True]

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def work(clicks: int | None) -> str:
        if fail[0]:
            raise DataLoadError(SECRET)
        return f"clicked {clicks}"

    friendly = translate(DataLoadError("x")).title
    with contextlib.ExitStack() as stack, served(app) as base:
        page = Page(base, app)
        stack.callback(page.close)
        with page.open() as ws:
            for n in (1, 2):
                page.request(ws, str(n), ["out.children"], [("go", "n_clicks", n)])
                payload, before = page.response(ws, str(n))
                assert payload["status"] == "ok"
                assert SECRET not in json.dumps([payload, *before])
                said = _statement(before)
                assert friendly in said.get("title", "") + said.get("message", "")
                record = sessions.get_session(page.sid)
                assert record is not None and record.error_count == n
            assert record is not None and record.state is SessionState.ERROR
            fail[0] = False
            clock.advance(5)
            page.request(ws, "3", ["out.children"], [("go", "n_clicks", 3)])
            payload, _ = page.response(ws, "3")
            assert payload["data"]["response"]["out"]["children"] == "clicked 3"
    record = sessions.get_session(page.sid)
    assert record is not None and record.state is not SessionState.ERROR and record.error_count == 0
    assert record.last_activity == clock()  # the third callback was activity: touched at its time


def test_async_and_guarded_callbacks_are_actions_too(backend: str, sessions: SessionManager) -> None:
    """An async callback's error is recorded (awaited, on the event loop) and answered in words; a
    @guarded_callback over the websocket records its failure once, as over HTTP."""
    app = _app(backend, sessions)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    async def work(clicks: int | None) -> str:
        raise DataLoadError(SECRET)

    @app.callback(Output("go", "children"), Input("go", "n_clicks"))
    @guarded_callback
    def guarded(clicks: int | None) -> str:
        raise DataLoadError(SECRET)

    with contextlib.ExitStack() as stack, served(app) as base:
        page = Page(base, app)
        stack.callback(page.close)
        with page.open() as ws:
            page.request(ws, "1", ["out.children"], [("go", "n_clicks", 1)])
            payload, before = page.response(ws, "1")
            assert payload["status"] == "ok" and SECRET not in json.dumps([payload, *before])
            assert _statement(before)["title"]
            page.request(ws, "2", ["go.children"], [("go", "n_clicks", 1)])
            payload, before = page.response(ws, "2")
            assert payload["status"] == "ok" and SECRET not in json.dumps([payload, *before])
            assert _statement(before)["title"]
    record = sessions.get_session(page.sid)
    assert record is not None and record.error_count == 2


def test_debug_mode_sends_the_raw_text(backend: str, sessions: SessionManager) -> None:
    """In debug mode (Dash's dev tools UI on) the exception goes on to Dash, which sends its text,
    as without sessionmw; the error is still recorded once."""
    app = _app(backend, sessions)
    app.enable_dev_tools(debug=True, dev_tools_hot_reload=False)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def work(clicks: int | None) -> str:
        raise DataLoadError(SECRET)

    with contextlib.ExitStack() as stack, served(app) as base:
        page = Page(base, app)
        stack.callback(page.close)
        with page.open() as ws:
            page.request(ws, "1", ["out.children"], [("go", "n_clicks", 1)])
            payload, _ = page.response(ws, "1")
    assert payload == {"status": "error", "message": SECRET}
    record = sessions.get_session(page.sid)
    assert record is not None and record.error_count == 1


@pytest.mark.parametrize("where", ["this-process", "another-process"])
def test_a_session_ended_elsewhere_tells_the_running_callback(
    backend: str, sessions: SessionManager, where: str
) -> None:
    """A long-running websocket callback whose session is ended elsewhere is told: ended in this
    process (the session_ended signal), the websocket closes (4401) at once; ended by another
    process (no signal here), at the page's next message (Dash's heartbeat). Either way Dash's
    ws.is_shutdown turns True for the callback, which stops."""
    started, told = threading.Event(), threading.Event()
    seen: list[bool] = []
    app = _app(backend, sessions)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    async def stream(clicks: int | None) -> str:
        ws = dash.ctx.websocket
        started.set()
        try:
            await asyncio.Event().wait()  # runs until Dash tells it to stop
        except asyncio.CancelledError:
            seen.append(ws is not None and ws.is_shutdown)
            told.set()
            raise
        return "never"

    with contextlib.ExitStack() as stack, served(app) as base:
        page = Page(base, app)
        stack.callback(page.close)
        with page.open() as ws:
            page.request(ws, "1", ["out.children"], [("go", "n_clicks", 1)])
            assert started.wait(DEADLINE)
            if where == "this-process":
                sessions.end_session(page.sid)
            else:
                with signals.session_ended.muted():  # as if another process ended it
                    sessions.end_session(page.sid)
                ws.send(json.dumps({"type": "heartbeat"}))
            closed, before = page.closed(ws)
        assert told.wait(DEADLINE)
    assert closed == 4401
    assert seen == [True]
    assert _statement(before)["title"]  # the page heard why


def test_apps_without_sessionmw_are_left_alone(backend: str, sessions: SessionManager) -> None:
    """A Dash app without SessionMWDash in the same process: its websocket callbacks run as Dash runs
    them (the hooks are process-wide), its errors as Dash sends them."""
    install_websocket_hooks()
    app = dash.Dash(__name__, backend=backend, websocket_callbacks=True)
    app.layout = html.Div([html.Button(id="go"), html.Div(id="out")])

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def work(clicks: int | None) -> str:
        raise DataLoadError(SECRET)

    port_app = app
    with served(port_app) as base:
        url = base.replace("http://", "ws://") + "/_dash-ws-callback"
        with connect(url, additional_headers={"Origin": base}, open_timeout=DEADLINE) as ws:
            payload = callback_payload(app, ["out.children"], [("go", "n_clicks", 1)])
            ws.send(json.dumps(_request("1", "p", payload)))
            answer = json.loads(ws.recv(timeout=DEADLINE))
    answers = answer if isinstance(answer, list) else [answer]
    assert {"status": "error", "message": SECRET} in [a.get("payload") for a in answers]
