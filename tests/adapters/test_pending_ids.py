"""Issued ids: a dead id never comes back to life, ids stay with the app that issued them, and no
text a client sends is adopted unless this app issued it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.servers import run_wsgi

from sessionmw import SessionManager
from sessionmw._errors import IllegalTransitionError, StoreUnavailableError
from sessionmw._manager import new_session_id
from sessionmw.integrations.environ import ENVIRON_SESSION
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.gate import SessionGate
from sessionmw.integrations.pending_ids import Verdict
from sessionmw.integrations.request_session import RequestSession
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.stores import MemoryStore
from sessionmw.testing import FakeClock


def is_pending(gate: SessionGate, sid: str) -> bool:
    """True when ``gate`` would store ``sid`` as a pending id now."""
    return gate.pending.verdict(sid) is Verdict.PENDING


SECRET = "test-secret"


class Page:
    """A WSGI app that records the session each request ran under."""

    def __init__(self) -> None:
        self.sessions: list[RequestSession] = []

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        self.sessions.append(environ[ENVIRON_SESSION])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page"]


def request(app: Any, cookie: str | None = None, header: str | None = None) -> tuple[str, str | None]:
    """One GET; the status line and the session id the response's cookie sets (or None)."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ["HTTP_ACCEPT"] = "text/html"
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    if header is not None:
        environ["HTTP_X_SESSION_ID"] = header
    status, headers, _ = run_wsgi(app, environ)
    issued = None
    for name, value in headers:
        if name == "Set-Cookie" and value.startswith("sessionmw="):
            issued = value.split(";")[0].partition("=")[2]
    return status, issued


def json_request(app: Any, sid: str) -> tuple[str, dict[str, Any]]:
    """One JSON GET (a Dash callback, an API call) with ``sid`` as the cookie: status line and body."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ["HTTP_ACCEPT"] = "application/json"
    environ["HTTP_COOKIE"] = f"sessionmw={sid}"
    status, _, data = run_wsgi(app, environ)
    return status, (json.loads(data) if data.startswith(b"{") else {})


@pytest.fixture(name="store_url", params=["memory", "sqlite", "redis"])
def _store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store kind: memory, an SQLite file of the test's own, Redis under a private prefix."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sessions.db'}"
    else:
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        yield f"{redis_url}?prefix={prefix}"


def stored_live(manager: SessionManager, sid: str) -> bool:
    record = manager.store.get(sid)
    return record is not None and not record.state.is_terminal


# -- dead ids ------------------------------------------------------------------------------------


def test_an_ended_session_stays_dead_after_its_record_is_swept(store_url: str, clock: FakeClock) -> None:
    """The issue's reproduction: 120-minute timeout, ended at +10 min, swept an hour later, replayed."""
    manager = SessionManager(store=store_url, clock=clock, session_timeout_minutes=120)
    page = Page()
    app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
    try:
        _, sid = request(app)
        assert sid is not None
        request(app, f"sessionmw={sid}")  # the browser sends it back: stored
        assert stored_live(manager, sid)
        clock.advance(10 * 60)
        assert manager.end_session(sid)
        clock.advance(3600)
        manager.sweep()
        status, issued = request(app, f"sessionmw={sid}")
        assert status.startswith("200")
        assert page.sessions[-1].id != sid and issued not in (None, sid)
        assert not stored_live(manager, sid)
    finally:
        manager.close()


def test_a_lifetime_expired_session_stays_dead_after_its_record_is_swept(
    store_url: str, clock: FakeClock
) -> None:
    """The same for a session that reached its absolute lifetime (half an hour here)."""
    manager = SessionManager(
        store=store_url, clock=clock, session_timeout_minutes=120, absolute_timeout_hours=0.5
    )
    page = Page()
    app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
    try:
        _, sid = request(app)
        assert sid is not None
        request(app, header=sid)  # an API client: the header, the same rule
        for _ in range(3):
            clock.advance(10 * 60)
            manager.sweep()
        assert not stored_live(manager, sid)
        clock.advance(3600)
        manager.sweep()
        request(app, header=sid)
        assert page.sessions[-1].id != sid
        assert not stored_live(manager, sid)
    finally:
        manager.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    timeout_minutes=st.floats(1, 24 * 60),
    retention=st.floats(0, 48 * 3600),
    ended_after=st.floats(0, 48 * 3600),
    replays=st.lists(st.floats(0, 48 * 3600), min_size=1, max_size=6),
)
def test_an_id_once_stored_never_becomes_a_session_again(
    timeout_minutes: float, retention: float, ended_after: float, replays: list[float]
) -> None:
    """Whatever the timeout, the retention and when the session ends or is swept: never again."""
    clock = FakeClock()
    manager = SessionManager(store="memory://", clock=clock, session_timeout_minutes=timeout_minutes)
    manager.policy = dataclasses.replace(manager.policy, retention=retention)
    page = Page()
    app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
    _, sid = request(app)
    assert sid is not None
    request(app, f"sessionmw={sid}")
    if not stored_live(manager, sid):
        return  # a window too short to store anything (a retention under a minute)
    clock.advance(ended_after)
    with contextlib.suppress(IllegalTransitionError):  # it may have expired already
        manager.end_session(sid)
    for gap in replays:
        clock.advance(gap)
        manager.sweep()
        request(app, f"sessionmw={sid}")
        assert page.sessions[-1].id != sid
        assert not stored_live(manager, sid)


def test_a_pending_id_is_still_stored_within_the_session_timeout(clock: FakeClock) -> None:
    """The window did not become needlessly short: sent back within the timeout, the id is stored."""
    manager = SessionManager(store="memory://", clock=clock, session_timeout_minutes=30)
    app = SessionMiddleware(Page(), manager=manager, secret_key=SECRET)
    _, sid = request(app)
    assert sid is not None
    clock.advance(29 * 60)
    assert request(app, f"sessionmw={sid}")[1] is None
    assert stored_live(manager, sid)


# -- ids stay with the app that issued them ----------------------------------------------------


def flask_app(manager: SessionManager) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="shared-secret")

    @app.get("/")
    def page() -> str:
        return "page"

    SessionMW(app, manager=manager)
    return app


def test_two_flask_apps_with_one_secret_refuse_each_others_ids(clock: FakeClock) -> None:
    """Same SECRET_KEY, separate managers: app 2 does not take app 1's id as one it issued."""
    one = SessionManager(store="memory://", clock=clock)
    two = SessionManager(store="memory://", clock=clock)
    with flask_app(one).test_client() as first:
        first.get("/")
        cookie = first.get_cookie("sessionmw")
        assert cookie is not None
        sid = cookie.value
    with flask_app(two).test_client() as second:
        second.set_cookie("sessionmw", sid)
        second.get("/")
        again = second.get_cookie("sessionmw")
        assert again is not None and again.value != sid
    assert two.store.get(sid) is None and two.session_count() == 0


def test_ids_are_bound_to_the_cookie_name(manager: SessionManager) -> None:
    """Two middlewares on one store and secret but with their own cookies keep their ids apart."""
    one = SessionMiddleware(Page(), manager=manager, secret_key=SECRET, cookie_name="one")
    two = SessionMiddleware(Page(), manager=manager, secret_key=SECRET, cookie_name="two")
    sid = one.gate.pending.issue()
    assert is_pending(one.gate, sid)
    assert not is_pending(two.gate, sid)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_ids_are_bound_to_the_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Processes on one store accept each other's ids; an app on another file or prefix does not."""
    if kind == "sqlite":
        same = f"sqlite:///{tmp_path / 'a.db'}"
        other = f"sqlite:///{tmp_path / 'b.db'}"
    else:
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        same, other = f"{redis_url}?prefix={prefix}", f"{redis_url}?prefix={prefix}-other"
    managers = [SessionManager(store=url) for url in (same, same, other)]
    if kind == "redis":  # the same prefix in another database is another store too
        database = int(managers[0].store._pool.connection_kwargs.get("db") or 0)  # type: ignore[attr-defined]
        managers.append(SessionManager(store=f"{redis_url}?prefix={prefix}&db={(database + 1) % 16}"))
    try:
        issuer, worker, *elsewhere = (
            SessionMiddleware(Page(), manager=manager, secret_key=SECRET).gate for manager in managers
        )
        sid = issuer.pending.issue()
        assert is_pending(worker, sid)
        assert not any(is_pending(gate, sid) for gate in elsewhere)
    finally:
        for manager in managers:
            manager.close()


# -- the id parser -------------------------------------------------------------------------------

ID_LIKE = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:~-"),
    max_size=140,
)
LATIN1 = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=200)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cookie_value=LATIN1 | ID_LIKE, header=st.none() | LATIN1 | ID_LIKE, raw=st.booleans())
def test_no_text_from_a_client_is_adopted(
    manager: SessionManager, cookie_value: str, header: str | None, raw: bool
) -> None:
    """Arbitrary cookie and header text never raises and never becomes a session or the request's id."""
    page = Page()
    app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
    cookie = cookie_value if raw else f"other=1; sessionmw={cookie_value}"
    status, _ = request(app, cookie, header)
    assert status.startswith("200")
    used = page.sessions[-1]
    assert not used.stored and used.id not in (cookie_value, header)
    assert manager.session_count() == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), replacement=st.sampled_from("aZ09._-~:"), data=st.data())
def test_only_an_intact_signed_id_is_accepted(
    manager: SessionManager, position: int, replacement: str, data: st.DataObject
) -> None:
    """A pending id this app issued is accepted; the same id with any one character changed is not."""
    gate = SessionMiddleware(Page(), manager=manager, secret_key=SECRET).gate
    sid = gate.pending.issue()
    assert is_pending(gate, sid)
    position %= len(sid)
    tampered = sid[:position] + replacement + sid[position + 1 :]
    if tampered != sid:
        assert not is_pending(gate, tampered)
    cut = data.draw(st.integers(min_value=0, max_value=len(sid) - 1))
    assert not is_pending(gate, sid[:cut])
    assert not is_pending(gate, sid + data.draw(ID_LIKE.filter(bool)))


@settings(deadline=None)
@example(text="a.1." + "é" * 22)  # a MAC of the right length but not ASCII
@given(text=st.text(max_size=200))
def test_the_pending_check_never_raises(text: str) -> None:
    """Any text at all (non-ASCII too) is simply not a pending id."""
    manager = SessionManager(store="memory://")
    gate = SessionMiddleware(Page(), manager=manager, secret_key=SECRET).gate
    assert is_pending(gate, text) is False
    assert gate.pending_health(text) is None


# -- a session that vanished -------------------------------------------------------------------


def test_a_vanished_session_gets_a_fresh_id_after_its_pending_window(
    store_url: str, clock: FakeClock
) -> None:
    """Deleted (or lost): its client is served under a fresh id, silently; health says not_found."""
    manager = SessionManager(store=store_url, clock=clock)
    page = Page()
    app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
    try:
        _, sid = request(app)
        assert sid is not None
        request(app, f"sessionmw={sid}")
        clock.advance(manager.policy.timeout - 60)
        request(app, f"sessionmw={sid}")  # still in use
        assert manager.delete_session(sid)
        clock.advance(120)  # past the pending window (the timeout after issue)
        status, issued = request(app, f"sessionmw={sid}")
        assert status.startswith("200") and issued not in (None, sid)
        assert page.sessions[-1].id == issued and page.sessions[-1].notice is None
        assert manager.store.get(sid) is None
        assert manager.check_health(sid).status == "not_found"
    finally:
        manager.close()


def test_a_vanished_session_within_its_pending_window_is_stored_afresh(manager: SessionManager) -> None:
    """The documented exception: the old id is still a valid fresh id, so it is stored again, empty."""
    page = Page()
    app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
    _, sid = request(app)
    assert sid is not None
    request(app, f"sessionmw={sid}")
    manager.record_error(sid, "boom")
    assert manager.delete_session(sid)
    request(app, f"sessionmw={sid}")
    record = manager.store.get(sid)
    assert record is not None and record.error_count == 0 and page.sessions[-1].id == sid


def test_the_vanished_session_rule_is_stated_once() -> None:
    """docs/wsgi.md states what the adapters do with a vanished session's id; docs/stores.md
    points there instead of repeating it (two copies drift apart)."""
    docs = Path(__file__).resolve().parents[2] / "docs"

    def paragraph(name: str) -> str:
        text = (docs / name).read_text(encoding="utf-8")
        start = text.index("**A session that vanished**")
        return text[start : text.index("\n\n", start)]

    wsgi = (docs / "wsgi.md").read_text(encoding="utf-8")
    rule = paragraph("wsgi.md")
    assert wsgi.index("## How a session is chosen") < wsgi.index(rule)
    assert "`401`" in rule and "incarnation" in rule and "pending window" in rule
    pointer = paragraph("stores.md")
    assert "wsgi.md#how-a-session-is-chosen" in pointer
    assert "`401`" not in pointer and "pending window (at most" not in pointer


# -- a restart: the store lost every session -----------------------------------------------------


def issued_and_used(app: Any, *, stored: bool) -> str:
    """An id the app issued; sent back once (so stored) if ``stored``."""
    _, sid = request(app)
    assert sid is not None
    if stored:
        request(app, f"sessionmw={sid}")
    return sid


def assert_refused_then_replaced(app: Any, page: Page, manager: SessionManager, sid: str) -> None:
    """``sid`` is refused to a JSON client (401 not_found, every time; nothing runs, nothing is
    stored), and a page load runs under a fresh id, silently, that works."""
    for _ in range(2):
        status, body = json_request(app, sid)
        assert status.startswith("401") and body["session"]["status"] == "not_found"
        assert any("Refresh" in step for step in body["recovery"])
    assert page.sessions == []  # nothing ran
    assert manager.store.get(sid) is None and manager.session_count() == 0
    status, issued = request(app, f"sessionmw={sid}")
    assert status.startswith("200") and issued not in (None, sid)
    assert page.sessions[-1].id == issued and page.sessions[-1].notice is None
    assert manager.store.get(sid) is None
    assert json_request(app, issued)[0].startswith("200")  # the fresh id works
    assert stored_live(manager, issued) and manager.get_session(issued).error_count == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("stored", [True, False], ids=["stored", "only-pending"])
def test_after_a_restart_the_old_id_is_refused_even_within_its_pending_window(
    stored: bool, clock: FakeClock
) -> None:
    """A new process (a new memory store, the same secret) refuses the old process's id, though
    it is well within its pending window: it is not stored afresh as an empty session."""
    before = SessionManager(store="memory://", clock=clock)
    sid = issued_and_used(SessionMiddleware(Page(), manager=before, secret_key=SECRET), stored=stored)
    clock.advance(60)
    after = SessionManager(store="memory://", clock=clock)  # the restarted process
    page = Page()
    app = SessionMiddleware(page, manager=after, secret_key=SECRET)
    assert_refused_then_replaced(app, page, after, sid)


def test_two_memory_stores_with_one_secret_never_adopt_each_others_ids(clock: FakeClock) -> None:
    """Same secret and cookie name, two memory stores in one process: neither takes the other's
    ids, stored or pending (a memory store's sessions are its own)."""
    one = SessionManager(store="memory://", clock=clock)
    two = SessionManager(store="memory://", clock=clock)
    apps = [SessionMiddleware(Page(), manager=manager, secret_key=SECRET) for manager in (one, two)]
    assert one.store.namespace == two.store.namespace == "memory"  # type: ignore[attr-defined]
    for issuer, other, other_manager in ((apps[0], apps[1], two), (apps[1], apps[0], one)):
        for stored in (True, False):
            sid = issued_and_used(issuer, stored=stored)
            assert json_request(other, sid)[0].startswith("401")
            assert request(other, f"sessionmw={sid}")[1] not in (None, sid)
            assert other_manager.store.get(sid) is None


def old_format_id(app: SessionMiddleware, issued: float) -> str:
    """An id as sessionmw issued them before stores had an incarnation: random.issued.mac."""
    body = f"{new_session_id()}.{int(issued):x}"
    return f"{body}.{app.gate.pending.mac(body)}"


def test_an_id_without_an_incarnation_is_judged_by_its_window(clock: FakeClock) -> None:
    """An id of the older format (or issued while the store could not be reached) is stored
    within its pending window and refused as gone after it, as before."""
    manager = SessionManager(store="memory://", clock=clock)
    page = Page()
    app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
    fresh = old_format_id(app, clock())
    assert request(app, f"sessionmw={fresh}")[1] is None
    assert page.sessions[-1].id == fresh and stored_live(manager, fresh)
    late = old_format_id(app, clock() - manager.policy.timeout - 60)
    assert json_request(app, late)[1]["session"]["status"] == "not_found"
    assert manager.store.get(late) is None
    forged = late[:-1] + ("A" if late[-1] != "A" else "B")
    assert json_request(app, forged)[0].startswith("200")  # a stranger's id: a fresh one, never refused
    assert manager.store.get(forged) is None


def test_a_store_that_cannot_be_read_issues_ids_without_an_incarnation(clock: FakeClock) -> None:
    """Its incarnation unreadable (the store down), the gate issues ids without one, read once
    (not on every new client), and heals on the next unknown id once the store answers."""
    store = MemoryStore()
    reads: list[str] = []
    down = [True]

    def incarnation() -> str:
        reads.append("read")
        if down[0]:
            raise StoreUnavailableError("down")
        return "inc0"

    store.incarnation = incarnation  # type: ignore[method-assign]
    manager = SessionManager(store=store, clock=clock)
    app = SessionMiddleware(Page(), manager=manager, secret_key=SECRET)
    first, second = (request(app)[1] for _ in range(2))
    assert first is not None and second is not None
    assert first.count(".") == second.count(".") == 2 and len(reads) == 1
    down[0] = False
    assert request(app, f"sessionmw={first}")[1] is None and stored_live(manager, first)
    assert len(reads) == 2
    _, third = request(app)
    assert third is not None and third.split(".")[2] == "inc0"


def test_a_store_without_an_incarnation_counts_as_one_that_never_changes(clock: FakeClock) -> None:
    """A third-party store with neither namespace nor incarnation: ids as before, stored within
    their window."""

    class Plain:
        def __init__(self) -> None:
            self.inner = MemoryStore()
            self.max_sessions = None

        def __getattr__(self, name: str) -> Any:
            if name in ("namespace", "incarnation"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    manager = SessionManager(store=Plain(), clock=clock)  # type: ignore[arg-type]
    app = SessionMiddleware(Page(), manager=manager, secret_key=SECRET)
    _, sid = request(app)
    assert sid is not None and sid.count(".") == 2
    request(app, f"sessionmw={sid}")
    assert manager.store.get(sid) is not None


def test_a_replaced_sqlite_file_refuses_the_old_files_ids(tmp_path: Path, clock: FakeClock) -> None:
    """The file replaced by a new one (a restart on a fresh file): the old id is refused."""
    path = tmp_path / "sessions.db"
    before = SessionManager(store=f"sqlite:///{path}", clock=clock)
    sid = issued_and_used(SessionMiddleware(Page(), manager=before, secret_key=SECRET), stored=True)
    assert stored_live(before, sid)
    before.close()
    for leftover in tmp_path.glob("sessions.db*"):
        leftover.unlink()
    clock.advance(60)
    after = SessionManager(store=f"sqlite:///{path}", clock=clock)
    try:
        page = Page()
        app = SessionMiddleware(page, manager=after, secret_key=SECRET)
        assert_refused_then_replaced(app, page, after, sid)
    finally:
        after.close()


def test_an_sqlite_file_keeps_its_incarnation_across_restarts(tmp_path: Path, clock: FakeClock) -> None:
    """The same file reopened (a restart, another worker): the ids it issued are still good."""
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    before = SessionManager(store=url, clock=clock)
    sid = issued_and_used(SessionMiddleware(Page(), manager=before, secret_key=SECRET), stored=False)
    before.close()
    after = SessionManager(store=url, clock=clock)
    try:
        app = SessionMiddleware(Page(), manager=after, secret_key=SECRET)
        assert request(app, f"sessionmw={sid}")[1] is None and stored_live(after, sid)
    finally:
        after.close()


def test_a_redis_restart_without_persistence_refuses_the_lost_ids(clock: FakeClock) -> None:
    """A private redis-server (no persistence) restarted under a running app: the lost session's
    id, within its pending window, is refused, not stored again. An id issued after the restart
    but before the app noticed it carries the old incarnation: a page load replaces it, and the
    new id works (the self-healing the docs describe)."""
    from support.redis_servers import RedisServer
    from support.servers import free_port

    server = RedisServer(free_port())
    server.start()
    manager = SessionManager(store=f"{server.url}?timeout=2&connect_timeout=2", clock=clock)
    try:
        page = Page()
        app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
        sid = issued_and_used(app, stored=True)
        assert stored_live(manager, sid)
        server.stop()
        server.start()  # no persistence: every session and the incarnation are gone
        clock.advance(60)
        _, stale = request(app)  # issued before the app noticed: the old incarnation
        page.sessions.clear()
        assert stale is not None
        assert_refused_then_replaced(app, page, manager, sid)
        status, healed = request(app, f"sessionmw={stale}")
        assert status.startswith("200") and healed not in (None, stale)
        assert manager.store.get(stale) is None
        assert json_request(app, healed)[0].startswith("200") and stored_live(manager, healed)
    finally:
        manager.close()
        server.stop()
