"""The ASGI SessionMiddleware: the WSGI middleware's promises over ASGI, against raw ASGI apps and
real Starlette and FastAPI apps, under asyncio and trio; every response checked against the ASGI
message order (support.asgi.MessageOrder)."""

from __future__ import annotations

import contextvars
import dataclasses
import html
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect
from support.asgi import Message, MessageOrder, MessageOrderError, Receive, Scope, Send
from support.fakes import CountedStore
from werkzeug.test import EnvironBuilder, run_wsgi_app

from sessionmw import SessionManager, SessionState, current_session_id, languages, signals, translate
from sessionmw._errors import StoreUnavailableError
from sessionmw.integrations import asgi, wsgi
from sessionmw.integrations.asgi import (
    MAX_HEADER_BYTES,
    SCOPE_MANAGER,
    SCOPE_NOTICE,
    SCOPE_SESSION,
    SCOPE_SESSION_ID,
    ScopeRequest,
    SessionMiddleware,
    banner_for,
    install,
    session_of,
)
from sessionmw.integrations.environ import ENVIRON_SESSION_ID
from sessionmw.integrations.problem import problem_errors
from sessionmw.languages import speaking
from sessionmw.stores import MemoryStore
from sessionmw.testing import FakeClock
from sessionmw.texts import ASKED, BACK, MESSAGES, local

SECRET = "test-secret"
BACKENDS = ["asyncio", "trio"]


@dataclasses.dataclass
class Result:
    """One response, whichever protocol served it."""

    code: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def cookie(self) -> str | None:
        """The session id the response's Set-Cookie carries, if any."""
        for value in self.all("set-cookie"):
            name, _, rest = value.partition("=")
            if name == "sessionmw":
                return rest.split(";")[0]
        return None

    def json(self) -> Any:
        return json.loads(self.body)


# -- driving a raw ASGI app ------------------------------------------------------------------------


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    root_path: str = "",
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": query,
        "headers": headers if headers is not None else [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def acall(app: Any, scope: Scope, body: list[bytes] | None = None) -> Result:
    """Run ``app`` (checked by MessageOrder) on ``scope``, sending ``body`` in chunks; the response."""
    chunks = list(body or [b""])
    sent: list[Message] = []

    async def receive() -> Message:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await anyio.sleep_forever()  # (a client that stays: no disconnect before the response)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await MessageOrder(app)(scope, receive, send)
    start = sent[0]
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in start["headers"]]
    return Result(start["status"], headers, b"".join(message.get("body", b"") for message in sent[1:]))


def call(app: Any, scope: Scope, body: list[bytes] | None = None, backend: str = "asyncio") -> Result:
    return anyio.run(acall, app, scope, body, backend=backend)


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw ASGI app: says which session served it; ``/boom`` raises."""
    if scope["path"].endswith("/boom"):
        raise RuntimeError("the database went away at 10.0.0.7")
    text = f"hello {scope.get(SCOPE_SESSION_ID)} {current_session_id()}"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text.encode()})


def hello_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The same app over WSGI."""
    if environ["PATH_INFO"].endswith("/boom"):
        raise RuntimeError("the database went away at 10.0.0.7")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {environ.get(ENVIRON_SESSION_ID)} {current_session_id()}".encode()]


# -- one behaviour, both adapters --------------------------------------------------------------------


class Served:
    """One app behind the middleware of one protocol, with a fake clock and a counted store."""

    def __init__(self, protocol: str, backend: str = "asyncio", **options: Any) -> None:
        self.protocol = protocol
        self.backend = backend
        self.clock = FakeClock()
        self.store = CountedStore(MemoryStore())
        self.manager = SessionManager(store=self.store, clock=self.clock)
        options = {"manager": self.manager, "secret_key": SECRET, **options}
        if protocol == "wsgi":
            self.middleware: Any = wsgi.SessionMiddleware(hello_wsgi, **options)
        else:
            self.middleware = asgi.SessionMiddleware(hello, **options)

    def __call__(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        cookie: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Result:
        sent: dict[str, str] = dict(headers or {})
        if cookie is not None:
            sent["cookie"] = f"sessionmw={cookie}"
        if self.protocol == "wsgi":
            path, _, query = path.partition("?")
            builder = EnvironBuilder(
                path, method=method, headers=list(sent.items()), data=body, query_string=query
            )
            chunks, status, answered = run_wsgi_app(self.middleware, builder.get_environ(), buffered=True)
            return Result(int(status[:3]), list(answered.items()), b"".join(chunks))
        path, _, query = path.partition("?")
        encoded = [(b"host", b"testserver")] + [(k.lower().encode(), v.encode()) for k, v in sent.items()]
        if body:
            encoded.append((b"content-length", str(len(body)).encode()))
        scope = http_scope(path, method=method, headers=encoded, query=query.encode())
        return call(self.middleware, scope, [body], self.backend)


@pytest.fixture(params=["wsgi", "asgi"])
def served(request: pytest.FixtureRequest) -> Served:
    """The same raw app behind the WSGI and the ASGI middleware."""
    return Served(str(request.param))


def test_a_new_client_gets_a_pending_id_stored_when_it_comes_back(served: Served) -> None:
    """The first response sets the cookie (private, Vary: Cookie) and stores nothing; the id sent
    back is stored, and the app runs in it, in the scope and in session_scope."""
    first = served()
    sid = first.cookie
    assert first.code == 200 and sid is not None
    assert first.header("vary") == "Cookie" and first.header("cache-control") == "private"
    assert "HttpOnly" in (first.header("set-cookie") or "")
    assert served.manager.get_session(sid) is None
    again = served(cookie=sid)
    assert again.body == f"hello {sid} {sid}".encode() and again.cookie is None
    assert served.manager.get_session(sid) is not None


def test_an_unknown_or_forged_id_is_never_adopted(served: Served) -> None:
    """A client-chosen id gets a fresh pending id instead; nothing is stored."""
    for sent in ("chosen-by-the-client", "abc.def.ghi", "bad;;cookie\x7f"):
        result = served(cookie=sent)
        assert result.code == 200 and result.cookie not in (None, sent)
        assert served.manager.get_session(sent) is None
    assert served.store.calls["create"] == 0


def test_an_api_client_gets_its_id_echoed(served: Served) -> None:
    """An id in the header is answered in the header, never with a cookie."""
    sid = served.manager.create_session().session_id
    result = served(headers={"X-Session-ID": sid})
    assert result.header("x-session-id") == sid and result.cookie is None


def test_a_disconnected_json_client_is_refused_with_the_reconnect_url(served: Served) -> None:
    """503 before the app runs, with the session's headers; the reconnect endpoint then heals it."""
    sid = served.manager.create_session().session_id
    for _ in range(served.manager.policy.error_threshold):
        served.manager.record_error(sid, ConnectionError("down"))
    refused = served(cookie=sid, headers={"Accept": "application/json"})
    assert refused.code == 503 and refused.json()["reconnect"] == "/_sessionmw/reconnect"
    assert refused.header("vary") == "Cookie"
    healed = served(
        "/_sessionmw/reconnect", method="POST", cookie=sid, headers={"Accept": "application/json"}
    )
    assert healed.code == 200 and healed.json()["session"]["state"] == "active"


def test_the_reconnect_form_goes_back_to_its_page(served: Served) -> None:
    """A page's form post (the only body the gate reads) is sent back to its local ``next`` path."""
    sid = served.manager.create_session().session_id
    result = served(
        "/_sessionmw/reconnect",
        method="POST",
        cookie=sid,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=b"next=%2Freport%3Fday%3D2",
    )
    assert result.code == 303 and result.header("location") == "/report?day=2&sessionmw=reconnected"


def test_an_expired_session_is_replaced_and_the_user_told_once(served: Served) -> None:
    """A page of an expired session runs in a fresh pending session; a JSON client gets 401."""
    sid = served.manager.create_session().session_id
    served.clock.advance(served.manager.policy.timeout + 1)
    page = served(cookie=sid)
    assert page.code == 200 and page.cookie not in (None, sid)
    api = served(headers={"X-Session-ID": sid, "Accept": "application/json"})
    assert api.code == 401


def test_the_health_endpoint_reads_without_touching(served: Served) -> None:
    """``GET health`` reports the session (one read, no activity); HEAD has no body; PUT is 405."""
    sid = served.manager.create_session().session_id
    served.store.calls.clear()
    health = served("/_sessionmw/health", cookie=sid)
    assert health.code == 200 and health.json()["session"]["status"] == "healthy"
    assert dict(served.store.calls) == {"update:None": 1}
    head = served("/_sessionmw/health", method="HEAD", cookie=sid)
    assert head.code == 200 and head.body == b""
    assert served("/_sessionmw/health", method="PUT").code == 405


def test_excluded_paths_and_metrics_touch_no_session() -> None:
    """An excluded path reaches the app outside any session, and the metrics cost no store call."""
    for protocol in ("wsgi", "asgi"):
        served = Served(protocol, exclude=["/static/"], metrics_path="/metrics")
        assert served("/static/app.css").body == b"hello None None"
        assert served("/metrics").code == 200
        assert served.store.calls == {}


def test_the_store_down_fail_closed_answers_503(served: Served) -> None:
    """A store failure at admission is the gate's friendly answer, never the exception's text."""
    served.manager.settings = dataclasses.replace(served.manager.settings, on_store_error="fail_closed")

    def down(*args: object) -> None:
        raise StoreUnavailableError("down at 10.0.0.7")

    served.store.inner.update = down  # type: ignore[method-assign,assignment]
    result = served(cookie="abc", headers={"Accept": "application/json"})
    assert result.code == 503 and b"10.0.0.7" not in result.body


def test_a_failed_answer_at_once_is_answered_as_any_failed_admission() -> None:
    """A store whose answer at once (``answer_cached``, asked before any await) raises: the
    request gets the gate's friendly answer, as for any admission that fails, never the text."""

    class Broken(MemoryStore):
        def update(self, *args: Any, **kwargs: Any) -> Any:
            return super().update(*args, **kwargs)

        def answer_cached(self, *args: object) -> None:  # (beside its update: asked first)
            raise RuntimeError("the cache's lock is gone at 10.0.0.7")

    manager = SessionManager(store=Broken(), clock=FakeClock())
    sid = manager.create_session().session_id
    app = SessionMiddleware(hello, manager=manager, secret_key="test-secret")
    headers = [(b"x-session-id", sid.encode()), (b"accept", b"application/json")]
    result = call(app, http_scope(headers=headers))
    assert result.code == 500 and b"10.0.0.7" not in result.body
    assert result.json()["status"] != "healthy"


def test_the_same_store_operations_for_each_request(served: Served) -> None:
    """Both adapters cost the same store operations per request (they share the gate)."""
    first = served()
    served(cookie=first.cookie)
    served(cookie=first.cookie)
    served("/_sessionmw/health", cookie=first.cookie)
    assert dict(served.store.calls) == {"incarnation": 1, "update:activity": 2, "create": 1, "update:None": 1}


# -- ASGI: the protocol's own promises ---------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _middleware(app: Any = hello, **options: Any) -> tuple[SessionMiddleware, SessionManager, CountedStore]:
    store = CountedStore(MemoryStore())
    manager = SessionManager(store=store, clock=FakeClock())
    return SessionMiddleware(app, manager=manager, secret_key=SECRET, **options), manager, store


def test_lifespan_and_unknown_scopes_pass_through_untouched(backend: str) -> None:
    """A lifespan or an unknown scope reaches the app as it came: the same object, no key added,
    no store operation."""
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    middleware, _, store = _middleware(app)
    for kind in ("lifespan", "webtransport"):
        scope: Scope = {"type": kind, "asgi": {"version": "3.0"}}
        anyio.run(middleware, scope, _never, _nowhere, backend=backend)
        assert seen[-1] is scope and set(scope) == {"type", "asgi"}
    assert store.calls == {}


def test_applied_twice_the_inner_one_does_nothing(backend: str) -> None:
    """Two middlewares on one app: one cookie, one admission's store operations."""
    inner, manager, store = _middleware()
    outer = SessionMiddleware(inner, manager=manager, secret_key=SECRET)
    first = call(outer, http_scope(), backend=backend)
    assert len(first.all("set-cookie")) == 1 and first.all("vary") == ["Cookie"]
    store.calls.clear()
    again = call(
        outer, http_scope(headers=[(b"cookie", f"sessionmw={first.cookie}".encode())]), backend=backend
    )
    assert again.code == 200 and dict(store.calls) == {"create": 1, "update:activity": 1}


def test_no_request_changes_the_middleware_and_concurrent_requests_keep_their_sessions(backend: str) -> None:
    """Per-request state lives in the scope and locals: twenty concurrent requests, each of its own
    session, each answered in its own, and the middleware's attributes are as they were."""
    middleware, manager, _ = _middleware()
    before = dict(vars(middleware))
    ids = [manager.create_session().session_id for _ in range(20)]
    bodies: dict[str, bytes] = {}

    async def one(sid: str) -> None:
        await anyio.sleep(0)
        scope = http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())])
        bodies[sid] = (await acall(middleware, scope)).body

    async def all_of_them() -> None:
        async with anyio.create_task_group() as tasks:
            for sid in ids:
                tasks.start_soon(one, sid)

    anyio.run(all_of_them, backend=backend)
    assert bodies == {sid: f"hello {sid} {sid}".encode() for sid in ids}
    assert vars(middleware) == before


def test_the_body_reaches_the_app_unread_and_the_response_body_untouched(backend: str) -> None:
    """The app gets every request chunk; its streamed response passes chunk by chunk, and only the
    start message's headers change."""
    received: list[bytes] = []

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            received.append(message["body"])
            if not message.get("more_body"):
                break
        start = {"type": "http.response.start", "status": 201, "headers": [(b"vary", b"Accept")]}
        await send(start)
        for chunk in received:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    middleware, _, _ = _middleware(echo)
    result = call(middleware, http_scope(method="POST"), [b"one ", b"two ", b"three"], backend)
    assert received == [b"one ", b"two ", b"three"] and result.body == b"one two three"
    assert result.code == 201 and result.header("vary") == "Accept, Cookie"


def test_an_app_exception_is_recorded_once_and_re_raised(backend: str) -> None:
    """The host's error stack answers it: the middleware records it on the session (no log line of
    its own: the server logs it) and re-raises the very exception."""
    middleware, manager, _ = _middleware()
    sid = manager.create_session().session_id
    scope = http_scope("/boom", headers=[(b"cookie", f"sessionmw={sid}".encode())])
    with pytest.raises(RuntimeError, match="went away"):
        call(middleware, scope, backend=backend)
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1


def test_without_propagation_the_middleware_answers_the_friendly_page(backend: str) -> None:
    """``propagate_exceptions=False``: an app with no error handling gets the friendly page (JSON
    for an API client), the error recorded; the exception's text never reaches the user."""
    middleware, manager, _ = _middleware(propagate_exceptions=False)
    sid = manager.create_session().session_id
    page = call(
        middleware, http_scope("/boom", headers=[(b"cookie", f"sessionmw={sid}".encode())]), backend=backend
    )
    assert page.code == 500 and page.header("content-type") == "text/html; charset=utf-8"
    assert b"10.0.0.7" not in page.body and b"Reconnect" not in page.body
    api = call(
        middleware,
        http_scope("/boom", headers=[(b"x-session-id", sid.encode()), (b"accept", b"application/json")]),
        backend=backend,
    )
    assert api.code == 500 and api.header("x-session-id") == sid
    assert api.header("content-type") == "application/problem+json"
    assert problem_errors(api.body, status=500) == [] and b"10.0.0.7" not in api.body
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 2


def test_an_exception_after_the_response_started_is_re_raised_even_without_propagation(backend: str) -> None:
    """Once the start message is sent no second response can follow: recorded and re-raised."""

    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("broke mid-stream")

    middleware, manager, _ = _middleware(half, propagate_exceptions=False)
    sid = manager.create_session().session_id
    with pytest.raises(RuntimeError, match="mid-stream"):
        call(middleware, http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())]), backend=backend)
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1


@pytest.fixture(name="counted_signals")
def _counted_signals() -> Iterator[list[str]]:
    """The names of the error_recorded and request_finished signals sent during the test."""
    sent: list[str] = []

    def on_error(sender: object, **kwargs: Any) -> None:
        sent.append("error_recorded")

    def on_finished(sender: object, **kwargs: Any) -> None:
        sent.append("request_finished")

    with signals.error_recorded.connected_to(on_error), signals.request_finished.connected_to(on_finished):
        yield sent


def test_cancellation_is_no_error_and_counts_nothing(backend: str, counted_signals: list[str]) -> None:
    """A cancelled request (asyncio's CancelledError, trio's Cancelled) propagates untouched: no
    error recorded, no response counted."""
    started = anyio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await anyio.sleep_forever()

    middleware, manager, _ = _middleware(slow)
    sid = manager.create_session().session_id

    async def cancelled() -> None:
        async with anyio.create_task_group() as tasks:
            scope = http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())])
            tasks.start_soon(middleware, scope, _never, _nowhere)
            await started.wait()
            tasks.cancel_scope.cancel()

    anyio.run(cancelled, backend=backend)
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 0 and counted_signals == []


async def _never() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def _nowhere(message: Message) -> None:
    return None


def test_a_client_disconnect_is_no_error_and_counts_nothing(backend: str, counted_signals: list[str]) -> None:
    """An app that fails because the client went away (it received ``http.disconnect``, or the
    server could not send) records no error and counts no response; the exception propagates."""

    class ClientDisconnect(Exception):
        pass

    async def reads(scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] == "http.disconnect":
            raise ClientDisconnect()

    async def sends(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    async def disconnected() -> Message:
        return {"type": "http.disconnect"}

    async def broken(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset by peer")

    for app, exc in ((reads, ClientDisconnect), (sends, OSError)):
        middleware, manager, _ = _middleware(app)
        sid = manager.create_session().session_id
        scope = http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())])
        with pytest.raises(exc):
            anyio.run(middleware, scope, disconnected, broken, backend=backend)
        record = manager.get_session(sid)
        assert record is not None and record.error_count == 0
    assert counted_signals == []


def test_a_success_clears_the_error_count(backend: str) -> None:
    """A response below 400 of a session with errors counts as its success (afinish)."""
    middleware, manager, _ = _middleware()
    sid = manager.create_session().session_id
    manager.record_error(sid, ConnectionError("flaky"))
    call(middleware, http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())]), backend=backend)
    record = manager.get_session(sid)
    assert record is not None and record.state is SessionState.ACTIVE and record.error_count == 0


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param(None, 400, id="no-headers"),
        pytest.param([(b"cookie", "sessionmw=x")], 400, id="str-value"),
        pytest.param([(b"cookie",)], 400, id="not-a-pair"),
        pytest.param(7, 400, id="not-a-list"),
        pytest.param([(b"cookie", b"a=" + b"x" * MAX_HEADER_BYTES)], 431, id="huge"),
    ],
)
def test_unreadable_headers_get_a_clear_4xx_and_nothing_is_stored(
    headers: Any, code: int, backend: str
) -> None:
    """A scope without headers, with headers that are not pairs of bytes, or too large: a JSON 4xx
    saying so, the app never called, no store operation, nothing raised into the server."""
    called: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(True)

    middleware, _, store = _middleware(app)
    scope = http_scope()
    if headers is None:
        del scope["headers"]
    else:
        scope["headers"] = headers
    result = call(middleware, scope, backend=backend)
    assert result.code == code and result.json()["message"]
    assert called == [] and store.calls == {}


def test_the_scope_view_reads_what_the_gate_needs() -> None:
    """ScopeRequest: the path below ``root_path``, cookies joined, headers by lower-case name."""
    scope = http_scope(
        "/x",
        method="POST",
        root_path="/app",
        query=b"a=1",
        headers=[(b"Cookie", b"a=1"), (b"cookie", b"sessionmw=abc"), (b"accept", b"text/html")],
    )
    view = ScopeRequest(scope, b"next=%2F")
    assert (view.method, view.path, view.root_path, view.query_string) == ("POST", "/x", "/app", "a=1")
    assert (view.scheme, view.remote_address, view.cookies) == ("http", "127.0.0.1", "a=1; sessionmw=abc")
    assert view.header("accept") == "text/html" and view.header("referer") is None
    assert view.body(4) == b"next"
    # Names as servers send them (lower case), or not: found either way, the first one first.
    for names in ((b"x-session-id", b"x-session-id"), (b"X-Session-ID", b"x-session-id")):
        headers = [(b"host", b"h"), (names[0], b"first"), (names[1], b"second")]
        assert ScopeRequest(http_scope("/", headers=headers)).header("x-session-id") == "first"
    with pytest.raises(ValueError, match="headers"):
        ScopeRequest({"type": "http", "path": "/"})


def test_the_message_order_checker_catches_a_broken_response() -> None:
    """The checker is not vacuous: a body after the last one, or a missing start, fails."""

    async def twice(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a"})
        await send({"type": "http.response.body", "body": b"b"})

    async def unfinished(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Upper", b"1")]})

    for app, said in ((twice, "after the response"), (unfinished, "lower case")):
        with pytest.raises(MessageOrderError, match=said):
            call(app, http_scope())


def test_the_session_is_in_the_scope_and_the_banner_reads_it(backend: str) -> None:
    """The scope keys, session_of() and banner_for(): an expired session's page shows the notice."""
    seen: dict[str, Any] = {}

    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(
            {key: scope.get(key) for key in (SCOPE_MANAGER, SCOPE_SESSION, SCOPE_SESSION_ID, SCOPE_NOTICE)}
        )
        seen["of"] = session_of(scope)
        seen["banner"] = banner_for(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware, manager, _ = _middleware(page)
    sid = manager.create_session().session_id
    assert isinstance(manager.clock, FakeClock)
    manager.clock.advance(manager.policy.timeout + 1)
    call(middleware, http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())]), backend=backend)
    assert seen[SCOPE_MANAGER] is manager and seen["of"] is seen[SCOPE_SESSION]
    assert seen[SCOPE_SESSION_ID] == seen["of"].id != sid
    assert seen[SCOPE_NOTICE].status == "expired" and "expired" in seen["banner"]
    assert session_of({"type": "http"}) is None


# -- Starlette and FastAPI ---------------------------------------------------------------------------


def _starlette(manager: SessionManager, *, own_handler: bool = False, **options: Any) -> Starlette:
    def home(request: StarletteRequest) -> Response:  # a sync endpoint: run in a worker thread
        return PlainTextResponse(f"{current_session_id()} {session_of(request.scope) is not None}")

    async def boom(request: StarletteRequest) -> Response:
        raise RuntimeError("the database went away at 10.0.0.7")

    async def missing(request: StarletteRequest) -> Response:
        raise HTTPException(404, "no such report")

    async def stream(request: StarletteRequest) -> Response:
        async def chunks() -> Any:
            for part in (b"a", b"b", b"c"):
                yield part

        return StreamingResponse(chunks(), media_type="text/plain")

    handlers: dict[Any, Callable[..., Any]] = {}
    if own_handler:

        async def mine(request: StarletteRequest, exc: Exception) -> Response:
            return PlainTextResponse("the app's own error page", status_code=500)

        handlers[Exception] = mine
    app = Starlette(
        routes=[Route("/", home), Route("/boom", boom), Route("/missing", missing), Route("/stream", stream)],
        exception_handlers=handlers,
    )
    install(app, manager=manager, secret_key=SECRET, **options)
    return app


@pytest.fixture(name="manager_and_clock")
def _manager_and_clock() -> tuple[SessionManager, FakeClock]:
    clock = FakeClock()
    return SessionManager(store=MemoryStore(), clock=clock), clock


def _client(app: Any, backend: str, **kwargs: Any) -> TestClient:
    return TestClient(MessageOrder(app), backend="trio" if backend == "trio" else "asyncio", **kwargs)


def test_a_starlette_app_gets_sessions_and_its_sync_endpoints_the_scope(backend: str) -> None:
    """install(app): the cookie, the session in a sync endpoint's context (copied to its thread)."""
    manager = SessionManager(store=MemoryStore())
    with _client(_starlette(manager), backend) as client:  # (the lifespan runs through the middleware)
        first = client.get("/")
        sid = first.cookies.get("sessionmw")
        assert first.status_code == 200 and sid and first.text == f"{sid} True"
        assert first.headers["vary"] == "Cookie"
        assert client.get("/").text == f"{sid} True"
        assert manager.get_session(sid) is not None
        assert client.get("/stream").text == "abc"


def test_install_answers_the_friendly_page_and_the_exception_still_reaches_the_server(backend: str) -> None:
    """Where the app has no handler: the friendly page (JSON for an API client) with the session's
    cookie; ServerErrorMiddleware re-raises to the server; the error is recorded once."""
    manager = SessionManager(store=MemoryStore())
    app = _starlette(manager)
    with _client(app, backend) as client:
        sid = client.get("/").cookies["sessionmw"]
        client.get("/")
        with pytest.raises(RuntimeError, match="went away"):
            client.get("/boom")
    with _client(app, backend, raise_server_exceptions=False) as client:
        client.cookies.set("sessionmw", sid)
        page = client.get("/boom")
        assert page.status_code == 500 and "text/html" in page.headers["content-type"]
        assert "10.0.0.7" not in page.text and "Back to the page" in page.text
        api = client.get("/boom", headers={"Accept": "application/json"})
        assert api.status_code == 500 and api.json()["title"]
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 3


def test_the_apps_own_handlers_win(backend: str) -> None:
    """An app with its own Exception handler keeps it; HTTPException stays the app's (404 as
    Starlette answers it)."""
    manager = SessionManager(store=MemoryStore())
    with _client(_starlette(manager, own_handler=True), backend, raise_server_exceptions=False) as client:
        assert client.get("/boom").text == "the app's own error page"
        missing = client.get("/missing")
        assert missing.status_code == 404 and missing.text == "no such report"


def test_install_twice_adds_one_middleware() -> None:
    """A second install changes nothing."""
    manager = SessionManager(store=MemoryStore())
    app = _starlette(manager)
    install(app, manager=manager, secret_key=SECRET)
    assert [getattr(layer, "cls", None) for layer in app.user_middleware] == [SessionMiddleware]


def test_a_handler_without_the_middleware_still_answers_friendly() -> None:
    """The handler install() adds answers in the catalogue's words even for a request the
    middleware did not serve (it reads no session then)."""
    response = anyio.run(asgi._friendly_error, StarletteRequest(http_scope()), RuntimeError("x at 10.0.0.7"))
    assert isinstance(response, Response) and response.status_code == 500
    assert b"10.0.0.7" not in response.body


def test_json_responses_keep_their_own_headers(backend: str) -> None:
    """A JSON response's own Vary and Cache-Control are merged with the session's, not replaced."""

    async def api(request: StarletteRequest) -> Response:
        return JSONResponse({"ok": True}, headers={"Vary": "Accept", "Cache-Control": "public, max-age=60"})

    app = Starlette(routes=[Route("/api", api)])
    install(app, manager=SessionManager(store=MemoryStore()), secret_key=SECRET)
    with _client(app, backend) as client:
        first = client.get("/api")
        assert first.headers["vary"] == "Accept, Cookie"
        assert first.headers["cache-control"] == "max-age=60, private"


# -- websockets ---------------------------------------------------------------------------------------


def _websocket_app(manager: SessionManager, **options: Any) -> Starlette:
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"{current_session_id()} {session_of(websocket.scope) is not None}")
        while True:
            try:
                text = await websocket.receive_text()
            except WebSocketDisconnect:  # the client left: no error (the middleware saw it too)
                return
            if text == "boom":
                raise RuntimeError("the feed broke")
            await websocket.send_text(f"echo {text}")

    async def strict(websocket: WebSocket) -> None:  # lets WebSocketDisconnect out
        await websocket.accept()
        await websocket.receive_text()

    app = Starlette(
        routes=[
            WebSocketRoute("/ws", feed),
            WebSocketRoute("/static/ws", feed),
            WebSocketRoute("/strict", strict),
        ]
    )
    install(app, manager=manager, secret_key=SECRET, exclude=["/static/"], **options)
    return app


@pytest.fixture(name="counted")
def _counted() -> tuple[SessionManager, CountedStore, FakeClock]:
    clock = FakeClock()
    store = CountedStore(MemoryStore())
    return SessionManager(store=store, clock=clock), store, clock


def test_a_websocket_that_names_no_session_is_served_outside_any(
    backend: str, counted: tuple[SessionManager, CountedStore, FakeClock]
) -> None:
    """No cookie, no header: served like an excluded path, nothing stored, no store operation."""
    manager, store, _ = counted
    with _client(_websocket_app(manager), backend) as client, client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "None False"
        ws.send_text("hi")
        assert ws.receive_text() == "echo hi"
    assert store.calls == {}


def test_a_websocket_runs_in_its_session_and_its_messages_renew_it_once_per_window(
    backend: str, counted: tuple[SessionManager, CountedStore, FakeClock]
) -> None:
    """A session that may work is admitted (one store operation); its messages count as activity,
    never a store operation per message: one per renewal window at most."""
    manager, store, clock = counted
    sid = manager.create_session().session_id
    store.calls.clear()
    with (
        _client(_websocket_app(manager), backend) as client,
        client.websocket_connect("/ws", headers={"cookie": f"sessionmw={sid}"}) as ws,
    ):
        assert ws.receive_text() == f"{sid} True"
        for number in range(20):
            ws.send_text(str(number))
            assert ws.receive_text() == f"echo {number}"
        assert dict(store.calls) == {"update:activity": 1}  # the admission only
        clock.advance(max(manager.policy.activity_resolution, asgi.WEBSOCKET_RENEWAL_FLOOR))
        for number in range(5):
            ws.send_text(str(number))
            assert ws.receive_text() == f"echo {number}"
    assert dict(store.calls) == {"update:activity": 2}


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [
        pytest.param("unknown", asgi.WEBSOCKET_REFUSED, "not_found", id="unknown"),
        pytest.param("expired", asgi.WEBSOCKET_REFUSED, "expired", id="expired"),
        pytest.param("ended", asgi.WEBSOCKET_REFUSED, "expired", id="ended"),
        pytest.param("disconnected", asgi.WEBSOCKET_DISCONNECTED, "disconnected", id="disconnected"),
        pytest.param("none, required", asgi.WEBSOCKET_REFUSED, "not_found", id="required"),
    ],
)
def test_a_websocket_whose_session_may_not_work_is_refused_before_accept(
    backend: str, counted: tuple[SessionManager, CountedStore, FakeClock], kind: str, code: int, reason: str
) -> None:
    """Closed before accept with a documented code and the health status as the reason; an
    unknown id is never adopted (nothing created)."""
    manager, store, clock = counted
    headers: dict[str, str] = {}
    if kind == "unknown":
        headers["cookie"] = "sessionmw=chosen-by-the-client"
    elif kind != "none, required":
        sid = manager.create_session().session_id
        headers["cookie"] = f"sessionmw={sid}"
        if kind == "expired":
            clock.advance(manager.policy.timeout + 1)
        elif kind == "ended":
            manager.end_session(sid)
        else:
            for _ in range(manager.policy.error_threshold):
                manager.record_error(sid, ConnectionError("down"))
    store.calls.clear()
    app = _websocket_app(manager, require_websocket_session=kind == "none, required")
    with (
        _client(app, backend) as client,
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws", headers=headers),
    ):
        pass
    assert (closed.value.code, closed.value.reason.split(":")[0]) == (code, reason.split(":")[0])
    assert store.calls["create"] == 0
    assert manager.get_session("chosen-by-the-client") is None


def test_a_pending_id_opening_a_websocket_is_stored_and_admitted(
    backend: str, counted: tuple[SessionManager, CountedStore, FakeClock]
) -> None:
    """A page's pending id, sent back by its websocket, is the client's return: stored, admitted."""
    manager, _, _ = counted
    app = _websocket_app(manager)
    app.router.routes.append(Route("/", lambda request: PlainTextResponse("page")))
    with _client(app, backend) as client:
        sid = client.get("/").cookies["sessionmw"]
        assert manager.get_session(sid) is None
        with client.websocket_connect("/ws", headers={"cookie": f"sessionmw={sid}"}) as ws:
            assert ws.receive_text() == f"{sid} True"
    assert manager.get_session(sid) is not None


def test_a_websocket_error_is_recorded_once_and_a_disconnect_is_not(
    backend: str, counted: tuple[SessionManager, CountedStore, FakeClock]
) -> None:
    """The app's exception is recorded on the session and re-raised; a client closing is no error."""
    manager, _, _ = counted
    sid = manager.create_session().session_id
    cookie = {"cookie": f"sessionmw={sid}"}
    with _client(_websocket_app(manager), backend) as client:
        with client.websocket_connect("/ws", headers=cookie) as ws:
            ws.receive_text()
            ws.send_text("bye")
            ws.receive_text()
        with (
            pytest.raises(RuntimeError, match="feed broke"),
            client.websocket_connect("/ws", headers=cookie) as ws,
        ):
            ws.receive_text()
            ws.send_text("boom")
            ws.receive_text()
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/strict", headers=cookie) as ws:
            ws.close()
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1


def test_an_excluded_websocket_and_an_unreadable_one(
    backend: str, counted: tuple[SessionManager, CountedStore, FakeClock]
) -> None:
    """An excluded path is served outside any session whatever it names; a scope without headers
    is closed with WEBSOCKET_UNREADABLE, the app never called; the store down closes with 1011."""
    manager, store, _ = counted
    with (
        _client(_websocket_app(manager), backend) as client,
        client.websocket_connect("/static/ws", headers={"cookie": "sessionmw=whatever"}) as ws,
    ):
        assert ws.receive_text() == "None False"
    assert store.calls == {}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware, _, _ = _middleware()
    anyio.run(middleware, {"type": "websocket", "path": "/ws"}, _never, send, backend=backend)
    assert [message["code"] for message in sent] == [asgi.WEBSOCKET_UNREADABLE]
    manager.settings = dataclasses.replace(manager.settings, on_store_error="fail_closed")

    def down(*args: object) -> None:
        raise StoreUnavailableError("down")

    store.inner.update = down  # type: ignore[method-assign,assignment]
    with (
        _client(_websocket_app(manager), backend) as client,
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws", headers={"cookie": "sessionmw=abc"}),
    ):
        pass
    assert closed.value.code == asgi.WEBSOCKET_STORE_FAILED


# -- bad input, generated ----------------------------------------------------------------------------

BYTES = st.binary(max_size=300)
HEADER_NAMES = st.sampled_from(
    [b"cookie", b"x-session-id", b"accept", b"content-type", b"Cookie", b"x-other"]
)
HEADERS = st.lists(
    st.tuples(HEADER_NAMES | BYTES, BYTES | BYTES.map(lambda value: b"sessionmw=" + value)), max_size=8
)
ODD_HEADERS = st.one_of(
    HEADERS,
    st.none(),
    st.lists(st.tuples(st.text(max_size=20), st.text(max_size=20)), min_size=1, max_size=3),
    st.lists(st.tuples(BYTES), min_size=1, max_size=3),
    st.integers(),
)
PATHS = st.sampled_from(["/", "/x", "/_sessionmw/health", "/_sessionmw/reconnect", "/_sessionmw/nope"])
METHODS = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE"])


@settings(max_examples=300, deadline=None)
@given(
    headers=ODD_HEADERS,
    path=PATHS,
    method=METHODS,
    chunks=st.lists(BYTES, min_size=1, max_size=4),
    websocket=st.booleans(),
)
def test_any_scope_is_answered_and_no_client_text_is_adopted(
    headers: Any, path: str, method: str, chunks: list[bytes], websocket: bool
) -> None:
    """Whatever headers, path, method and body a scope brings, the middleware raises nothing into
    the server, every response keeps the message order, and no id the client sent is stored."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            return await hello(scope, receive, send)
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    middleware, _, store = _middleware(app)
    scope = http_scope(path, method=method)
    if headers is None:
        del scope["headers"]
    else:
        scope["headers"] = headers
    if websocket:
        scope["type"] = "websocket"
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "websocket.disconnect", "code": 1000}

        anyio.run(middleware, scope, receive, send)
        assert all(
            message["type"] in ("websocket.close", "websocket.accept", "websocket.send") for message in sent
        )
    else:
        result = call(middleware, scope, chunks)
        assert 200 <= result.code < 600
    assert store.calls["create"] == 0  # nothing the client sent was adopted (no pending id of ours)


# -- a real server ----------------------------------------------------------------------------------


def test_under_uvicorn_the_cookie_the_stored_session_and_the_error_stack() -> None:
    """Served by uvicorn over a loopback socket: the lifespan runs through the middleware, the id
    comes back and is stored, a streamed body arrives whole, and an app error is the server's 500
    (Starlette's stack answers it) recorded once on the session."""
    import contextlib
    import threading
    import time

    import httpx
    import uvicorn
    from support.servers import free_port

    started: list[bool] = []

    @contextlib.asynccontextmanager
    async def lifespan_app(app: Starlette) -> AsyncIterator[None]:
        started.append(True)
        yield

    manager = SessionManager(store=MemoryStore())

    async def stream(request: StarletteRequest) -> Response:
        async def chunks() -> Any:
            for part in (b"a", b"b", b"c"):
                yield part

        return StreamingResponse(chunks(), media_type="text/plain")

    async def boom(request: StarletteRequest) -> Response:
        raise RuntimeError("the database went away at 10.0.0.7")

    app = Starlette(routes=[Route("/", stream), Route("/boom", boom)], lifespan=lifespan_app)
    app.add_middleware(SessionMiddleware, manager=manager, secret_key=SECRET)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # readiness, not a race: the server says when it listens
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            first = client.get("/")
            sid = first.cookies["sessionmw"]
            assert first.text == "abc" and first.headers["vary"] == "Cookie"
            assert client.get("/").text == "abc" and manager.get_session(sid) is not None
            failed = client.get("/boom")
            assert failed.status_code == 500 and "10.0.0.7" not in failed.text
    finally:
        server.should_exit = True
        thread.join(20)
    record = manager.get_session(sid)
    assert started == [True] and record is not None and record.error_count == 1


def test_the_options_are_typed_and_default_as_the_wsgi_ones() -> None:
    """SessionMiddleware spells every option out (Starlette's typed add_middleware checks them),
    with the defaults of Options, the settings every adapter shares."""
    import inspect

    from sessionmw.integrations.options import Options

    parameters = inspect.signature(SessionMiddleware).parameters
    for field in dataclasses.fields(Options):
        if field.name not in ("secret_key", "exclude", "problem_json"):
            assert parameters[field.name].default == field.default, field.name
    # None: SESSIONMW_PROBLEM_JSON, else Options' default (as Options.build and the WSGI middleware read it)
    assert parameters["problem_json"].default is None


# == review ==
# A second pair of eyes on issue 24's promises: a defect found (fixed: the Redis burst) and promises no test
# above covered (a store's calls off the loop, root_path in the gate's URLs, a response without a
# body message, a big streamed upload, real servers over loopback).


def _concurrently(
    middleware: SessionMiddleware, ids: list[str], backend: str = "asyncio"
) -> dict[str, Result]:
    """One request per id, all at once through ``middleware``; each id's response (the manager's
    async resources closed on the same loop)."""
    results: dict[str, Result] = {}

    async def one(sid: str) -> None:
        results[sid] = await acall(middleware, http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())]))

    async def all_of_them() -> None:
        async with anyio.create_task_group() as tasks:
            for sid in ids:
                tasks.start_soon(one, sid)
        await middleware.gate.manager.aclose()

    anyio.run(all_of_them, backend=backend)
    return results


def test_more_concurrent_requests_than_redis_connections_each_keep_their_session(redis_url: str) -> None:
    """A burst larger than the Redis pool waits for a connection: every request is served in its
    own stored session (nothing reported as a store failure)."""
    import uuid

    url = f"{redis_url}?prefix=test-asgi-review-{uuid.uuid4().hex}&max_connections=4"
    manager = SessionManager(store=url)
    ids = [manager.create_session().session_id for _ in range(12)]
    try:
        middleware = SessionMiddleware(hello, manager=manager, secret_key=SECRET)
        results = _concurrently(middleware, ids)
        wrong = [sid for sid, result in results.items() if result.body != f"hello {sid} {sid}".encode()]
        assert wrong == []
    finally:
        for sid in ids:
            manager.delete_session(sid)
        manager.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_store_calls_run_inline_for_memory_and_in_a_worker_thread_for_sqlite(
    kind: str, tmp_path: Any
) -> None:
    """The middleware never blocks the loop: SQLite's calls hop to a worker thread, the memory
    store's run inline on the loop's thread."""
    import threading

    from support.stores import record_threads

    url = "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'sessions.db'}"
    manager = SessionManager(store=url)
    sid = manager.create_session().session_id
    calls = record_threads(manager.store, ("create", "update", "get"))
    loop_thread: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        loop_thread.append(threading.get_ident())
        await hello(scope, receive, send)

    middleware = SessionMiddleware(app, manager=manager, secret_key=SECRET)
    first = call(middleware, http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())]))
    pending = call(middleware, http_scope()).cookie
    call(middleware, http_scope(headers=[(b"cookie", f"sessionmw={pending}".encode())]))  # stored now
    manager.close()
    assert first.body == f"hello {sid} {sid}".encode()
    assert {name for name, _ in calls} >= {"create", "update"}
    on_loop = {thread == loop_thread[0] for _, thread in calls}
    assert on_loop == ({True} if kind == "memory" else {False})


def test_the_gates_urls_carry_the_mount_point() -> None:
    """A mounted app (``root_path``): the reconnect URL of a refusal, the banner's form and the
    reconnect's redirect are below the mount point; the gate matches the path below it."""
    from support.fakes import disconnected_session

    clock = FakeClock()
    manager = SessionManager(store=MemoryStore(), clock=clock)
    sid = disconnected_session(manager, clock)
    banners: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        banners.append(banner_for(scope))
        await hello(scope, receive, send)

    middleware = SessionMiddleware(app, manager=manager, secret_key=SECRET)
    cookie = (b"cookie", f"sessionmw={sid}".encode())
    json_accept = (b"accept", b"application/json")
    refused = call(middleware, http_scope("/page", root_path="/sub", headers=[cookie, json_accept]))
    assert refused.code == 503 and refused.json()["reconnect"] == "/sub/_sessionmw/reconnect"
    page = call(
        middleware, http_scope("/page", root_path="/sub", headers=[cookie, (b"accept", b"text/html")])
    )
    assert page.code == 200
    assert '<form method="post" action="/sub/_sessionmw/reconnect">' in banners[0]
    assert 'name="next" value="/sub/page"' in banners[0]
    form = (b"content-type", b"application/x-www-form-urlencoded")
    scope = http_scope("/_sessionmw/reconnect", method="POST", root_path="/sub", headers=[cookie, form])
    back = call(middleware, scope, [b"next=%2Fsub%2Fpage"])
    assert back.code == 303 and back.header("location") == "/sub/page?sessionmw=reconnected"


def test_a_response_without_a_body_message_gets_its_headers_and_counts(backend: str) -> None:
    """An app that sends ``http.response.start`` and nothing else: the start carries the session's
    headers and the request counts as a success (the session's error count is cleared)."""
    sent: list[Message] = []

    async def start_only(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})

    middleware, manager, _ = _middleware(start_only)
    sid = manager.create_session().session_id
    manager.record_error(sid, RuntimeError("earlier"))

    async def send(message: Message) -> None:
        sent.append(message)

    scope = http_scope(headers=[(b"cookie", f"sessionmw={sid}".encode())])
    anyio.run(middleware, scope, _never, send, backend=backend)
    assert [message["type"] for message in sent] == ["http.response.start"]
    assert (b"vary", b"Cookie") in sent[0]["headers"]
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 0


def test_a_big_streamed_upload_reaches_the_app_chunk_by_chunk(backend: str) -> None:
    """Twelve MiB in 192 chunks: the app receives each chunk as it was sent, none read before it."""
    chunks = [bytes([index % 251]) * 65536 for index in range(192)]
    received: list[bytes] = []

    async def sink(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            received.append(message["body"])
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(received)).encode()})

    middleware, _, _ = _middleware(sink)
    result = call(middleware, http_scope("/upload", method="POST"), list(chunks), backend)
    assert result.code == 200 and received == chunks


_SERVED_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from sessionmw import SessionManager, current_session_id
from sessionmw.integrations.asgi import SessionMiddleware

manager = SessionManager(store="memory://")


async def echo(request):
    return PlainTextResponse(f"{current_session_id()} {request.headers.get('x-tag')}")


async def boom(request):
    raise RuntimeError("boom")


async def errors(request):
    record = await manager.aget_session(request.query_params["sid"])
    return PlainTextResponse(str(record.error_count))


inner = Starlette(routes=[Route("/echo", echo), Route("/boom", boom), Route("/errors", errors)])
inner.add_middleware(SessionMiddleware, manager=manager, secret_key="test-secret")
app = Starlette(routes=[Mount("/sub", app=inner)])
"""


def test_under_uvicorn_200_concurrent_clients_each_get_their_own_session(tmp_path: Any) -> None:
    """A real server over loopback, the app mounted below ``/sub``: 200 clients at once, each with
    its own stored session, each answered in it; an app exception is answered 500 by Starlette
    and recorded once."""
    import subprocess
    import sys

    import httpx
    from support.servers import free_port, stop, wait_for_port

    (tmp_path / "served.py").write_text(_SERVED_APP)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "served:app", "--port", str(port), "--log-level", "critical"]
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(proc, port, 30)

        async def clients() -> tuple[list[str], list[httpx.Response], httpx.Response, str]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                tags = [str(index) for index in range(200)]

                async def get(path: str, tag: str, sid: str | None = None) -> httpx.Response:
                    headers = {"x-tag": tag} | ({"cookie": f"sessionmw={sid}"} if sid else {})
                    return await client.get(path, headers=headers)

                firsts = await _gathered([get("/sub/echo", tag) for tag in tags])
                ids = [str(response.cookies["sessionmw"]) for response in firsts]
                client.cookies.clear()
                await _gathered([get("/sub/echo", tag, sid) for tag, sid in zip(tags, ids, strict=True)])
                again = await _gathered(
                    [get("/sub/echo", tag, sid) for tag, sid in zip(tags, ids, strict=True)]
                )
                boom = await get("/sub/boom", "boom", ids[0])
                errors = (await client.get("/sub/errors", params={"sid": ids[0]})).text
                return ids, again, boom, errors

        ids, again, boom, errors = anyio.run(clients)
    finally:
        stop(proc, 10)
    assert len(set(ids)) == 200
    assert [response.text for response in again] == [f"{sid} {index}" for index, sid in enumerate(ids)]
    assert boom.status_code == 500 and boom.text == "Internal Server Error" and errors == "1"


async def _gathered(calls: list[Any]) -> list[Any]:
    """The results of ``calls`` (awaitables) run at once, in order."""
    results: list[Any] = [None] * len(calls)

    async def one(index: int, awaitable: Any) -> None:
        results[index] = await awaitable

    async with anyio.create_task_group() as tasks:
        for index, awaitable in enumerate(calls):
            tasks.start_soon(one, index, awaitable)
    return results


# -- the browser's language ------------------------------------------------------------------------


def test_an_asgi_request_gets_its_error_page_and_problem_in_the_browsers_language(backend: str) -> None:
    """``Accept-Language: de``: the friendly page and the problem document are German and say
    ``Content-Language: de``; a request without the header gets English, and the next request on
    the same middleware is not spoken to in the last one's language."""
    middleware, manager, _ = _middleware(propagate_exceptions=False)
    sid = manager.create_session().session_id
    german = [(b"cookie", f"sessionmw={sid}".encode()), (b"accept-language", b"de-DE,de;q=0.9,en;q=0.5")]
    page = call(middleware, http_scope("/boom", headers=german), backend=backend)
    assert page.code == 500 and page.header("content-language") == "de"
    with speaking("de"):
        title = translate(RuntimeError("x")).title
    assert title != translate(RuntimeError("x")).title  # (German, not English)
    assert '<html lang="de"' in page.body.decode() and html.escape(title) in page.body.decode()
    api_scope = http_scope("/boom", headers=[*german, (b"accept", b"application/json")])
    api = call(middleware, api_scope, backend=backend)
    assert api.header("content-language") == "de" and problem_errors(api.body, status=500) == []
    assert api.json()["title"] == title
    english_scope = http_scope("/boom", headers=[(b"accept", b"application/json")])
    english = call(middleware, english_scope, backend=backend)
    assert english.header("content-language") == "en"
    assert english.json()["title"] == translate(RuntimeError("x")).title


def test_an_asgi_refusal_and_the_health_endpoint_speak_the_browsers_language(backend: str) -> None:
    """The gate's own answers (a JSON client's refusal, the health endpoint) as well as the errors."""
    middleware, manager, _ = _middleware(languages="en,fr")
    sid = manager.create_session().session_id
    for _ in range(manager.policy.error_threshold):
        manager.record_error(sid, ConnectionError("down"))
    french = [(b"x-session-id", sid.encode()), (b"accept", b"application/json"), (b"accept-language", b"fr")]
    refused = call(middleware, http_scope("/", headers=french), backend=backend)
    assert refused.code == 503 and refused.header("content-language") == "fr"
    with speaking("fr"):
        assert refused.json()["title"] == local(MESSAGES["disconnected"].title)
    health = call(middleware, http_scope("/_sessionmw/health", headers=french), backend=backend)
    assert health.header("content-language") == "fr"
    # German is not offered here: the default, English.
    german = http_scope("/", headers=[*french[:2], (b"accept-language", b"de")])
    offered = call(middleware, german, backend=backend)
    assert offered.header("content-language") == "en"


def test_an_asgi_request_sets_no_context_variable_for_its_language(backend: str) -> None:
    """The speed budget (issue 28): the request's language rides in its session scope, so the
    request path sets no context variable of its own; the app's words still speak it."""

    async def speaker(scope: Scope, receive: Receive, send: Send) -> None:
        asked = ASKED.get()
        text = f"{asked is not None and asked[1] is not None} {languages.current()} {local(BACK)}"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": text.encode()})

    manager = SessionManager(store=MemoryStore())
    middleware = SessionMiddleware(speaker, manager=manager, secret_key=SECRET)
    sid = manager.create_session().session_id
    headers = [(b"cookie", f"sessionmw={sid}".encode()), (b"accept-language", b"fr")]
    said = contextvars.Context().run(call, middleware, http_scope("/", headers=headers), None, backend)
    with speaking("fr"):
        assert said.body.decode() == f"False fr {local(BACK)}"


def test_a_websocket_is_served_in_the_browsers_language(backend: str) -> None:
    """The websocket's admission chooses its language as a request's does: what sessionmw writes
    while the app serves it is in the browser's language."""

    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"{languages.current()} {local(MESSAGES['expired'].title)}")
        await websocket.close()

    manager = SessionManager(store=MemoryStore())
    starlette = Starlette(routes=[WebSocketRoute("/ws", feed)])
    app = SessionMiddleware(starlette, manager=manager, secret_key=SECRET)
    sid = manager.create_session().session_id
    with _client(app, backend) as client:
        for header, code in (("es-MX,es;q=0.8", "es"), ("", "en")):
            headers = {"cookie": f"sessionmw={sid}", "accept-language": header}
            with client.websocket_connect("/ws", headers=headers) as socket:
                said = socket.receive_text()
            with speaking(code):
                assert said == f"{code} {local(MESSAGES['expired'].title)}"
