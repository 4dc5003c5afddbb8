"""The WSGI side of the gate: an environ read through the request view (PEP 3333's keys; the body
only as far as asked and as announced)."""

from __future__ import annotations

import io

from sessionmw.integrations.environ import EnvironRequest


def test_an_environ_is_read_through_the_view() -> None:
    """The WSGI view reads PEP 3333's keys, and the body only as far as asked."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/x",
        "QUERY_STRING": "a=1",
        "wsgi.url_scheme": "https",
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_COOKIE": "sessionmw=abc",
        "HTTP_X_SESSION_ID": "abc",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": "12",
        "wsgi.input": io.BytesIO(b"next=%2Fpage&more"),
    }
    view = EnvironRequest(environ)
    assert (view.method, view.path, view.query_string, view.scheme) == ("POST", "/x", "a=1", "https")
    assert (view.remote_address, view.cookies) == ("10.0.0.1", "sessionmw=abc")
    assert view.header("x-session-id") == "abc"
    assert view.header("content-type") == "application/x-www-form-urlencoded"
    assert view.body(5) == b"next="
