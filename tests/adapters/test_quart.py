"""SessionMWQuart: the Quart extension's hooks, config, proxy, blueprint, banner, error handling and
websockets, under asyncio (Quart) and trio (QuartTrio), through Quart's own test client.

Where the point is "as without sessionmw", the same app runs bare and with the extension.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from quart import (
    Blueprint,
    Quart,
    abort,
    got_request_exception,
    got_websocket_exception,
    jsonify,
    render_template_string,
    request,
    session,
    websocket,
)
from quart.testing.connections import WebsocketDisconnectError
from quart.typing import TestClientProtocol as Client
from quart.wrappers import Response
from werkzeug.exceptions import HTTPException, InternalServerError

from sessionmw import (
    ConfigurationError,
    SessionManager,
    SessionState,
    TransientError,
    current_session_id,
    languages,
    translate,
)
from sessionmw._session import Policy
from sessionmw._states import Event
from sessionmw.integrations.quart import SessionMWQuart, SessionMWQuartState, current_session
from sessionmw.integrations.websocket import (
    CLOSE_REQUEST_UNREADABLE,
    CLOSE_SESSION_DISCONNECTED,
    CLOSE_SESSION_REFUSED,
)
from sessionmw.languages import speaking
from sessionmw.stores._base import Outcome
from sessionmw.stores._memory import MemoryStore
from sessionmw.testing import FakeClock
from sessionmw.texts import MESSAGES, local
from sessionmw.translation import UserFacingError

pytestmark = pytest.mark.anyio

PAGE = "<html><body>{{ sessionmw_banner() }}<p>page</p></body></html>"
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="app_class")
def _app_class(anyio_backend: str) -> type[Quart]:
    """Quart under asyncio, QuartTrio under trio."""
    if anyio_backend == "trio":
        from quart_trio import QuartTrio

        return QuartTrio
    return Quart


def make_app(app_class: type[Quart], manager: SessionManager | None = None, **config: Any) -> Quart:
    """A small app: a page with the banner, API views (async and sync), failing views, Quart's own
    session, a slow view and websockets."""
    app = app_class(__name__)
    app.config.update(SECRET_KEY="quart-secret", **config)
    app.extensions["test-calls"] = calls = []

    @app.get("/")
    async def page() -> str:
        calls.append(current_session_id())
        return await render_template_string(PAGE)

    @app.get("/api")
    async def api() -> Any:
        calls.append(current_session_id())
        return jsonify(id=current_session.id, state=current_session.state.value)

    @app.get("/sync-api")
    def sync_api() -> Any:  # Quart runs it in a worker thread
        return jsonify(id=current_session_id())

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("database password is hunter2")

    @app.get("/busy")
    async def busy() -> str:
        raise TransientError("backend busy")

    @app.get("/friendly")
    async def friendly() -> str:
        raise UserFacingError(
            "📦 That order is already shipped", title="Cannot cancel", recovery=["Contact us."]
        )

    @app.get("/missing")
    async def missing() -> str:
        abort(404)

    @app.get("/abort500")
    async def abort500() -> str:
        abort(500)

    @app.get("/quart-session")
    async def quart_session() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return str(session["visits"])

    @app.get("/static-ish/file.css")
    async def static_file() -> str:
        return "body{}"

    @app.websocket("/ws")
    async def echo() -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            await websocket.send(f"{current_session_id()}|{message!s}")

    @app.websocket("/ws/boom")
    async def ws_boom() -> None:
        await websocket.accept()
        await websocket.receive()
        raise RuntimeError("websocket secret detail")

    SessionMWQuart(app, manager=manager)
    return app


@pytest.fixture(name="app")
def _app(app_class: type[Quart], manager: SessionManager) -> Quart:
    """The test app on the fake-clock manager."""
    return make_app(app_class, manager)


@pytest.fixture(name="client")
def _client(app: Quart) -> Client:
    """A test client that keeps cookies."""
    return app.test_client()


def cookie_of(response: Response, name: str = "sessionmw") -> str | None:
    """The value the response sets for cookie ``name``."""
    for value in response.headers.getlist("Set-Cookie"):
        key, _, rest = value.partition("=")
        if key == name:
            return rest.split(";")[0]
    return None


def jar(client: Client, name: str = "sessionmw") -> str | None:
    """The client's cookie ``name``."""
    assert client.cookie_jar is not None
    return next((cookie.value for cookie in client.cookie_jar if cookie.name == name), None)


def set_cookie(client: Client, value: str, name: str = "sessionmw") -> None:
    client.set_cookie("localhost", name, value)


async def established(client: Client) -> str:
    """Visit twice so the session is stored; return its id."""
    sid = cookie_of(await client.get("/"))
    assert sid is not None
    await client.get("/")
    return sid


async def text(response: Response) -> str:
    return await response.get_data(as_text=True)


# -- set-up ---------------------------------------------------------------------------------------


async def test_extension_state_is_registered(app: Quart, manager: SessionManager) -> None:
    """app.extensions['sessionmw'] holds the state with the manager."""
    state = app.extensions["sessionmw"]
    assert isinstance(state, SessionMWQuartState)
    assert state.manager is manager and state.websocket_require_session is False


async def test_init_app_twice_raises(app: Quart) -> None:
    """Setting the extension up twice on one app raises a clear error."""
    with pytest.raises(RuntimeError, match="already set up"):
        SessionMWQuart().init_app(app)


async def test_factory_pattern_and_separate_managers(app_class: type[Quart]) -> None:
    """One extension object set up on two apps gives each app its own manager."""
    ext = SessionMWQuart(secret_key="k")
    one, two = app_class("one"), app_class("two")
    ext.init_app(one)
    ext.init_app(two)
    first, second = one.extensions["sessionmw"].manager, two.extensions["sessionmw"].manager
    assert first is not second
    client = one.test_client()
    await client.get("/")
    await client.get("/")
    assert first.session_count() == 1
    assert second.session_count() == 0


async def test_config_keys_are_read(app_class: type[Quart]) -> None:
    """SESSIONMW_* keys set the cookie name, endpoint prefix, exclusions and manager settings."""
    app = make_app(
        app_class,
        None,
        SESSIONMW_COOKIE_NAME="sid",
        SESSIONMW_PREFIX="/session/",
        SESSIONMW_EXCLUDE=["/static-ish/"],
        SESSIONMW_SESSION_TIMEOUT_MINUTES=5,
        SESSIONMW_MAX_ERROR_THRESHOLD=2,
        SESSIONMW_ACTIVITY_RESOLUTION_SECONDS=3,
        SESSIONMW_WEBSOCKET_REQUIRE_SESSION=True,
    )
    state = app.extensions["sessionmw"]
    assert state.manager.policy.timeout == 300
    assert state.manager.policy.error_threshold == 2
    assert state.manager.policy.activity_resolution == 3
    assert state.websocket_require_session is True
    client = app.test_client()
    assert cookie_of(await client.get("/"), "sid") is not None
    assert (await client.get("/session/health")).content_type == "application/health+json"
    assert cookie_of(await client.get("/static-ish/file.css"), "sid") is None


@pytest.mark.parametrize("value", ["yes", 1, None])
async def test_a_bad_websocket_option_is_named(app_class: type[Quart], value: object) -> None:
    """SESSIONMW_WEBSOCKET_REQUIRE_SESSION must be a bool: anything else is refused by name."""
    app = app_class("bad")
    app.config["SESSIONMW_WEBSOCKET_REQUIRE_SESSION"] = value
    with pytest.raises(ConfigurationError, match="websocket_require_session"):
        SessionMWQuart(app, secret_key="k")
    assert "sessionmw" not in app.extensions


async def test_init_app_changes_only_what_the_docs_list(
    app_class: type[Quart], manager: SessionManager
) -> None:
    """Set-up adds the hooks, the 500 handler, the context processor, the blueprint's two routes,
    the extension's state and the asgi_app wrapper; it writes no config key and creates no Jinja
    environment."""
    bare, app = app_class("bare"), app_class("attached")
    for one in (bare, app):
        one.config["SECRET_KEY"] = "k"
    config = dict(app.config)
    SessionMWQuart(app, manager=manager)
    assert dict(app.config) == config
    assert "jinja_env" not in vars(app)
    rules = {rule.rule for rule in app.url_map.iter_rules()} - {
        rule.rule for rule in bare.url_map.iter_rules()
    }
    assert rules == {"/_sessionmw/health", "/_sessionmw/reconnect"}
    assert set(app.extensions) - set(bare.extensions) == {"sessionmw"}
    for name in (
        "before_request",
        "after_request",
        "teardown_request",
        "before_websocket",
        "after_websocket",
        "teardown_websocket",
    ):
        funcs = getattr(app, f"{name}_funcs")
        assert len(funcs[None]) == len(getattr(bare, f"{name}_funcs")[None]) + 1, name
    assert list(app.error_handler_spec[None]) == [500]
    assert len(app.template_context_processors[None]) == len(bare.template_context_processors[None]) + 1
    assert type(app.asgi_app).__name__ == "_CountMessages"


# -- requests -------------------------------------------------------------------------------------


async def test_view_sees_the_session(client: Client, app: Quart) -> None:
    """current_session and current_session_id() give the request's session in async and sync views."""
    sid = await established(client)
    assert await (await client.get("/api")).get_json() == {"id": sid, "state": "active"}
    assert app.extensions["test-calls"][-1] == sid
    assert await (await client.get("/sync-api")).get_json() == {"id": sid}
    assert current_session_id() is None


async def test_current_session_outside_a_tracked_request_raises(app: Quart) -> None:
    """Using current_session where no session exists raises a clear RuntimeError."""
    async with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match="no sessionmw session"):
            _ = current_session.id


async def test_cookie_flags_and_vary(client: Client) -> None:
    """The cookie is HttpOnly, SameSite=Lax, Path=/; the response varies on Cookie and is private."""
    response = await client.get("/")
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("sessionmw="))
    assert sorted(p.strip() for p in cookie.split(";")[1:]) == ["HttpOnly", "Path=/", "SameSite=Lax"]
    assert "Cookie" in response.vary
    assert response.headers["Cache-Control"] == "private"


async def test_no_store_flooding(app: Quart, manager: SessionManager) -> None:
    """Clients that never send the cookie back store no session."""
    for _ in range(20):
        await app.test_client(use_cookies=False).get("/")
    assert manager.session_count() == 0


async def test_unknown_cookie_is_replaced(client: Client, manager: SessionManager) -> None:
    """A client-chosen id is never adopted: a fresh one is issued."""
    set_cookie(client, "attacker-chosen")
    sid = cookie_of(await client.get("/"))
    assert sid not in (None, "attacker-chosen")
    assert manager.get_session("attacker-chosen") is None


async def test_view_error_is_translated_and_recorded(client: Client, manager: SessionManager) -> None:
    """An exception in a view is a friendly 500 page without its text, recorded on the session."""
    sid = await established(client)
    response = await client.get("/boom", headers=HTML)
    assert response.status_code == 500
    assert "hunter2" not in await text(response)
    assert response.content_type.startswith("text/html")
    assert "sessionmw-error" in await text(response)
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1


async def test_view_error_is_json_for_api_clients(client: Client) -> None:
    """A JSON client gets the error as JSON; a transient one is 503 with Retry-After."""
    await established(client)
    response = await client.get("/busy", headers=JSON)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert (await response.get_json())["transient"] is True
    assert "backend busy" not in await text(response)


async def test_http_exceptions_pass_through_uncounted(client: Client, manager: SessionManager) -> None:
    """Quart's own 404, 405 and abort(500) are unchanged and are not session errors."""
    sid = await established(client)
    missing = await client.get("/missing")
    assert missing.status_code == 404 and "Not Found" in await text(missing)
    assert (await client.post("/")).status_code == 405
    aborted = await client.get("/abort500")
    assert aborted.status_code == 500 and "sessionmw-error" not in await text(aborted)
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 0


async def test_banner_is_empty_when_healthy(client: Client) -> None:
    """A healthy session's page has no banner."""
    await established(client)
    assert "sessionmw-banner" not in await text(await client.get("/"))


async def test_the_banner_is_empty_outside_a_request(app: Quart) -> None:
    """A template rendered outside any request (a background task's e-mail) renders no banner."""
    async with app.app_context():
        assert await render_template_string(PAGE) == "<html><body><p>page</p></body></html>"


async def test_expired_page_shows_the_banner_and_json_gets_401(client: Client, clock: FakeClock) -> None:
    """After expiry, a page shows the expired banner with a new session; a JSON call gets 401."""
    sid = await established(client)
    clock.advance(31 * 60)
    response = await client.get("/", headers=HTML)
    assert "sessionmw-expired" in await text(response)
    renewed = cookie_of(response)
    assert renewed not in (None, sid)
    await client.get("/")
    clock.advance(31 * 60)
    api = await client.get("/api", headers=JSON)
    assert api.status_code == 401
    body = await api.get_json()
    assert body["session"]["status"] == "expired" and body["recovery"]
    assert cookie_of(api) not in (None, renewed)


async def test_vanished_session_json_gets_401_not_found(
    client: Client, app: Quart, manager: SessionManager, clock: FakeClock
) -> None:
    """A session the server lost: a JSON call is refused with not_found, the view not run and
    nothing stored; the page then runs on the fresh id with no banner."""
    calls: list[str | None] = app.extensions["test-calls"]
    sid = await established(client)
    assert manager.delete_session(sid)
    clock.advance(31 * 60)
    count = len(calls)
    api = await client.get("/api", headers=JSON)
    assert api.status_code == 401
    body = await api.get_json()
    assert body["session"]["status"] == "not_found" and "reconnect" not in body
    assert len(calls) == count and manager.session_count() == 0
    fresh = cookie_of(api)
    assert fresh not in (None, sid)
    page = await client.get("/", headers=HTML)
    assert page.status_code == 200 and "sessionmw-banner" not in await text(page)
    assert calls[-1] == fresh


async def test_disconnected_flow_and_reconnect_endpoint(client: Client, manager: SessionManager) -> None:
    """Errors up to the threshold disconnect; the page offers Reconnect; POST reconnect restores it."""
    sid = await established(client)
    for _ in range(manager.policy.error_threshold):
        await client.get("/boom")
    record = manager.get_session(sid)
    assert record is not None and record.state is SessionState.DISCONNECTED
    assert 'action="/_sessionmw/reconnect"' in await text(await client.get("/", headers=HTML))
    api = await client.get("/api", headers=JSON)
    assert (api.status_code, (await api.get_json())["session"]["status"]) == (503, "disconnected")
    reconnect = await client.post("/_sessionmw/reconnect")
    assert reconnect.status_code == 200 and (await reconnect.get_json())["status"] == "pass"
    assert (await (await client.get("/api")).get_json())["state"] == "active"


async def test_the_banners_reconnect_form_comes_back_to_the_page(
    client: Client, manager: SessionManager
) -> None:
    """The banner's form (no JavaScript) reconnects and is sent back to its page, which confirms it."""
    sid = await established(client)
    for _ in range(manager.policy.error_threshold):
        await client.get("/boom")
    back = await client.post("/_sessionmw/reconnect", form={"next": "/"}, headers=HTML)
    assert back.status_code == 303 and back.headers["Location"] == "/?sessionmw=reconnected"
    record = manager.get_session(sid)
    assert record is not None and record.state is SessionState.ACTIVE
    assert "Reconnected" in await text(await client.get("/?sessionmw=reconnected", headers=HTML))


async def test_health_endpoint_is_not_activity(
    client: Client, manager: SessionManager, clock: FakeClock
) -> None:
    """GET health reports the session without counting as activity or setting a cookie."""
    sid = await established(client)
    before = manager.get_session(sid)
    clock.advance(90)
    response = await client.get("/_sessionmw/health")
    assert response.content_type == "application/health+json"
    assert (await response.get_json())["session"]["state"] == "active"
    assert cookie_of(response) is None
    after = manager.get_session(sid)
    assert before is not None and after is not None and after.last_activity == before.last_activity


async def test_head_on_the_health_endpoint_answers_as_get(client: Client) -> None:
    """HEAD health has the GET's status and headers (the server leaves out the body)."""
    got, head = await client.get("/_sessionmw/health"), await client.head("/_sessionmw/health")
    assert head.status_code == got.status_code
    assert head.headers["Content-Type"] == got.headers["Content-Type"] == "application/health+json"


async def test_works_beside_quarts_session(client: Client) -> None:
    """Quart's own session cookie keeps working next to the sessionmw cookie."""
    sid = await established(client)
    assert await text(await client.get("/quart-session")) == "1"
    assert await text(await client.get("/quart-session")) == "2"
    assert jar(client, "session") is not None and jar(client) == sid


async def test_the_asgi_middleware_in_front_makes_the_extension_step_aside(
    app_class: type[Quart], manager: SessionManager
) -> None:
    """With the ASGI SessionMiddleware also wrapping app.asgi_app, each request is tracked once;
    a propagated error is recorded once; websockets (which it passes through) stay the extension's."""
    from sessionmw.integrations.asgi import SessionMiddleware

    app = make_app(app_class, manager, PROPAGATE_EXCEPTIONS=True)
    # (Quart types its ASGI messages as TypedDicts, the middleware as mappings: the same objects)
    inner: Any = app.asgi_app
    app.asgi_app = SessionMiddleware(inner, manager=manager, secret_key="quart-secret")  # type: ignore[method-assign, assignment]
    client = app.test_client()
    response = await client.get("/")
    assert len([v for v in response.headers.getlist("Set-Cookie") if v.startswith("sessionmw=")]) == 1
    await client.get("/")
    sid = jar(client)
    assert sid is not None
    assert await (await client.get("/api")).get_json() == {"id": sid, "state": "active"}
    assert manager.session_count() == 1
    assert await outcome(app, "/boom", headers={"Cookie": f"sessionmw={sid}"}) == "raised RuntimeError"
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1
    assert await ws_exchange(client) == [f"{sid}|m0"]


async def test_secret_key_signs_pending_ids(app_class: type[Quart], manager: SessionManager) -> None:
    """Two apps with the same SECRET_KEY accept each other's issued ids (as two workers do)."""
    one, two = make_app(app_class, manager), make_app(app_class, manager)
    sid = cookie_of(await one.test_client().get("/"))
    second = two.test_client()
    set_cookie(second, sid or "")
    assert cookie_of(await second.get("/")) is None
    assert manager.session_count() == 1


async def test_user_facing_error_is_rendered_as_raised(client: Client) -> None:
    """A UserFacingError from a view is shown with its own title, message and steps."""
    await established(client)
    body = await (await client.get("/friendly", headers=JSON)).get_json()
    assert (body["type"], body["title"], body["detail"], body["recovery"]) == (
        "https://sessionmw.readthedocs.io/problems/app-error",
        "Cannot cancel",
        "That order is already shipped",
        ["Contact us."],
    )


async def test_debug_config_shows_details(app_class: type[Quart], manager: SessionManager) -> None:
    """SESSIONMW_DEBUG=True puts the exception text in error responses, for developers."""
    app = make_app(app_class, manager, SESSIONMW_DEBUG=True)
    body = await (await app.test_client().get("/boom", headers=JSON)).get_json()
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
async def test_vary_is_merged_with_the_apps(
    app_class: type[Quart], manager: SessionManager, existing: str | None, expected: list[str]
) -> None:
    """The app's own Vary header is kept and gains Cookie once; Vary: * stays as it is."""
    app = app_class(__name__)

    @app.get("/")
    async def index() -> Any:
        response = jsonify(ok=True)
        if existing is not None:
            response.headers["Vary"] = existing
        return response

    SessionMWQuart(app, manager=manager, secret_key="k")
    assert (await app.test_client().get("/")).headers.getlist("Vary") == expected


# -- the app's error pipeline ---------------------------------------------------------------------


@pytest.fixture(name="signals_seen")
def _signals_seen() -> Iterator[list[BaseException]]:
    """The exceptions got_request_exception and got_websocket_exception announced during the test."""
    seen: list[BaseException] = []

    async def receiver(sender: Any, exception: BaseException, **extra: Any) -> None:
        seen.append(exception)

    got_request_exception.connect(receiver)
    got_websocket_exception.connect(receiver)
    yield seen
    got_request_exception.disconnect(receiver)
    got_websocket_exception.disconnect(receiver)


@pytest.mark.parametrize(
    "key",
    [500, InternalServerError, HTTPException, Exception],
    ids=["500", "ISE", "HTTPException", "Exception"],
)
@pytest.mark.parametrize("order", ["before", "after"])
async def test_the_apps_own_handler_wins(
    app_class: type[Quart], manager: SessionManager, key: Any, order: str
) -> None:
    """A handler for 500, InternalServerError, HTTPException or Exception answers, never our page,
    whether registered before or after the extension; the error is still recorded."""

    async def own(error: Exception) -> tuple[str, int]:
        return f"own handler: {type(error).__name__}", 500

    outcomes = []
    for attach in (False, True):
        app = app_class(f"app-{attach}")
        app.config["SECRET_KEY"] = "k"

        @app.get("/boom")
        async def boom() -> str:
            raise ZeroDivisionError("secret detail")

        if attach and order == "after":
            SessionMWQuart(app, manager=manager)
        app.register_error_handler(key, own)
        if attach and order == "before":
            SessionMWQuart(app, manager=manager)
        client = app.test_client()
        response = await client.get("/boom")
        outcomes.append((response.status_code, await text(response)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][1].startswith("own handler")


@pytest.mark.parametrize("key", [HTTPException, Exception], ids=["HTTPException", "Exception"])
async def test_a_blueprints_handler_wins_for_its_views(app: Quart, key: Any) -> None:
    """A blueprint's handler for HTTPException or Exception answers for the blueprint's views."""
    part = Blueprint("part", __name__)

    @part.get("/part/boom")
    async def part_boom() -> str:
        raise ZeroDivisionError("x")

    part.register_error_handler(key, lambda error: ("blueprint handler", 500))
    app.register_blueprint(part)
    assert await text(await app.test_client().get("/part/boom")) == "blueprint handler"


async def test_an_exception_handler_also_answers_failures_after_the_view(
    app_class: type[Quart], manager: SessionManager
) -> None:
    """An error raised in the app's after_request reaches its Exception handler as without sessionmw."""
    answers = []
    for attached in (False, True):
        app = app_class(f"after-{attached}")
        app.config["SECRET_KEY"] = "k"
        app.register_error_handler(Exception, lambda error: (f"own {type(error).__name__}", 500))

        @app.get("/ok")
        async def ok() -> str:
            return "ok"

        @app.after_request
        async def broken(response: Any) -> Any:
            raise ValueError("after_request failed")

        if attached:
            SessionMWQuart(app, manager=manager)
        answers.append(await outcome(app, "/ok") + " " + await text(await app.test_client().get("/ok")))
    assert answers[0] == answers[1]
    assert answers[1].endswith("own InternalServerError")


@pytest.mark.parametrize(
    ("config_key", "path"),
    [("TRAP_HTTP_EXCEPTIONS", "/missing"), ("TRAP_BAD_REQUEST_ERRORS", "/form")],
)
@pytest.mark.parametrize("testing", [True, False], ids=["testing", "production"])
async def test_trap_settings_behave_as_without_sessionmw(
    app_class: type[Quart], manager: SessionManager, config_key: str, path: str, testing: bool
) -> None:
    """A trapped HTTP error reaches the client as it does without sessionmw."""
    outcomes = []
    for attached in (False, True):
        app = app_class(f"trap-{attached}")
        app.config.update({"SECRET_KEY": "k", config_key: True, "TESTING": testing})

        @app.get("/missing")
        async def missing() -> str:
            abort(404)

        @app.get("/form")
        async def form() -> str:
            return (await request.form)["absent"]  # type: ignore[no-any-return]

        if attached:
            SessionMWQuart(app, manager=manager)
        outcomes.append(await outcome(app, path))
    assert outcomes[0] == outcomes[1]
    assert "friendly=True" not in outcomes[1]


async def test_got_request_exception_is_sent_and_the_error_recorded(
    client: Client, signals_seen: list[BaseException]
) -> None:
    """Receivers of got_request_exception (sentry-sdk's) see the exception; the session counts it once."""
    await established(client)
    response = await client.get("/boom")
    health = await (await client.get("/_sessionmw/health")).get_json()
    assert response.status_code == 500 and "hunter2" not in await text(response)
    assert [type(exc) for exc in signals_seen] == [RuntimeError]
    assert health["session"]["error_count"] == 1


async def test_app_logger_logs_as_without_sessionmw(app: Quart, caplog: pytest.LogCaptureFixture) -> None:
    """Quart's app.logger logs the failed request's exception once, with its traceback."""
    with caplog.at_level(logging.ERROR):
        await app.test_client().get("/boom")
    records = [r for r in caplog.records if r.name == app.logger.name]
    assert len(records) == 1
    assert records[0].exc_info is not None and records[0].exc_info[0] is RuntimeError
    assert not [r for r in caplog.records if r.name == "sessionmw.wsgi"]  # not logged twice


async def test_teardown_sees_what_it_sees_without_sessionmw(
    app_class: type[Quart], manager: SessionManager
) -> None:
    """Teardown functions receive what Quart gives them without sessionmw (None: Quart handled the
    exception with its 500 response)."""
    seen: list[list[BaseException | None]] = []
    for attached in (False, True):
        app = make_app(app_class, manager) if attached else app_class("bare")
        if not attached:
            app.get("/boom")(boom_view)
        calls: list[BaseException | None] = []
        seen.append(calls)
        app.teardown_request(make_recorder(calls))
        await app.test_client().get("/boom")
    assert [type(exc) for exc in seen[0]] == [type(exc) for exc in seen[1]] == [type(None)]


async def boom_view() -> str:
    raise RuntimeError("database password is hunter2")


def make_recorder(calls: list[BaseException | None]) -> Any:
    async def teardown(exc: BaseException | None) -> None:
        calls.append(exc)

    return teardown


def leaf(exc: BaseException) -> BaseException:
    """The one exception inside trio's exception groups (the test client's nursery wraps it)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def outcome(app: Quart, path: str, **kwargs: Any) -> str:
    """What a client sees: the status and whether the body shows the exception (Quart's debug
    page) or our friendly page; or the exception raised."""
    try:
        response = await app.test_client().get(path, **kwargs)
    except BaseException as exc:
        return f"raised {type(leaf(exc)).__name__}"
    body = await text(response)
    return f"{response.status_code} traceback={'RuntimeError' in body} friendly={'sessionmw-error' in body}"


@pytest.mark.parametrize(
    "config",
    [{"TESTING": True}, {"PROPAGATE_EXCEPTIONS": True}, {"DEBUG": True}],
    ids=["TESTING", "PROPAGATE_EXCEPTIONS", "DEBUG"],
)
async def test_exceptions_propagate_as_quart_configures(
    app_class: type[Quart], manager: SessionManager, config: dict[str, Any], signals_seen: list[BaseException]
) -> None:
    """The test suite, the server and the debug page see the view's exception as without sessionmw
    (TESTING and DEBUG: Quart's traceback page; PROPAGATE_EXCEPTIONS: raised); it is recorded once."""
    bare = app_class("bare")
    bare.config.update(config)
    bare.get("/boom")(boom_view)
    app = make_app(app_class, manager, **config)
    client = app.test_client()
    sid = await established(client)
    expected = await outcome(bare, "/boom")
    assert expected != "500 traceback=False friendly=False"  # Quart does show or raise it
    assert await outcome(app, "/boom", headers={"Cookie": f"sessionmw={sid}"}) == expected
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1
    assert len(signals_seen) == 2  # the bare app's and ours


async def test_friendly_page_where_quart_would_show_its_500(
    app_class: type[Quart], manager: SessionManager
) -> None:
    """Without a handler of the app's own: our page where bare Quart shows its plain 500."""
    bare = app_class("bare")
    bare.get("/boom")(boom_view)
    assert await outcome(bare, "/boom") == "500 traceback=False friendly=False"
    assert (
        await outcome(make_app(app_class, manager), "/boom", headers=HTML)
        == "500 traceback=False friendly=True"
    )


async def test_a_cancelled_handler_counts_nothing(app: Quart, manager: SessionManager) -> None:
    """A client that goes away cancels the view (Quart's rule): no error, no success, no signal."""
    started = anyio.Event()
    seen: list[BaseException] = []

    @app.get("/slow")
    async def slow() -> str:
        started.set()
        await anyio.sleep_forever()
        return "never"

    async def receiver(sender: Any, exception: BaseException, **extra: Any) -> None:
        seen.append(exception)

    client = app.test_client()
    sid = await established(client)
    manager.record_error(sid, ConnectionError("flaky"))  # an error session: a success would clear it
    messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> dict[str, Any]:
        message = next(messages, None)
        if message is not None:
            return message
        await started.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    got_request_exception.connect(receiver)
    try:
        with anyio.fail_after(5):
            await app(http_scope("/slow", f"sessionmw={sid}"), receive, send)  # type: ignore[arg-type]
    finally:
        got_request_exception.disconnect(receiver)
    assert sent == [] and seen == []
    record = manager.get_session(sid)
    assert record is not None and (record.state, record.error_count) == (SessionState.ERROR, 1)


class WaitingStore(MemoryStore):
    """A memory store that may wait (it does not say ``blocks = False``): its updates wait until
    ``opened`` is set (from the event loop)."""

    blocks = True

    def __init__(self) -> None:
        super().__init__()
        self.opened = threading.Event()

    def update(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
    ) -> Outcome | None:
        if not self.opened.wait(timeout=10):
            raise AssertionError("the store waited for a blocked event loop")
        return super().update(session_id, event, now, policy, error)


@pytest.mark.parametrize("via", ["request", "websocket"])
async def test_a_waiting_store_leaves_the_event_loop_running(app_class: type[Quart], via: str) -> None:
    """The admission's store call waits in a worker thread: a task on the loop keeps running (and
    lets the store go on); with the loop blocked it never would, and the store would give up."""
    store = WaitingStore()
    manager = SessionManager(store=store, clock=FakeClock())
    sid = manager.create_session().session_id
    client = make_app(app_class, manager).test_client(use_cookies=False)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 5:
                store.opened.set()
            await anyio.sleep(0.001)

    cookie = {"Cookie": f"sessionmw={sid}"}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ticker)
        if via == "request":
            answer = await (await client.get("/api", headers=cookie)).get_json()
        else:
            (answer,) = await ws_exchange(client, headers=cookie)
        tasks.cancel_scope.cancel()
    assert answer in ({"id": sid, "state": "active"}, f"{sid}|m0")
    assert ticks >= 5


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_a_session_walk_on_a_shared_store(
    app_class: type[Quart], kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """On SQLite (a worker thread) and Redis (redis.asyncio under asyncio): a session is issued,
    stored, serves a websocket, records an error and is reconnected, as on the memory store."""
    from support.stores import shared_store_url

    manager = SessionManager(store=shared_store_url(kind, request, tmp_path), max_error_threshold=1)
    try:
        client = make_app(app_class, manager).test_client()
        sid = await established(client)
        assert await ws_exchange(client) == [f"{sid}|m0"]
        assert (await client.get("/busy", headers=JSON)).status_code == 503
        refused = await client.get("/api", headers=JSON)
        assert (refused.status_code, (await refused.get_json())["session"]["status"]) == (503, "disconnected")
        assert await close_code(client) == CLOSE_SESSION_DISCONNECTED
        assert (await client.post("/_sessionmw/reconnect", headers=JSON)).status_code == 200
        assert await (await client.get("/api", headers=JSON)).get_json() == {"id": sid, "state": "active"}
    finally:
        await manager.aclose()


def http_scope(path: str, cookie: str) -> dict[str, Any]:
    """An ASGI HTTP scope for ``GET path`` with ``cookie``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("localhost", 80),
        "extensions": {},
    }


# -- websockets -----------------------------------------------------------------------------------


async def ws_exchange(
    client: Client, path: str = "/ws", *, headers: Any = None, messages: int = 1
) -> list[Any]:
    """Open a websocket, send ``messages`` messages and return what came back; a refusal's close
    code comes back as the exception."""
    out: list[Any] = []
    async with client.websocket(path, headers=headers) as ws:
        for number in range(messages):
            await ws.send(f"m{number}")
            out.append(await ws.receive())
    return out


async def close_code(client: Client, path: str = "/ws", *, headers: Any = None) -> int | None:
    """The code a websocket is closed with before it exchanges a message (None: it was served)."""
    try:
        await ws_exchange(client, path, headers=headers)
    except BaseException as exc:
        closed = leaf(exc)
        if not isinstance(closed, WebsocketDisconnectError):
            raise
        return int(closed.args[0])
    return None


async def test_a_websocket_naming_no_session_is_served_outside_any(
    client: Client, manager: SessionManager
) -> None:
    """A websocket without a session id (an API client, a test) is served outside any session:
    nothing stored, no cookie."""
    assert await ws_exchange(client) == ["None|m0"]
    assert manager.session_count() == 0


async def test_a_websocket_naming_no_session_is_refused_when_required(
    app_class: type[Quart], manager: SessionManager
) -> None:
    """With SESSIONMW_WEBSOCKET_REQUIRE_SESSION (or websocket_require_session=True), a websocket
    naming no session is refused before accept; one naming its stored session still opens."""
    client = make_app(app_class, manager, SESSIONMW_WEBSOCKET_REQUIRE_SESSION=True).test_client()
    assert await close_code(client) == CLOSE_SESSION_REFUSED
    sid = await established(client)
    assert await ws_exchange(client) == [f"{sid}|m0"]
    by_argument = app_class("by-argument")

    @by_argument.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()

    SessionMWQuart(by_argument, manager=manager, secret_key="k", websocket_require_session=True)
    assert await close_code(by_argument.test_client()) == CLOSE_SESSION_REFUSED


async def test_huge_headers_get_a_clear_answer_and_store_nothing(
    client: Client, manager: SessionManager
) -> None:
    """Headers past the gate's limit (64 KiB): a request gets 431, a websocket closes with 4400
    before accept; nothing is stored, nothing raised."""
    huge = {"X-Padding": "x" * (65 * 1024)}
    response = await client.get("/api", headers=huge)
    assert response.status_code == 431 and (await response.get_json())["status"] == "headers_too_large"
    assert await close_code(client, headers=huge) == CLOSE_REQUEST_UNREADABLE
    assert manager.session_count() == 0


async def test_a_websocket_in_a_stored_session_runs_in_it(
    client: Client, manager: SessionManager, clock: FakeClock
) -> None:
    """A websocket sent with the session cookie runs in that session (its opening is activity),
    and so does one sent with the session header."""
    sid = await established(client)
    clock.advance(60)
    assert await ws_exchange(client) == [f"{sid}|m0"]
    record = manager.get_session(sid)
    assert record is not None and record.last_activity == clock()
    api = manager.create_session().session_id
    bare = client.app.test_client(use_cookies=False)
    assert await ws_exchange(bare, headers={"X-Session-ID": api}) == [f"{api}|m0"]


async def test_a_websocket_brings_a_pending_id_back(client: Client, manager: SessionManager) -> None:
    """A page's first websocket, with the id the page was just issued, stores that session and runs in it."""
    sid = cookie_of(await client.get("/"))
    assert sid is not None and manager.session_count() == 0
    assert await ws_exchange(client) == [f"{sid}|m0"]
    assert manager.get_session(sid) is not None


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        pytest.param("unknown", CLOSE_SESSION_REFUSED, id="unknown"),
        pytest.param("malformed", CLOSE_SESSION_REFUSED, id="malformed"),
        pytest.param("expired", CLOSE_SESSION_REFUSED, id="expired"),
        pytest.param("deleted", CLOSE_SESSION_REFUSED, id="deleted"),
        pytest.param("disconnected", CLOSE_SESSION_DISCONNECTED, id="disconnected"),
    ],
)
async def test_a_websocket_whose_session_may_not_work_is_refused_before_accept(
    client: Client, app: Quart, manager: SessionManager, clock: FakeClock, kind: str, code: int
) -> None:
    """Unknown, malformed, expired, vanished or disconnected: closed before accept with the
    documented code, the handler never run, no id adopted and nothing stored."""
    sid = "no-such-session" if kind == "unknown" else "bad id!" if kind == "malformed" else None
    if sid is None:
        sid = await established(client)
        if kind == "expired":
            clock.advance(31 * 60)
        elif kind == "deleted":
            manager.delete_session(sid)
            clock.advance(31 * 60)
        else:
            for _ in range(manager.policy.error_threshold):
                manager.record_error(sid, ConnectionError("down"))
    count = manager.session_count()
    fresh = app.test_client(use_cookies=False)
    assert await close_code(fresh, headers={"Cookie": f"sessionmw={sid}"}) == code
    assert manager.session_count() <= count and manager.get_session("no-such-session") is None


async def test_websocket_messages_count_as_activity_once_per_window(
    client: Client, manager: SessionManager, clock: FakeClock
) -> None:
    """Messages within the renewal window touch the store not at all; the first one past it, once."""
    sid = await established(client)
    window = manager.policy.activity_resolution
    assert window > 0
    opened = clock()
    async with client.websocket("/ws") as ws:
        for _ in range(5):
            await ws.send("x")
            await ws.receive()
        record = manager.get_session(sid)
        assert record is not None and record.last_activity == opened
        clock.advance(window + 1)
        for _ in range(5):
            await ws.send("x")
            await ws.receive()
        record = manager.get_session(sid)
        assert record is not None and record.last_activity == opened + window + 1


async def test_a_websocket_error_is_observed_and_recorded(
    client: Client, manager: SessionManager, signals_seen: list[BaseException]
) -> None:
    """got_websocket_exception receivers see the handler's exception; the session counts it."""
    sid = await established(client)
    async with client.websocket("/ws/boom") as ws:
        await ws.send("go")
        with pytest.raises(WebsocketDisconnectError):
            await ws.receive()
    assert [type(exc) for exc in signals_seen] == [RuntimeError]
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1


async def test_a_closed_websocket_counts_nothing(client: Client, manager: SessionManager) -> None:
    """The client closing the websocket cancels its handler: no error, no success."""
    sid = await established(client)
    manager.record_error(sid, ConnectionError("flaky"))
    async with client.websocket("/ws") as ws:
        await ws.send("x")
        await ws.receive()
    record = manager.get_session(sid)
    assert record is not None and (record.state, record.error_count) == (SessionState.ERROR, 1)


# -- the browser's language ----------------------------------------------------------------------


async def test_errors_speak_the_browsers_language(client: Client) -> None:
    """``Accept-Language: de``: the friendly page and the problem document are German, with
    ``Content-Language: de``; without the header, English (the next request is not spoken to in
    the last one's language)."""
    await established(client)
    with speaking("de"):
        german = translate(RuntimeError("x")).title
    english = translate(RuntimeError("x")).title
    assert german != english
    page = await client.get("/boom", headers={**HTML, "Accept-Language": "de-CH, en;q=0.5"})
    assert page.status_code == 500 and page.headers["Content-Language"] == "de"
    assert html.escape(german) in await text(page) and '<html lang="de"' in await text(page)
    problem = await client.get("/boom", headers={**JSON, "Accept-Language": "de"})
    assert problem.headers["Content-Language"] == "de"
    assert (await problem.get_json())["title"] == german
    plain = await client.get("/boom", headers=JSON)
    assert plain.headers["Content-Language"] == "en" and (await plain.get_json())["title"] == english


async def test_a_websocket_is_served_in_the_browsers_language(app: Quart, client: Client) -> None:
    """A websocket's admission chooses its language as a request's does."""

    @app.websocket("/ws/language")
    async def language() -> None:
        await websocket.accept()
        await websocket.send(f"{languages.current()} {local(MESSAGES['expired'].title)}")

    await established(client)
    for header, code in (("fr-CA", "fr"), ("", "en")):
        async with client.websocket("/ws/language", headers={"Accept-Language": header}) as ws:
            said = await ws.receive()
        with speaking(code):
            assert said == f"{code} {local(MESSAGES['expired'].title)}"
