"""SessionMiddleware: sessions, cookies, anti-fixation, endpoints and errors, under wsgiref's validator."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from support.servers import run_wsgi

from sessionmw import (
    SessionManager,
    SessionState,
    current_session_id,
    set_session_manager,
)
from sessionmw._errors import ConfigurationError, StoreUnavailableError
from sessionmw.integrations.environ import (
    ENVIRON_MANAGER,
    ENVIRON_NOTICE,
    ENVIRON_SESSION,
    ENVIRON_SESSION_ID,
)
from sessionmw.integrations.http import private_cache_control, wants_json
from sessionmw.integrations.problem import problem_errors
from sessionmw.integrations.wsgi import SessionMiddleware, banner_for, install, uninstall
from sessionmw.stores import MemoryStore
from sessionmw.testing import FakeClock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SECRET = "test-secret"


@dataclasses.dataclass
class Result:
    """One response: status, headers and body."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status[:3])

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def cookie(self) -> str | None:
        """The session id the response's Set-Cookie carries, if any."""
        for value in self.all("Set-Cookie"):
            name, _, rest = value.partition("=")
            if name == "sessionmw":
                return rest.split(";")[0]
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: WSGIApplication,
    path: str = "/",
    *,
    method: str = "GET",
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    https: bool = False,
    body: bytes = b"",
    extra_environ: dict[str, Any] | None = None,
) -> Result:
    """Run one request through ``validator(app)`` and collect the response."""
    environ: dict[str, Any] = dict(extra_environ or {})
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, REQUEST_METHOD=method, QUERY_STRING="")
    environ["wsgi.input"] = io.BytesIO(body)
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    if https:
        environ["wsgi.url_scheme"] = "https"
        environ["HTTPS"] = "on"
    return Result(*run_wsgi(validator(app), environ))


class Recorder:
    """A plain WSGI app that records what it saw; ``fail`` makes it raise."""

    def __init__(self) -> None:
        self.environs: list[WSGIEnvironment] = []
        self.session_ids: list[str | None] = []
        self.fail: BaseException | None = None
        self.fail_after_start = False
        self.response_headers: list[tuple[str, str]] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.environs.append(environ)
        self.session_ids.append(current_session_id())
        if self.fail is not None and not self.fail_after_start:
            raise self.fail
        start_response("200 OK", [("Content-Type", "text/plain"), *self.response_headers])
        if self.fail is not None:
            raise self.fail
        return [b"hello"]


@pytest.fixture(name="inner")
def _inner() -> Recorder:
    """The wrapped app."""
    return Recorder()


@pytest.fixture(name="app")
def _app(inner: Recorder, manager: SessionManager) -> SessionMiddleware:
    """The middleware around the recorder, on the fake-clock manager."""
    return SessionMiddleware(inner, manager=manager, secret_key=SECRET)


def established(app: SessionMiddleware) -> str:
    """A session id the store knows: issued, then sent back once."""
    sid = call(app).cookie
    assert sid is not None
    call(app, cookie=f"sessionmw={sid}")
    return sid


# -- cookies and issuing -----------------------------------------------------------------------


def test_cookie_is_secure_over_https(app: SessionMiddleware) -> None:
    """Over HTTPS the cookie gets the Secure flag."""
    cookie = call(app, https=True).all("Set-Cookie")[0]
    assert "Secure" in [part.strip() for part in cookie.split(";")]


def test_cookie_options_are_applied(inner: Recorder, manager: SessionManager) -> None:
    """A configured cookie name, domain, max-age and forced Secure appear on the cookie."""
    app = SessionMiddleware(
        inner,
        manager=manager,
        secret_key=SECRET,
        cookie_name="sid",
        cookie_domain="example.test",
        cookie_max_age=600,
        secure=True,
    )
    cookie = call(app).all("Set-Cookie")[0]
    assert cookie.startswith("sid=")
    assert {"Domain=example.test", "Max-Age=600", "Secure"} <= {p.strip() for p in cookie.split(";")}


def test_issued_ids_are_unguessable(app: SessionMiddleware) -> None:
    """Each new client gets a different id whose random part carries at least 128 bits."""
    ids = {call(app).cookie for _ in range(20)}
    assert len(ids) == 20
    for sid in ids:
        assert sid is not None
        random_part = sid.split(".")[0]
        assert len(base64.urlsafe_b64decode(random_part + "==")) >= 16


def test_returned_cookie_stores_the_session_and_keeps_its_id(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder
) -> None:
    """A client that sends its cookie back gets a stored session under the same id, with no new cookie."""
    sid = call(app).cookie
    assert sid is not None
    result = call(app, cookie=f"other=1; sessionmw={sid}")
    assert result.cookie is None
    assert manager.session_count() == 1
    assert manager.get_session(sid) is not None
    assert inner.session_ids[-1] == sid


def test_request_counts_as_activity(
    app: SessionMiddleware, manager: SessionManager, clock: FakeClock
) -> None:
    """Each request resets the session's inactivity clock."""
    sid = established(app)
    clock.advance(600)
    call(app, cookie=f"sessionmw={sid}")
    record = manager.get_session(sid)
    assert record is not None and record.last_activity == clock.now


def test_app_runs_in_session_scope_with_environ_keys(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder
) -> None:
    """The app sees the session in current_session_id() and in the sessionmw.* environ keys."""
    sid = established(app)
    call(app, cookie=f"sessionmw={sid}")
    environ = inner.environs[-1]
    assert inner.session_ids[-1] == sid
    assert environ[ENVIRON_SESSION_ID] == sid
    assert environ[ENVIRON_MANAGER] is manager
    assert environ[ENVIRON_SESSION].health.status == "healthy"
    assert "sessionmw.health" not in environ  # made on demand (RequestSession.health)
    assert environ[ENVIRON_SESSION].id == sid
    assert environ[ENVIRON_NOTICE] is None
    assert current_session_id() is None


# -- fixation -----------------------------------------------------------------------------------


def _forged(app: SessionMiddleware) -> str:
    sid = call(app).cookie
    assert sid is not None
    return sid[:-4] + ("AAAA" if not sid.endswith("AAAA") else "BBBB")


BAD_IDS: list[Any] = [
    pytest.param("attacker-chosen-id-1234567890", id="unknown"),
    pytest.param("a" * 129, id="oversized"),
    pytest.param("%00%ff<script>", id="garbage"),
    pytest.param("sess\u00e9\u00e0", id="unicode"),
    pytest.param("abc\r\nSet-Cookie: x=1", id="crlf"),
    pytest.param("", id="empty"),
    pytest.param(_forged, id="forged-signature"),
]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("via", ["cookie", "header"])
def test_bad_ids_are_never_adopted(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder, bad: Any, via: str
) -> None:
    """An unknown, oversized, garbage, unicode, CRLF or forged id is replaced by a fresh one."""
    sent = bad(app) if callable(bad) else bad
    if via == "cookie":
        result = call(app, cookie=f"sessionmw={sent}")
    else:
        result = call(app, headers={"X-Session-ID": sent})
    assert result.cookie is not None and result.cookie != sent
    assert inner.session_ids[-1] == result.cookie
    assert manager.session_count() == 0
    if via == "header":
        assert result.header("X-Session-ID") == result.cookie


def test_old_pending_id_is_not_adopted(
    app: SessionMiddleware, manager: SessionManager, clock: FakeClock
) -> None:
    """An issued id sent back only after the session timeout is replaced, not stored."""
    sid = call(app).cookie
    clock.advance(31 * 60)
    result = call(app, cookie=f"sessionmw={sid}")
    assert result.cookie not in (None, sid)
    assert manager.session_count() == 0


def test_id_signed_with_another_secret_is_not_adopted(inner: Recorder, manager: SessionManager) -> None:
    """An id issued by a server with a different secret key is refused."""
    elsewhere = SessionMiddleware(inner, manager=manager, secret_key="other")
    sid = call(elsewhere).cookie
    app = SessionMiddleware(inner, manager=manager, secret_key=SECRET)
    assert call(app, cookie=f"sessionmw={sid}").cookie not in (None, sid)


def test_header_session_is_used_and_echoed(app: SessionMiddleware, inner: Recorder) -> None:
    """An API client's known X-Session-ID is used and echoed, with no new cookie."""
    sid = established(app)
    result = call(app, headers={"X-Session-ID": sid})
    assert inner.session_ids[-1] == sid
    assert result.header("X-Session-ID") == sid
    assert result.cookie is None


# -- expired and disconnected -------------------------------------------------------------------


def test_expired_html_request_gets_a_fresh_session_and_a_notice(
    app: SessionMiddleware, inner: Recorder, clock: FakeClock
) -> None:
    """An HTML page with an expired session runs with a new session and an 'expired' notice."""
    sid = established(app)
    clock.advance(31 * 60)
    result = call(app, cookie=f"sessionmw={sid}", headers={"Accept": "text/html"})
    assert result.code == 200
    assert result.cookie not in (None, sid)
    environ = inner.environs[-1]
    assert environ[ENVIRON_NOTICE].status == "expired"
    assert "expired" in banner_for(environ)


def test_expired_json_request_gets_401_with_recovery(
    app: SessionMiddleware, inner: Recorder, clock: FakeClock
) -> None:
    """A JSON client with an expired session gets 401, a problem document with the session's
    state, what happened and the recovery steps."""
    sid = established(app)
    calls = len(inner.environs)
    clock.advance(31 * 60)
    result = call(app, cookie=f"sessionmw={sid}", headers={"Accept": "application/json"})
    assert result.code == 401
    assert result.header("Content-Type") == "application/problem+json"
    body = result.json()
    assert problem_errors(result.body, status=401) == []
    assert body["type"] == "https://sessionmw.readthedocs.io/problems/session-expired"
    assert body["session"]["status"] == "expired"
    assert "expired" in body["detail"]
    assert body["recovery"] and all(isinstance(step, str) for step in body["recovery"])
    assert result.cookie not in (None, sid)
    assert len(inner.environs) == calls


def _vanished(app: SessionMiddleware, manager: SessionManager, clock: FakeClock) -> str:
    """A session this server issued and stored, then lost (as in a restart), past its pending window."""
    sid = established(app)
    manager.record_error(sid, "backend down")
    assert manager.delete_session(sid)
    clock.advance(31 * 60)
    return sid


@pytest.mark.parametrize("via", ["cookie", "header"])
def test_vanished_session_json_request_gets_401_not_found(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder, clock: FakeClock, via: str
) -> None:
    """A JSON client whose session the server lost is refused like an expired one: 401 not_found,
    refresh as the step, no reconnect, the app not run, nothing stored or counted."""
    sid = _vanished(app, manager, clock)
    calls = len(inner.environs)
    sent = {"Cookie": f"sessionmw={sid}"} if via == "cookie" else {"X-Session-ID": sid}
    for _ in range(2):  # every time, not only the first
        result = call(app, headers={**sent, "Accept": "application/json"})
        assert result.code == 401
        body = result.json()
        assert problem_errors(result.body, status=401) == []
        assert body["type"].endswith("/session-not-found") and body["session"]["status"] == "not_found"
        assert any("Refresh" in step for step in body["recovery"])
        assert "reconnect" not in body
    assert len(inner.environs) == calls
    assert manager.session_count() == 0
    assert manager.check_health(sid).status == "not_found"


def test_vanished_session_page_starts_afresh_silently(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder, clock: FakeClock
) -> None:
    """A page load with a lost session's id runs under a fresh id, with no notice and a clean count."""
    sid = _vanished(app, manager, clock)
    result = call(app, cookie=f"sessionmw={sid}", headers={"Accept": "text/html"})
    assert result.code == 200 and result.cookie not in (None, sid)
    assert inner.session_ids[-1] == result.cookie
    assert inner.environs[-1][ENVIRON_NOTICE] is None
    fresh = result.cookie
    assert call(app, cookie=f"sessionmw={fresh}", headers={"Accept": "application/json"}).code == 200
    record = manager.get_session(fresh)
    assert record is not None and record.error_count == 0


@pytest.mark.parametrize("bad", BAD_IDS)
def test_json_request_with_a_bad_id_runs_on_a_fresh_id(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder, bad: Any
) -> None:
    """Only an id this server issued can be 'not found': any other text is not refused, just replaced."""
    sent = bad(app) if callable(bad) else bad
    result = call(app, cookie=f"sessionmw={sent}", headers={"Accept": "application/json"})
    assert result.code == 200
    assert result.cookie not in (None, sent) and inner.session_ids[-1] == result.cookie
    assert manager.session_count() == 0


def _disconnect(manager: SessionManager, sid: str) -> None:
    for _ in range(manager.policy.error_threshold):
        manager.record_error(sid, "backend down")
    record = manager.get_session(sid)
    assert record is not None and record.state is SessionState.DISCONNECTED


def test_disconnected_json_request_gets_the_disconnected_error(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder
) -> None:
    """A JSON client of a disconnected session gets 503 with recovery steps and the reconnect URL."""
    sid = established(app)
    _disconnect(manager, sid)
    calls = len(inner.environs)
    result = call(app, headers={"X-Session-ID": sid, "Accept": "application/json"})
    assert result.code == 503
    body = result.json()
    assert problem_errors(result.body, status=503) == []
    assert body["type"].endswith("/session-disconnected") and body["session"]["state"] == "disconnected"
    assert body["recovery"] and body["retry_after"] is None and result.header("Retry-After") is None
    assert body["reconnect"] == "/_sessionmw/reconnect"
    assert len(inner.environs) == calls


def test_disconnected_html_page_runs_with_a_reconnect_banner(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder
) -> None:
    """An HTML page of a disconnected session is served and its banner offers Reconnect."""
    sid = established(app)
    _disconnect(manager, sid)
    result = call(app, cookie=f"sessionmw={sid}", headers={"Accept": "text/html"})
    assert result.code == 200
    banner = banner_for(inner.environs[-1])
    assert "disconnected" in banner
    assert 'action="/_sessionmw/reconnect"' in banner


def test_reconnect_endpoint_reactivates_a_disconnected_session(
    app: SessionMiddleware, manager: SessionManager
) -> None:
    """POST reconnect takes a disconnected session back to active and reports it healthy."""
    sid = established(app)
    _disconnect(manager, sid)
    result = call(app, "/_sessionmw/reconnect", method="POST", cookie=f"sessionmw={sid}")
    assert result.code == 200
    assert result.json()["status"] == "pass"
    record = manager.get_session(sid)
    assert record is not None and record.state is SessionState.ACTIVE


def test_reconnect_form_post_redirects_back(app: SessionMiddleware, manager: SessionManager) -> None:
    """The banner's form POST reconnects and redirects to the local page it came from only; the
    page comes back marked, so that its banner confirms it ("Reconnected")."""
    sid = established(app)
    _disconnect(manager, sid)
    result = call(app, "/_sessionmw/reconnect", method="POST", cookie=f"sessionmw={sid}", body=b"next=/page")
    assert (result.code, result.header("Location")) == (303, "/page?sessionmw=reconnected")
    evil = call(
        app, "/_sessionmw/reconnect", method="POST", cookie=f"sessionmw={sid}", body=b"next=//evil.test/"
    )
    assert str(evil.header("Location")).partition("?")[0] == "/"


def test_reconnect_of_an_unknown_session_is_a_conflict(app: SessionMiddleware) -> None:
    """POST reconnect with an id the store does not know answers 409 and creates nothing."""
    result = call(app, "/_sessionmw/reconnect", method="POST", cookie="sessionmw=unknown-id")
    assert result.code == 409
    assert result.json()["session"]["status"] == "not_found"


def test_endpoints_check_the_method(app: SessionMiddleware) -> None:
    """GET reconnect and POST health answer 405 with Allow; unknown endpoints 404."""
    assert call(app, "/_sessionmw/reconnect").code == 405
    post = call(app, "/_sessionmw/health", method="POST")
    assert (post.code, post.header("Allow")) == (405, "GET, HEAD")
    assert call(app, "/_sessionmw/nope").code == 404


# -- health endpoint ----------------------------------------------------------------------------


def test_health_without_session_creates_nothing(app: SessionMiddleware, manager: SessionManager) -> None:
    """Polling health with no cookie reports not found and neither stores nor issues a session."""
    result = call(app, "/_sessionmw/health")
    assert result.code == 503
    assert result.header("Content-Type") == "application/health+json"
    assert result.json()["session"]["status"] == "not_found"
    assert result.cookie is None
    assert manager.session_count() == 0


def test_health_of_a_pending_session_is_healthy(app: SessionMiddleware, manager: SessionManager) -> None:
    """Right after the first page, the issued (not yet stored) id reports healthy and stays unstored."""
    sid = call(app).cookie
    result = call(app, "/_sessionmw/health", cookie=f"sessionmw={sid}")
    assert result.json()["status"] == "pass"
    assert manager.session_count() == 0


def test_health_lists_custom_checks(app: SessionMiddleware, manager: SessionManager) -> None:
    """Custom health checks appear under checks; a failing one turns the status to warn."""
    manager.add_health_check("database", lambda sid: (False, "The database is down"))
    manager.add_health_check("cache", lambda sid: True)
    sid = established(app)
    body = call(app, "/_sessionmw/health", cookie=f"sessionmw={sid}").json()
    assert body["status"] == "warn"
    assert body["checks"]["database"] == [{"status": "fail", "output": "The database is down"}]
    assert body["checks"]["cache"][0]["status"] == "pass"


def test_health_of_an_expired_session_fails(app: SessionMiddleware, clock: FakeClock) -> None:
    """An expired session's health is 'fail' with the expired message."""
    sid = established(app)
    clock.advance(31 * 60)
    result = call(app, "/_sessionmw/health", cookie=f"sessionmw={sid}")
    assert (result.code, result.json()["status"]) == (503, "fail")
    assert result.json()["session"]["status"] == "expired"


def test_prefix_is_configurable(inner: Recorder, manager: SessionManager) -> None:
    """The endpoints move with the prefix option; the old path reaches the app."""
    app = SessionMiddleware(inner, manager=manager, secret_key=SECRET, prefix="/api/session/")
    assert call(app, "/api/session/health").header("Content-Type") == "application/health+json"
    call(app, "/_sessionmw/health")
    assert inner.environs[-1]["PATH_INFO"] == "/_sessionmw/health"


# -- errors from the app --------------------------------------------------------------------------


def test_exception_after_start_response_is_still_translated(app: SessionMiddleware, inner: Recorder) -> None:
    """An app that fails after start_response still yields the friendly error page."""
    inner.fail = RuntimeError("late")
    inner.fail_after_start = True
    result = call(app)
    assert result.code == 500
    assert b"late" not in result.body


def test_first_error_stores_a_pending_session(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder
) -> None:
    """An error on a client's very first request is recorded on a newly stored session."""
    inner.fail = RuntimeError("boom")
    result = call(app)
    assert result.cookie is not None
    record = manager.get_session(result.cookie)
    assert record is not None and record.error_count == 1


def test_errors_at_threshold_disconnect_then_later_requests_carry_it(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder
) -> None:
    """After the threshold of app errors, later JSON requests get the disconnected error."""
    sid = established(app)
    inner.fail = RuntimeError("down")
    for _ in range(manager.policy.error_threshold):
        call(app, cookie=f"sessionmw={sid}")
    inner.fail = None
    result = call(app, cookie=f"sessionmw={sid}", headers={"Accept": "application/json"})
    assert (result.code, result.json()["session"]["status"]) == (503, "disconnected")


def test_success_clears_an_error_session(
    app: SessionMiddleware, manager: SessionManager, inner: Recorder
) -> None:
    """A successful request after an error takes the session back to active with no errors."""
    sid = established(app)
    inner.fail = RuntimeError("once")
    call(app, cookie=f"sessionmw={sid}")
    inner.fail = None
    call(app, cookie=f"sessionmw={sid}")
    record = manager.get_session(sid)
    assert record is not None and (record.state, record.error_count) == (SessionState.ACTIVE, 0)


# -- streaming ----------------------------------------------------------------------------------


class Streamer:
    """A WSGI app whose body is a generator-like object with close(); may fail mid-stream."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.closed = False
        self.fail_at = fail_at
        self.seen: list[str | None] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return self.Body(self)

    class Body:
        def __init__(self, owner: Streamer) -> None:
            self.owner = owner
            self.index = 0

        def __iter__(self) -> Iterator[bytes]:
            return self

        def __next__(self) -> bytes:
            self.owner.seen.append(current_session_id())
            if self.index == self.owner.fail_at:
                raise OSError("stream broke")
            if self.index >= 3:
                raise StopIteration
            self.index += 1
            return b"chunk%d" % self.index

        def close(self) -> None:
            self.owner.closed = True


def test_streaming_body_and_close_pass_through(manager: SessionManager) -> None:
    """A streamed body arrives chunk by chunk in the session scope, and its close() is called."""
    streamer = Streamer()
    app = SessionMiddleware(streamer, manager=manager, secret_key=SECRET)
    sid = established(app)
    result = call(app, cookie=f"sessionmw={sid}")
    assert result.body == b"chunk1chunk2chunk3"
    assert streamer.closed
    assert set(streamer.seen) == {sid}


def test_error_while_streaming_is_recorded_and_logged(
    manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception mid-stream is recorded on the session, logged, and propagates; close() still runs."""
    streamer = Streamer()
    app = SessionMiddleware(streamer, manager=manager, secret_key=SECRET)
    sid = established(app)
    streamer.fail_at = 1
    with (
        caplog.at_level(logging.WARNING, logger="sessionmw.wsgi"),
        pytest.raises(OSError, match="stream broke"),
    ):
        call(app, cookie=f"sessionmw={sid}")
    assert streamer.closed
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1
    # One WARNING line naming the type (issue 11: quiet logs; the traceback only at DEBUG).
    (line,) = [r for r in caplog.records if r.name == "sessionmw.wsgi"]
    assert line.levelno == logging.WARNING and "OSError" in line.getMessage() and line.exc_info is None


# -- exclusion, double application, install -----------------------------------------------------------


def test_excluded_paths_neither_create_nor_touch(
    inner: Recorder, manager: SessionManager, clock: FakeClock
) -> None:
    """Requests under an excluded prefix get no cookie, no session and leave activity alone."""
    app = SessionMiddleware(inner, manager=manager, secret_key=SECRET, exclude=["/static/", "/metrics"])
    sid = established(app)
    before = manager.get_session(sid)
    clock.advance(60)
    result = call(app, "/static/app.css", cookie=f"sessionmw={sid}")
    assert result.cookie is None and result.header("Vary") is None
    assert ENVIRON_SESSION_ID not in inner.environs[-1]
    assert inner.session_ids[-1] is None
    after = manager.get_session(sid)
    assert before is not None and after is not None and after.last_activity == before.last_activity


def test_applying_twice_does_nothing_the_second_time(inner: Recorder, manager: SessionManager) -> None:
    """A middleware wrapped in another gives one cookie and one activity per request."""
    app = SessionMiddleware(
        SessionMiddleware(inner, manager=manager, secret_key=SECRET), manager=manager, secret_key=SECRET
    )
    result = call(app)
    assert len(result.all("Set-Cookie")) == 1
    assert result.header("Vary") == "Cookie"


class HasWsgiApp:
    """An object with a wsgi_app attribute, like a Flask app."""

    def __init__(self, app: WSGIApplication) -> None:
        self.wsgi_app: Any = app


def test_install_is_idempotent_and_uninstall_removes_it(inner: Recorder, manager: SessionManager) -> None:
    """install() wraps once; uninstall() restores the original app."""
    holder = HasWsgiApp(inner)
    first = install(holder, manager=manager, secret_key=SECRET)
    assert install(holder, manager=manager, secret_key=SECRET) is first
    assert holder.wsgi_app is first
    assert uninstall(holder) is True
    restored: Any = holder.wsgi_app  # uninstall() changed it behind mypy's narrowing
    assert restored is inner
    assert uninstall(holder) is False


def test_uninstall_finds_a_middleware_under_another(inner: Recorder, manager: SessionManager) -> None:
    """uninstall() removes a SessionMiddleware wrapped by another middleware."""

    class Outer:
        def __init__(self, app: WSGIApplication) -> None:
            self.app = app

        def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            return self.app(environ, start_response)

    outer = Outer(SessionMiddleware(inner, manager=manager, secret_key=SECRET))
    holder = HasWsgiApp(outer)
    assert uninstall(holder) is True
    assert outer.app is inner


def test_default_manager_is_the_process_default(inner: Recorder, manager: SessionManager) -> None:
    """Without manager=, the middleware uses sessionmw's process-default manager."""
    set_session_manager(manager)
    assert SessionMiddleware(inner, secret_key=SECRET).manager is manager


# -- headers and negotiation ----------------------------------------------------------------------


def test_existing_vary_and_public_cache_control_are_fixed(inner: Recorder, manager: SessionManager) -> None:
    """A response that sets the cookie keeps its Vary values and is never public in shared caches."""
    inner.response_headers = [
        ("Vary", "Accept-Encoding"),
        ("Cache-Control", "public, max-age=60, s-maxage=600"),
    ]
    result = call(SessionMiddleware(inner, manager=manager, secret_key=SECRET))
    assert result.header("Vary") == "Accept-Encoding, Cookie"
    assert result.header("Cache-Control") == "max-age=60, private"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no-store", "no-store"),
        ("private, max-age=5", "private, max-age=5"),
        ("public", "private"),
        ("max-age=60", "max-age=60, private"),
    ],
)
def test_private_cache_control(value: str, expected: str) -> None:
    """Cache-Control is made private unless it already forbids shared caching."""
    assert private_cache_control(value) == expected


@pytest.mark.parametrize(
    ("accept", "via_header", "expected"),
    [
        pytest.param("", False, False, id="none-browser"),
        pytest.param("", True, True, id="none-api"),
        pytest.param("application/json", False, True, id="json"),
        pytest.param("text/html,application/xhtml+xml,*/*;q=0.8", False, False, id="browser"),
        pytest.param("application/json;q=0.5, text/html", False, False, id="html-preferred"),
        pytest.param("text/html;q=0.1, application/json;q=0.9", False, True, id="json-preferred"),
        pytest.param("application/problem+json", False, True, id="plus-json"),
        pytest.param("*/*", False, False, id="star-browser"),
        pytest.param("*/*", True, True, id="star-api"),
        pytest.param("application/*", False, True, id="application-wildcard"),
        pytest.param("text/*, application/json;q=0", False, False, id="json-refused"),
        pytest.param("application/json;q=abc, text/html", False, False, id="bad-q"),
    ],
)
def test_wants_json(accept: str, via_header: bool, expected: bool) -> None:
    """JSON is chosen by the Accept qualities; on a tie, API (header) clients get JSON."""
    environ = {"HTTP_ACCEPT": accept} if accept else {}
    assert wants_json(environ, via_header) is expected


def test_without_secret_a_warning_is_logged(
    inner: Recorder,
    manager: SessionManager,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no secret key anywhere, the middleware warns that pending ids are per process."""
    monkeypatch.delenv("SESSIONMW_SECRET_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="sessionmw.wsgi"):
        SessionMiddleware(inner, manager=manager)
    assert "SESSIONMW_SECRET_KEY" in caplog.text


def test_secret_from_the_environment_is_shared(
    inner: Recorder, manager: SessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two middlewares reading SESSIONMW_SECRET_KEY accept each other's issued ids."""
    monkeypatch.setenv("SESSIONMW_SECRET_KEY", "shared")
    one = SessionMiddleware(inner, manager=manager)
    two = SessionMiddleware(inner, manager=manager)
    sid = call(one).cookie
    assert call(two, cookie=f"sessionmw={sid}").cookie is None
    assert manager.session_count() == 1


def test_secret_key_is_not_in_the_options_repr(app: SessionMiddleware) -> None:
    """The secret key never shows in a repr (logs, error reports)."""
    assert SECRET not in repr(app.gate.options)
    assert "secret" not in repr(app.gate.options)


class DownStore(MemoryStore):
    """A memory store whose every update fails as if the server were unreachable."""

    def update(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("connection refused")


@pytest.mark.parametrize("path", ["/", "/_sessionmw/health"])
def test_store_down_with_fail_closed_gives_a_friendly_503(
    inner: Recorder, clock: FakeClock, path: str
) -> None:
    """With the store down and fail_closed, a known client gets a translated 503, not a crash."""
    manager = SessionManager(store=DownStore(), clock=clock, on_store_error="fail_closed")
    app = SessionMiddleware(inner, manager=manager, secret_key=SECRET)
    result = call(app, path, cookie="sessionmw=some-session-id", headers={"Accept": "application/json"})
    assert result.code == 503
    assert "connection refused" not in result.body.decode()
    assert result.header("Retry-After") is not None


def test_store_down_does_not_block_new_clients(inner: Recorder, clock: FakeClock) -> None:
    """A first-time client needs no store operation, so it is served even with the store down."""
    manager = SessionManager(store=DownStore(), clock=clock, on_store_error="fail_closed")
    app = SessionMiddleware(inner, manager=manager, secret_key=SECRET)
    result = call(app)
    assert result.code == 200 and result.cookie is not None


def test_debug_mode_shows_the_exception(inner: Recorder, manager: SessionManager) -> None:
    """With debug on, the error response includes the exception type and text for developers."""
    inner.fail = RuntimeError("visible in debug")
    app = SessionMiddleware(inner, manager=manager, secret_key=SECRET, debug=True, propagate_exceptions=False)
    result = call(app, headers={"Accept": "application/json"})
    assert result.code == 500
    assert "RuntimeError: visible in debug" in result.json()["debug"]


def test_banner_escapes_messages(app: SessionMiddleware, manager: SessionManager, inner: Recorder) -> None:
    """Text in the banner (e.g. a health check's message) is HTML-escaped."""
    manager.add_health_check("api", lambda sid: (False, "<script>alert(1)</script>"))
    sid = established(app)
    call(app, cookie=f"sessionmw={sid}")
    environ = inner.environs[-1]
    environ[ENVIRON_NOTICE] = manager.check_health(sid)  # a report with the check's words
    banner = banner_for(environ)
    assert "<script>" not in banner and "&lt;script&gt;" in banner


def test_install_finds_a_middleware_under_another_and_survives_cycles(
    inner: Recorder, manager: SessionManager
) -> None:
    """install() sees a SessionMiddleware wrapped by another layer; a self-referencing .app ends the walk."""

    class Layer:
        def __init__(self, app: Any) -> None:
            self.app = app

        def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            return self.app(environ, start_response)  # type: ignore[no-any-return]

    existing = SessionMiddleware(inner, manager=manager, secret_key=SECRET)
    holder = HasWsgiApp(Layer(existing))
    assert install(holder, manager=manager, secret_key=SECRET) is existing
    looped = Layer(inner)
    looped.app = looped
    cyclic = HasWsgiApp(looped)
    assert isinstance(install(cyclic, manager=manager, secret_key=SECRET), SessionMiddleware)
    assert uninstall(cyclic) is True


def test_store_down_with_fail_open_serves_without_adopting_the_id(inner: Recorder, clock: FakeClock) -> None:
    """Fail-open with the store down: the request is served, the unverifiable id is not adopted,
    and the client's cookie is left alone (no Set-Cookie that would replace a real session)."""
    manager = SessionManager(store=DownStore(), clock=clock, on_store_error="fail_open")
    app = SessionMiddleware(inner, manager=manager, secret_key=SECRET)
    result = call(app, cookie="sessionmw=chosen-by-the-client")
    assert result.code == 200
    assert result.cookie is None
    assert inner.session_ids[-1] not in (None, "chosen-by-the-client")


# -- the host's error conventions (issue 13) ----------------------------------------------------


def error_count(manager: SessionManager, sid: str) -> int:
    """The stored session's error count."""
    record = manager.get_session(sid)
    assert record is not None
    return record.error_count


@pytest.mark.parametrize("key", ["x-wsgiorg.throw_errors", "paste.throw_errors"])
def test_throw_errors_environ_keys_reraise_after_recording(
    app: SessionMiddleware, inner: Recorder, manager: SessionManager, key: str
) -> None:
    """A test framework that sets a throw_errors key sees the app's exception; it is recorded."""
    sid = established(app)
    inner.fail = RuntimeError("for the test framework")
    with pytest.raises(RuntimeError, match="for the test framework"):
        call(app, cookie=f"sessionmw={sid}", extra_environ={key: True})
    assert error_count(manager, sid) == 1


@pytest.mark.parametrize(
    ("options", "propagates"),
    [
        ({"propagate_exceptions": True}, True),
        ({"debug": True}, True),
        ({"debug": True, "propagate_exceptions": False}, False),
        ({}, False),
    ],
    ids=["on", "debug-default", "debug-off", "default"],
)
def test_propagate_exceptions_option(
    inner: Recorder, manager: SessionManager, options: dict[str, Any], propagates: bool
) -> None:
    """propagate_exceptions (on by default in debug mode) re-raises after recording."""
    app = SessionMiddleware(inner, manager=manager, secret_key=SECRET, **options)
    sid = established(app)
    inner.fail = RuntimeError("boom")
    if propagates:
        with pytest.raises(RuntimeError, match="boom"):
            call(app, cookie=f"sessionmw={sid}")
    else:
        assert call(app, cookie=f"sessionmw={sid}").code == 500
    assert error_count(manager, sid) == 1


def test_propagate_exceptions_must_be_a_bool(inner: Recorder, manager: SessionManager) -> None:
    """A value that is not True, False or None is refused with a message naming the option."""
    with pytest.raises(ConfigurationError, match="propagate_exceptions='yes'"):
        SessionMiddleware(inner, manager=manager, secret_key=SECRET, propagate_exceptions="yes")  # type: ignore[arg-type]


def test_an_exception_that_is_a_wsgi_response_is_answered_as_itself(
    app: SessionMiddleware, inner: Recorder, manager: SessionManager
) -> None:
    """werkzeug's NotFound raised by the app answers 404 (with the session's headers), no error."""
    from werkzeug.exceptions import NotFound

    sid = established(app)
    inner.fail = NotFound()
    result = call(app, cookie=f"sessionmw={sid}")
    assert result.code == 404 and b"Not Found" in result.body
    assert "Cookie" in (result.header("Vary") or "")
    assert error_count(manager, sid) == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [("/_sessionmw/health", 200), ("/_sessionmw/reconnect", 405), ("/_sessionmw/unknown", 404)],
)
def test_head_on_the_endpoints_has_headers_and_no_body(
    app: SessionMiddleware, path: str, status: int
) -> None:
    """HEAD gets the status and headers (Content-Length included) of a GET, without a body."""
    sid = established(app)
    got = call(app, path, cookie=f"sessionmw={sid}")
    head = call(app, path, method="HEAD", cookie=f"sessionmw={sid}")
    assert (head.code, head.body) == (status, b"")
    assert head.header("Content-Length") == str(len(got.body)) != "0"
    assert head.header("Content-Type") == got.header("Content-Type")


def test_head_on_an_error_page_has_no_body(app: SessionMiddleware, inner: Recorder) -> None:
    """The friendly error page answers a HEAD request with headers only."""
    inner.fail = RuntimeError("boom")
    result = call(app, method="HEAD")
    assert result.code == 500 and result.body == b""


def flask_app(manager: SessionManager, **config: Any) -> Any:
    """A Flask app wrapped by the middleware, whose view and after_request can fail."""
    from flask import Flask, request

    app = Flask("wrapped")
    app.config.update(config)

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("view failed")

    @app.get("/late")
    def late() -> str:
        return "served"

    @app.after_request
    def finalize(response: Any) -> Any:
        if request.path == "/late":
            raise LookupError("finalize_request failed")
        return response

    app.wsgi_app = SessionMiddleware(app.wsgi_app, manager=manager, secret_key=SECRET)  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize(
    "config",
    [{"TESTING": True}, {"PROPAGATE_EXCEPTIONS": True}, {"DEBUG": True}],
    ids=["TESTING", "PROPAGATE_EXCEPTIONS", "DEBUG"],
)
@pytest.mark.parametrize(("path", "raised"), [("/boom", ZeroDivisionError), ("/late", LookupError)])
def test_a_flask_app_that_propagates_keeps_propagating(
    manager: SessionManager, config: dict[str, Any], path: str, raised: type[Exception]
) -> None:
    """A Flask app's re-raised exception (from its view or its finalize_request) reaches the test."""
    app = flask_app(manager, **config)
    with pytest.raises(raised):
        app.test_client().get(path)


def test_a_propagating_flask_app_is_found_behind_a_wrapper_function(manager: SessionManager) -> None:
    """A Flask app behind a closure (as OpenTelemetry's instrument_app makes) still propagates."""
    from flask import Flask

    app = Flask("wrapped")
    app.config["TESTING"] = True

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("view failed")

    inner = app.wsgi_app

    def instrumented(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return inner(environ, start_response)

    app.wsgi_app = SessionMiddleware(instrumented, manager=manager, secret_key=SECRET)  # type: ignore[method-assign]
    with pytest.raises(ZeroDivisionError):
        app.test_client().get("/boom")


def test_a_flask_app_in_production_keeps_its_own_500(manager: SessionManager) -> None:
    """In production Flask answers its own errors; the middleware leaves that response alone."""
    response = flask_app(manager).test_client().get("/boom")
    assert response.status_code == 500 and "Internal Server Error" in response.get_data(as_text=True)


class SwitchableStore(MemoryStore):
    """A memory store that can be made unreachable."""

    down = False

    def update(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreUnavailableError("connection refused")
        return super().update(*args, **kwargs)


@pytest.mark.parametrize("streamed", [False, True], ids=["list-body", "streamed-body"])
def test_a_store_failure_after_a_good_page_never_reaches_the_server(
    clock: FakeClock, streamed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail-closed, a session in the error state, a page that succeeds, then the store fails before
    the closing record_success: the page is served, the failure is logged (issue 14, item 6)."""
    store = SwitchableStore()
    manager = SessionManager(store=store, clock=clock, on_store_error="fail_closed")
    streamer = Streamer()

    def page(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("boom")
        store.down = environ["PATH_INFO"] == "/last"  # the store goes down while the page renders
        if streamed:
            return streamer(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page"]

    app = SessionMiddleware(page, manager=manager, secret_key=SECRET)
    sid = established(app)
    call(app, "/fail", cookie=f"sessionmw={sid}")
    assert manager.check_health(sid).state == "error"
    with caplog.at_level(logging.WARNING, logger="sessionmw.wsgi"):
        result = call(app, "/last", cookie=f"sessionmw={sid}")
    assert result.code == 200
    assert any("could not record the success" in r.getMessage() for r in caplog.records)
