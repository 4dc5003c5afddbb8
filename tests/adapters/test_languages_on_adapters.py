"""The adapters answer in the language of the browser that asked: the WSGI middleware's and the
Flask extension's error pages, JSON refusals and health, the Flask banner, the Dash banner; with
``Content-Language`` on what sessionmw writes, and English again once the request is over."""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from flask import Flask, render_template_string
from werkzeug.test import Client

from sessionmw import SessionManager, translate
from sessionmw._errors import ConfigurationError
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.options import Options
from sessionmw.integrations.wsgi import SessionMiddleware, banner_for
from sessionmw.testing import FakeClock
from sessionmw.texts import ASKED

THRESHOLD = 2


@pytest.fixture(name="sessions")
def _sessions() -> Iterator[SessionManager]:
    manager = SessionManager(store="memory://", clock=FakeClock(1000.0), max_error_threshold=THRESHOLD)
    yield manager
    manager.close()


def _failing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/boom":
        raise TimeoutError("the prices service took 30 s")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine"]


def _middleware(sessions: SessionManager, **options: Any) -> Client:
    return Client(SessionMiddleware(_failing_app, manager=sessions, secret_key="test", **options))


def _disconnected(sessions: SessionManager) -> str:
    sid = sessions.create_session().session_id
    for _ in range(THRESHOLD):
        sessions.record_error(sid, ConnectionError("down"))
    assert sessions.check_health(sid).status == "disconnected"
    return sid


# -- the WSGI middleware ------------------------------------------------------------------------


def test_the_error_page_speaks_the_browsers_language(sessions: SessionManager) -> None:
    client = _middleware(sessions)
    answer = client.get("/boom", headers={"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.5"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 503
    assert answer.headers["Content-Language"] == "fr"
    assert '<html lang="fr">' in page
    assert "Délai de la demande dépassé" in page
    assert "Retour à la page" in page
    assert "Request timed out" not in page and "Back to the page" not in page


def test_a_json_refusal_speaks_the_clients_language(sessions: SessionManager) -> None:
    sid = _disconnected(sessions)
    client = _middleware(sessions)
    headers = {"Accept": "application/json", "Accept-Language": "de", "X-Session-ID": sid}
    answer = client.get("/", headers=headers)
    body = answer.get_json()
    assert answer.status_code == 503
    assert answer.headers["Content-Language"] == "de"
    assert body["title"] == "Sitzung getrennt"
    assert body["recovery"][0].startswith("Klicken Sie auf „Neu verbinden“")


def test_the_health_endpoint_speaks_the_clients_language(sessions: SessionManager) -> None:
    sid = _disconnected(sessions)
    answer = _middleware(sessions).get(
        "/_sessionmw/health", headers={"Accept-Language": "es", "X-Session-ID": sid}
    )
    assert answer.headers["Content-Language"] == "es"
    session = answer.get_json()["session"]
    assert session["title"] == "Sesión desconectada"
    assert session["statement"]["title"] == "Sesión desconectada"


@pytest.mark.parametrize("header", ["", ";;;=,", "de;q=oops", "\u2603", "x" * 5000])
def test_a_malformed_accept_language_gets_the_default_never_an_error(
    sessions: SessionManager, header: str
) -> None:
    answer = _middleware(sessions).get("/boom", headers={"Accept-Language": header})
    assert answer.status_code == 503
    assert answer.headers["Content-Language"] == "en"
    assert "Request timed out" in answer.get_data(as_text=True)


def test_the_first_configured_language_is_the_default(sessions: SessionManager) -> None:
    client = _middleware(sessions, languages=("de", "en"))
    answer = client.get("/boom", headers={"Accept-Language": "fr"})  # not offered here
    assert answer.headers["Content-Language"] == "de"
    assert "Zeitüberschreitung der Anfrage" in answer.get_data(as_text=True)


def test_the_apps_selector_decides_before_the_header(sessions: SessionManager) -> None:
    def selector(request: Any) -> str | None:
        return "es" if request.path == "/boom" else None

    answer = _middleware(sessions, language_selector=selector).get("/boom", headers={"Accept-Language": "de"})
    assert answer.headers["Content-Language"] == "es"


def test_the_apps_own_responses_are_left_alone(sessions: SessionManager) -> None:
    answer = _middleware(sessions).get("/", headers={"Accept-Language": "de"})
    assert answer.get_data() == b"fine"
    assert "Content-Language" not in answer.headers


def test_after_a_request_sessionmw_writes_english_again(sessions: SessionManager) -> None:
    _middleware(sessions).get("/boom", headers={"Accept-Language": "de"})
    assert translate(TimeoutError()).title == "Request timed out"


def _speaking_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Says what the language machinery holds while the app runs, and sessionmw's words there."""
    asked = ASKED.get()
    said = {
        "asked": None if asked is None else repr(asked[1]),
        "title": translate(TimeoutError()).title,
        "banner": banner_for(environ),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(said).encode()]


def test_a_request_sets_no_context_variable_for_its_language(sessions: SessionManager) -> None:
    """The speed budget (issue 28): a request's language rides in its session scope, so the
    request path sets no context variable of its own; the app's words still speak it."""
    client = Client(SessionMiddleware(_speaking_app, manager=sessions, secret_key="test"))
    # A fresh context, as a server thread's: nothing left by other tests.
    answer = contextvars.Context().run(client.get, "/", headers={"Accept-Language": "de"})
    said = answer.get_json()
    assert said["asked"] is None
    assert said["title"] == "Zeitüberschreitung der Anfrage"


def test_an_expired_sessions_notice_speaks_the_browsers_language(sessions: SessionManager) -> None:
    """The notice is made by the store's answer before the scope opens: its words are made
    again in the request's language (the refusal path only)."""
    sid = sessions.create_session().session_id
    cast(FakeClock, sessions.clock).advance(31 * 60)
    client = Client(SessionMiddleware(_speaking_app, manager=sessions, secret_key="test"))
    client.set_cookie("sessionmw", sid)
    said = client.get("/", headers={"Accept-Language": "de", "Accept": "text/html"}).get_json()
    assert "Sitzung abgelaufen" in said["banner"]
    assert "Ihre Sitzung ist wegen Inaktivität abgelaufen" in said["banner"]
    assert "Session expired" not in said["banner"]


def test_a_refusals_language_does_not_outlive_its_request(sessions: SessionManager) -> None:
    """A refusal asks for its language outside the scope; the next request in the same context
    (a server thread's) speaks its own, and sessionmw writes English after it."""
    sid = _disconnected(sessions)
    client = _middleware(sessions)

    def two_requests() -> tuple[Any, Any]:
        refused = client.get(
            "/", headers={"Accept": "application/json", "Accept-Language": "de", "X-Session-ID": sid}
        )
        page = client.get("/boom", headers={"Accept-Language": "fr"})
        return refused, page

    refused, page = contextvars.Context().run(two_requests)
    assert refused.get_json()["title"] == "Sitzung getrennt"
    assert page.headers["Content-Language"] == "fr"
    assert "Délai de la demande dépassé" in page.get_data(as_text=True)
    assert translate(TimeoutError()).title == "Request timed out"


def test_a_language_without_a_catalogue_is_a_configuration_error(
    sessions: SessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="no catalogue for language 'it'"):
        SessionMiddleware(_failing_app, manager=sessions, secret_key="test", languages=["de", "it"])
    monkeypatch.setenv("SESSIONMW_LANGUAGES", "fr, en")
    middleware = SessionMiddleware(_failing_app, manager=sessions, secret_key="test")
    assert middleware.gate.options.languages == ("fr", "en")


# -- the Flask extension ------------------------------------------------------------------------


def _flask(sessions: SessionManager, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)

    @app.get("/")
    def page() -> str:
        return render_template_string("<main>{{ sessionmw_banner() }}</main>")

    @app.get("/boom")
    def boom() -> str:
        raise TimeoutError("slow")

    SessionMW(app, manager=sessions, secret_key="test")
    return app


def test_the_flask_banner_speaks_the_browsers_language(sessions: SessionManager) -> None:
    sid = _disconnected(sessions)
    client = _flask(sessions).test_client()
    client.set_cookie("sessionmw", sid)
    page = client.get("/", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Sitzung getrennt" in page
    assert ">Neu verbinden</button>" in page


def test_a_flask_request_sets_no_context_variable_for_its_language(sessions: SessionManager) -> None:
    """The speed budget, on the Flask extension: the language rides in the session scope."""
    app = _flask(sessions)

    @app.get("/said")
    def said() -> dict[str, Any]:
        asked = ASKED.get()
        return {"asked": asked is not None and asked[1] is not None, "title": translate(TimeoutError()).title}

    answer = contextvars.Context().run(app.test_client().get, "/said", headers={"Accept-Language": "de"})
    assert answer.get_json() == {"asked": False, "title": "Zeitüberschreitung der Anfrage"}


def test_flask_config_keys_choose_the_languages(sessions: SessionManager) -> None:
    app = _flask(sessions, SESSIONMW_LANGUAGES="es,en", SESSIONMW_LANGUAGE_SELECTOR=lambda request: None)
    answer = app.test_client().get("/boom", headers={"Accept-Language": "de"})
    assert answer.headers["Content-Language"] == "es"


def test_the_flask_extension_uses_the_apps_flask_babel_locale(sessions: SessionManager) -> None:
    flask_babel = pytest.importorskip("flask_babel")
    app = _flask(sessions)
    flask_babel.Babel(app, locale_selector=lambda: "fr")
    answer = app.test_client().get("/boom", headers={"Accept-Language": "de"})
    assert answer.headers["Content-Language"] == "fr"
    assert "Délai de la demande dépassé" in answer.get_data(as_text=True)


def test_without_flask_babel_on_the_app_the_header_decides(sessions: SessionManager) -> None:
    answer = _flask(sessions).test_client().get("/boom", headers={"Accept-Language": "es"})
    assert answer.headers["Content-Language"] == "es"


# -- the Dash banner ----------------------------------------------------------------------------


def test_the_dash_banner_speaks_the_language_of_the_browser_that_loaded_the_page(
    sessions: SessionManager,
) -> None:
    dash = pytest.importorskip("dash")
    from sessionmw.integrations.dash import SessionMWDash

    app = dash.Dash(__name__)
    app.layout = dash.html.Div([dash.html.Div(id="out")])
    SessionMWDash(app, manager=sessions)
    client = app.server.test_client()
    german = json.dumps(client.get("/_dash-layout", headers={"Accept-Language": "de"}).get_json())
    french = json.dumps(client.get("/_dash-layout", headers={"Accept-Language": "fr"}).get_json())
    english = json.dumps(client.get("/_dash-layout").get_json())
    assert '"Neu verbinden"' in german and '"Schlie\\u00dfen"' in german
    assert "Der Server ist im Moment nicht erreichbar." in str(json.loads(german))
    assert '"Reconnecter"' in french and '"Reconnect"' not in french
    assert '"Reconnect"' in english and '"Dismiss"' in english


def test_two_page_loads_in_two_languages_at_once_each_get_their_own_labels(
    sessions: SessionManager,
) -> None:
    """The app's own banner is one object of one layout, served to every page load: each load's
    labels are its own (not written into the shared layout, where a concurrent load in another
    language could swap them). Both loads have had their words written (the barrier, in a layout
    hook after sessionmw's) before either is serialised."""
    dash = pytest.importorskip("dash")
    from sessionmw.integrations.dash import SessionMWDash
    from sessionmw.integrations.dash_banner import status_banner

    app = dash.Dash(__name__)
    app.layout = dash.html.Div([status_banner(), dash.html.Div(id="out")])
    SessionMWDash(app, manager=sessions)
    both_spoken = threading.Barrier(2, timeout=60)

    def after_sessionmws(layout: Any) -> Any:
        both_spoken.wait()
        return layout

    dash.hooks.layout()(after_sessionmws)
    pages: dict[str, str] = {}

    def load(code: str) -> None:
        answer = app.server.test_client().get("/_dash-layout", headers={"Accept-Language": code})
        pages[code] = json.dumps(answer.get_json())

    try:
        threads = [threading.Thread(target=load, args=(code,)) for code in ("de", "fr")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        hooks = dash.hooks._ns.get("layout", [])
        hooks[:] = [hook for hook in hooks if hook.func is not after_sessionmws]
    assert '"Neu verbinden"' in pages["de"] and '"Reconnecter"' not in pages["de"]
    assert '"Reconnecter"' in pages["fr"] and '"Neu verbinden"' not in pages["fr"]
    english = json.dumps(app.server.test_client().get("/_dash-layout").get_json())
    assert '"Reconnect"' in english and '"Dismiss"' in english


# -- the options ---------------------------------------------------------------------------------


def test_defaults_offer_every_available_language_english_first() -> None:
    options = Options.build(secret_key="test")
    assert options.languages is None
    negotiator = options.negotiator()
    assert negotiator.languages[0] == "en"
    assert set(negotiator.languages) >= {"en", "de", "fr", "es"}


def test_languages_are_read_as_a_list_or_a_comma_separated_string() -> None:
    assert Options.build(secret_key="test", languages="de, en").languages == ("de", "en")
    assert Options.build(secret_key="test", languages=["fr"]).languages == ("fr",)


def test_the_environment_names_the_languages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONMW_LANGUAGES", "es,en")
    assert Options.build(secret_key="test").languages == ("es", "en")
    assert Options.build(secret_key="test", languages=["de"]).languages == ("de",)  # the argument wins


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"languages": ["de", "xx"]}, "no catalogue for language 'xx'"),
        ({"languages": []}, "at least one"),
        ({"language_selector": "de"}, "language_selector must be callable"),
    ],
)
def test_a_bad_language_option_is_refused_naming_it(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Options.build(secret_key="test", **options)
