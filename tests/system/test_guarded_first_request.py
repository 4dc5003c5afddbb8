"""``@guarded`` inside the very first request of a client: its session was issued (the cookie is on
its way) but not stored yet; the call runs, and its outcome is recorded on that session."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from werkzeug.test import Client

from sessionmw import SessionManager, guarded
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.testing import FakeClock, set_testing

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class Backend:
    """A guarded backend call that fails when told to."""

    def __init__(self) -> None:
        self.fails = False

        @guarded(default="unavailable")
        def fetch() -> str:
            if self.fails:
                raise ConnectionError("backend down")
            return "prices"

        self.fetch: Callable[[], str] = fetch


def flask_app(manager: SessionManager, backend: Backend) -> Any:
    app = Flask("first-request")
    app.secret_key = "k"
    SessionMW(app, manager=manager)
    app.add_url_rule("/", "index", lambda: backend.fetch())
    return app


def middleware_app(manager: SessionManager, backend: Backend) -> Any:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = backend.fetch().encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return SessionMiddleware(app, manager=manager, secret_key="k")


def streaming_app(manager: SessionManager, backend: Backend) -> Any:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            yield backend.fetch().encode()  # made while the server reads the body

        return body()

    return SessionMiddleware(app, manager=manager, secret_key="k")


APPS = {"flask": flask_app, "middleware": middleware_app, "streamed": streaming_app}


@pytest.fixture(name="manager")
def _manager(clock: FakeClock) -> Iterator[SessionManager]:
    manager = SessionManager(store="memory://", clock=clock)
    yield manager
    manager.close()


def cookie_id(response: Any) -> str:
    header = next(value for name, value in response.headers if name == "Set-Cookie")
    return str(header.split(";", 1)[0].split("=", 1)[1])


@pytest.mark.parametrize("kind", sorted(APPS))
def test_a_guarded_call_works_on_the_first_request(kind: str, manager: SessionManager) -> None:
    """The first request's guarded call runs (it used to be refused: "Session not found", 401)."""
    backend = Backend()
    response = Client(APPS[kind](manager, backend)).get("/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "prices"
    sid = cookie_id(response)
    assert manager.check_health(sid)["status"] == "healthy"  # stored for its first use


@pytest.mark.parametrize("kind", sorted(APPS))
def test_a_failure_on_the_first_request_counts_on_that_session(kind: str, manager: SessionManager) -> None:
    """The failure is recorded on the session the client's cookie names."""
    backend = Backend()
    backend.fails = True
    with set_testing():  # the default retry waits no real time
        response = Client(APPS[kind](manager, backend)).get("/", headers={"Accept": "text/html"})
    assert response.get_data(as_text=True) == "unavailable"
    report = manager.check_health(cookie_id(response))
    assert report["status"] == "error"
    assert report["error_count"] == 1


def test_a_first_request_without_guarded_work_stores_nothing(manager: SessionManager) -> None:
    """A pending session is stored only when guarded work uses it (no store write for a bot)."""
    app = Flask("no-work")
    app.secret_key = "k"
    SessionMW(app, manager=manager)
    app.add_url_rule("/", "index", lambda: "hello")
    response = Client(app).get("/")
    assert response.status_code == 200
    assert manager.session_count() == 0
