"""Numbers and durations in words (issue 11: "expires in 1 minutes", "no activity for 0 minutes"):
whole sentences with a singular and a plural form, never a noun with an "s" glued on."""

from __future__ import annotations

import math

import pytest

from sessionmw import SessionManager
from sessionmw._settings import Settings
from sessionmw.testing import FakeClock
from sessionmw.texts import MESSAGES, Plural, duration


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        pytest.param(0, "0 errors left", id="zero"),
        pytest.param(1, "1 error left", id="one"),
        pytest.param(2, "2 errors left", id="two"),
    ],
)
def test_plural(count: int, expected: str) -> None:
    """The plural sentence is used unless the count is exactly 1; the count's placeholder is named."""
    left = Plural("{left} error left", "{left} errors left", count="left")
    assert left.format(left=count) == expected


def test_the_error_context_is_a_plural_sentence() -> None:
    """The report's "more errors" context is one sentence per form, not a noun made plural."""
    context = MESSAGES["error"].context
    assert isinstance(context, Plural) and context.count == "errors_left"
    assert context.one != context.other


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0, "less than a minute", id="zero"),
        pytest.param(59.9, "less than a minute", id="under-a-minute"),
        pytest.param(60, "1 minute", id="one-minute"),
        pytest.param(119, "1 minute", id="rounded-down"),
        pytest.param(120, "2 minutes", id="two-minutes"),
        pytest.param(3600, "1 hour", id="one-hour"),
        pytest.param(3660, "1 hour 1 minute", id="hour-and-minute"),
        pytest.param(2 * 3600 + 5 * 60, "2 hours 5 minutes", id="hours-and-minutes"),
    ],
)
def test_duration(seconds: float, expected: str) -> None:
    """Durations read as a person says them, never "0 minutes" or "1 minutes"."""
    assert duration(seconds) == expected


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_duration_rejects_bad_input(bad: float) -> None:
    """A negative or non-finite duration is a clear error."""
    with pytest.raises(ValueError, match="finite number of seconds"):
        duration(bad)


def test_idle_report_in_words(clock: FakeClock) -> None:
    """The idle report says "less than a minute" and "1 minute", never "0 minutes" or "1 minutes"."""
    manager = SessionManager(Settings(idle_after_seconds=30, session_timeout_minutes=2), clock=clock)
    manager.create_session("s")
    clock.advance(45)
    report = manager.check_health("s")
    assert report.status == "idle"
    assert report.message.endswith("no activity for less than a minute")
    assert "Without activity it expires in 1 minute." in report.recovery
    clock.advance(40)  # 85 s idle, 35 s left
    report = manager.check_health("s")
    assert report.message.endswith("no activity for 1 minute")
    assert "Without activity it expires in less than a minute." in report.recovery


def test_error_report_counts_in_words(clock: FakeClock) -> None:
    """With one error left before disconnect the report says "1 more error", not "1 more errors"."""
    manager = SessionManager(Settings(max_error_threshold=3), clock=clock)
    manager.create_session("s")
    manager.record_error("s", ValueError("x"))
    assert manager.check_health("s").context.startswith("After 2 more errors in a row")
    manager.record_error("s", ValueError("x"))
    assert manager.check_health("s").context.startswith("After 1 more error in a row")


def test_expiry_context_counts_in_words(clock: FakeClock) -> None:
    """An expired session's context says "after 1 minute" and "after 1 hour", never "1 minutes"."""
    manager = SessionManager(Settings(session_timeout_minutes=1, idle_after_seconds=30), clock=clock)
    manager.create_session("s")
    clock.advance(61)
    assert manager.check_health("s").context == "Sessions expire after 1 minute without activity."
    lasting = SessionManager(
        Settings(absolute_timeout_hours=1, session_timeout_minutes=120, idle_after_seconds=30), clock=clock
    )
    lasting.create_session("t")
    for _ in range(3):
        clock.advance(15 * 60)
        lasting.update_session_activity("t")
    clock.advance(15 * 60 + 1)  # an hour and a second old
    assert lasting.check_health("t").context == "For your security, sessions end after 1 hour."
