"""SessionGate without any protocol: a plain request view in, decisions and header lists out."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from support.adapters import SECRET_DETAIL, established, session_cookie
from support.fakes import SESSION_KINDS, CountedStore
from werkzeug.test import Client

from sessionmw import SessionManager, signals
from sessionmw._session import SessionRecord
from sessionmw.integrations.gate import Admission, SessionGate, vary_with_cookie
from sessionmw.integrations.http import PlainResponse
from sessionmw.integrations.options import Options
from sessionmw.integrations.pending_ids import Verdict, pending_window
from sessionmw.integrations.problem import problem_errors
from sessionmw.integrations.request import RequestView
from sessionmw.integrations.request_session import RequestSession
from sessionmw.stores._memory import MemoryStore
from sessionmw.testing import FakeClock


@dataclasses.dataclass(frozen=True)
class Request:
    """A request as any protocol could hand it over (what an ASGI adapter will build from a scope)."""

    method: str = "GET"
    path: str = "/"
    root_path: str = ""
    query_string: str = ""
    scheme: str = "http"
    remote_address: str | None = "127.0.0.1"
    cookies: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    form: bytes = b""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def body(self, limit: int) -> bytes:
        return self.form[:limit]


@pytest.fixture(name="gate")
def _gate(clock: FakeClock) -> SessionGate:
    manager = SessionManager(store="memory://", clock=clock)
    return SessionGate(manager, Options.build(secret_key="test-secret", exclude=["/static/"]))


def test_a_plain_view_is_a_request_view() -> None:
    """The gate needs nothing of WSGI: any object with the view's attributes will do."""
    view: RequestView = Request()
    assert view.header("accept") is None


def test_a_new_client_gets_a_pending_session_and_its_cookie(gate: SessionGate) -> None:
    """No id: the app runs in a fresh pending session; its response sets the cookie, privately."""
    request = Request()
    session, answer = gate.admit(request)
    assert answer is None and isinstance(session, RequestSession)
    assert not session.stored and session.issue_cookie
    headers = gate.response_headers(session, request, [("Content-Type", "text/html")])
    names = Counter(name for name, _ in headers)
    assert names == {"Content-Type": 1, "Vary": 1, "Set-Cookie": 1, "Cache-Control": 1}
    assert dict(headers)["Cache-Control"] == "private"
    assert dict(headers)["Set-Cookie"].startswith(f"sessionmw={session.id}; Path=/; HttpOnly")
    assert "Secure" in gate.cookie_header(session.id, Request(scheme="https"))


def test_a_known_id_runs_in_its_session(gate: SessionGate) -> None:
    """The cookie's session is admitted; the response only gains ``Vary: Cookie``."""
    sid = gate.manager.create_session().session_id
    request = Request(cookies=f"theme=dark; sessionmw={sid}")
    session, answer = gate.admit(request)
    assert answer is None and session is not None and session.id == sid and session.stored
    assert gate.response_headers(session, request, []) == [("Vary", "Cookie")]


def test_a_store_failure_is_left_to_the_adapter(gate: SessionGate) -> None:
    """``admit`` raises what the store raised; ``failed_admission`` is the friendly answer."""
    from sessionmw._errors import StoreUnavailableError

    def down(*args: object) -> None:
        raise StoreUnavailableError("down")

    gate.manager.settings = dataclasses.replace(gate.manager.settings, on_store_error="fail_closed")
    gate.manager.store.update = down  # type: ignore[method-assign,assignment]
    request = Request(cookies="sessionmw=abc", headers=(("accept", "application/json"),))
    with pytest.raises(StoreUnavailableError):
        gate.admit(request)
    answer = gate.failed_admission(request, StoreUnavailableError("down"))
    assert answer.status_code == 503 and "down" not in answer.body.decode()


def test_the_gate_answers_its_endpoints_and_passes_excluded_paths(gate: SessionGate) -> None:
    """Endpoints are answered without a session; an excluded path goes to the app without one."""
    session, answer = gate.admit(Request(path="/_sessionmw/health", query_string="page=1"))
    assert session is None and answer is not None and answer.status_code == 200
    assert json.loads(answer.body)["session"]["status"] == "not_found"
    session, answer = gate.admit(Request(method="PUT", path="/_sessionmw/health"))
    assert answer is not None and answer.status_code == 405
    assert gate.admit(Request(path="/static/app.css")) == (None, None)


def test_a_disconnected_json_client_is_refused(gate: SessionGate) -> None:
    """The refusal is the gate's answer (with the session's headers added, as to any response
    of the session); a page is served, its session's refusal kept for the banner."""
    manager = gate.manager
    sid = manager.create_session().session_id
    for _ in range(manager.policy.error_threshold):
        manager.record_error(sid, ConnectionError("down"))
    as_json = Request(cookies=f"sessionmw={sid}", headers=(("accept", "application/json"),))
    session, answer = gate.admit(as_json)
    assert session is not None and answer is not None and answer.status_code == 503
    answer = gate.with_session_headers(answer, session, as_json)
    assert ("Vary", "Cookie") in answer.headers
    assert json.loads(answer.body)["reconnect"] == "/_sessionmw/reconnect"
    session, answer = gate.admit(Request(cookies=f"sessionmw={sid}", headers=(("accept", "text/html"),)))
    assert session is not None and answer is None and session.refusal is not None


def test_a_form_reconnect_goes_back_to_its_page(gate: SessionGate) -> None:
    """The banner's form post reads the body through the view and redirects to a local path."""
    request = Request(
        method="POST",
        path="/_sessionmw/reconnect",
        headers=(("content-type", "application/x-www-form-urlencoded"),),
        form=b"next=%2Freport%3Fday%3D2",
    )
    _, answer = gate.admit(request)
    assert answer is not None and answer.status == "303 See Other"
    assert dict(answer.headers)["Location"] == "/report?day=2"


@pytest.mark.parametrize(
    ("app_vary", "expected"),
    [
        pytest.param(None, "Cookie", id="none"),
        pytest.param("", "Cookie", id="empty"),
        pytest.param("Accept-Encoding", "Accept-Encoding, Cookie", id="other"),
        pytest.param("accept, cookie", None, id="covered"),
        pytest.param(" * ", None, id="star"),
    ],
)
def test_vary_always_covers_the_cookie(app_vary: str | None, expected: str | None) -> None:
    """Every response of a session varies on ``Cookie``; an app's own ``Vary`` is kept."""
    assert vary_with_cookie(app_vary) == expected


@pytest.mark.parametrize(
    ("app_cache_control", "expected"),
    [
        pytest.param("public, max-age=60, s-maxage=600", "max-age=60, private", id="public"),
        pytest.param("no-store", "no-store", id="no-store"),
        pytest.param("private, max-age=5", "private, max-age=5", id="private"),
    ],
)
def test_a_response_that_sets_the_cookie_is_never_shared(
    gate: SessionGate, app_cache_control: str, expected: str
) -> None:
    """A response with ``Set-Cookie`` is never stored by a shared cache, whatever the app said."""
    request = Request()
    session, _ = gate.admit(request)
    assert session is not None
    headers = dict(gate.response_headers(session, request, [("Cache-Control", app_cache_control)]))
    assert headers["Cache-Control"] == expected


@pytest.mark.parametrize(
    "app_headers",
    [
        pytest.param([], id="none"),
        pytest.param([("Content-Type", "text/html"), ("VARY", "Accept")], id="vary"),
        pytest.param([("vary", "accept, cookie"), ("Cache-Control", "public, max-age=60")], id="both"),
        pytest.param([("cache-control", "no-store"), ("X-Other", "caf\u00e9")], id="latin-1"),
    ],
)
@pytest.mark.parametrize("new_client", [True, False], ids=["new", "known"])
def test_asgi_headers_get_the_same_decision_as_text_ones(
    gate: SessionGate, app_headers: list[tuple[str, str]], new_client: bool
) -> None:
    """``response_headers_raw`` (bytes, as ASGI sends them) adds and changes what
    ``response_headers`` does, names in lower case; the app's other headers go out untouched."""
    sid = gate.manager.create_session().session_id
    request = Request() if new_client else Request(cookies=f"sessionmw={sid}")
    session, _ = gate.admit(request)
    assert session is not None
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in app_headers]
    expected = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in gate.response_headers(session, request, app_headers)
    ]
    got = gate.response_headers_raw(session, request, raw)
    assert [(name.lower(), value) for name, value in got] == expected
    assert all(pair in got for pair in raw if pair[0].lower() not in (b"vary", b"cache-control"))
    assert got is not raw and len(raw) == len(app_headers)  # a new list: the app's message is not changed


INTEGRATION_MODULES = [
    "asgi",
    "dash",
    "dash_apps",
    "dash_banner",
    "dash_callbacks",
    "environ",
    "fastapi",
    "flask",
    "gate",
    "http",
    "options",
    "pending_ids",
    "request",
    "request_session",
    "style",
    "wsgi",
]


def test_every_name_has_one_import_path() -> None:
    """No adapter module re-exports another's names: each public object is in one ``__all__``
    (the protocols' counterparts, e.g. ``wsgi.SessionMiddleware`` and ``asgi.SessionMiddleware``,
    share a name, each defined in its own module)."""
    homes: dict[tuple[str, int], list[str]] = {}
    for name in INTEGRATION_MODULES:
        module = importlib.import_module(f"sessionmw.integrations.{name}")
        for exported in module.__all__:
            value = getattr(module, exported)
            homes.setdefault((exported, id(value)), []).append(name)
            if inspect.isclass(value) or inspect.isfunction(value):  # (not a proxy's borrowed name)
                assert value.__module__ == module.__name__, f"{name}.{exported} is {value.__module__}'s"
    assert {name: where for name, where in homes.items() if len(where) > 1} == {}


# == what every adapter does alike: the same host app served by each (support.adapters) ===


# Merged from the WSGI middleware's and the Flask extension's copies of each test: every assertion
# of either now holds for both.


def test_the_first_response_issues_a_private_cookie_with_safe_flags(served: Client) -> None:
    """The cookie is HttpOnly, SameSite=Lax, Path=/, with no Domain and no Secure over HTTP; the
    response varies on Cookie and is private."""
    response = served.get("/")
    (cookie,) = response.headers.getlist("Set-Cookie")
    assert sorted(part.strip() for part in cookie.split(";")[1:]) == ["HttpOnly", "Path=/", "SameSite=Lax"]
    assert "Cookie" in response.headers.get("Vary", "")
    assert response.headers["Cache-Control"] == "private"


def test_clients_that_drop_the_cookie_store_nothing(served: Client, manager: SessionManager) -> None:
    """Requests that never send the cookie back leave no stored session (no store flooding)."""
    for _ in range(50):
        served.delete_cookie("sessionmw")  # (a client that never sends it back)
        assert session_cookie(served.get("/")) is not None
    assert manager.session_count() == 0


def test_a_health_poll_is_not_activity(served: Client, manager: SessionManager, clock: FakeClock) -> None:
    """A health poll reports the session without counting as activity (polling never keeps a
    session alive) and without setting a cookie."""
    sid = established(served)
    before = manager.get_session(sid)
    clock.advance(120)
    response = served.get("/_sessionmw/health")
    body = response.get_json(force=True)
    assert response.content_type == "application/health+json"
    assert body["status"] == "pass" and body["session"]["state"] == "active"
    assert "session_id" not in body["session"]
    assert session_cookie(response) is None
    after = manager.get_session(sid)
    assert before is not None and after is not None and after.last_activity == before.last_activity


def test_an_app_failure_is_a_friendly_html_page_recorded_on_the_session(
    served: Client, manager: SessionManager
) -> None:
    """An exception becomes a 500 HTML page without the exception text or a traceback, recorded
    on the session."""
    sid = established(served)
    response = served.get("/boom", headers={"Accept": "text/html"})
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert SECRET_DETAIL not in response.text and "Traceback" not in response.text
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1


def test_an_app_failure_is_json_for_a_json_client(served: Client) -> None:
    """A JSON client gets the translated error as a problem document, without the exception's text."""
    response = served.get("/fail", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Content-Language"] == "en"
    assert "internal detail" not in response.text
    assert problem_errors(response.get_data(), status=500) == []
    body = response.get_json(force=True)
    assert body["type"].endswith("/unexpected") and "debug" not in body


@pytest.mark.parametrize("accept", ["application/json", None])
def test_a_transient_failure_is_503_with_retry_after(served: Client, accept: str | None) -> None:
    """A transient error answers 503 with a Retry-After header, as a page or as JSON (saying it is
    transient, without the exception's text)."""
    established(served)
    response = served.get("/busy", headers={"Accept": accept} if accept else {})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert "backend busy" not in response.text
    if accept:
        assert response.get_json()["transient"] is True


# -- the async gate: the same decisions and the same store operations as the sync one ------------

Setup = Callable[[SessionGate, FakeClock], Request]
JSON = (("accept", "application/json"),)


def _sent(kind: str, *, accept: str = "text/html", header: bool = False, **request: Any) -> Setup:
    """A request that sends the id of a session of ``kind`` (support.fakes), in the cookie or the header."""

    def setup(gate: SessionGate, clock: FakeClock) -> Request:
        sid = SESSION_KINDS[kind](gate.manager, clock)
        if header:
            return Request(headers=(("x-session-id", sid), ("accept", accept)), **request)
        return Request(cookies=f"sessionmw={sid}", headers=(("accept", accept),), **request)

    return setup


def _issued(*, late: bool = False, accept: str = "text/html") -> Setup:
    """A request that sends back a pending id this gate issued (``late``: past its window)."""

    def setup(gate: SessionGate, clock: FakeClock) -> Request:
        sid = gate.pending.issue()
        if late:
            clock.advance(pending_window(gate.manager.policy) + 1)
        return Request(cookies=f"sessionmw={sid}", headers=(("accept", accept),))

    return setup


ADMISSIONS: dict[str, Setup] = {
    "new client": lambda gate, clock: Request(),
    "forged id": lambda gate, clock: Request(cookies="sessionmw=abc.def.ghi"),
    "pending id": _issued(),
    "gone id, page": _issued(late=True),
    "gone id, JSON": _issued(late=True, accept="application/json"),
    "excluded path": lambda gate, clock: Request(path="/static/app.css", cookies="sessionmw=x"),
    **{f"{kind}, page": _sent(kind) for kind in SESSION_KINDS},
    **{f"{kind}, API": _sent(kind, accept="application/json", header=True) for kind in SESSION_KINDS},
}

ENDPOINTS: dict[str, Setup] = {
    "health, none": lambda gate, clock: Request(path="/_sessionmw/health"),
    "health, pending id": lambda gate, clock: dataclasses.replace(
        _issued()(gate, clock), path="/_sessionmw/health"
    ),
    "health, PUT": lambda gate, clock: Request(method="PUT", path="/_sessionmw/health"),
    "no such endpoint": lambda gate, clock: Request(path="/_sessionmw/nothing"),
    **{f"health, {kind}": _sent(kind, path="/_sessionmw/health") for kind in SESSION_KINDS},
    **{
        f"reconnect, {kind}": _sent(
            kind, accept="application/json", method="POST", path="/_sessionmw/reconnect"
        )
        for kind in SESSION_KINDS
    },
    **{
        f"reconnect form, {kind}": _sent(
            kind,
            method="POST",
            path="/_sessionmw/reconnect",
            form=b"next=%2Fpage",
        )
        for kind in ("disconnected", "expired")
    },
    "reconnect, pending id": lambda gate, clock: dataclasses.replace(
        _issued()(gate, clock), method="POST", path="/_sessionmw/reconnect"
    ),
    "reconnect, GET": lambda gate, clock: Request(path="/_sessionmw/reconnect"),
}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test of this module runs under asyncio and under trio."""
    return str(request.param)


def _counted_gate() -> tuple[SessionGate, CountedStore, FakeClock]:
    clock = FakeClock()
    store = CountedStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    options = Options.build(secret_key="test-secret", exclude=["/static/"])
    return SessionGate(manager, options), store, clock


def _seen_admission(admission: Admission, request: Request) -> tuple[Any, ...]:
    """What an adapter acts on in an admission, without the ids and times that differ between runs."""
    session, answer = admission
    kept = None
    if session is not None:
        sent = request.header("x-session-id") or request.cookies.partition("=")[2]
        kept = (
            session.id == sent,
            session.stored,
            session.issue_cookie,
            session.via_header,
            session.state,
            None if session.refusal is None else session.refusal.status,
            None if session.notice is None else session.notice.status,
        )
    return kept, _seen_answer(answer)


def _seen_answer(answer: PlainResponse | None) -> tuple[Any, ...] | None:
    if answer is None:
        return None
    headers = dict(answer.headers)
    body: Any = answer.body
    if headers.get("Content-Type", "").startswith("application/json"):
        data = json.loads(answer.body)
        session = data.get("session", data)
        body = (data.get("status"), session.get("status"), session.get("state"))
    elif "Location" in headers:
        body = headers["Location"]
    else:
        body = len(answer.body) > 0
    return answer.status, headers.get("Content-Type"), body


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(ADMISSIONS) + list(ENDPOINTS))
async def test_aadmit_decides_and_costs_as_admit(case: str) -> None:
    """Every kind of request gets the same admission from ``aadmit`` as from ``admit``, for the
    same store operations (a CountedStore's count, incarnation reads included), and the session
    it left in the store is the same."""
    setup = ADMISSIONS.get(case) or ENDPOINTS[case]
    seen = []
    for awaiting in (False, True):
        gate, store, clock = _counted_gate()
        request = setup(gate, clock)
        store.calls.clear()
        admission = await gate.aadmit(request) if awaiting else gate.admit(request)
        session = admission.session
        after = None if session is None else gate.manager.get_session(session.id)
        seen.append(
            (_seen_admission(admission, request), dict(store.calls), None if after is None else after.state)
        )
    assert seen[1] == seen[0]


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["new client", "pending id", "healthy, page", "error, page", "idle, API"])
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
async def test_afail_and_aerror_response_record_and_answer_as_the_sync_ones(case: str, accept: str) -> None:
    """An app's error is recorded once (a pending session stored first) and answered alike, for
    the same store operations, whichever path records it."""
    seen = []
    for awaiting in (False, True):
        gate, store, clock = _counted_gate()
        request = dataclasses.replace(ADMISSIONS[case](gate, clock), headers=(("accept", accept),))
        session, _ = gate.admit(request)
        assert session is not None
        store.calls.clear()
        exc = ConnectionError("the database went away")
        if awaiting:
            err = await gate.afail(session, exc, log=False)
            again = await gate.afail(session, exc, log=False)  # a second observer records nothing
            answer = await gate.aerror_response(err, request, session.via_header, session)
        else:
            err = gate.fail(session, exc, log=False)
            again = gate.fail(session, exc, log=False)
            answer = gate.error_response(err, request, session.via_header, session)
        assert again.title == err.title
        record = session.after_error
        seen.append(
            (
                err.title,
                session.failed,
                session.stored,
                None if record is None else (record.state, record.error_count),
                _seen_answer(answer),
                dict(store.calls),
            )
        )
    assert seen[1] == seen[0]
    assert seen[0][1] and seen[0][3] is not None and seen[0][3][1] >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [200, 302, 404, 500])
@pytest.mark.parametrize("case", ["error, page", "healthy, page", "pending id", "new client"])
async def test_afinish_clears_errors_as_finish(case: str, status: int) -> None:
    """A success (below 400) clears a session's errors through either path, at the same cost;
    anything else, or a session not stored, costs nothing."""
    seen = []
    for awaiting in (False, True):
        gate, store, clock = _counted_gate()
        session, _ = gate.admit(ADMISSIONS[case](gate, clock))
        assert session is not None
        store.calls.clear()
        if awaiting:
            await gate.afinish(session, status)
        else:
            gate.finish(session, status)
        calls = dict(store.calls)
        after = gate.manager.get_session(session.id) if session.stored else None
        seen.append((calls, None if after is None else (after.state, after.error_count)))
    assert seen[1] == seen[0]
    assert bool(seen[0][0]) == (case == "error, page" and status < 400)


@pytest.mark.anyio
async def test_a_store_failure_raises_from_aadmit_and_afailed_admission_answers_it() -> None:
    """With the store down and ``fail_closed``, ``aadmit`` raises as ``admit`` does; the answer
    is the same friendly 503, without the exception's text."""
    from sessionmw._errors import StoreUnavailableError

    gate, store, _ = _counted_gate()
    gate.manager.settings = dataclasses.replace(gate.manager.settings, on_store_error="fail_closed")

    def down(*args: object) -> None:
        raise StoreUnavailableError("down at 10.0.0.7")

    store.inner.update = down  # type: ignore[method-assign,assignment]
    request = Request(cookies="sessionmw=abc", headers=JSON)
    with pytest.raises(StoreUnavailableError) as raised:
        await gate.aadmit(request)
    answer = await gate.afailed_admission(request, raised.value)
    assert _seen_answer(answer) == _seen_answer(gate.failed_admission(request, raised.value))
    assert answer.status_code == 503 and b"10.0.0.7" not in answer.body


@pytest.mark.anyio
async def test_concurrent_first_clients_read_the_incarnation_once() -> None:
    """The first fresh ids read the store's incarnation off the loop, once: clients that arrive
    while it is being read get ids without one (judged by their window), never a second read."""
    gate, store, _ = _counted_gate()
    sessions: list[RequestSession | None] = []

    async def first_visit() -> None:
        sessions.append((await gate.aadmit(Request())).session)

    async with anyio.create_task_group() as tasks:
        for _ in range(5):
            tasks.start_soon(first_visit)
    assert store.calls == {"incarnation": 1}
    ids = [session.id for session in sessions if session is not None]
    assert len(set(ids)) == 5
    for sid in ids:
        assert await gate.pending.averdict(sid) is Verdict.PENDING


def test_reads_body_names_only_the_reconnect_form_post(gate: SessionGate) -> None:
    """An async adapter awaits the body of a POST to ``reconnect`` only: no other request's body
    is ever read."""
    assert gate.reads_body(Request(method="POST", path="/_sessionmw/reconnect"))
    assert not gate.reads_body(Request(method="GET", path="/_sessionmw/reconnect"))
    assert not gate.reads_body(Request(method="POST", path="/_sessionmw/health"))
    assert not gate.reads_body(Request(method="POST", path="/upload"))


# -- admit_now: aadmit's admission at once, or nothing done -------------------------------------

#: The requests admit_now answers: a session that may work, within its renewal window.
ANSWERED_AT_ONCE = {"healthy, page", "healthy, API", "error, page", "error, API"}

NOW_CASES: dict[str, Setup] = {
    **ADMISSIONS,
    **ENDPOINTS,
    "healthy, several cookies": lambda gate, clock: Request(
        cookies=f"theme=dark; sessionmw={SESSION_KINDS['healthy'](gate.manager, clock)}"
    ),
    "healthy, quoted cookie": lambda gate, clock: Request(
        cookies=f'sessionmw="{SESSION_KINDS["healthy"](gate.manager, clock)}"'
    ),
    "healthy, header with spaces": lambda gate, clock: Request(
        headers=(("x-session-id", f" {SESSION_KINDS['healthy'](gate.manager, clock)} "),)
    ),
    "healthy, past the renewal window": lambda gate, clock: _later(gate, clock),
    "a stored id of the wrong shape": lambda gate, clock: _stored_badly(gate, clock),
}
ANSWERED_AT_ONCE.add("healthy, header with spaces")


def _stored_badly(gate: SessionGate, clock: FakeClock) -> Request:
    """An id the gate would never accept, held by the store all the same (written by other code)."""
    manager = gate.manager
    manager.store.create(SessionRecord.new("bad id", clock()), clock(), manager.policy)
    return Request(headers=(("x-session-id", "bad id"),))


def _later(gate: SessionGate, clock: FakeClock) -> Request:
    sid = SESSION_KINDS["healthy"](gate.manager, clock)
    clock.advance(gate.manager.policy.activity_resolution)  # its activity is a write now
    return Request(cookies=f"sessionmw={sid}")


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(NOW_CASES))
async def test_admit_now_admits_as_aadmit_or_does_nothing(case: str, clock: FakeClock) -> None:
    """``admit_now`` answers a known session within its renewal window that may work, with the
    session ``aadmit`` gives (its activity signalled once); any other request gets None, with
    nothing written and nothing signalled, and is left to ``aadmit``."""
    store = MemoryStore()
    options = Options.build(secret_key="test-secret", exclude=["/static/"])
    gate = SessionGate(SessionManager(store=store, clock=clock), options)
    request = NOW_CASES[case](gate, clock)
    kept = dict(store._records)  # copy-on-write: a write would replace a record object
    active: list[str] = []

    def seen(sender: object, session_id: str) -> None:
        active.append(session_id)

    signals.activity.connect(seen)
    try:
        session = gate.admit_now(request)
    finally:
        signals.activity.disconnect(seen)
    assert (session is not None) == (case in ANSWERED_AT_ONCE)
    if session is None:
        assert active == [] and store._records.keys() == kept.keys()
        assert all(store._records[sid] is record for sid, record in kept.items())
        return
    assert active == [session.id] and store._records == kept
    admission = await gate.aadmit(request)
    assert admission.answer is None and admission.session is not None
    assert _seen_admission(Admission(session, None), request) == _seen_admission(admission, request)
    assert session.record == admission.session.record and session.id == admission.session.id
