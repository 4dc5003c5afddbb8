"""What the Dash tests share: a Dash stub of a page, test clients holding a session, callback
requests as Dash's renderer posts them (pattern-matching ids and a routes prefix too), and
readers of what a served layout and its callbacks hold."""

from __future__ import annotations

import html as html_module
import json
import re
import weakref
from typing import Any

import dash
from dash import html
from flask import Flask
from flask.testing import FlaskClient

from sessionmw import SessionManager
from sessionmw.integrations.dash import SessionMWDash
from sessionmw.integrations.dash_banner import (
    ALERT_ID,
    BANNER_ID,
    HEALTH_STORE_ID,
    status_banner,
)
from support.servers import fire_callback

#: The ids of the banner's components that its callbacks use.
BANNER_CALLBACK_IDS = {"sessionmw-poll", "sessionmw-health", "sessionmw-config", BANNER_ID, ALERT_ID}


DASH_CONFIG = re.compile(r'<script id="_dash-config" type="application/json">(.*?)</script>', re.S)


def layout_ids(node: Any) -> set[str]:
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


#: A Bootstrap stylesheet as apps name it (dash_bootstrap_components.themes.BOOTSTRAP's URL).
BOOTSTRAP_CSS = "https://cdn.jsdelivr.net/npm/bootstrap@5.3.6/dist/css/bootstrap.min.css"


def component(layout: Any, component_id: str) -> dict[str, Any]:
    """The served (JSON) component with ``component_id``."""
    stack = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") == component_id:
                return node
            stack.append(props.get("children"))
    raise AssertionError(f"no component {component_id!r} in the layout")


def checked_layout(client: FlaskClient, prefix: str = "/") -> Any:
    """The layout Dash's renderer checks callbacks against: the validation layout sent with the
    page when there is one, else the served layout (as dash-renderer does)."""
    page = client.get(prefix, headers={"Accept": "text/html"})
    assert page.status_code == 200, page.data[:200]
    match = DASH_CONFIG.search(page.get_data(as_text=True))
    assert match is not None, "no Dash config in the page"
    config = json.loads(html_module.unescape(match.group(1)))
    if "validation_layout" in config:
        return config["validation_layout"]
    layout = client.get(prefix + "_dash-layout")
    assert layout.status_code == 200, layout.data[:200]
    return layout.get_json()


def callback_ids(client: FlaskClient, prefix: str = "/") -> set[str]:
    """Every string component id the app's callbacks use (outputs, inputs, state)."""
    found: set[str] = set()
    for callback in client.get(prefix + "_dash-dependencies").get_json():
        for part in callback["output"].strip(".").split("..."):
            found.add(part.rsplit(".", 1)[0].split("@")[0])
        for dependency in (*callback["inputs"], *callback["state"]):
            if isinstance(dependency["id"], str):
                found.add(dependency["id"])
    return {item for item in found if not item.startswith("{")}


def missing_ids(client: FlaskClient, prefix: str = "/") -> set[str]:
    """The callback ids Dash would report as "ID not found in layout"."""
    return callback_ids(client, prefix) - layout_ids(checked_layout(client, prefix))


def session_client(server: Flask, prefix: str = "/") -> FlaskClient:
    """A test client that holds a stored session (the page loaded twice)."""
    client = server.test_client()
    for _ in range(2):
        assert client.get(prefix).status_code == 200
    return client


def post_callback(
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


def alert_shown(body: dict[str, Any]) -> bool:
    """True when the response tells the user what failed: in the banner's statement (where the
    failure is folded since issue 11), or in the alert (a page without a session)."""
    side = body.get("sideUpdate", {})
    said = side.get(HEALTH_STORE_ID, {}).get("data", {}).get("statement")
    if said and said.get("status") != "reconnected":
        return True
    return "display" not in side.get(ALERT_ID, {}).get("style", {"display": "none"})


def error_count(sessions: SessionManager, client: FlaskClient) -> int:
    cookie = client.get_cookie("sessionmw")
    assert cookie is not None
    record = sessions.get_session(cookie.value)
    assert record is not None
    return record.error_count


def page_stub() -> list[Any]:
    return [html.Button("Go", id="go"), html.Div(id="out")]


#: The Dash app behind each Flask server a test client talks to.
_DASH_APPS: weakref.WeakKeyDictionary[Flask, dash.Dash] = weakref.WeakKeyDictionary()


def loaded_client(app: dash.Dash) -> FlaskClient:
    """A test client that has loaded the page once, so it holds a stored session."""
    server: Flask = app.server
    _DASH_APPS[server] = app
    client = server.test_client()
    assert client.get("/").status_code == 200  # issues the session id
    assert client.get("/").status_code == 200  # sent back: the session is stored
    return client


def fire(
    client: FlaskClient,
    outputs: list[tuple[str, str]],
    inputs: list[tuple[str, str, Any]],
    state: list[tuple[str, str, Any]] | None = None,
    *,
    accept: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    """POST one callback request of the client's Dash app (outputs as ``(id, prop)``)."""
    wanted = [f"{oid}.{prop}" for oid, prop in outputs]
    return fire_callback(_DASH_APPS[client.application], client, wanted, inputs, state, accept=accept)


def side_updates(body: dict[str, Any]) -> dict[str, Any]:
    """The set_props updates of a callback response, by component id."""
    side: dict[str, Any] = body.get("sideUpdate", {})
    return side


def plain_json(node: Any) -> Any:
    """A component tree as plain JSON data."""
    if hasattr(node, "to_plotly_json"):
        return plain_json(node.to_plotly_json())
    if isinstance(node, dict):
        return {key: plain_json(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [plain_json(value) for value in node]
    return node


def texts_of(component: Any) -> str:
    """A component tree (objects or their JSON) as one JSON string."""
    return json.dumps(plain_json(component), ensure_ascii=False)


THRESHOLD = 3


def dash_app(
    sessions: SessionManager,
    *,
    layout: Any = None,
    guard_all: bool = False,
    stylesheets: list[Any] | None = None,
    theme: str = "auto",
) -> dash.Dash:
    app = dash.Dash(__name__, external_stylesheets=stylesheets)
    app.layout = layout if layout is not None else html.Div([status_banner(), html.Div(id="out")])
    SessionMWDash(app, manager=sessions, guard_all=guard_all, theme=theme)
    return app


def said(body: dict[str, Any]) -> str:
    """What the banner's statement says in a callback response (the failure is folded there)."""
    said = side_updates(body)[HEALTH_STORE_ID]["data"]["statement"]
    return " ".join([said["title"], said["message"], *said["steps"], said["context"]])
