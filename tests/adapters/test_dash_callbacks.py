# mypy: disable-error-code="untyped-decorator"
# Dash's decorators (dash.hooks.layout, app.callback) are untyped: the callbacks below are written
# the way users write them.
"""The Dash integration inside a host app: every kind of layout, other layout hooks, several apps on
one server, the app's own ``on_error``, Dash's own callback behaviours and debug mode."""

from __future__ import annotations

import html as html_module
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dash
import pytest
from dash import MATCH, Input, Output, dcc, html
from flask import Flask
from flask.testing import FlaskClient

from sessionmw import DataLoadError, SessionManager
from sessionmw.integrations.dash import SessionMWDash
from sessionmw.integrations.dash_apps import dash_state
from sessionmw.integrations.dash_banner import ALERT_ID, BANNER_ID, HEALTH_STORE_ID, status_banner
from sessionmw.integrations.dash_callbacks import guarded_callback
from sessionmw.testing import FakeClock
from sessionmw.translation import translate

#: The ids of the banner's components that its callbacks use.
BANNER_CALLBACK_IDS = {"sessionmw-poll", "sessionmw-health", "sessionmw-config", BANNER_ID, ALERT_ID}
_CONFIG = re.compile(r'<script id="_dash-config" type="application/json">(.*?)</script>', re.S)


@pytest.fixture(name="sessions")
def _sessions(clock: FakeClock) -> Iterator[SessionManager]:
    manager = SessionManager(store="memory://", clock=clock, max_error_threshold=3)
    yield manager
    manager.close()


@pytest.fixture(name="layout_hooks")
def _layout_hooks() -> Iterator[list[Any]]:
    """Dash's registered layout hooks, restored after the test (hooks are process-wide)."""
    hooks = dash.hooks._ns["layout"]
    saved = list(hooks)
    yield hooks
    dash.hooks._ns["layout"] = saved


@pytest.fixture(name="pages")
def _pages() -> Iterator[None]:
    """Dash's page registry, emptied before and after (it is process-wide)."""
    dash._pages.PAGE_REGISTRY.clear()
    yield
    dash._pages.PAGE_REGISTRY.clear()


# -- helpers ------------------------------------------------------------------------------------


def _ids(node: Any) -> set[str]:
    """Every string component id in a served (JSON) layout."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            props = item.get("props", {})
            if isinstance(props.get("id"), str):
                found.add(props["id"])
            stack.extend(value for value in props.values() if isinstance(value, list | dict))
    return found


def _checked_layout(client: FlaskClient, prefix: str = "/") -> Any:
    """The layout Dash's renderer checks callbacks against: the validation layout sent with the
    page when there is one, else the served layout (as dash-renderer does)."""
    page = client.get(prefix, headers={"Accept": "text/html"})
    assert page.status_code == 200, page.data[:200]
    match = _CONFIG.search(page.get_data(as_text=True))
    assert match is not None, "no Dash config in the page"
    config = json.loads(html_module.unescape(match.group(1)))
    if "validation_layout" in config:
        return config["validation_layout"]
    layout = client.get(prefix + "_dash-layout")
    assert layout.status_code == 200, layout.data[:200]
    return layout.get_json()


def _callback_ids(client: FlaskClient, prefix: str = "/") -> set[str]:
    """Every string component id the app's callbacks use (outputs, inputs, state)."""
    found: set[str] = set()
    for callback in client.get(prefix + "_dash-dependencies").get_json():
        for part in callback["output"].strip(".").split("..."):
            found.add(part.rsplit(".", 1)[0].split("@")[0])
        for dependency in (*callback["inputs"], *callback["state"]):
            if isinstance(dependency["id"], str):
                found.add(dependency["id"])
    return {item for item in found if not item.startswith("{")}


def _missing_ids(client: FlaskClient, prefix: str = "/") -> set[str]:
    """The callback ids Dash would report as "ID not found in layout"."""
    return _callback_ids(client, prefix) - _ids(_checked_layout(client, prefix))


def _session_client(server: Flask, prefix: str = "/") -> FlaskClient:
    """A test client that holds a stored session (the page loaded twice)."""
    client = server.test_client()
    for _ in range(2):
        assert client.get(prefix).status_code == 200
    return client


def _fire(
    client: FlaskClient,
    app: dash.Dash,
    outputs: list[tuple[Any, str]],
    inputs: list[tuple[Any, str, Any]],
) -> tuple[int, dict[str, Any]]:
    """POST one callback request as Dash's renderer does; the status and the JSON body."""
    wanted = [
        f"{json.dumps(oid, separators=(',', ':'), sort_keys=True) if isinstance(oid, dict) else oid}.{prop}"
        for oid, prop in outputs
    ]
    key = next(
        key for key in app.callback_map if [p.split("@")[0] for p in key.strip(".").split("...")] == wanted
    )
    payload = {
        "output": key,
        "outputs": [{"id": oid, "property": prop} for oid, prop in outputs]
        if len(outputs) != 1
        else {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": [{"id": iid, "property": prop, "value": value} for iid, prop, value in inputs],
        "state": [],
        "changedPropIds": [f"{iid}.{prop}" for iid, prop, _ in inputs if isinstance(iid, str)],
    }
    response = client.post(
        app.config.routes_pathname_prefix + "_dash-update-component",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    body = response.get_json(silent=True) or {}
    return response.status_code, body


def _alert_shown(body: dict[str, Any]) -> bool:
    """True when the response tells the user what failed: in the banner's statement (where the
    failure is folded since issue 11), or in the alert (a page without a session)."""
    side = body.get("sideUpdate", {})
    said = side.get(HEALTH_STORE_ID, {}).get("data", {}).get("statement")
    if said and said.get("status") != "reconnected":
        return True
    return "display" not in side.get(ALERT_ID, {}).get("style", {"display": "none"})


def _errors(sessions: SessionManager, client: FlaskClient) -> int:
    cookie = client.get_cookie("sessionmw")
    assert cookie is not None
    record = sessions.get_session(cookie.value)
    assert record is not None
    return record.error_count


def _page() -> list[Any]:
    return [html.Button("Go", id="go"), html.Div(id="out")]


# -- every kind of layout: the banner's callbacks are valid -------------------------------------


def _component_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = html.Div(_page())
    return app


def _list_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = _page()
    return app


def _function_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = lambda: html.Div(_page())
    return app


def _function_app_with_banner() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = lambda: html.Div([status_banner(), *_page()])
    return app


def _validation_layout_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = html.Div([dcc.Location(id="url"), html.Div(id="content")])
    target: Any = app  # Dash annotates validation_layout as None
    target.validation_layout = html.Div([dcc.Location(id="url"), html.Div(id="content"), *_page()])
    return app


def _pages_app() -> dash.Dash:
    app = dash.Dash(__name__, use_pages=True, pages_folder="")
    register_page: Callable[..., None] = dash.register_page  # untyped in Dash
    register_page("home", path="/", layout=html.Div(_page()))
    register_page("other", path="/other", layout=html.Div([html.P("other", id="other")]))
    app.layout = html.Div([html.H1("Site"), dash.page_container])
    return app


@pytest.mark.parametrize(
    "build",
    [_component_app, _list_app, _function_app, _function_app_with_banner, _validation_layout_app, _pages_app],
    ids=["component", "list", "function", "function-with-banner", "validation-layout", "pages"],
)
@pytest.mark.usefixtures("pages")
def test_every_layout_kind_validates_the_banners_callbacks(
    build: Callable[[], dash.Dash], sessions: SessionManager
) -> None:
    """Whatever the layout, the ids of every callback (the banner's included) are in the layout
    Dash checks callbacks against: no "ID not found in layout"."""
    app = build()

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def echo(clicks: int | None) -> str:
        return str(clicks)

    SessionMWDash(app, manager=sessions)
    client = app.server.test_client()
    assert _callback_ids(client) >= BANNER_CALLBACK_IDS
    assert _missing_ids(client) == set()
    served = client.get("/_dash-layout").get_json()
    assert BANNER_ID in _ids(served)


def test_validation_layout_set_after_set_up_gets_the_banner(sessions: SessionManager) -> None:
    """An app.validation_layout assigned after SessionMWDash(app) is completed too."""
    app = dash.Dash(__name__)
    app.layout = html.Div([html.Div(id="content")])
    SessionMWDash(app, manager=sessions)
    target: Any = app  # Dash annotates validation_layout as None
    target.validation_layout = html.Div([html.Div(id="content"), *_page()])
    assert _missing_ids(app.server.test_client()) == set()


# -- other layout hooks -------------------------------------------------------------------------


def test_a_list_layout_stays_a_list_for_later_layout_hooks(
    sessions: SessionManager, layout_hooks: list[Any]
) -> None:
    """A layout hook registered after ours gets the list it was written for (no TypeError, no 500)."""
    app = _list_app()
    SessionMWDash(app, manager=sessions)
    seen: list[type] = []

    @dash.hooks.layout()
    def add_header(layout: Any) -> Any:
        seen.append(type(layout))
        return [html.Div("Header", id="header"), *layout]

    response = app.server.test_client().get("/_dash-layout")
    assert response.status_code == 200
    assert seen == [list]
    served = response.get_json()
    assert isinstance(served, list)
    assert {"header", "go", "out", BANNER_ID} <= _ids(served)


def test_an_earlier_layout_hook_is_respected(sessions: SessionManager, layout_hooks: list[Any]) -> None:
    """A layout hook registered before ours runs first; its components and ours are both served."""

    @dash.hooks.layout()
    def add_footer(layout: Any) -> Any:
        return [*layout, html.Div("Footer", id="footer")]

    app = _list_app()
    SessionMWDash(app, manager=sessions)
    served = app.server.test_client().get("/_dash-layout").get_json()
    assert {"footer", "go", BANNER_ID} <= _ids(served)


def test_a_component_layout_is_wrapped_as_dash_wraps_its_own_extras(sessions: SessionManager) -> None:
    """A component layout is served inside a Div, the banner first, as Dash serves its own extra
    components; the app's layout object itself is left unchanged."""
    page = html.Div([html.Button("Go", id="go")], id="layout")
    app = dash.Dash(__name__)
    app.layout = page
    SessionMWDash(app, manager=sessions)
    served = app.server.test_client().get("/_dash-layout").get_json()
    assert served["type"] == "Div" and "id" not in served["props"]
    first, second = served["props"]["children"]
    assert (first["props"]["id"], second["props"]["id"]) == ("sessionmw-status", "layout")
    assert [child.id for child in page.children] == ["go"]


def test_a_root_without_children_is_wrapped(sessions: SessionManager) -> None:
    """A root that cannot hold the banner (a graph) is wrapped in a Div, as Dash does for its extras."""
    app = dash.Dash(__name__)
    app.layout = dcc.Graph(id="chart")
    SessionMWDash(app, manager=sessions)
    served = app.server.test_client().get("/_dash-layout").get_json()
    assert served["type"] == "Div"
    assert {"chart", BANNER_ID} <= _ids(served)


def test_the_banner_survives_a_reset_of_dash_hooks(sessions: SessionManager, layout_hooks: list[Any]) -> None:
    """dash.hooks reset (as Dash's own tests do) after set-up, or between two apps: every app
    set up still gets its banner in the served layout."""
    first = _component_app()
    SessionMWDash(first, manager=sessions)
    dash.hooks._ns["layout"] = []  # a reset after set-up, before serving
    assert BANNER_ID in _ids(first.server.test_client().get("/_dash-layout").get_json())
    dash.hooks._ns["layout"] = []  # and before the next app's set-up
    second = _component_app()
    SessionMWDash(second, manager=sessions)
    assert BANNER_ID in _ids(second.server.test_client().get("/_dash-layout").get_json())


# -- several Dash apps on one Flask server ------------------------------------------------------


def _shared_server(sessions: SessionManager) -> tuple[Flask, dash.Dash, dash.Dash, dash.Dash]:
    """Dash's url_base_pathname pattern: three apps on one server, two of them set up."""
    server: Any = Flask(__name__)  # Dash's annotation does not name Flask
    apps = []
    for name in ("one", "two", "plain"):
        app = dash.Dash(__name__, server=server, url_base_pathname=f"/{name}/")
        app.layout = html.Div([html.Button("Go", id=f"go-{name}"), html.Div(id=f"out-{name}")])

        def echo(clicks: int | None, name: str = name) -> str:
            if clicks == 13:
                raise DataLoadError(f"{name}: prices.csv is corrupt")
            return f"{name} {clicks}"

        guarded: Any = guarded_callback(echo)
        app.callback(Output(f"out-{name}", "children"), Input(f"go-{name}", "n_clicks"))(guarded)
        apps.append(app)
    SessionMWDash(apps[0], manager=sessions, secret_key="k" * 32)
    SessionMWDash(apps[1], manager=sessions)
    return server, apps[0], apps[1], apps[2]


def test_several_apps_on_one_server_each_get_banner_and_callbacks(sessions: SessionManager) -> None:
    """No RuntimeError; each app set up gets the banner with its callbacks; an app not set up is untouched."""
    server, one, two, _plain = _shared_server(sessions)
    client = server.test_client()
    for app in (one, two):
        prefix = app.config.routes_pathname_prefix
        assert _callback_ids(client, prefix) >= BANNER_CALLBACK_IDS, prefix
        assert _missing_ids(client, prefix) == set(), prefix
    served = client.get("/plain/_dash-layout").get_json()
    assert BANNER_ID not in _ids(served)
    assert not BANNER_CALLBACK_IDS & _callback_ids(client, "/plain/")


def test_several_apps_page_loading_paths_are_not_tracked(sessions: SessionManager, clock: FakeClock) -> None:
    """Each app's page-loading paths, under its own url_base_pathname, neither create nor touch a session."""
    server, one, two, _plain = _shared_server(sessions)
    for app in (one, two):
        prefix = app.config.routes_pathname_prefix
        fresh = server.test_client()
        for path in ("_dash-layout", "_dash-dependencies", "_reload-hash", "_favicon.ico"):
            response = fresh.get(prefix + path)
            assert "sessionmw=" not in response.headers.get("Set-Cookie", ""), prefix + path
        assert fresh.get_cookie("sessionmw") is None
    for app in (one, two):
        prefix = app.config.routes_pathname_prefix
        client = _session_client(server, prefix)
        cookie = client.get_cookie("sessionmw")
        assert cookie is not None
        before = sessions.get_session(cookie.value)
        assert before is not None
        clock.advance(10)
        client.get(prefix + "_dash-layout")
        after = sessions.get_session(cookie.value)
        assert after is not None and after.last_activity == before.last_activity


def test_several_apps_guard_their_own_callbacks(sessions: SessionManager) -> None:
    """A failing guarded callback of the second app shows that app's alert and is recorded."""
    server, _one, two, _plain = _shared_server(sessions)
    client = _session_client(server, "/two/")
    status, body = _fire(client, two, [("out-two", "children")], [("go-two", "n_clicks", 13)])
    assert status == 200 and _alert_shown(body)
    assert "prices.csv" not in json.dumps(body)
    assert _errors(sessions, client) == 1
    status, body = _fire(client, two, [("out-two", "children")], [("go-two", "n_clicks", 2)])
    assert body["response"]["out-two"]["children"] == "two 2"


# -- guarded_callback: the bare form, on_error, Dash's own behaviours ---------------------------


def _app(sessions: SessionManager, **options: Any) -> dash.Dash:
    app = dash.Dash(__name__, **options.pop("dash", {}))
    app.layout = html.Div([status_banner(), *_page(), html.Div(id="other")])
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

    client = _session_client(app.server)
    status, body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert (status, body["response"]["out"]["children"]) == (200, "ran 1")
    status, body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 2)])
    assert status == 200 and _alert_shown(body)
    assert translate(DataLoadError("x")).title in json.dumps(body, ensure_ascii=False)
    assert "out" not in body.get("response", {})
    assert _errors(sessions, client) == 1


def test_bare_guarded_callback_with_options(sessions: SessionManager) -> None:
    """``@guarded_callback(clears_alert=False)`` beneath ``@app.callback`` guards without registering."""
    app = _app(sessions)
    before = len(app.callback_map)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    @guarded_callback(clears_alert=False)
    def quiet(n_clicks: int | None) -> str:
        return "fine"

    assert len(app.callback_map) == before + 1
    status, body = _fire(_session_client(app.server), app, [("out", "children")], [("go", "n_clicks", 1)])
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
    client = _session_client(app.server)
    status, body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200
    assert [type(exc) for exc in handled] == [DataLoadError]
    assert body["response"]["out"]["children"] == "handled by the app"
    assert _alert_shown(body)
    assert _errors(sessions, client) == 1


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

    client = _session_client(app.server)
    status, body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and len(handled) == 1
    assert body["response"]["out"]["children"] == "handled by the app"
    assert _alert_shown(body)
    assert _errors(sessions, client) == 1


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

    client = _session_client(app.server)
    status, body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and len(handled) == 1
    assert body["response"]["out"]["children"] == "handled here"
    assert not _alert_shown(body)
    assert _errors(sessions, client) == 0


def test_prevent_update_and_no_update_pass_through(sessions: SessionManager) -> None:
    """PreventUpdate is Dash's 204 and no error; no_update leaves the output alone."""
    app = _app(sessions, guard_all=True)

    @guarded_callback(Output("out", "children"), Input("go", "n_clicks"), app=app)
    def maybe(n_clicks: int | None) -> Any:
        if n_clicks == 1:
            raise dash.exceptions.PreventUpdate
        return dash.no_update

    client = _session_client(app.server)
    status, _body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 204
    status, body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 2)])
    assert status == 200 and "out" not in body.get("response", {})
    assert _errors(sessions, client) == 0


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

    client = _session_client(app.server)
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
    assert response.status_code == 200 and _alert_shown(response.get_json())


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

    client = _session_client(app.server)
    status, body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 1)])
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

    client = _session_client(app.server)
    (key,) = set(app.callback_map) - before
    payload = {
        "output": key,
        "outputs": [],
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "state": [],
        "changedPropIds": ["go.n_clicks"],
    }
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200 and _alert_shown(response.get_json())
    assert _errors(sessions, client) == 1


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

    client = _session_client(app.server)
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
    assert _errors(sessions, client) == 1


def test_guarded_callback_in_debug_mode_lets_devtools_show_the_traceback(sessions: SessionManager) -> None:
    """The same for a guarded callback: the dev tools get Dash's traceback."""
    app = _debug_app(sessions)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    @guarded_callback
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    client = _session_client(app.server)
    status, _body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 500
    assert _errors(sessions, client) == 1


def test_debug_mode_with_the_apps_on_error_keeps_the_apps_choice(sessions: SessionManager) -> None:
    """In debug mode an app-level on_error still handles the error, as without sessionmw."""
    app = _debug_app(sessions, guard_all=True, dash={"on_error": lambda exc: "handled"})

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    status, body = _fire(_session_client(app.server), app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and body["response"]["out"]["children"] == "handled"


def test_production_mode_keeps_the_friendly_alert(sessions: SessionManager) -> None:
    """Without the dev tools, guard_all answers with the alert and no exception text."""
    app = _app(sessions, guard_all=True)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    status, body = _fire(_session_client(app.server), app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and _alert_shown(body)
    assert "prices.csv" not in json.dumps(body)


def test_handle_callback_error_as_a_callbacks_own_on_error(sessions: SessionManager) -> None:
    """handle_callback_error works as one callback's on_error: the alert, outputs unchanged."""
    from sessionmw.integrations.dash_callbacks import handle_callback_error

    app = _app(sessions)

    @app.callback(Output("out", "children"), Input("go", "n_clicks"), on_error=handle_callback_error)
    def fail(n_clicks: int | None) -> str:
        raise DataLoadError("prices.csv is corrupt")

    client = _session_client(app.server)
    status, body = _fire(client, app, [("out", "children")], [("go", "n_clicks", 1)])
    assert status == 200 and _alert_shown(body) and "out" not in body.get("response", {})
    assert _errors(sessions, client) == 1


def test_apps_of_one_server_share_its_manager(sessions: SessionManager) -> None:
    """A second app on the server with another manager is refused with a clear error."""
    server: Any = Flask(__name__)
    first = dash.Dash(__name__, server=server, url_base_pathname="/one/")
    SessionMWDash(first, manager=sessions)
    second = dash.Dash(__name__, server=server, url_base_pathname="/two/")
    other = SessionManager(store="memory://")
    with pytest.raises(ValueError, match="another manager"):
        SessionMWDash(second, manager=other)
    other.close()
    SessionMWDash(second)  # the server's manager
    state = dash_state(second)
    assert state is not None and state.manager is sessions


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
    match = _CONFIG.search(page)
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
    client = _session_client(_background_app(sessions, background, use_async).server)
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
        client = _session_client(_background_app(sessions, background, use_async).server)
        end_id = _end_id(client)
        assert _run_job(client, end_id, 1)["response"]["out"]["children"] == "background 1"
        assert _errors(sessions, client) == 0
        for failures in (1, 2):
            failed = _run_job(client, end_id, 2)
            assert failed["sideUpdate"]["sessionmw-health"]["data"]["status"] == "error"
            assert _errors(sessions, client) == failures  # neither the start nor the polls cleared it
        assert _run_job(client, end_id, 3)["response"]["out"]["children"] == "background 3"
        assert _errors(sessions, client) == 0  # the job's own success did
    finally:
        sessions.close()
