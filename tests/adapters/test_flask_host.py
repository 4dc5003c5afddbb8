"""SessionMW observes Flask's error pipeline and never replaces it.

Each test runs the same app bare and with the extension where the point is "as without sessionmw".
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask, abort, got_request_exception, render_template_string, request
from werkzeug.exceptions import BadRequestKeyError, HTTPException, InternalServerError, NotFound

from sessionmw import SessionManager, TransientError
from sessionmw.integrations.flask import SessionMW


def make_app(manager: SessionManager | None, name: str = "host", **config: Any) -> Flask:
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
    app = make_app(None)

    def own(error: Exception) -> tuple[str, int]:
        return f"own handler: {type(error).__name__}", 500

    if order == "before":
        app.register_error_handler(key, own)
        attach(app, manager)
    else:
        attach(app, manager)
        app.register_error_handler(key, own)
    bare = make_app(None)
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
    app = make_app(manager)
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
    app = make_app(None)
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
    response = make_app(manager).test_client().get("/abort500")
    assert response.status_code == 500
    assert "Internal Server Error" in response.get_data(as_text=True)
    assert "sessionmw-error" not in response.get_data(as_text=True)


# -- what observers see -------------------------------------------------------------------------


def test_got_request_exception_is_sent_and_the_error_recorded(
    manager: SessionManager, signals_seen: list[BaseException]
) -> None:
    """Receivers of got_request_exception (sentry-sdk's) see the exception; the session counts it."""
    app = make_app(manager)
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
    app = make_app(manager)
    with caplog.at_level(logging.ERROR):
        app.test_client().get("/boom")
    records = [r for r in caplog.records if r.name == app.logger.name]
    assert len(records) == 1
    assert records[0].exc_info is not None and records[0].exc_info[0] is ZeroDivisionError
    assert not [r for r in caplog.records if r.name == "sessionmw.wsgi"]  # not logged twice


def test_teardown_sees_the_exception(manager: SessionManager) -> None:
    """Teardown functions receive the request's exception, as without sessionmw."""
    app = make_app(manager)
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
    app = make_app(manager, **config)
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
    for app in (make_app(None), make_app(manager, "attached")):
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
    client = make_app(manager).test_client()
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
        app = make_app(manager)
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
    client = make_app(manager).test_client()
    got, head = client.get("/_sessionmw/health"), client.head("/_sessionmw/health")
    assert (head.status_code, head.data) == (got.status_code, b"")
    assert head.headers["Content-Length"] == str(len(got.data))


def test_extension_and_middleware_record_a_propagated_error_once(manager: SessionManager) -> None:
    """Both attached under TESTING: the exception propagates and counts once on the session."""
    from sessionmw.integrations.wsgi import SessionMiddleware

    app = make_app(manager, TESTING=True)
    app.wsgi_app = SessionMiddleware(app.wsgi_app, manager=manager, secret_key="k")  # type: ignore[method-assign]
    with app.test_client() as client:
        client.get("/ok")
        client.get("/ok")
        with pytest.raises(ZeroDivisionError):
            client.get("/boom")
        assert client.get("/_sessionmw/health").get_json()["session"]["error_count"] == 1
