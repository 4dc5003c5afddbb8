"""RFC 9457 problem documents: the check of §3 itself, the documents' members, the type URIs and
their documentation, and every refusal and error of the WSGI middleware and the Flask extension
as a JSON client gets it (a valid problem document, its status the response's, Retry-After and
Content-Language headers); the deprecated JSON shape behind ``problem_json=False``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from sessionmw import (
    BreakerOpenError,
    ConfigurationError,
    SessionManager,
    StoreUnavailableError,
    TransientError,
    UserFacingError,
    register_translation,
    translate,
    unregister_translation,
)
from sessionmw.health import HealthReport
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.http import user_error_response
from sessionmw.integrations.options import Options
from sessionmw.integrations.problem import (
    APP_ERROR,
    MEDIA_TYPE,
    PROBLEM_BASE,
    PROBLEM_TYPES,
    endpoint_error,
    problem_document,
    problem_errors,
    problem_type,
)
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.stores import MemoryStore
from sessionmw.testing import FakeClock
from sessionmw.texts import ENDPOINTS
from sessionmw.translation import SITUATIONS, translations

ROOT = Path(__file__).resolve().parents[2]
SECRET = "problem-tests"

# -- the check of RFC 9457 §3 --------------------------------------------------------------------

#: RFC 9457's own examples (§3 and §3.1.1): extension members, a relative type, one without type.
RFC_EXAMPLES = [
    {
        "type": "https://example.com/probs/out-of-credit",
        "title": "You do not have enough credit.",
        "detail": "Your current balance is 30, but that costs 50.",
        "instance": "/account/12345/msgs/abc",
        "balance": 30,
        "accounts": ["/account/12345", "/account/67890"],
    },
    {
        "type": "https://example.net/validation-error",
        "title": "Your request is not valid.",
        "errors": [{"detail": "must be a positive integer", "pointer": "#/age"}],
    },
    {"type": "/problems/relative", "status": 403},
    {"title": "Not Found", "status": 404},
    {"type": "about:blank", "status": 500},
]


@pytest.mark.parametrize("document", RFC_EXAMPLES)
def test_the_rfcs_own_examples_pass(document: dict[str, Any]) -> None:
    assert problem_errors(document) == []
    assert problem_errors(json.dumps(document)) == []


@pytest.mark.parametrize(
    ("document", "status", "complaint"),
    [
        ("[]", None, "JSON object"),
        ("{", None, "not a JSON object"),
        ({"type": 7}, None, "type: must be a string"),
        ({"type": "https://example.com/a b"}, None, "not a URI reference"),
        ({"type": "1http://example.com/"}, None, "no valid scheme"),
        ({"instance": "/path\n"}, None, "instance"),
        ({"title": ["x"]}, None, "title: must be a string"),
        ({"detail": None}, None, "detail: must be a string"),
        ({"status": "401"}, None, "status: must be a whole number"),
        ({"status": True}, None, "status: must be a whole number"),
        ({"status": 99}, None, "status: must be a whole number"),
        ({"status": 401.0}, None, "status: must be a whole number"),
        ({"status": 401}, 503, "not the HTTP status"),
        ({"x": 1}, None, "extension member"),
        ({"2fa": 1}, None, "extension member"),
        ({"retry-after": 1}, None, "extension member"),
        ('{"status": 401, "status": 503}', None, "given twice: status"),
        ('{"title": "a", "detail": "b", "title": "c"}', None, "given twice: title"),
    ],
)
def test_the_check_finds_what_breaks_the_rfc(document: Any, status: int | None, complaint: str) -> None:
    errors = problem_errors(document, status=status)
    assert errors and complaint in " ".join(errors), errors


# -- the documents -----------------------------------------------------------------------------


def test_a_document_has_the_standard_members_and_the_extensions() -> None:
    err = translate(TimeoutError("slow"))
    session = HealthReport(status="error", state="error", error_count=2, message="x")
    document = problem_document(err, status=503, instance="/api/prices", retry_after=5, session=session)
    assert document == {
        "type": "https://sessionmw.readthedocs.io/problems/timeout",
        "title": "Request timed out",
        "status": 503,
        "detail": "The request took too long to complete",
        "instance": "/api/prices",
        "recovery": list(err.recovery),
        "context": "The service may be busy right now.",
        "severity": "error",
        "transient": True,
        "retry_after": 5,
        "session": {"status": "error", "state": "error", "error_count": 2},
    }
    assert problem_errors(document, status=503) == []


def test_debug_details_have_their_own_member_in_debug_mode_only() -> None:
    quiet = problem_document(translate(RuntimeError("hunter2")), status=500)
    loud = problem_document(translate(RuntimeError("hunter2"), debug=True), status=500)
    assert "hunter2" not in json.dumps(quiet)
    assert "RuntimeError: hunter2" in loud["debug"] and "hunter2" not in loud["detail"]


@pytest.mark.parametrize("status", [200, 399, 600, True, "500"])
def test_a_document_is_for_an_error_status(status: Any) -> None:
    with pytest.raises(ValueError, match="HTTP error status"):
        problem_document(translate(RuntimeError()), status=status)


def test_every_situation_has_a_stable_type_uri_under_the_documented_base() -> None:
    assert PROBLEM_BASE == "https://sessionmw.readthedocs.io/problems/"
    assert set(PROBLEM_TYPES) == {*SITUATIONS, *ENDPOINTS, APP_ERROR}
    for situation, uri in PROBLEM_TYPES.items():
        assert uri == PROBLEM_BASE + situation and re.fullmatch(r"[a-z]+(-[a-z]+)*", situation)
        assert problem_errors({"type": uri}) == []
    assert problem_type(None) == problem_type("an-apps-own") == PROBLEM_BASE + APP_ERROR


def test_every_type_uri_is_documented_on_the_api_clients_page() -> None:
    assert set(_documented_statuses()) == set(PROBLEM_TYPES)


def test_every_built_in_translation_names_its_situation() -> None:
    own = register_translation(KeyError, title="Missing", message="Something is missing")
    try:
        for _matcher, entry in translations():
            assert entry.situation in SITUATIONS or entry is own
        assert translate(KeyError("k")).situation is None
    finally:
        unregister_translation(KeyError)
    assert translate(ConnectionError()).situation == "connection"
    assert translate(TransientError("x")).replace(title="Other").situation == "temporary"


@pytest.mark.parametrize(
    ("status", "state", "situation"),
    [
        ("expired", "expired", "session-expired"),
        ("expired", "ended", "session-ended"),
        ("not_found", None, "session-not-found"),
        ("disconnected", "disconnected", "session-disconnected"),
        ("error", "error", "session-error"),
    ],
)
def test_a_session_reports_situation(status: str, state: str | None, situation: str) -> None:
    report = HealthReport(
        status=status, state=state, session_id="s", message="m", title="t", recovery=[], context=""
    )
    assert UserFacingError.from_health(report).situation == situation


def test_the_endpoints_errors_speak_from_the_catalogue() -> None:
    err = endpoint_error("method-not-allowed", allow="GET, HEAD")
    assert (err.title, err.recovery) == ("Method not allowed", ["Use GET, HEAD."])
    assert err.situation == "method-not-allowed"
    with pytest.raises(KeyError):
        endpoint_error("teapot")


def test_the_response_says_what_the_document_says() -> None:
    """Content type, language, and Retry-After equal to the document's retry_after."""
    response = user_error_response(translate(TransientError("x")), as_json=True, instance="/x")
    headers = dict(response.headers)
    body = json.loads(response.body)
    assert headers["Content-Type"] == MEDIA_TYPE and headers["Content-Language"] == "en"
    assert headers["Retry-After"] == str(body["retry_after"]) == "5"
    assert problem_errors(response.body, status=response.status_code) == []
    page = user_error_response(translate(TransientError("x")), as_json=False)
    assert dict(page.headers)["Content-Language"] == "en"


# -- every refusal and error, on every adapter --------------------------------------------------


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("database password is hunter2")
    if path == "/busy":
        raise TransientError("backend busy")
    if path == "/friendly":
        raise UserFacingError("📦 That order is shipped", title="Cannot cancel", recovery=["Contact us."])
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def _flask_app(manager: SessionManager, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="flask-secret", SESSIONMW_SECRET_KEY=SECRET, **config)

    @app.get("/<path:path>")
    @app.get("/")
    def view(path: str = "") -> Any:
        return b"".join(_wsgi_app({"PATH_INFO": "/" + path}, lambda *_: None))

    SessionMW(app, manager=manager)
    return app


def _client(adapter: str, manager: SessionManager, **options: Any) -> Client:
    if adapter == "wsgi":
        return Client(SessionMiddleware(_wsgi_app, manager=manager, secret_key=SECRET, **options))
    config = {f"SESSIONMW_{name.upper()}": value for name, value in options.items()}
    return Client(_flask_app(manager, **config))


@pytest.fixture(params=["wsgi", "flask"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _established(client: Client) -> str:
    first = client.get("/")
    sid = re.search(r"sessionmw=([^;]+)", first.headers["Set-Cookie"])
    assert sid is not None
    client.get("/")  # sent back: stored
    return sid[1]


ACCEPTS = {
    "problem+json": {"Accept": MEDIA_TYPE},
    "json": {"Accept": "application/json"},
    "json-not-html": {"Accept": "text/html;q=0.5, application/json"},
}


def _checked(response: TestResponse, status: int, situation: str) -> dict[str, Any]:
    """The response's problem document, checked against RFC 9457 and what the response says."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == MEDIA_TYPE
    assert response.headers["Content-Language"] == "en"
    assert problem_errors(response.get_data(), status=status) == []
    body: dict[str, Any] = json.loads(response.get_data())
    assert body["type"] == PROBLEM_BASE + situation
    assert body["title"] and body["detail"] and isinstance(body["recovery"], list)
    if "Retry-After" in response.headers:
        assert body["retry_after"] == int(response.headers["Retry-After"])
    else:
        assert body["retry_after"] is None
    assert "hunter2" not in response.get_data(as_text=True)
    return body


@pytest.mark.parametrize("accept", list(ACCEPTS))
def test_every_error_is_a_problem_document(adapter: str, manager: SessionManager, accept: str) -> None:
    client = _client(adapter, manager)
    _established(client)
    headers = ACCEPTS[accept]
    body = _checked(client.get("/boom", headers=headers), 500, "unexpected")
    assert body["instance"] == "/boom" and body["session"]["error_count"] == 1
    busy = client.get("/busy?token=secret", headers=headers)
    body = _checked(busy, 503, "temporary")
    assert busy.headers["Retry-After"] == "5" and body["instance"] == "/busy"
    assert body["session"] == {"status": "error", "state": "error", "error_count": 2}
    _checked(client.get("/friendly", headers=headers), 500, APP_ERROR)


def _disconnect(manager: SessionManager, sid: str) -> None:
    for _ in range(manager.policy.error_threshold):
        manager.record_error(sid, "backend down")


def _refusals(
    adapter: str, manager: SessionManager, clock: FakeClock
) -> Iterator[tuple[TestResponse, int, str]]:
    client = _client(adapter, manager)
    sid = _established(client)
    _disconnect(manager, sid)
    yield client.get("/api", headers={"Accept": MEDIA_TYPE}), 503, "session-disconnected"
    yield client.get("/api", headers={"X-Session-ID": sid}), 503, "session-disconnected"  # no Accept
    clock.advance(31 * 60)
    yield client.get("/api", headers={"Accept": MEDIA_TYPE}), 401, "session-expired"
    other = _client(adapter, manager)
    lost = _established(other)
    assert manager.delete_session(lost)
    clock.advance(31 * 60)
    yield other.get("/api", headers={"Accept": "application/json"}), 401, "session-not-found"


def test_every_refusal_is_a_problem_document(adapter: str, manager: SessionManager, clock: FakeClock) -> None:
    seen = []
    for response, status, situation in _refusals(adapter, manager, clock):
        body = _checked(response, status, situation)
        assert body["instance"] == "/api"
        seen.append((situation, body["session"]["status"], "reconnect" in body))
    assert seen == [
        ("session-disconnected", "disconnected", True),
        ("session-disconnected", "disconnected", True),
        ("session-expired", "expired", False),  # replaced by a fresh session: nothing to reconnect
        ("session-not-found", "not_found", False),
    ]


def test_a_browser_gets_the_html_page(adapter: str, manager: SessionManager) -> None:
    client = _client(adapter, manager)
    _established(client)
    for accept in ("text/html,application/xhtml+xml,*/*;q=0.8", f"text/html, {MEDIA_TYPE};q=0.9"):
        page = client.get("/boom", headers={"Accept": accept})
        assert page.status_code == 500 and page.headers["Content-Type"].startswith("text/html")
        assert page.headers["Content-Language"] == "en"


@pytest.mark.parametrize(
    ("method", "path", "status", "situation", "allow"),
    [
        ("GET", "/_sessionmw/nothing", 404, "endpoint-not-found", None),
        ("GET", "/_sessionmw/reconnect", 405, "method-not-allowed", "POST"),
        ("POST", "/_sessionmw/health", 405, "method-not-allowed", "GET, HEAD"),
    ],
)
def test_the_endpoints_errors_are_problem_documents(
    manager: SessionManager, method: str, path: str, status: int, situation: str, allow: str | None
) -> None:
    """The WSGI middleware's endpoints (a Flask app routes them itself: its own 404 and 405)."""
    response = _client("wsgi", manager).open(path, method=method)
    body = _checked(response, status, situation)
    assert response.headers.get("Allow") == allow and body["instance"] == path


# -- the deprecated shape ----------------------------------------------------------------------


def test_the_old_shape_is_deprecated_and_still_there(adapter: str, manager: SessionManager) -> None:
    with pytest.deprecated_call(match="problem_json=False"):
        client = _client(adapter, manager, problem_json=False)
    _established(client)
    response = client.get("/busy", headers={"Accept": "application/json"})
    assert (response.status_code, response.headers["Content-Type"]) == (503, "application/json")
    assert set(response.get_json()) == {
        "title", "message", "recovery", "severity", "transient", "status", "context", "retry_after"
    }
    assert response.get_json()["message"] == "⚠️ A temporary problem stopped your request"


def test_the_old_shape_of_refusals_and_endpoints(manager: SessionManager) -> None:
    with pytest.deprecated_call():
        client = _client("wsgi", manager, problem_json=False)
    sid = _established(client)
    _disconnect(manager, sid)
    body = client.get("/api", headers={"Accept": "application/json"}).get_json()
    assert (body["status"], body["reconnect"]) == ("disconnected", "/_sessionmw/reconnect")
    missing = client.get("/_sessionmw/nothing")
    assert (missing.status_code, missing.get_json()["status"]) == (404, "not_found")
    wrong = client.get("/_sessionmw/reconnect")
    assert wrong.get_json() == {"status": "method_not_allowed", "message": "Use POST."}


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("off", False), ("yes", True), ("", True)])
def test_the_environment_chooses_the_shape(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("SESSIONMW_PROBLEM_JSON", value)
    if expected:
        assert Options.build(secret_key="k").problem_json is True
    else:
        with pytest.deprecated_call():
            assert Options.build(secret_key="k").problem_json is False


def test_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="problem_json='maybe'"):
        Options.build(secret_key="k", problem_json="maybe")
    monkeypatch.setenv("SESSIONMW_PROBLEM_JSON", "perhaps")
    with pytest.raises(ConfigurationError, match="problem_json='perhaps'"):
        Options.build(secret_key="k")
    with pytest.raises(ConfigurationError, match="problem_json=1"):
        Options(problem_json=1)  # type: ignore[arg-type]


class _DownStore(MemoryStore):
    """A memory store whose every update fails as if the server were unreachable."""

    def update(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("connection refused")


def test_the_store_down_is_a_problem_document_without_a_session(adapter: str, clock: FakeClock) -> None:
    manager = SessionManager(store=_DownStore(), clock=clock, on_store_error="fail_closed")
    client = _client(adapter, manager)
    client.set_cookie("sessionmw", "some-session-id")
    body = _checked(client.get("/api", headers={"Accept": MEDIA_TYPE}), 503, "store-unavailable")
    assert "session" not in body and "connection refused" not in json.dumps(body)


def test_the_language_comes_from_one_place(adapter: str, manager: SessionManager) -> None:
    """SessionGate.language decides Content-Language for every answer (refusal, error, endpoint)."""
    client = _client(adapter, manager)
    gate = (
        client.application.gate  # type: ignore[attr-defined]
        if adapter == "wsgi"
        else client.application.extensions["sessionmw"].gate  # type: ignore[attr-defined]
    )
    gate.language = lambda request: "de"
    sid = _established(client)
    assert client.get("/boom", headers={"Accept": MEDIA_TYPE}).headers["Content-Language"] == "de"
    assert client.get("/boom").headers["Content-Language"] == "de"  # the HTML page too
    _disconnect(manager, sid)
    assert client.get("/api", headers={"Accept": MEDIA_TYPE}).headers["Content-Language"] == "de"
    if adapter == "wsgi":
        assert client.get("/_sessionmw/nothing").headers["Content-Language"] == "de"


def _documented_statuses() -> dict[str, int]:
    page = (ROOT / "docs" / "api-clients.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \| (\d{3}) \|", page, re.MULTILINE)
    return {name: int(code) for name, code in rows}


def test_the_documented_status_of_every_situation_is_the_one_sent() -> None:
    documented = _documented_statuses()
    sent: dict[str, int] = {}
    for _matcher, entry in translations():
        err = UserFacingError(
            entry.message, transient=entry.transient, status=entry.status, situation=entry.situation
        )
        sent[str(entry.situation)] = user_error_response(err, as_json=True).status_code
    for status, state in [
        ("expired", "expired"),
        ("expired", "ended"),
        ("not_found", None),
        ("disconnected", "disconnected"),
        ("error", "error"),
        ("idle", "idle"),
    ]:
        report = HealthReport(
            status=status, state=state, session_id="s", message="m", title="t", recovery=[], context=""
        )
        err = UserFacingError.from_health(report)
        sent[str(err.situation)] = user_error_response(err, as_json=True).status_code
    sent["service-paused"] = user_error_response(BreakerOpenError("b", "prices", 3), as_json=True).status_code
    sent[APP_ERROR] = user_error_response(UserFacingError("x"), as_json=True).status_code
    sent["unexpected"] = user_error_response(translate(RuntimeError()), as_json=True).status_code
    sent |= {"endpoint-not-found": 404, "method-not-allowed": 405}  # the gate's (tested above)
    assert sent == documented


def test_an_app_mounted_below_the_root_names_its_own_paths(manager: SessionManager) -> None:
    """``instance`` and ``reconnect`` start with the mount point (``SCRIPT_NAME``)."""
    client = Client(SessionMiddleware(_wsgi_app, manager=manager, secret_key=SECRET))
    sid = _established(client)
    _disconnect(manager, sid)
    refused = client.get("/orders", headers={"Accept": MEDIA_TYPE}, base_url="http://localhost/shop")
    body = _checked(refused, 503, "session-disconnected")
    assert (body["instance"], body["reconnect"]) == ("/shop/orders", "/shop/_sessionmw/reconnect")
