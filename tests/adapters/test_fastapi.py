"""The FastAPI dependency: a route's session as ``CurrentSession`` / ``MaybeSession``, and a FastAPI
app's errors through ``install(app)``, under asyncio and trio."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi import HTTPException as FastAPIHTTPException
from starlette.testclient import TestClient
from support.asgi import MessageOrder

from sessionmw import SessionManager
from sessionmw._errors import ConfigurationError
from sessionmw.integrations.asgi import install
from sessionmw.integrations.fastapi import CurrentSession, MaybeSession, current_session
from sessionmw.stores import MemoryStore

SECRET = "test-secret"


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _client(app: Any, backend: str, **kwargs: Any) -> TestClient:
    return TestClient(MessageOrder(app), backend="trio" if backend == "trio" else "asyncio", **kwargs)


def test_a_fastapi_route_gets_the_session_as_a_dependency(backend: str) -> None:
    """CurrentSession gives the request's session; without the middleware the error names the fix;
    MaybeSession is None on an excluded path."""

    def build(with_middleware: bool) -> FastAPI:
        app = FastAPI()

        @app.get("/me")
        def me(session: CurrentSession) -> dict[str, str]:
            return {"id": session.id, "state": session.state.value}

        @app.get("/static/x")
        async def static(session: MaybeSession) -> dict[str, bool]:
            return {"session": session is not None}

        if with_middleware:
            install(app, manager=SessionManager(store=MemoryStore()), secret_key=SECRET, exclude=["/static/"])
        return app

    with _client(build(True), backend) as client:
        me = client.get("/me")
        assert me.json() == {"id": me.cookies["sessionmw"], "state": "active"}
        assert client.get("/static/x").json() == {"session": False}
    with _client(build(False), backend) as client, pytest.raises(ConfigurationError, match="install"):
        client.get("/me")


def test_a_fastapi_error_is_answered_friendly_and_recorded(backend: str) -> None:
    """FastAPI through install(): the friendly JSON for an API client, its HTTPException its own."""
    app = FastAPI()
    manager = SessionManager(store=MemoryStore())
    sid = manager.create_session().session_id

    @app.get("/boom")
    async def boom() -> None:
        raise TimeoutError("slow backend")

    @app.get("/teapot")
    async def teapot() -> None:
        raise FastAPIHTTPException(418, "short and stout")

    install(app, manager=manager, secret_key=SECRET)
    with _client(app, backend, raise_server_exceptions=False) as client:
        api = client.get("/boom", headers={"X-Session-ID": sid, "Accept": "application/json"})
        assert api.status_code == 503 and api.headers["retry-after"] and api.headers["x-session-id"] == sid
        assert client.get("/teapot", headers={"X-Session-ID": sid}).json() == {"detail": "short and stout"}
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1


def test_the_dependency_is_typed_for_the_route() -> None:
    """CurrentSession carries the dependency FastAPI calls (current_session) in its metadata."""
    import typing

    (dependency,) = typing.get_args(CurrentSession)[1:]
    assert dependency.dependency is current_session
