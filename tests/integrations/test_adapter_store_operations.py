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
