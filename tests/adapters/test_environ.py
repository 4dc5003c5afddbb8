"""The WSGI side of the gate: an environ read through the request view (PEP 3333's keys; the body
only as far as asked and as announced)."""

from __future__ import annotations

import io
from typing import Any

import pytest

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


def test_an_empty_environ_reads_as_a_plain_get_at_the_root() -> None:
    """What a server leaves out reads as PEP 3333's defaults: GET over http, nothing else known."""
    view = EnvironRequest({})
    assert (view.method, view.path, view.root_path) == ("GET", "", "")
    assert (view.query_string, view.scheme) == ("", "http")
    assert (view.remote_address, view.cookies, view.header("accept")) == (None, "", None)
    assert view.body(100) == b""


@pytest.mark.parametrize("length", ["", "abc", "-5", "0"])
def test_a_body_without_a_usable_length_is_not_read(length: str) -> None:
    """No, a malformed or a non-positive ``CONTENT_LENGTH``: nothing is read (the input may block)."""

    class Unreadable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("read")

    view = EnvironRequest({"CONTENT_LENGTH": length, "wsgi.input": Unreadable(b"data")})
    assert view.body(100) == b""


def test_the_body_is_read_only_as_far_as_announced() -> None:
    """A client announcing 4 bytes gets 4 read, however much it sent and however much is asked."""
    environ = {"CONTENT_LENGTH": "4", "wsgi.input": io.BytesIO(b"next=/page")}
    assert EnvironRequest(environ).body(100) == b"next"


def test_the_environ_is_read_not_copied() -> None:
    """The view reads the live environ: what a middleware in front sets later is seen."""
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET"}
    view = EnvironRequest(environ)
    environ["HTTP_X_FORWARDED_PROTO"] = "https"
    assert view.environ is environ and view.header("x-forwarded-proto") == "https"
