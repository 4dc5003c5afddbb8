"""SessionMW: the Flask extension's hooks, config, proxy, blueprint, banner and error handling."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from flask import (
    Blueprint,
    Flask,
    abort,
    got_request_exception,
    jsonify,
    render_template_string,
    request,
    session,
)
from flask.testing import FlaskClient
from werkzeug.exceptions import BadRequestKeyError, HTTPException, InternalServerError, NotFound
from werkzeug.test import TestResponse

from sessionmw import SessionManager, SessionState, TransientError, current_session_id
from sessionmw.integrations.flask import SessionMW, SessionMWState, current_session
from sessionmw.integrations.problem import problem_errors
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.testing import FakeClock
from sessionmw.translation import UserFacingError

PAGE = "<html><body>{{ sessionmw_banner() }}<p>page</p></body></html>"


def make_app(manager: SessionManager | None = None, **config: Any) -> Flask:
    """A small app: a page with the banner, an API view, failing views and Flask's own session."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="flask-secret", **config)
    app.extensions["test-calls"] = calls = []

    @app.get("/")
    def page() -> str:
        calls.append(current_session_id())
        return render_template_string(PAGE)

    @app.get("/api")
    def api() -> Any:
        calls.append(current_session_id())
        return jsonify(id=current_session.id, state=current_session.state.value)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("database password is hunter2")

    @app.get("/busy")
    def busy() -> str:
        raise TransientError("backend busy")

    @app.get("/friendly")
    def friendly() -> str:
        raise UserFacingError(
            "📦 That order is already shipped", title="Cannot cancel", recovery=["Contact us."]
        )

    @app.get("/missing")
    def missing() -> str:
        abort(404)

    @app.get("/flask-session")
    def flask_session() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return str(session["visits"])

    @app.get("/static-ish/file.css")
    def static_file() -> str:
        return "body{}"

    SessionMW(app, manager=manager)
    return app


@pytest.fixture(name="app")
def _app(manager: SessionManager) -> Flask:
    """The test app on the fake-clock manager."""
    return make_app(manager)


@pytest.fixture(name="client")
def _client(app: Flask) -> Iterator[FlaskClient]:
    """A test client that keeps cookies."""
    with app.test_client() as client:
        yield client


def session_cookie(response: TestResponse, name: str = "sessionmw") -> str | None:
    """The value the response sets for cookie ``name``."""
    for value in response.headers.getlist("Set-Cookie"):
        key, _, rest = value.partition("=")
        if key == name:
            return rest.split(";")[0]
    return None


def established(client: FlaskClient) -> str:
    """Visit twice so the session is stored; return its id."""
    sid = session_cookie(client.get("/"))
    assert sid is not None
    client.get("/")
    return sid


def test_extension_state_is_registered(app: Flask, manager: SessionManager) -> None:
    """app.extensions['sessionmw'] holds the state with the manager."""
    state = app.extensions["sessionmw"]
    assert isinstance(state, SessionMWState)
    assert state.manager is manager


def test_init_app_twice_raises(app: Flask) -> None:
    """Setting the extension up twice on one app raises a clear error."""
    with pytest.raises(RuntimeError, match="already set up"):
        SessionMW().init_app(app)


def test_factory_pattern_and_separate_managers() -> None:
    """One extension object set up on two apps gives each app its own manager."""
    ext = SessionMW()
    one, two = Flask("one"), Flask("two")
    ext.init_app(one)
    ext.init_app(two)
    first, second = one.extensions["sessionmw"].manager, two.extensions["sessionmw"].manager
    assert first is not second
    with one.test_client() as client:
        sid = session_cookie(client.get("/_sessionmw/health")) or session_cookie(client.get("/"))
        assert sid is not None
        client.get("/")
    assert first.session_count() == 1
    assert second.session_count() == 0


def test_config_keys_are_read(manager: SessionManager) -> None:
    """SESSIONMW_* keys set the cookie name, endpoint prefix, exclusions and manager settings."""
    app = make_app(
        None,
        SESSIONMW_COOKIE_NAME="sid",
        SESSIONMW_PREFIX="/session/",
        SESSIONMW_EXCLUDE=["/static-ish/"],
        SESSIONMW_SESSION_TIMEOUT_MINUTES=5,
        SESSIONMW_MAX_ERROR_THRESHOLD=2,
        SESSIONMW_ACTIVITY_RESOLUTION_SECONDS=3,
    )
    state = app.extensions["sessionmw"]
    assert state.manager.policy.timeout == 300
    assert state.manager.policy.error_threshold == 2
    assert state.manager.policy.activity_resolution == 3
    with app.test_client() as client:
        assert session_cookie(client.get("/"), "sid") is not None
        assert client.get("/session/health").content_type == "application/health+json"
        assert session_cookie(client.get("/static-ish/file.css"), "sid") is None


def test_view_sees_the_session(client: FlaskClient, app: Flask) -> None:
    """current_session and current_session_id() give the request's session in a view."""
    sid = established(client)
    body = client.get("/api").get_json()
    assert body == {"id": sid, "state": "active"}
    assert app.extensions["test-calls"][-1] == sid
    assert current_session_id() is None


def test_current_session_outside_a_tracked_request_raises(app: Flask) -> None:
    """Using current_session where no session exists raises a clear RuntimeError."""
    with app.test_request_context("/"), pytest.raises(RuntimeError, match="no sessionmw session"):
        _ = current_session.id


def test_unknown_cookie_is_replaced(client: FlaskClient, manager: SessionManager) -> None:
    """A client-chosen id is never adopted: a fresh one is issued."""
    client.set_cookie("sessionmw", "attacker-chosen")
    sid = session_cookie(client.get("/"))
    assert sid not in (None, "attacker-chosen")
    assert manager.get_session("attacker-chosen") is None


def test_http_exceptions_pass_through_uncounted(client: FlaskClient, manager: SessionManager) -> None:
    """Flask's own 404 is unchanged and is not a session error."""
    sid = established(client)
    response = client.get("/missing")
    assert response.status_code == 404
    assert "Not Found" in response.get_data(as_text=True)
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 0
    assert client.post("/").status_code == 405


def test_banner_is_empty_when_healthy(client: FlaskClient) -> None:
    """A healthy session's page has no banner."""
    established(client)
    assert "sessionmw-banner" not in client.get("/").get_data(as_text=True)


def test_expired_page_shows_the_banner_and_json_gets_401(client: FlaskClient, clock: FakeClock) -> None:
    """After expiry, a page shows the expired banner with a new session; a JSON call gets 401."""
    sid = established(client)
    clock.advance(31 * 60)
    response = client.get("/", headers={"Accept": "text/html"})
    text = response.get_data(as_text=True)
    assert "sessionmw-expired" in text and "expired" in text
    assert session_cookie(response) not in (None, sid)
    established_again = session_cookie(response)
    client.get("/")
    clock.advance(31 * 60)
    api = client.get("/api", headers={"Accept": "application/json"})
    assert api.status_code == 401
    body = api.get_json()
    assert problem_errors(api.get_data(), status=401) == []
    assert body["type"].endswith("/session-expired") and body["session"]["status"] == "expired"
    assert body["recovery"] and body["instance"] == "/api"
    assert session_cookie(api) not in (None, established_again)


def test_vanished_session_json_gets_401_not_found_and_a_page_starts_afresh(
    client: FlaskClient, manager: SessionManager, clock: FakeClock
) -> None:
    """A session the server lost (a restart): a JSON call is refused with not_found (with a fresh
    id, as for expired), the view not run and nothing stored; the page then runs on the fresh id
    with no banner."""
    app_calls: list[str | None] = client.application.extensions["test-calls"]
    sid = established(client)
    assert manager.delete_session(sid)
    clock.advance(31 * 60)
    calls = len(app_calls)
    api = client.get("/api", headers={"Accept": "application/json"})
    assert api.status_code == 401
    body = api.get_json()
    assert body["session"]["status"] == "not_found" and "reconnect" not in body
    assert len(app_calls) == calls and manager.session_count() == 0
    fresh = session_cookie(api)
    assert fresh not in (None, sid)
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "sessionmw-banner" not in page.get_data(as_text=True)
    assert app_calls[-1] == fresh
    assert client.get("/api", headers={"Accept": "application/json"}).get_json()["id"] == fresh


def test_disconnected_flow_and_reconnect_endpoint(client: FlaskClient, manager: SessionManager) -> None:
    """Errors up to the threshold disconnect; the page offers Reconnect; POST reconnect restores it."""
    sid = established(client)
    for _ in range(manager.policy.error_threshold):
        client.get("/boom")
    record = manager.get_session(sid)
    assert record is not None and record.state is SessionState.DISCONNECTED
    page = client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert 'action="/_sessionmw/reconnect"' in page
    api = client.get("/api", headers={"Accept": "application/json"})
    assert (api.status_code, api.get_json()["session"]["status"]) == (503, "disconnected")
    assert api.get_json()["reconnect"] == "/_sessionmw/reconnect"
    reconnect = client.post("/_sessionmw/reconnect")
    assert reconnect.status_code == 200
    assert reconnect.get_json()["status"] == "pass"
    assert client.get("/api").get_json()["state"] == "active"


def test_works_beside_flask_session(client: FlaskClient) -> None:
    """Flask's own session cookie keeps working next to the sessionmw cookie."""
    sid = established(client)
    assert client.get("/flask-session").get_data(as_text=True) == "1"
    response = client.get("/flask-session")
    assert response.get_data(as_text=True) == "2"
    assert client.get_cookie("session") is not None
    cookie = client.get_cookie("sessionmw")
    assert cookie is not None and cookie.value == sid


def test_middleware_in_front_makes_the_extension_step_aside(manager: SessionManager) -> None:
    """With a SessionMiddleware also wrapping the app, each request is tracked once."""
    app = make_app(manager)
    app.wsgi_app = SessionMiddleware(app.wsgi_app, manager=manager, secret_key="k")  # type: ignore[method-assign]
    with app.test_client() as client:
        response = client.get("/")
        assert len([v for v in response.headers.getlist("Set-Cookie") if v.startswith("sessionmw=")]) == 1
        client.get("/")
        assert client.get("/api").get_json()["state"] == "active"
    assert manager.session_count() == 1


def test_flask_secret_key_signs_pending_ids(manager: SessionManager) -> None:
    """Two apps with the same SECRET_KEY accept each other's issued ids (as two workers do)."""
    one, two = make_app(manager), make_app(manager)
    with one.test_client() as first:
        sid = session_cookie(first.get("/"))
    with two.test_client() as second:
        second.set_cookie("sessionmw", sid or "")
        assert session_cookie(second.get("/")) is None
    assert manager.session_count() == 1


def test_user_facing_error_is_rendered_as_raised(client: FlaskClient) -> None:
    """A UserFacingError from a view is shown with its own title, message and steps (the problem
    document's detail without the message's emoji; its type: an error the app translated)."""
    established(client)
    body = client.get("/friendly", headers={"Accept": "application/json"}).get_json()
    assert (body["type"], body["title"], body["detail"], body["recovery"]) == (
        "https://sessionmw.readthedocs.io/problems/app-error",
        "Cannot cancel",
        "That order is already shipped",
        ["Contact us."],
    )
    page = client.get("/friendly", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert "Cannot cancel" in page and "Contact us." in page


def test_debug_config_shows_details_even_with_a_given_manager(manager: SessionManager) -> None:
    """SESSIONMW_DEBUG=True puts the exception text in error responses, for developers."""
    app = make_app(manager, SESSIONMW_DEBUG=True)
    with app.test_client() as client:
        body = client.get("/boom", headers={"Accept": "application/json"}).get_json()
    assert "hunter2" in body["debug"] and "hunter2" not in body["detail"]


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param(None, ["Cookie"], id="none"),
        pytest.param("Accept-Encoding", ["Accept-Encoding, Cookie"], id="another"),
        pytest.param("cookie", ["cookie"], id="already"),
        pytest.param("*", ["*"], id="star"),
    ],
)
def test_vary_is_merged_with_the_apps(
    manager: SessionManager, existing: str | None, expected: list[str]
) -> None:
    """The app's own Vary header is kept and gains Cookie once; Vary: * stays as it is."""
    app = Flask(__name__)

    @app.get("/")
    def index() -> Any:
        response = jsonify(ok=True)
        if existing is not None:
            response.headers["Vary"] = existing
        return response

    SessionMW(app, manager=manager, secret_key="k")
    with app.test_client() as client:
        assert client.get("/").headers.getlist("Vary") == expected


# == the host's error pipeline, observed and never replaced ========================================
# SessionMW observes Flask's error pipeline and never replaces it.
#
# Each test runs the same app bare and with the extension where the point is "as without sessionmw".


def host_app(manager: SessionManager | None, name: str = "host", **config: Any) -> Flask:
    """A bare app with a failing view, a failing after_request path and an aborting view."""
    app = Flask(name)
    app.config.update(SECRET_KEY="k", **config)

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("secret detail")

    @app.get("/busy")
    def busy() -> str:
        raise TransientError("backend busy")

    @app.get("/missing")
    def missing() -> str:
        abort(404)

    @app.get("/abort500")
    def abort500() -> str:
        abort(500)

    @app.get("/form")
    def form() -> str:
        return request.form["absent"]

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    if manager is not None:
        SessionMW(app, manager=manager)
    return app


def attach(app: Flask, manager: SessionManager) -> Flask:
    """Set the extension up on ``app`` (after the app's own set-up)."""
    SessionMW(app, manager=manager)
    return app


@pytest.fixture(name="signals_seen")
def _signals_seen() -> Iterator[list[BaseException]]:
    """The exceptions ``got_request_exception`` announced during the test."""
    seen: list[BaseException] = []

    def receiver(sender: Any, exception: BaseException, **extra: Any) -> None:
        seen.append(exception)

    got_request_exception.connect(receiver)
    yield seen
    got_request_exception.disconnect(receiver)


# -- the app's own error handlers ---------------------------------------------------------------


HANDLED_BY = [500, InternalServerError, HTTPException, Exception]


@pytest.mark.parametrize("key", HANDLED_BY, ids=["500", "InternalServerError", "HTTPException", "Exception"])
@pytest.mark.parametrize("order", ["before", "after"])
def test_the_apps_own_handler_wins_registered_before_or_after(
    manager: SessionManager, key: Any, order: str
) -> None:
    """A handler for 500, InternalServerError, HTTPException or Exception answers, never our page."""
    app = host_app(None)

    def own(error: Exception) -> tuple[str, int]:
        return f"own handler: {type(error).__name__}", 500

    if order == "before":
        app.register_error_handler(key, own)
        attach(app, manager)
    else:
        attach(app, manager)
        app.register_error_handler(key, own)
    bare = host_app(None)
    bare.register_error_handler(key, own)
    expected = bare.test_client().get("/boom")
    response = app.test_client().get("/boom")
    assert (response.status_code, response.get_data(as_text=True)) == (
        expected.status_code,
        expected.get_data(as_text=True),
    )
    assert response.get_data(as_text=True).startswith("own handler")


@pytest.mark.parametrize("key", [HTTPException, Exception], ids=["HTTPException", "Exception"])
def test_a_blueprints_handler_wins_for_its_views(manager: SessionManager, key: Any) -> None:
    """A blueprint's handler for HTTPException or Exception answers for the blueprint's views."""
    app = host_app(manager)
    part = Blueprint("part", __name__)

    @part.get("/part/boom")
    def part_boom() -> str:
        raise ZeroDivisionError("x")

    @part.after_request
    def broken_after(response: Any) -> Any:
        raise ValueError("after_request failed")  # reaches handle_exception even with an Exception handler

    part.register_error_handler(key, lambda error: ("blueprint handler", 500))
    app.register_blueprint(part)
    response = app.test_client().get("/part/boom")
    assert response.get_data(as_text=True) == "blueprint handler"


def test_an_exception_handler_also_answers_failures_after_the_view(manager: SessionManager) -> None:
    """Flask falls back to the app's Exception handler for an error raised in after_request."""
    app = host_app(None)
    app.register_error_handler(Exception, lambda error: (f"own {type(error).__name__}", 500))

    @app.after_request
    def broken(response: Any) -> Any:
        if request.path == "/ok":
            raise ValueError("after_request failed")
        return response

    attach(app, manager)
    assert app.test_client().get("/ok").get_data(as_text=True) == "own InternalServerError"


def test_abort_500_keeps_flasks_page(manager: SessionManager) -> None:
    """abort(500) is an HTTP error of the app's own: Flask's page, not ours."""
    response = host_app(manager).test_client().get("/abort500")
    assert response.status_code == 500
    assert "Internal Server Error" in response.get_data(as_text=True)
    assert "sessionmw-error" not in response.get_data(as_text=True)


# -- what observers see -------------------------------------------------------------------------


def test_got_request_exception_is_sent_and_the_error_recorded(
    manager: SessionManager, signals_seen: list[BaseException]
) -> None:
    """Receivers of got_request_exception (sentry-sdk's) see the exception; the session counts it."""
    app = host_app(manager)
    with app.test_client() as client:
        client.get("/ok")
        client.get("/ok")  # the session is stored now
        response = client.get("/boom")
        health = client.get("/_sessionmw/health").get_json()
    assert response.status_code == 500 and "secret detail" not in response.get_data(as_text=True)
    assert [type(exc) for exc in signals_seen] == [ZeroDivisionError]
    assert health["session"]["error_count"] == 1


def test_app_logger_logs_as_without_sessionmw(
    manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    """Flask's app.logger logs the failed request's exception once, with its traceback."""
    app = host_app(manager)
    with caplog.at_level(logging.ERROR):
        app.test_client().get("/boom")
    records = [r for r in caplog.records if r.name == app.logger.name]
    assert len(records) == 1
    assert records[0].exc_info is not None and records[0].exc_info[0] is ZeroDivisionError
    assert not [r for r in caplog.records if r.name == "sessionmw.wsgi"]  # not logged twice


def test_teardown_sees_the_exception(manager: SessionManager) -> None:
    """Teardown functions receive the request's exception, as without sessionmw."""
    app = host_app(manager)
    seen: list[BaseException | None] = []
    app.teardown_request(seen.append)
    app.test_client().get("/boom")
    assert len(seen) == 1 and isinstance(seen[0], ZeroDivisionError)


# -- propagation and trapping -------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [{"TESTING": True}, {"PROPAGATE_EXCEPTIONS": True}, {"DEBUG": True}],
    ids=["TESTING", "PROPAGATE_EXCEPTIONS", "DEBUG"],
)
def test_exceptions_propagate_as_flask_configures(
    manager: SessionManager, config: dict[str, Any], signals_seen: list[BaseException]
) -> None:
    """The test suite and the debugger see the view's exception; it is still recorded."""
    app = host_app(manager, **config)
    with app.test_client() as client:
        client.get("/ok")
        client.get("/ok")
        with pytest.raises(ZeroDivisionError, match="secret detail"):
            client.get("/boom")
        assert client.get("/_sessionmw/health").get_json()["session"]["error_count"] == 1
    assert len(signals_seen) == 1


@pytest.mark.parametrize(
    ("config_key", "path", "raised"),
    [
        ("TRAP_HTTP_EXCEPTIONS", "/missing", NotFound),
        ("TRAP_BAD_REQUEST_ERRORS", "/form", BadRequestKeyError),
    ],
)
@pytest.mark.parametrize("testing", [True, False], ids=["testing", "production"])
def test_trap_settings_behave_as_without_sessionmw(
    manager: SessionManager, config_key: str, path: str, raised: type[HTTPException], testing: bool
) -> None:
    """A trapped HTTP error is raised to the test under TESTING, and is Flask's own 500 in production."""
    outcomes = []
    for app in (host_app(None), host_app(manager, "attached")):
        app.config.update({config_key: True, "TESTING": testing})
        try:
            response = app.test_client().get(path)
            outcomes.append(f"{response.status_code} {response.get_data(as_text=True)[:80]!r}")
        except HTTPException as exc:
            outcomes.append(f"raised {type(exc).__name__}")
    assert outcomes[0] == outcomes[1]
    if testing:
        assert outcomes[1] == f"raised {raised.__name__}"
    else:
        assert outcomes[1].startswith("500 ") and "Internal Server Error" in outcomes[1]


# -- the last-resort page -----------------------------------------------------------------------


def test_friendly_page_where_flask_would_show_its_500(manager: SessionManager) -> None:
    """Without a handler of the app's own: our page (503 with Retry-After for a transient error)."""
    client = host_app(manager).test_client()
    page = client.get("/boom", headers={"Accept": "text/html"})
    assert page.status_code == 500 and "sessionmw-error" in page.get_data(as_text=True)
    busy = client.get("/busy", headers={"Accept": "application/json"})
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
    assert busy.get_json()["transient"] is True


# -- Jinja and the app's lifetime ---------------------------------------------------------------


def test_jinja_settings_after_set_up_apply(manager: SessionManager) -> None:
    """SessionMW(app) does not create app.jinja_env: Jinja options set afterwards take effect."""
    app = Flask("jinja")
    SessionMW(app, manager=manager, secret_key="k")
    assert "jinja_env" not in vars(app)
    app.jinja_options = {**app.jinja_options, "trim_blocks": True}
    app.config["TEMPLATES_AUTO_RELOAD"] = True

    @app.get("/")
    def page() -> str:
        return render_template_string("{% if true %}\nline{% endif %}|{{ sessionmw_banner() }}|")

    with app.test_client() as client:
        assert client.get("/").get_data(as_text=True) == "line||"
    assert app.jinja_env.auto_reload is True


def test_the_app_is_freed_without_the_cycle_collector(manager: SessionManager) -> None:
    """Setting the extension up creates no reference cycle that keeps the app alive."""

    def build() -> weakref.ref[Flask]:
        app = host_app(manager)
        app.test_client().get("/ok")
        return weakref.ref(app)

    gc.collect()
    gc.disable()
    try:
        ref = build()
        alive = ref() is not None
    finally:
        gc.enable()
    gc.collect()
    assert not alive
    assert ref() is None


def test_head_on_the_health_endpoint_has_no_body(manager: SessionManager) -> None:
    """HEAD /_sessionmw/health: the GET's status and headers, no body (Flask's own HEAD handling)."""
    client = host_app(manager).test_client()
    got, head = client.get("/_sessionmw/health"), client.head("/_sessionmw/health")
    assert (head.status_code, head.data) == (got.status_code, b"")
    assert head.headers["Content-Length"] == str(len(got.data))


def test_extension_and_middleware_record_a_propagated_error_once(manager: SessionManager) -> None:
    """Both attached under TESTING: the exception propagates and counts once on the session."""
    from sessionmw.integrations.wsgi import SessionMiddleware

    app = host_app(manager, TESTING=True)
    app.wsgi_app = SessionMiddleware(app.wsgi_app, manager=manager, secret_key="k")  # type: ignore[method-assign]
    with app.test_client() as client:
        client.get("/ok")
        client.get("/ok")
        with pytest.raises(ZeroDivisionError):
            client.get("/boom")
        assert client.get("/_sessionmw/health").get_json()["session"]["error_count"] == 1
