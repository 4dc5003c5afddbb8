"""Every adapter's request path makes one store operation, whatever state the session is in.

A healthy, idle, error, disconnected, expired or unknown session costs one store update (the
activity that admits or refuses the request); ``@guarded``'s calls are counted the same way in
``tests/test_store_operations.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, jsonify
from support import SESSION_KINDS, CountingStore
from werkzeug.test import Client

from sessionmw import SessionManager
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.states import Event
from sessionmw.stores.memory import MemoryStore
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
    store = CountingStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    session_id = SESSION_KINDS[kind](manager, clock)
    client = Client(ADAPTERS[adapter](manager))
    client.set_cookie("sessionmw", session_id)
    store.calls.clear()
    response = client.get("/", headers={"Accept": ACCEPT[accept]})
    assert dict(store.calls) == OPERATIONS[kind]
    html_status, json_status = STATUS[kind]
    assert response.status_code == (html_status if accept == "html" else json_status)


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_a_pending_id_coming_back_is_stored_by_a_second_write(adapter: str, clock: FakeClock) -> None:
    """An issued id returned by its client costs the activity and the create that stores it."""
    store = CountingStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    client = Client(ADAPTERS[adapter](manager))
    client.get("/")  # issues a pending id; the client keeps the cookie
    store.calls.clear()
    client.get("/")
    assert dict(store.calls) == {ACTIVITY: 1, "create": 1}


def dash_app(manager: SessionManager, *, fails: bool = False) -> Any:
    """A Dash app with the banner and one guarded callback (failing with a transient error if asked)."""
    import dash
    from dash import Input, Output, html

    from sessionmw.errors import TransientError
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
    store = CountingStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    session_id = SESSION_KINDS[kind](manager, clock)
    client = dash_app(manager).server.test_client()
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
    """A failing callback costs the activity, the error it records and the health read its alert shows:
    no read to learn whether ``@guarded`` code recorded the error already."""
    store = CountingStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    session_id = manager.create_session().session_id
    client = dash_app(manager, fails=True).server.test_client()
    client.set_cookie("sessionmw", session_id)
    store.calls.clear()
    fire(client, "application/json")
    assert dict(store.calls) == {ACTIVITY: 1, f"update:{Event.ERROR}": 1, "update:None": 1}
    record = manager.get_session(session_id)
    assert record is not None and record.error_count == 1
