"""The store operations of every adapter's request paths, counted by ``support.fakes.CountedStore``:
sessions, ``incarnation`` reads and breaker operations alike.

A healthy, idle, error, disconnected, expired or unknown session costs one store update (the
activity that admits or refuses the request); each other path (a new client, a pending id coming
back, an error, the ``health`` and ``reconnect`` endpoints) is pinned below with a breaker kept in
the same store, so a health report's breaker read is counted too. The Quart extension makes the
Flask extension's operations on the async store path (under asyncio and trio). ``@guarded``'s
calls are counted the same way in ``tests/system/test_store_operations_per_guarded_call.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, jsonify
from support.fakes import SESSION_KINDS, CountedStore
from werkzeug.test import Client

from sessionmw import SessionManager
from sessionmw._states import Event
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.stores._memory import MemoryStore
from sessionmw.testing import FakeClock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ACTIVITY = f"update:{Event.ACTIVITY}"
SUCCESS = f"update:{Event.SUCCESS}"

# The store operations of one request, by the kind of session it comes with.
OPERATIONS = {
    "healthy": {ACTIVITY: 1},
    "idle": {ACTIVITY: 1},
    # The 200 response takes the error session back to active: a second, real write (the success).
    "error": {ACTIVITY: 1, SUCCESS: 1},
    "disconnected": {ACTIVITY: 1},
    "expired": {ACTIVITY: 1},
    "unknown": {ACTIVITY: 1},
}
# The status an HTML page and a JSON client get, by the kind of session.
STATUS = {
    "healthy": (200, 200),
    "idle": (200, 200),
    "error": (200, 200),
    "disconnected": (200, 503),
    "expired": (200, 401),
    "unknown": (200, 200),
}
ACCEPT = {"html": "text/html", "json": "application/json"}


def plain_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A WSGI app that answers 200."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def with_middleware(manager: SessionManager) -> Any:
    return SessionMiddleware(plain_app, manager=manager, secret_key="test-secret")


def with_flask(manager: SessionManager) -> Any:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test-secret"

    @app.get("/")
    def page() -> Any:
        return jsonify(ok=True)

    SessionMW(app, manager=manager)
    return app


ADAPTERS: dict[str, Callable[[SessionManager], Any]] = {"middleware": with_middleware, "flask": with_flask}


@pytest.mark.parametrize("accept", list(ACCEPT))
@pytest.mark.parametrize("kind", list(SESSION_KINDS))
@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_a_request_makes_one_store_operation(adapter: str, kind: str, accept: str, clock: FakeClock) -> None:
    """Admitting or refusing the request is one store operation: no second read to explain a refusal."""
    store = CountedStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    session_id = SESSION_KINDS[kind](manager, clock)
    client = Client(ADAPTERS[adapter](manager))
    client.get("/")  # a first client: the gate reads the store's incarnation once
    client.set_cookie("sessionmw", session_id)
    store.calls.clear()
    response = client.get("/", headers={"Accept": ACCEPT[accept]})
    assert dict(store.calls) == OPERATIONS[kind]
    html_status, json_status = STATUS[kind]
    assert response.status_code == (html_status if accept == "html" else json_status)


RECONNECT = f"update:{Event.RECONNECT}"
ERROR = f"update:{Event.ERROR}"
READ = "update:None"  # a read: an update without an event
BREAKER_READ = "breaker:read"
JSON = {"Accept": "application/json"}


def failing_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A WSGI app whose every request fails (``/`` excepted: 200)."""
    if environ.get("PATH_INFO") == "/":
        return plain_app(environ, start_response)
    raise RuntimeError("the app failed")


def counted_middleware(manager: SessionManager) -> Any:
    return SessionMiddleware(failing_app, manager=manager, secret_key="test-secret")


def counted_flask(manager: SessionManager) -> Any:
    app: Flask = with_flask(manager)

    @app.get("/fails")
    def fails() -> Any:
        raise RuntimeError("the app failed")

    return app


COUNTED: dict[str, Callable[[SessionManager], Any]] = {
    "middleware": counted_middleware,
    "flask": counted_flask,
}


class Counted:
    """An adapter on a counted memory store, with a breaker kept there (read by every health
    report of a live session: ``state_ttl=0``)."""

    def __init__(self, adapter: str, clock: FakeClock) -> None:
        from sessionmw._breaker import Breaker

        self.store = CountedStore(MemoryStore())
        self.manager = SessionManager(store=self.store, clock=clock)
        self.breaker = Breaker("payments", manager=self.manager, clock=clock, state_ttl=0)
        self.client = Client(COUNTED[adapter](self.manager))

    def pending_id(self) -> str:
        """An id issued to a new client (the client keeps it as its cookie)."""
        self.client.get("/")
        cookie = self.client.get_cookie("sessionmw")
        assert cookie is not None
        return cookie.value

    def counts(self, send: Callable[[Client], Any]) -> tuple[dict[str, int], Any]:
        """The store operations of one request, and its response."""
        self.store.calls.clear()
        response = send(self.client)
        return dict(self.store.calls), response


@pytest.fixture(name="counted", params=list(COUNTED))
def _counted(request: pytest.FixtureRequest, clock: FakeClock) -> Counted:
    return Counted(request.param, clock)


def test_a_new_client_costs_the_incarnation_read_once_per_gate(counted: Counted) -> None:
    """The first new client reads the store's incarnation (its pending id is signed with it); the
    next ones cost nothing: nothing is stored for a client until it comes back."""
    first, _ = counted.counts(lambda client: client.get("/"))
    assert first == {"incarnation": 1}
    counted.client.delete_cookie("sessionmw")
    second, response = counted.counts(lambda client: client.get("/"))
    assert second == {} and response.status_code == 200


def test_a_known_id_costs_one_operation(counted: Counted) -> None:
    """A stored session's request is its activity, and nothing else."""
    counted.client.set_cookie("sessionmw", counted.manager.create_session().session_id)
    calls, _ = counted.counts(lambda client: client.get("/"))
    assert calls == {ACTIVITY: 1}


def test_a_pending_id_coming_back_costs_two_operations(counted: Counted) -> None:
    """An issued id returned by its client costs the activity (a miss) and the create that
    stores it: the store's incarnation, read when the id was issued, is not read again within
    ``INCARNATION_MAX_AGE``."""
    sid = counted.pending_id()
    calls, response = counted.counts(lambda client: client.get("/"))
    assert calls == {ACTIVITY: 1, "create": 1}
    assert response.status_code == 200 and counted.manager.get_session(sid) is not None


def test_an_error_costs_the_activity_and_the_error(counted: Counted) -> None:
    """A failing request records its error with one operation: nothing is read again."""
    sid = counted.manager.create_session().session_id
    counted.client.set_cookie("sessionmw", sid)
    calls, response = counted.counts(lambda client: client.get("/fails", headers=JSON))
    assert calls == {ACTIVITY: 1, ERROR: 1}
    assert response.status_code == 500
    record = counted.manager.get_session(sid)
    assert record is not None and record.error_count == 1


def test_a_reconnect_reports_what_the_store_answered(counted: Counted, clock: FakeClock) -> None:
    """Reconnecting a disconnected session is one operation: its outcome is the health the
    response shows (with the breaker, as every report of a live session), not read again."""
    from support.fakes import disconnected_session

    sid = disconnected_session(counted.manager, clock)
    counted.client.set_cookie("sessionmw", sid)
    calls, response = counted.counts(lambda client: client.post("/_sessionmw/reconnect", headers=JSON))
    assert calls == {RECONNECT: 1, BREAKER_READ: 1}
    assert response.status_code == 200 and response.get_json()["session"]["state"] == "active"


def test_a_reconnect_with_a_pending_id_checks_it_once(counted: Counted, clock: FakeClock) -> None:
    """A pending id has nothing to reconnect: the miss, and the incarnation read (is it
    pending?) once, when the last read is ``INCARNATION_MAX_AGE`` old."""
    from sessionmw.integrations.pending_ids import INCARNATION_MAX_AGE

    counted.pending_id()
    calls, response = counted.counts(lambda client: client.post("/_sessionmw/reconnect", headers=JSON))
    assert calls == {RECONNECT: 1}
    assert response.status_code == 200
    clock.advance(INCARNATION_MAX_AGE)
    calls, response = counted.counts(lambda client: client.post("/_sessionmw/reconnect", headers=JSON))
    assert calls == {RECONNECT: 1, "incarnation": 1}
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param("stored", {READ: 1, BREAKER_READ: 1}, id="stored"),
        pytest.param("pending", {READ: 1}, id="pending"),
        pytest.param("none", {}, id="no-id"),
    ],
)
def test_the_health_endpoint_reads_once(counted: Counted, kind: str, expected: dict[str, int]) -> None:
    """``GET health`` is one read (with the breaker's, for a live session); a pending id is known
    by the incarnation already read; no id costs nothing (and reports ``fail``: 503)."""
    if kind == "stored":
        counted.client.set_cookie("sessionmw", counted.manager.create_session().session_id)
    elif kind == "pending":
        counted.pending_id()
    calls, response = counted.counts(lambda client: client.get("/_sessionmw/health"))
    assert calls == expected
    assert response.status_code == (503 if kind == "none" else 200)


def dash_app(manager: SessionManager, *, fails: bool = False) -> Any:
    """A Dash app with the banner and one guarded callback (failing with a transient error if asked)."""
    import dash
    from dash import Input, Output, html

    from sessionmw._errors import TransientError
    from sessionmw.integrations.dash import SessionMWDash
    from sessionmw.integrations.dash_banner import status_banner
    from sessionmw.integrations.dash_callbacks import guarded_callback

    app = dash.Dash(__name__)
    app.layout = html.Div([status_banner(), html.Button(id="go"), html.Div(id="out")])

    @guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)
    def go(clicks: int | None) -> str:
        if fails:
            raise TransientError("backend busy")
        return "done"

    SessionMWDash(app, manager=manager, secret_key="test-secret")
    return app


def fire(client: Any, accept: str) -> Any:
    """The callback request Dash's renderer makes when the button is clicked."""
    payload = {
        "output": "out.children",
        "outputs": {"id": "out", "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["go.n_clicks"],
    }
    return client.post("/_dash-update-component", json=payload, headers={"Accept": accept})


@pytest.mark.parametrize("accept", list(ACCEPT))
@pytest.mark.parametrize("kind", list(SESSION_KINDS))
def test_a_dash_callback_makes_one_store_operation(kind: str, accept: str, clock: FakeClock) -> None:
    """A guarded callback's request is admitted or refused with one store operation."""
    store = CountedStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    session_id = SESSION_KINDS[kind](manager, clock)
    client = dash_app(manager).server.test_client()
    fire(client, "application/json")  # a first client: the gate reads the store's incarnation once
    client.set_cookie("sessionmw", session_id)
    store.calls.clear()
    response = fire(client, ACCEPT[accept])
    assert dict(store.calls) == OPERATIONS[kind]
    # Dash refusals (issue 11) answer 200 with the banner's update only: the page says why at once
    # and the browser logs no failed request.
    refused = kind in ("disconnected", "expired")
    assert response.status_code == 200
    ran = b"done" in response.data
    assert ran == (not refused)
    if refused:
        update = response.get_json()["sideUpdate"]["sessionmw-health"]["data"]
        assert update["statement"]["status"] == kind


def test_a_failing_dash_callback_records_without_reading_the_store_again(clock: FakeClock) -> None:
    """A failing callback costs the activity and the error it records: its alert shows the session
    as the error left it (no read), and no read learns whether ``@guarded`` code recorded it already."""
    store = CountedStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    session_id = manager.create_session().session_id
    client = dash_app(manager, fails=True).server.test_client()
    client.set_cookie("sessionmw", session_id)
    store.calls.clear()
    fire(client, "application/json")
    assert dict(store.calls) == {ACTIVITY: 1, ERROR: 1}
    record = manager.get_session(session_id)
    assert record is not None and record.error_count == 1


# -- the Quart extension: the Flask extension's counts, on the async store path ---------------------


def with_quart(manager: SessionManager, app_class: Any) -> Any:
    """A Quart (or QuartTrio) app with the extension: ``/`` answers 200, ``/fails`` raises."""
    from quart import Quart

    from sessionmw.integrations.quart import SessionMWQuart

    app: Quart = app_class(__name__)
    app.config["SECRET_KEY"] = "test-secret"

    @app.get("/")
    async def page() -> Any:
        return {"ok": True}

    @app.get("/fails")
    async def fails() -> Any:
        raise RuntimeError("the app failed")

    SessionMWQuart(app, manager=manager)
    return app


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="quart_class")
def _quart_class(anyio_backend: str) -> Any:
    """Quart under asyncio, QuartTrio under trio."""
    if anyio_backend == "trio":
        from quart_trio import QuartTrio

        return QuartTrio
    from quart import Quart

    return Quart


@pytest.mark.anyio
@pytest.mark.parametrize("accept", list(ACCEPT))
@pytest.mark.parametrize("kind", list(SESSION_KINDS))
async def test_a_quart_request_makes_the_flask_extensions_operations(
    kind: str, accept: str, clock: FakeClock, quart_class: Any
) -> None:
    """A Quart request is admitted or refused with the Flask extension's store operations."""
    store = CountedStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    session_id = SESSION_KINDS[kind](manager, clock)
    client = with_quart(manager, quart_class).test_client(use_cookies=False)
    await client.get("/")  # a first client: the gate reads the store's incarnation once
    store.calls.clear()
    response = await client.get("/", headers={"Accept": ACCEPT[accept], "Cookie": f"sessionmw={session_id}"})
    assert dict(store.calls) == OPERATIONS[kind]
    html_status, json_status = STATUS[kind]
    assert response.status_code == (html_status if accept == "html" else json_status)


class QuartCounted:
    """:class:`Counted` for the Quart extension (requests awaited; cookies sent by hand)."""

    def __init__(self, clock: FakeClock, quart_class: Any) -> None:
        from sessionmw._breaker import Breaker

        self.store = CountedStore(MemoryStore())
        self.manager = SessionManager(store=self.store, clock=clock)
        self.breaker = Breaker("payments", manager=self.manager, clock=clock, state_ttl=0)
        self.client = with_quart(self.manager, quart_class).test_client(use_cookies=False)
        self.cookie = ""

    async def pending_id(self) -> str:
        """An id issued to a new client (the client keeps it as its cookie)."""
        response = await self.client.get("/")
        self.cookie = response.headers["Set-Cookie"].split(";")[0]
        return self.cookie.partition("=")[2]

    async def counts(self, method: str, path: str, **headers: str) -> tuple[dict[str, int], Any]:
        """The store operations of one request, and its response."""
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.store.calls.clear()
        response = await getattr(self.client, method)(path, headers=headers)
        return dict(self.store.calls), response


@pytest.fixture(name="quart_counted")
def _quart_counted(clock: FakeClock, quart_class: Any) -> QuartCounted:
    return QuartCounted(clock, quart_class)


@pytest.mark.anyio
async def test_quart_counts_the_flask_extensions_operations_on_every_path(
    quart_counted: QuartCounted, clock: FakeClock
) -> None:
    """A new client, a known id, a pending id coming back, an error, a reconnect and the health
    endpoint cost what they cost with the Flask extension (the tests above)."""
    from support.fakes import disconnected_session

    counted = quart_counted
    first, _ = await counted.counts("get", "/")
    assert first == {"incarnation": 1}
    second, response = await counted.counts("get", "/")
    assert second == {} and response.status_code == 200
    await counted.pending_id()
    calls, response = await counted.counts("get", "/")
    assert calls == {ACTIVITY: 1, "create": 1} and response.status_code == 200
    calls, _ = await counted.counts("get", "/")
    assert calls == {ACTIVITY: 1}
    calls, response = await counted.counts("get", "/fails", Accept="application/json")
    assert calls == {ACTIVITY: 1, ERROR: 1} and response.status_code == 500
    calls, response = await counted.counts("get", "/_sessionmw/health")
    assert calls == {READ: 1, BREAKER_READ: 1} and response.status_code == 200
    counted.cookie = f"sessionmw={disconnected_session(counted.manager, clock)}"
    calls, response = await counted.counts("post", "/_sessionmw/reconnect", Accept="application/json")
    assert calls == {RECONNECT: 1, BREAKER_READ: 1} and response.status_code == 200
    counted.cookie = ""
    calls, response = await counted.counts("get", "/_sessionmw/health")
    assert calls == {} and response.status_code == 503
