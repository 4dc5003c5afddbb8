"""Several Dash apps on one Flask server (Dash's url_base_pathname pattern): each app set up gets
its banner and callbacks, its page-loading paths untracked, its own guarded callbacks, and the
server's one manager."""

from __future__ import annotations

import json
from typing import Any

import dash
import pytest
from dash import Input, Output, html
from flask import Flask
from support.dash import (
    BANNER_CALLBACK_IDS,
    alert_shown,
    callback_ids,
    error_count,
    layout_ids,
    missing_ids,
    post_callback,
    session_client,
)

from sessionmw import DataLoadError, SessionManager
from sessionmw.integrations.dash import SessionMWDash
from sessionmw.integrations.dash_apps import dash_state
from sessionmw.integrations.dash_banner import BANNER_ID
from sessionmw.integrations.dash_callbacks import guarded_callback
from sessionmw.testing import FakeClock


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
        assert callback_ids(client, prefix) >= BANNER_CALLBACK_IDS, prefix
        assert missing_ids(client, prefix) == set(), prefix
    served = client.get("/plain/_dash-layout").get_json()
    assert BANNER_ID not in layout_ids(served)
    assert not BANNER_CALLBACK_IDS & callback_ids(client, "/plain/")


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
        client = session_client(server, prefix)
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
    client = session_client(server, "/two/")
    status, body = post_callback(client, two, [("out-two", "children")], [("go-two", "n_clicks", 13)])
    assert status == 200 and alert_shown(body)
    assert "prices.csv" not in json.dumps(body)
    assert error_count(sessions, client) == 1
    status, body = post_callback(client, two, [("out-two", "children")], [("go-two", "n_clicks", 2)])
    assert body["response"]["out-two"]["children"] == "two 2"


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
