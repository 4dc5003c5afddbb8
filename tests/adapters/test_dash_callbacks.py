# mypy: disable-error-code="untyped-decorator"
# Dash's decorators (dash.hooks.layout, app.callback) are untyped: the callbacks below are written
# the way users write them.
"""The Dash integration inside a host app: every kind of layout, other layout hooks, several apps on
one server, the app's own ``on_error``, Dash's own callback behaviours and debug mode."""

from __future__ import annotations

import html as html_module
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dash
import pytest
from dash import MATCH, Input, Output, html
from flask.testing import FlaskClient
from support.dash import (
    DASH_CONFIG,
    THRESHOLD,
    alert_shown,
    error_count,
    fire,
    loaded_client,
    page_stub,
    post_callback,
    said,
    session_client,
    side_updates,
)
from support.servers import session_cookie

from sessionmw import DataLoadError, SessionManager, TransientError
from sessionmw.integrations.dash import SessionMWDash
from sessionmw.integrations.dash_banner import (
    ALERT_ID,
    HEALTH_STORE_ID,
    status_banner,
)
from sessionmw.integrations.dash_callbacks import guarded_callback
from sessionmw.integrations.problem import problem_errors
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.translation import translate

# -- helpers ------------------------------------------------------------------------------------


# -- every kind of layout: the banner's callbacks are valid -------------------------------------


# -- other layout hooks -------------------------------------------------------------------------


# -- several Dash apps on one Flask server ------------------------------------------------------


# -- guarded_callback: the bare form, on_error, Dash's own behaviours ---------------------------


def _app(sessions: SessionManager, **options: Any) -> dash.Dash:
    app = dash.Dash(__name__, **options.pop("dash", {}))
    app.layout = html.Div([status_banner(), *page_stub(), html.Div(id="other")])
    SessionMWDash(app, manager=sessions, **options)
    return app


def test_bare_guarded_callback_beneath_app_callback(sessions: SessionManager) -> None:
    """``@app.callback(...)`` over a bare ``@guarded_callback``: results pass, failures show the alert."""
    app = _app(sessions)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"), prevent_initial_call=True)
    @guarded_callback
    def run_backtest(n_clicks: int) -> str:
        if n_clicks > 1:
            raise DataLoadError("prices.csv is corrupt")
        return f"ran {n_clicks}"

    client = session_client(app.server)
    status, body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert (status, body["response"]["out"]["children"]) == (200, "ran 1")
    status, body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 2)])
    assert status == 200 and alert_shown(body)
    assert translate(DataLoadError("x")).title in json.dumps(body, ensure_ascii=False)
    assert "out" not in body.get("response", {})
    assert error_count(sessions, client) == 1


def test_bare_guarded_callback_with_options(sessions: SessionManager) -> None:
    """``@guarded_callback(clears_alert=False)`` beneath ``@app.callback`` guards without registering."""
    app = _app(sessions)
    before = len(app.callback_map)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    @guarded_callback(clears_alert=False)
    def quiet(n_clicks: int | None) -> str:
        return "fine"

    assert len(app.callback_map) == before + 1
    status, body = post_callback(
        session_client(app.server), app, [("out", "children")], [("go", "n_clicks", 1)]
    )
    assert status == 200 and ALERT_ID not in body.get("sideUpdate", {})


def test_guarded_callback_app_without_arguments_is_refused() -> None:
    """app= without the callback's arguments would register nothing: a clear error."""
    with pytest.raises(ValueError, match="Output and Input"):
        guarded_callback(app=dash.Dash(__name__))
    with pytest.raises(ValueError, match="Output and Input"):
        guarded_callback(lambda clicks: clicks, app=dash.Dash(__name__))


@pytest.mark.parametrize("form", ["registering", "bare"])
def test_guarded_callback_chains_its_on_error(sessions: SessionManager, form: str) -> None:
    """on_error= runs after the alert, with the exception; what it returns becomes the outputs."""
    app = _app(sessions)
    handled: list[Exception] = []

    def on_error(exc: Exception) -> str:
        handled.append(exc)
        return "handled by the app"

    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    if form == "registering":
        guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app, on_error=on_error)(fail)
    else:
        app.callback(Output("out", "children"), Input("go", "n_clicks"))(
            guarded_callback(on_error=on_error)(fail)
        )
    client = session_client(app.server)
    status, body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200
    assert [type(exc) for exc in handled] == [DataLoadError]
    assert body["response"]["out"]["children"] == "handled by the app"
    assert alert_shown(body)
    assert error_count(sessions, client) == 1


def test_guard_all_runs_the_apps_on_error_after_the_alert(sessions: SessionManager) -> None:
    """guard_all with Dash(on_error=...): the alert, then the app's handler, whose value is the output."""
    handled: list[Exception] = []

    def on_error(exc: Exception) -> str:
        handled.append(exc)
        return "handled by the app"

    app = _app(sessions, guard_all=True, dash={"on_error": on_error})

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    client = session_client(app.server)
    status, body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and len(handled) == 1
    assert body["response"]["out"]["children"] == "handled by the app"
    assert alert_shown(body)
    assert error_count(sessions, client) == 1


def test_guard_all_leaves_a_callbacks_own_on_error_alone(sessions: SessionManager) -> None:
    """As Dash documents, a callback's own on_error replaces the app-level one (guard_all's included)."""
    app = _app(sessions, guard_all=True)
    handled: list[Exception] = []

    def on_error(exc: Exception) -> str:
        handled.append(exc)
        return "handled here"

    @app.callback(Output("out", "children"), Input("go", "n_clicks"), on_error=on_error)
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    client = session_client(app.server)
    status, body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and len(handled) == 1
    assert body["response"]["out"]["children"] == "handled here"
    assert not alert_shown(body)
    assert error_count(sessions, client) == 0


def test_prevent_update_and_no_update_pass_through(sessions: SessionManager) -> None:
    """PreventUpdate is Dash's 204 and no error; no_update leaves the output alone."""
    app = _app(sessions, guard_all=True)

    @guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)
    def maybe(n_clicks: int | None) -> Any:
        if n_clicks == 1:
            raise dash.exceptions.PreventUpdate
        return dash.no_update

    client = session_client(app.server)
    status, _body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 204
    status, body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 2)])
    assert status == 200 and "out" not in body.get("response", {})
    assert error_count(sessions, client) == 0


def test_pattern_matching_callbacks_are_guarded(sessions: SessionManager) -> None:
    """A MATCH callback works through the guard; its failure shows the alert."""
    app = dash.Dash(__name__)
    app.layout = html.Div(
        [html.Button(id={"type": "go", "index": 1}), html.Div(id={"type": "out", "index": 1})]
    )
    SessionMWDash(app, manager=sessions)

    @app.callback(
        Output({"type": "out", "index": MATCH}, "children"), Input({"type": "go", "index": MATCH}, "n_clicks")
    )
    @guarded_callback
    def per_row(n_clicks: int | None) -> str:
        if n_clicks == 2:
            raise DataLoadError("row 1 is corrupt")
        return f"row {n_clicks}"

    client = session_client(app.server)
    out, go = {"index": 1, "type": "out"}, {"index": 1, "type": "go"}
    key = next(iter(key for key in app.callback_map if "MATCH" in key))
    payload = {
        "output": key,
        "outputs": {"id": out, "property": "children"},
        "inputs": [{"id": go, "property": "n_clicks", "value": 1}],
        "state": [],
        "changedPropIds": [json.dumps(go, separators=(",", ":")) + ".n_clicks"],
    }
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200
    assert response.get_json()["response"]['{"index":1,"type":"out"}']["children"] == "row 1"
    payload["inputs"] = [{"id": go, "property": "n_clicks", "value": 2}]
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200 and alert_shown(response.get_json())


def test_set_props_and_running_are_untouched(sessions: SessionManager) -> None:
    """The callback's own set_props reach the page beside ours; running= is still sent to the browser."""
    app = _app(sessions)

    @guarded_callback(
        Output("out", "children"),
        Input("go", "n_clicks"),
        app=app,
        running=[(Output("go", "disabled"), True, False)],
    )
    def with_side_effects(n_clicks: int | None) -> str:
        dash.set_props("other", {"children": "set by the callback"})
        return "done"

    client = session_client(app.server)
    status, body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200
    assert body["sideUpdate"]["other"] == {"children": "set by the callback"}
    assert body["response"]["out"]["children"] == "done"
    callbacks = client.get("/_dash-dependencies").get_json()
    running = [cb["running"] for cb in callbacks if cb["output"] == "out.children"]
    assert running == [{"running": {"go.disabled": True}, "runningOff": {"go.disabled": False}}]


def test_a_guarded_callback_without_outputs_fails_gracefully(sessions: SessionManager) -> None:
    """A set_props-only callback (no Output) that raises gets the alert, not Dash's 500."""
    app = _app(sessions)
    before = set(app.callback_map)

    @app.callback(Input("go", "n_clicks"))
    @guarded_callback
    def only_side_effects(n_clicks: int | None) -> None:
        raise DataLoadError("prices.csv is corrupt")

    client = session_client(app.server)
    (key,) = set(app.callback_map) - before
    payload = {
        "output": key,
        "outputs": [],
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "state": [],
        "changedPropIds": ["go.n_clicks"],
    }
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200 and alert_shown(response.get_json())
    assert error_count(sessions, client) == 1


# -- debug mode: the developer sees the traceback -----------------------------------------------


def _debug_app(sessions: SessionManager, **options: Any) -> dash.Dash:
    app = _app(sessions, **options)
    app.enable_dev_tools(debug=True, dev_tools_hot_reload=False)  # what app.run(debug=True) does
    return app


def test_guard_all_in_debug_mode_lets_devtools_show_the_traceback(sessions: SessionManager) -> None:
    """With the dev tools on, guard_all records the error and raises it again: Dash answers with
    its traceback (what the dev tools show), not with our alert."""
    app = _debug_app(sessions, guard_all=True)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    client = session_client(app.server)
    response = client.post(
        "/_dash-update-component",
        json={
            "output": "out.children",
            "outputs": {"id": "out", "property": "children"},
            "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
            "state": [],
            "changedPropIds": ["go.n_clicks"],
        },
    )
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "DataLoadError" in text and "prices.csv is corrupt" in text and "def fail" in text
    assert error_count(sessions, client) == 1


def test_guarded_callback_in_debug_mode_lets_devtools_show_the_traceback(sessions: SessionManager) -> None:
    """The same for a guarded callback: the dev tools get Dash's traceback."""
    app = _debug_app(sessions)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    @guarded_callback
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    client = session_client(app.server)
    status, _body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 500
    assert error_count(sessions, client) == 1


def test_debug_mode_with_the_apps_on_error_keeps_the_apps_choice(sessions: SessionManager) -> None:
    """In debug mode an app-level on_error still handles the error, as without sessionmw."""
    app = _debug_app(sessions, guard_all=True, dash={"on_error": lambda exc: "handled"})

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    status, body = post_callback(
        session_client(app.server), app, [("out", "children")], [("go", "n_clicks", 1)]
    )
    assert status == 200 and body["response"]["out"]["children"] == "handled"


def test_production_mode_keeps_the_friendly_alert(sessions: SessionManager) -> None:
    """Without the dev tools, guard_all answers with the alert and no exception text."""
    app = _app(sessions, guard_all=True)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    status, body = post_callback(
        session_client(app.server), app, [("out", "children")], [("go", "n_clicks", 1)]
    )
    assert status == 200 and alert_shown(body)
    assert "prices.csv" not in json.dumps(body)


def test_handle_callback_error_as_a_callbacks_own_on_error(sessions: SessionManager) -> None:
    """handle_callback_error works as one callback's on_error: the alert, outputs unchanged."""
    from sessionmw.integrations.dash_callbacks import handle_callback_error

    app = _app(sessions)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"), on_error=handle_callback_error)
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    client = session_client(app.server)
    status, body = post_callback(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and alert_shown(body) and "out" not in body.get("response", {})
    assert error_count(sessions, client) == 1


def _background_manager(folder: Path) -> tuple[Any, Any]:
    """Dash's ``DiskcacheManager`` (its jobs run in their own processes) and its cache.

    The cache counts the jobs' ``set_props`` writes (made in their own processes, counted in the
    cache). The manager has a race of its poll closed (docs/dash.md, known limitations): a poll
    reads no result yet, the job writes it and exits, and the poll then takes the job for
    cancelled. Here a job whose result waits still counts as running.
    """
    import diskcache  # type: ignore[import-untyped]

    class Cache(diskcache.Cache):  # type: ignore[misc]  # untyped
        def set(self, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(key, str) and key.endswith("-set_props"):
                self.incr("set_props writes")
            return super().set(key, value, *args, **kwargs)

    untyped: Any = dash.DiskcacheManager  # its methods are untyped in Dash

    class Manager(untyped):  # type: ignore[misc]
        polled: Any = None

        def get_result(self, key: Any, job: Any) -> Any:
            self.polled = key
            return super().get_result(key, job)

        def job_running(self, job: Any) -> bool:
            if super().job_running(job):
                return True
            # Gone: its result, if it wrote one before going, is read by the next poll.
            return self.polled is not None and bool(self.result_ready(self.polled))

    cache = Cache(str(folder / "cache"))
    return Manager(cache), cache


def _end_id(client: FlaskClient) -> str:
    """The page's ``endId`` (Dash's handle for its background jobs), from a page load."""
    page = client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)
    match = DASH_CONFIG.search(page)
    assert match is not None
    end_id: str = json.loads(html_module.unescape(match.group(1)))["end_id"]
    return end_id


def _run_job(client: FlaskClient, end_id: str, clicks: int) -> dict[str, Any]:
    """Click "go" ``clicks`` times' worth: start the background job of ``out.children`` and poll
    it, as the renderer does, until it ends; the ``response`` and the ``sideUpdate`` it brought.

    Set_props may come before the result. A 204 ends the job with nothing to update, as in the
    renderer: a poll that falls between the job's set_props and its result delivers the
    set_props, and the result (no_update) then comes alone, as a 204.
    """
    from dash.testing import wait

    payload = {
        "output": "out.children",
        "outputs": {"id": "out", "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": clicks}],
        "state": [],
        "changedPropIds": ["go.n_clicks"],
    }
    job = client.post(f"/_dash-update-component?endId={end_id}", json=payload).get_json()
    poll = f"/_dash-update-component?cacheKey={job['cacheKey']}&job={job['job']}&endId={end_id}"
    answer: dict[str, Any] = {"sideUpdate": {}}

    def finished() -> bool:
        polled = client.post(poll, json=payload)
        if polled.status_code == 204:
            answer["response"] = {}
            return True
        body = polled.get_json(silent=True) or {}
        answer["sideUpdate"].update(body.get("sideUpdate", {}))
        if "response" in body:
            answer["response"] = body["response"]
        return "response" in answer

    until: Callable[..., object] = wait.until  # untyped in Dash
    until(finished, timeout=60)
    return answer


def _background_app(manager: SessionManager, background: Any, use_async: bool) -> dash.Dash:
    """An app whose guarded background callback fails on the second click."""
    app = _app(manager, dash={"background_callback_manager": background, "use_async": use_async})

    @app.callback(Output("out", "children"), Input("go", "n_clicks"), background=True)
    @guarded_callback
    def slow(n_clicks: int | None) -> str:
        if n_clicks == 2:
            raise DataLoadError("prices.csv is corrupt")
        return f"background {n_clicks}"

    return app


@pytest.mark.parametrize("use_async", [False, True], ids=["sync-endpoints", "async-endpoints"])
def test_background_callbacks_are_guarded(sessions: SessionManager, tmp_path: Path, use_async: bool) -> None:
    """A guarded background callback (DiskcacheManager, its own process) returns its result; its
    failure leaves the outputs alone and tells the page, with no exception text. On Dash's sync
    endpoints and on its async ones (asgiref installed).

    Each job makes one ``set_props``, the banner's report: Dash's manager keeps one per job
    between two polls, and one written while a poll reads and clears them is lost.
    """
    background, cache = _background_manager(tmp_path)
    client = session_client(_background_app(sessions, background, use_async).server)
    end_id = _end_id(client)
    answers: dict[int, dict[str, Any]] = {}
    for clicks in (1, 2):
        answers[clicks] = _run_job(client, end_id, clicks)
        assert cache.get("set_props writes") == clicks  # one per job
    assert answers[1]["response"]["out"]["children"] == "background 1"
    assert answers[1]["sideUpdate"] == {
        "sessionmw-health": {"data": {"status": "healthy", "healthy": True, "statement": None}}
    }
    failed = answers[2]
    assert "out" not in failed["response"]
    assert list(failed["sideUpdate"]) == ["sessionmw-health"]
    assert failed["sideUpdate"]["sessionmw-health"]["data"]["status"] == "error"
    assert "prices.csv" not in json.dumps(failed)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync-endpoints", "async-endpoints"])
def test_a_background_job_counts_its_own_outcome(tmp_path: Path, use_async: bool) -> None:
    """The job records its failure, or its success, where it runs. The requests around it (the
    one that starts it, the polls that bring its result, all answered 200) only carry the job:
    they neither clear a failure nor count as a success, so repeated failing jobs add up as
    repeated failing callbacks do, and the next job that succeeds clears them.

    On an SQLite store, which the job's process shares (a memory store is copied into it).
    """
    sessions = SessionManager(store=f"sqlite:///{tmp_path / 'sessions.db'}", max_error_threshold=3)
    try:
        background, _cache = _background_manager(tmp_path)
        client = session_client(_background_app(sessions, background, use_async).server)
        end_id = _end_id(client)
        assert _run_job(client, end_id, 1)["response"]["out"]["children"] == "background 1"
        assert error_count(sessions, client) == 0
        for failures in (1, 2):
            failed = _run_job(client, end_id, 2)
            assert failed["sideUpdate"]["sessionmw-health"]["data"]["status"] == "error"
            assert error_count(sessions, client) == failures  # neither the start nor the polls cleared it
        assert _run_job(client, end_id, 3)["response"]["out"]["children"] == "background 3"
        assert error_count(sessions, client) == 0  # the job's own success did
    finally:
        sessions.close()


def _guarded_app(sessions: SessionManager, behaviour: dict[str, Any]) -> dash.Dash:
    app = _app(sessions)

    def compute(clicks: int | None) -> str:
        calls = behaviour.setdefault("calls", 0)
        behaviour["calls"] = calls + 1
        error = behaviour.get("error")
        if error is not None:
            raise error
        return f"done {clicks}"

    guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)(compute)
    return app














def test_guarded_callback_behind_the_wsgi_middleware(sessions: SessionManager) -> None:
    """Without the Flask extension (SessionMiddleware in front), failures are still recorded once."""
    app = dash.Dash(__name__)
    app.layout = html.Div([status_banner(), html.Div(id="out")])
    app.server.wsgi_app = SessionMiddleware(app.server.wsgi_app, manager=sessions, secret_key="k" * 32)

    def compute(clicks: int | None) -> str:
        raise TransientError("busy")

    guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)(compute)
    client = loaded_client(app)
    _, body = fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert "Temporary problem" in said(body)
    record = sessions.get_session(session_cookie(client))
    assert record is not None and record.error_count == 1






def test_the_dash_server_answers_api_clients_with_problem_documents(sessions: SessionManager) -> None:
    """A disconnected session: an API route on the Dash app's server gets a problem document,
    while the page's own callback gets the banner's update (Dash's protocol, not an API answer)."""
    behaviour: dict[str, Any] = {}
    app = _guarded_app(sessions, behaviour)
    app.server.add_url_rule("/api/orders", "orders", lambda: {"orders": []})
    client = loaded_client(app)
    for _ in range(THRESHOLD):
        sessions.record_error(session_cookie(client), "backend down")
    api = client.get("/api/orders", headers={"Accept": "application/problem+json"})
    assert (api.status_code, api.content_type) == (503, "application/problem+json")
    assert problem_errors(api.get_data(), status=503) == []
    assert api.get_json()["type"] == "https://sessionmw.readthedocs.io/problems/session-disconnected"
    status, body = fire(client, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and side_updates(body)[HEALTH_STORE_ID]["data"]["status"] == "disconnected"
    assert behaviour.get("calls", 0) == 0
