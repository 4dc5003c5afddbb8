"""The Reconnect form's redirect: ``next`` is a same-origin path, whatever a client posts."""

from __future__ import annotations

import html
import io
import re
from typing import Any
from urllib.parse import quote, urljoin, urlsplit
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionmw import SessionManager
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.wsgi import SessionMiddleware, banner_for

ORIGIN = "https://app.example/x/"


def hello(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def reconnect_location(manager: SessionManager, body: bytes) -> str:
    """POST ``body`` as the Reconnect form (no cookie) through wsgiref's validator; the Location."""
    app = SessionMiddleware(hello, manager=manager, secret_key="k")
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(
        PATH_INFO="/_sessionmw/reconnect",
        REQUEST_METHOD="POST",
        CONTENT_TYPE="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(len(body)),
        HTTP_ACCEPT="text/html",
        QUERY_STRING="",
    )
    environ["wsgi.input"] = io.BytesIO(body)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    result = validator(app)(environ, start_response)  # checks PEP 3333, header values included
    try:
        b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]
    assert seen["status"].startswith("303")
    location: str = next(value for name, value in seen["headers"] if name == "Location")
    return location


def browser_reads(location: str) -> str:
    """Where a browser goes for ``location`` on ``ORIGIN``: the WHATWG URL parser's clean-up first.

    Leading and trailing C0 controls and spaces are stripped, tabs and newlines removed anywhere,
    and a backslash is read as a slash (special schemes).
    """
    cleaned = location.strip("".join(chr(c) for c in range(0x21)))
    cleaned = re.sub("[\t\n\r]", "", cleaned).replace("\\", "/")
    return urljoin(ORIGIN, cleaned)


def assert_same_origin_path(location: str) -> None:
    location.encode("latin-1")  # PEP 3333: header values are latin-1
    assert location.isascii() and location.isprintable() and " " not in location
    assert location.startswith("/") and not location.startswith("//")
    target = urlsplit(browser_reads(location))
    assert (target.scheme, target.netloc) == ("https", "app.example")


@pytest.mark.parametrize(
    "body",
    [
        b"next=/%09/evil.example",  # decoded: a tab, which browsers drop: //evil.example
        b"next=/\t/evil.example",
        b"next=/%0A/evil.example",
        b"next=%09//evil.example",
        b"next=/%5Cevil.example",  # a backslash: /\evil.example is //evil.example to a browser
        b"next=/%5C%5Cevil.example",
        b"next=/\\tevil",
        b"next=/\tevil",
        b"next=/%00",
        b"next=/\x00",
        b"next=/a%00b",
        b"next=//evil.example",
        b"next=https://evil.example/",
        b"next=javascript:alert(1)",
        b"next=/%20/evil.example",
        b"next=%20//evil.example",
        b"next=/%E2%80%A8/evil.example",  # U+2028, a line separator
        b"next=/%C2%85/evil.example",  # U+0085, a C1 control
        b"next=/%7F",
        b"next=",
    ],
)
def test_a_next_a_browser_could_read_as_another_origin_goes_home(
    manager: SessionManager, body: bytes
) -> None:
    """Control characters, whitespace, backslashes and scheme-relative or absolute URLs give ``/``."""
    assert reconnect_location(manager, body) == "/"


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b"next=/%2509/evil.example", "/%09/evil.example"),  # percent-decoded once: a path, kept as sent
        (b"next=/%E2%82%AC", "/%E2%82%AC"),  # /€, made latin-1 clean
        ("next=/€".encode(), "/%E2%82%AC"),  # the same, posted without encoding it
        (b"next=/\xff", "/%EF%BF%BD"),  # not UTF-8: a replacement character, still a local path
        (b"next=/caf%C3%A9?q=1%262#top", "/caf%C3%A9?q=1&2#top"),
        (b"next=/page", "/page"),
        (b"next=/a/b%3Fc", "/a/b?c"),
        (b"next=/%22%3C%3E", "/%22%3C%3E"),
    ],
)
def test_a_local_path_is_kept_and_percent_encoded(
    manager: SessionManager, body: bytes, location: str
) -> None:
    """A same-origin path is where the browser goes back to, percent-encoded to plain ASCII."""
    assert reconnect_location(manager, body) == location


@settings(deadline=None)
@given(st.text(max_size=40))
def test_any_next_stays_on_the_origin(next_value: str) -> None:
    """Whatever ``next`` holds, the browser stays on the same origin and the header is valid."""
    manager = SessionManager(store="memory://")
    body = b"next=" + quote(next_value, safe="").encode()
    assert_same_origin_path(reconnect_location(manager, body))


@settings(deadline=None)
@given(st.text(max_size=40).map(lambda text: "/" + text))
def test_any_path_like_next_stays_on_the_origin(next_value: str) -> None:
    """The same for values that start with a slash (the ones that could pass as local)."""
    manager = SessionManager(store="memory://")
    body = b"next=" + quote(next_value, safe="").encode()
    assert_same_origin_path(reconnect_location(manager, body))


SAFE_SEGMENT = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"),
    min_size=1,
    max_size=12,
)


@settings(deadline=None)
@given(st.lists(SAFE_SEGMENT, max_size=4), st.text(alphabet="abc=&", max_size=8))
def test_a_plain_local_path_is_kept_as_it_is(segments: list[str], query: str) -> None:
    """A path a page really has comes back unchanged (no needless fallback to ``/``)."""
    manager = SessionManager(store="memory://")
    path = "/" + "/".join(segments) + ("?" + query if query else "")
    assert reconnect_location(manager, b"next=" + quote(path, safe="").encode()) == path


def test_flask_reconnect_form_is_not_an_open_redirect(manager: SessionManager) -> None:
    """The issue's reproduction through the Flask extension: no cookie, ``next=/%09/evil.example``."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="flask-secret")
    SessionMW(app, manager=manager)
    with app.test_client() as client:
        response = client.post(
            "/_sessionmw/reconnect",
            data=b"next=/%09/evil.example",
            content_type="application/x-www-form-urlencoded",
            headers={"Accept": "text/html"},
        )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("script_name", "path_bytes", "location"),
    [
        ("", b"/caf\xc3\xa9 menu", "/caf%C3%A9%20menu"),
        ("", b"/reports/2024", "/reports/2024"),
        ("", b"/a%b", "/a%25b"),
        ("/app", b"/page", "/app/page"),  # an app mounted under a prefix
    ],
)
def test_the_banner_brings_the_user_back_to_the_page(
    manager: SessionManager, script_name: str, path_bytes: bytes, location: str
) -> None:
    """The Reconnect form of a page (any path, e.g. with a space or non-ASCII) comes back to that page."""
    record = manager.create_session()
    for _ in range(manager.policy.error_threshold):
        manager.record_error(record.session_id, "backend down")

    def page(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [banner_for(environ).encode()]

    app = SessionMiddleware(page, manager=manager, secret_key="k")
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(
        SCRIPT_NAME=script_name,
        PATH_INFO=path_bytes.decode("latin-1"),  # PEP 3333: the path's bytes as latin-1
        HTTP_COOKIE=f"sessionmw={record.session_id}",
        HTTP_ACCEPT="text/html",
    )

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    html_page = b"".join(app(environ, start_response)).decode()
    value = re.search(r'name="next" value="([^"]*)"', html_page)
    assert value is not None
    assert f'action="{script_name}/_sessionmw/reconnect"' in html_page  # the middleware's endpoint
    form = "next=" + quote(html.unescape(value.group(1)), safe="")  # what the browser posts
    assert reconnect_location(manager, form.encode()) == location


def test_the_server_rendered_banner_says_what_the_dash_banner_says(manager: SessionManager) -> None:
    """In every state the HTML banner (WSGI, Flask, ASGI, Quart) has the Dash banner's SVG icon for
    that state and its words: the title, the message and the steps (those promising inputs said as
    a page that does not keep them says them) (issue 27: emoji and other words on the Flask pages)."""
    from sessionmw.integrations.http import banner_html, health_json
    from sessionmw.integrations.style import STATUS_ICONS
    from sessionmw.texts import WITHOUT_INPUTS

    clock: Any = manager.clock
    sessions = {status: manager.create_session().session_id for status in ("error", "disconnected", "idle")}
    expired = manager.create_session().session_id
    manager.record_error(sessions["error"], ConnectionError("quote service down"))
    for _ in range(manager.policy.error_threshold):
        manager.record_error(sessions["disconnected"], ConnectionError("quote service down"))
    clock.advance(manager.policy.idle_after + 1)
    for status in ("error", "disconnected"):  # only "idle" is left idle
        manager.update_session_activity(sessions[status])
    reports = [manager.check_health(session_id) for session_id in sessions.values()]
    clock.advance(manager.policy.timeout + 1)
    reports += [manager.check_health(expired), manager.check_health("no-such-session")]
    assert {report.status for report in reports} == {"error", "disconnected", "idle", "expired", "not_found"}
    for report in reports:
        dash = health_json(report)["session"]["statement"]  # what the Dash banner renders
        page = banner_html(report)
        assert html.escape(dash["title"]) in page and html.escape(dash["message"]) in page, page
        steps = re.findall(r"<li>(.*?)</li>", page)
        kept = [WITHOUT_INPUTS.get(step, step) for step in dash["steps"]]  # the same, less the inputs
        assert steps == [html.escape(step) for step in kept if step], page
        icons = re.findall(r'<img class="sessionmw-icon" src="([^"]+)"', page)
        assert icons == [html.escape(STATUS_ICONS[report.status])], report.status
        assert not any(ord(char) > 0x2000 and char not in "—’“”" for char in html.unescape(page)), page
