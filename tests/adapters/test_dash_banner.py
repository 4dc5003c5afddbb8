"""The Dash status banner: its layout, the friendly alert, its theme (plain or Bootstrap, following
the app), and what it shows for a failing callback or a disconnected session."""

from __future__ import annotations

import json
import math
from typing import Any

import dash
import pytest
from support.dash import BOOTSTRAP_CSS, component, plain_json, texts_of

from sessionmw.integrations.dash import SessionMWDash
from sessionmw.integrations.dash_banner import (
    ALERT_ID,
    BANNER_ID,
    HEALTH_STORE_ID,
    POLL_ID,
    RECONNECT_ID,
    error_alert,
    status_banner,
    uses_bootstrap_css,
)
from sessionmw.translation import translate


def test_status_banner_is_hidden_and_complete() -> None:
    """The banner starts hidden and holds the poll, the report store, a Reconnect button and the alert."""
    banner = status_banner(interval_seconds=12)
    nodes: list[Any] = list(banner._traverse())  # type: ignore[no-untyped-call]  # untyped in dash
    ids = {getattr(node, "id", None) for node in nodes}
    assert {POLL_ID, HEALTH_STORE_ID, BANNER_ID, ALERT_ID, "sessionmw-reconnect"} <= ids
    poll = next(node for node in nodes if getattr(node, "id", None) == POLL_ID)
    assert poll.interval == 12000
    box = next(node for node in nodes if getattr(node, "id", None) == BANNER_ID)
    assert box.style == {"display": "none"}


@pytest.mark.parametrize("seconds", [0, -1, math.nan])
def test_status_banner_rejects_a_bad_interval(seconds: float) -> None:
    """A non-positive poll interval is refused with a message naming it."""
    with pytest.raises(ValueError, match="interval_seconds"):
        status_banner(interval_seconds=seconds)


def test_error_alert_shows_title_message_and_numbered_steps() -> None:
    """The alert lists the recovery steps as an ordered list and leaks no exception text."""
    err = translate(RuntimeError("This session is not running"))
    rendered = plain_json(error_alert(err))
    text = json.dumps(rendered, ensure_ascii=False)
    assert err.title in text and err.message in text
    steps = next(node for node in rendered if node["type"] == "Ol")
    assert [item["props"]["children"] for item in steps["props"]["children"]] == err.recovery
    assert "RuntimeError" not in text


def test_error_alert_shows_detail_only_in_debug() -> None:
    """In debug mode the alert adds the technical detail."""
    err = translate(ValueError("secret internals"), debug=True)
    assert "secret internals" in texts_of(error_alert(err))
    quiet = translate(ValueError("secret internals"))
    assert "secret internals" not in texts_of(error_alert(quiet))


def test_bootstrap_banner_uses_dash_bootstrap_components() -> None:
    """theme="bootstrap": a dash-bootstrap-components Reconnect button and Bootstrap alert classes."""
    import dash_bootstrap_components as dbc

    root = plain_json(status_banner(theme="bootstrap"))
    assert component(root, RECONNECT_ID)["namespace"] == "dash_bootstrap_components"
    alert = component(root, ALERT_ID)["props"]
    assert alert["className"] == "sessionmw-alert alert alert-danger"
    assert "btn-close" in json.dumps(alert["children"])
    assert component(root, "sessionmw-config")["props"]["data"]["theme"] == "bootstrap"
    assert dbc.themes.BOOTSTRAP == BOOTSTRAP_CSS  # the URL the theme tests stand for


def test_plain_banner_needs_no_framework() -> None:
    """The default banner is plain Dash HTML with inline styles."""
    root = plain_json(status_banner())
    assert component(root, RECONNECT_ID)["namespace"] == "dash_html_components"
    assert "alert" not in component(root, ALERT_ID)["props"]["className"].split()


def test_unknown_theme_is_refused() -> None:
    """A theme that does not exist is named in the error."""
    with pytest.raises(ValueError, match="'fancy'"):
        status_banner(theme="fancy")
    with pytest.raises(ValueError, match="'fancy'"):
        SessionMWDash(theme="fancy")


@pytest.mark.parametrize(
    ("stylesheets", "expected"),
    [
        ([BOOTSTRAP_CSS], True),
        ([{"href": "https://cdn.example/bootswatch/5/darkly/bootstrap.min.css", "rel": "stylesheet"}], True),
        (["/assets/site.css"], False),
        (None, False),
    ],
)
def test_uses_bootstrap_css_reads_the_apps_stylesheets(stylesheets: list[Any] | None, expected: bool) -> None:
    """A stylesheet URL naming bootstrap or bootswatch (string or dict) counts as Bootstrap."""
    assert uses_bootstrap_css(dash.Dash(__name__, external_stylesheets=stylesheets)) is expected
