# mypy: disable-error-code="untyped-decorator"
# Dash's decorators (dash.hooks.layout) are untyped: the layout hooks below are written the way
# users write them.
"""The Dash extension without a browser: its set-up, the layout hook (every kind of layout gets the
banner, other layout hooks respected), page loading."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import dash
import pytest
from dash import Input, Output, dcc, html
from support.dash import (
    BANNER_CALLBACK_IDS,
    callback_ids,
    dash_app,
    layout_ids,
    loaded_client,
    missing_ids,
    page_stub,
)
from support.servers import session_cookie

from sessionmw import SessionManager
from sessionmw.integrations.dash import SessionMWDash, dash_static_paths, preserve
from sessionmw.integrations.dash_apps import dash_state
from sessionmw.integrations.dash_banner import (
    BANNER_ID,
    status_banner,
)
from sessionmw.integrations.flask import SessionMW
from sessionmw.testing import FakeClock

# -- preserve ------------------------------------------------------------------------------------


def test_preserve_keeps_a_value_in_local_storage() -> None:
    """preserve() turns on Dash persistence in local storage by default."""
    field = preserve(dash.dcc.Input(id="symbols"))
    assert field.persistence is True and field.persistence_type == "local"


def test_preserve_refuses_bad_arguments() -> None:
    """preserve() needs an id and a known storage."""
    with pytest.raises(ValueError, match="needs an id"):
        preserve(dash.dcc.Input())
    with pytest.raises(ValueError, match="storage"):
        preserve(dash.dcc.Input(id="x"), storage="cookie")


# -- the extension ------------------------------------------------------------------------------


def test_installs_the_flask_extension_once(sessions: SessionManager) -> None:
    """SessionMWDash installs SessionMW on app.server; a second set-up is refused."""
    app = dash_app(sessions)
    assert app.server.extensions["sessionmw"].manager is sessions
    state = dash_state(app)
    assert state is not None and state.interval_seconds == 5
    with pytest.raises(RuntimeError, match="already set up"):
        SessionMWDash(app)


def test_reuses_an_existing_flask_extension(sessions: SessionManager) -> None:
    """An app whose server already has SessionMW keeps it."""
    app = dash.Dash(__name__)
    app.layout = html.Div(status_banner())
    SessionMW(app.server, manager=sessions)
    state = SessionMWDash().init_app(app)
    assert state.manager is sessions


def test_layout_gets_the_settings_interval_and_prefix(sessions: SessionManager) -> None:
    """The served layout polls every HEALTH_CHECK_INTERVAL_SECONDS at the extension's prefix."""
    app = dash_app(sessions)
    layout = app.server.test_client().get("/_dash-layout").get_json()
    text = json.dumps(layout)
    assert '"interval": 5000' in text
    assert '"prefix": "/_sessionmw/"' in text


def test_layout_without_a_banner_gets_one(sessions: SessionManager) -> None:
    """An app that did not place status_banner() still gets it, at the top."""
    app = dash_app(sessions, layout=html.Div([html.Div(id="out")]))
    layout = app.server.test_client().get("/_dash-layout").get_json()
    assert BANNER_ID in json.dumps(layout)


# -- page loading -------------------------------------------------------------------------------


def test_dash_static_paths_follow_the_routes_prefix() -> None:
    """The excluded page-loading paths live under the app's routes prefix."""
    app = dash.Dash(__name__, routes_pathname_prefix="/app/", requests_pathname_prefix="/app/")
    paths = dash_static_paths(app)
    assert "/app/_dash-layout" in paths and "/app/assets/" in paths
    assert "/app/_dash-update-component" not in paths


def test_health_polls_neither_create_nor_touch_sessions(sessions: SessionManager, clock: FakeClock) -> None:
    """GET /_sessionmw/health (what the banner polls) is not activity."""
    app = dash_app(sessions)
    client = loaded_client(app)
    sid = session_cookie(client)
    before = sessions.get_session(sid)
    assert before is not None
    clock.advance(60)
    body = client.get("/_sessionmw/health").get_json()
    assert body["session"]["status"] == "healthy"
    after = sessions.get_session(sid)
    assert after is not None and after.last_activity == before.last_activity


# -- the layout hook: every kind of layout gets the banner, other layout hooks respected ---------


def _component_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = html.Div(page_stub())
    return app


def _list_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = page_stub()
    return app


def _function_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = lambda: html.Div(page_stub())
    return app


def _function_app_with_banner() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = lambda: html.Div([status_banner(), *page_stub()])
    return app


def _validation_layout_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = html.Div([dcc.Location(id="url"), html.Div(id="content")])
    target: Any = app  # Dash annotates validation_layout as None
    target.validation_layout = html.Div([dcc.Location(id="url"), html.Div(id="content"), *page_stub()])
    return app


def _pages_app() -> dash.Dash:
    app = dash.Dash(__name__, use_pages=True, pages_folder="")
    register_page: Callable[..., None] = dash.register_page  # untyped in Dash
    register_page("home", path="/", layout=html.Div(page_stub()))
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
    assert callback_ids(client) >= BANNER_CALLBACK_IDS
    assert missing_ids(client) == set()
    served = client.get("/_dash-layout").get_json()
    assert BANNER_ID in layout_ids(served)


def test_validation_layout_set_after_set_up_gets_the_banner(sessions: SessionManager) -> None:
    """An app.validation_layout assigned after SessionMWDash(app) is completed too."""
    app = dash.Dash(__name__)
    app.layout = html.Div([html.Div(id="content")])
    SessionMWDash(app, manager=sessions)
    target: Any = app  # Dash annotates validation_layout as None
    target.validation_layout = html.Div([html.Div(id="content"), *page_stub()])
    assert missing_ids(app.server.test_client()) == set()


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
    assert {"header", "go", "out", BANNER_ID} <= layout_ids(served)


def test_an_earlier_layout_hook_is_respected(sessions: SessionManager, layout_hooks: list[Any]) -> None:
    """A layout hook registered before ours runs first; its components and ours are both served."""

    @dash.hooks.layout()
    def add_footer(layout: Any) -> Any:
        return [*layout, html.Div("Footer", id="footer")]

    app = _list_app()
    SessionMWDash(app, manager=sessions)
    served = app.server.test_client().get("/_dash-layout").get_json()
    assert {"footer", "go", BANNER_ID} <= layout_ids(served)


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
    assert {"chart", BANNER_ID} <= layout_ids(served)


def test_the_banner_survives_a_reset_of_dash_hooks(sessions: SessionManager, layout_hooks: list[Any]) -> None:
    """dash.hooks reset (as Dash's own tests do) after set-up, or between two apps: every app
    set up still gets its banner in the served layout."""
    first = _component_app()
    SessionMWDash(first, manager=sessions)
    dash.hooks._ns["layout"] = []  # a reset after set-up, before serving
    assert BANNER_ID in layout_ids(first.server.test_client().get("/_dash-layout").get_json())
    dash.hooks._ns["layout"] = []  # and before the next app's set-up
    second = _component_app()
    SessionMWDash(second, manager=sessions)
    assert BANNER_ID in layout_ids(second.server.test_client().get("/_dash-layout").get_json())
