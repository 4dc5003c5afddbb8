"""The layout of the words: a user-facing error as plain text, Markdown, HTML and a JSON-ready
dict; HTML escaped whatever the words hold; bad arguments named."""

from __future__ import annotations

import html.parser
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionmw import SessionManager, UserFacingError, format_error
from sessionmw.rendering import guidance, recovery_text


def test_format_text_markdown_and_dict() -> None:
    """text lists numbered steps; markdown escapes; dict is JSON with the documented keys."""
    err = UserFacingError(
        "Prices for *ACME* are late",
        title="Late data",
        recovery=["Wait a minute.", "Refresh."],
        severity="warning",
        context="Feeds lag at the open.",
    )
    text = format_error(err)
    assert text.splitlines() == [
        "Late data",
        "🎯 What happened: Prices for *ACME* are late",
        "🔧 How to fix it:",
        "  1. Wait a minute.",
        "  2. Refresh.",
        "📝 Feeds lag at the open.",
    ]
    assert r"Prices for \*ACME\* are late" in format_error(err, "markdown")
    assert "1. Wait a minute." in format_error(err, "markdown")
    data = format_error(err, "dict")
    assert json.loads(json.dumps(data)) == data
    assert {"title", "message", "recovery", "severity", "transient", "status"} <= set(data)
    assert data["severity"] == "warning"
    assert data["recovery"] == ["Wait a minute.", "Refresh."]


def test_html_is_escaped() -> None:
    """A message containing <script> comes out inert in HTML."""
    err = UserFacingError(
        '<script>alert("x")</script>', title="<b>t</b>", recovery=["<img src=x onerror=alert(1)>"]
    )
    out = format_error(err, "html")
    assert "<script>" not in out
    assert "<img" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert "&lt;b&gt;t&lt;/b&gt;" in out


def test_format_refuses_bad_arguments() -> None:
    """An unknown format or something other than a UserFacingError is refused by name."""
    err = UserFacingError("m")
    with pytest.raises(ValueError, match="'xml'"):
        format_error(err, "xml")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="ValueError"):
        format_error(ValueError("x"))  # type: ignore[call-overload]


@given(
    title=st.text(min_size=1),
    message=st.text(min_size=1),
    steps=st.lists(st.text(min_size=1), max_size=3),
)
def test_html_never_contains_foreign_markup(title: str, message: str, steps: list[str]) -> None:
    """Whatever the text, the HTML has only sessionmw's own tags and shows the text verbatim."""
    err = UserFacingError(message, title=title, recovery=steps)
    parser = _Collector()
    parser.feed(format_error(err, "html"))
    parser.close()
    assert parser.tags <= {"div", "p", "strong", "ol", "li"}
    shown = "".join(parser.text)
    normalised = message.replace("\r\n", "\n").replace("\r", "\n")
    assert normalised in shown.replace("\r\n", "\n").replace("\r", "\n")


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_guidance_is_what_happened_then_numbered_steps_then_context() -> None:
    """The seed's three parts, in order: the message, the recovery steps numbered from 1, the context."""
    err = UserFacingError(
        "The prices did not load.", recovery=["Wait a moment.", "Try again."], context="Job 7"
    )
    assert guidance(err) == [
        "🎯 What happened: The prices did not load.",
        "🔧 How to fix it:",
        "  1. Wait a moment.",
        "  2. Try again.",
        "📝 Job 7",
    ]


def test_guidance_leaves_out_empty_parts() -> None:
    """No recovery steps: no "How to fix it" heading; no context: no context line."""
    assert guidance(UserFacingError("Done.", recovery=[])) == ["🎯 What happened: Done."]


def test_recovery_text_is_a_reports_guidance(manager: SessionManager) -> None:
    """What the CLI prints for a session: its report's guidance, one part a line, its words those
    of the report."""
    session_id = manager.create_session().session_id
    for _ in range(manager.policy.error_threshold):
        manager.record_error(session_id, "backend down")
    report = manager.check_health(session_id)
    assert report.status == "disconnected" and report.recovery
    text = recovery_text(report)
    assert text.splitlines() == guidance(report)
    assert text.startswith(f"🎯 What happened: {report.message}")
    assert all(f"{number}. {step}" in text for number, step in enumerate(report.recovery, 1))
