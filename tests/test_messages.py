"""The message model: one statement, its cause, and steps the server will not refuse (issue 11)."""

from __future__ import annotations

import json
import logging
import math

import pytest

from sessionmw import BreakerOpenError, SessionManager
from sessionmw._errors import DataLoadError
from sessionmw._settings import Settings
from sessionmw.actions import ActionLedger, log_failure
from sessionmw.health import cause_of_error
from sessionmw.testing import FakeClock
from sessionmw.texts import PAUSED_COUNTDOWN, PAUSED_NOW, paused_message
from sessionmw.translation import CAUSES, cause_of, plain, statement, translate

MINUTE = 60.0
_TRY_AGAIN = ("try the action again", "try again")


@pytest.fixture(name="small")
def _small(clock: FakeClock) -> SessionManager:
    """A manager that disconnects after 3 errors."""
    return SessionManager(Settings(max_error_threshold=3), clock=clock)


def _disconnect(manager: SessionManager, exc: Exception) -> None:
    manager.create_session("s")
    for _ in range(3):
        manager.record_error("s", exc)


def test_healthy_says_nothing(small: SessionManager) -> None:
    """A healthy session gets no statement: nothing is wrong."""
    small.create_session("s")
    assert statement(small.check_health("s")) is None


def test_reconnect_is_confirmed(small: SessionManager) -> None:
    """Right after a reconnect a healthy session gets a short confirmation and no steps."""
    _disconnect(small, DataLoadError("gaps"))
    small.reconnect("s")
    said = statement(small.check_health("s"), reconnected=True)
    assert said is not None
    assert (said.status, said.tone, said.title, said.steps) == ("reconnected", "success", "Reconnected", ())


def test_disconnected_by_backend_never_blames_the_network(small: SessionManager) -> None:
    """A backend that failed three times: the cause is the backend, the step is Reconnect, not "try again"."""
    exc = RuntimeError("This session is not running")
    _disconnect(small, exc)
    said = statement(small.check_health("s"), failure=exc)
    assert said is not None and said.cause == "backend" and said.actions == ("reconnect",)
    text = " ".join((said.message, *said.steps)).lower()
    assert "network" not in text and "data service" in text
    assert not any(phrase in text for phrase in _TRY_AGAIN)
    assert "reconnect" in said.steps[-1].lower()


def test_disconnected_by_network(small: SessionManager) -> None:
    """Connection errors inside the server (its link to a service): waiting, then Reconnect; no
    advice about the user's network, which reached the server (issue 27)."""
    exc = ConnectionRefusedError("refused")
    _disconnect(small, exc)
    said = statement(small.check_health("s"), failure=translate(exc))
    assert said is not None and said.cause == "network"
    assert said.steps[0] == "Wait a moment for the connection to the service to come back."
    assert "network" not in " ".join((said.message, *said.steps)).lower()
    assert said.actions == ("reconnect",)
    small.reconnect("s")
    small.record_error("s", exc)
    said = statement(small.check_health("s"), failure=exc)
    assert said is not None and "network" not in " ".join(said.steps).lower()


def test_error_names_the_failure_without_emoji(small: SessionManager) -> None:
    """In the error state the statement is the failure's own title and message, with the errors left."""
    exc = DataLoadError("price series of ACME has gaps")
    small.create_session("s")
    small.record_error("s", exc)
    said = statement(small.check_health("s"), failure=exc)
    assert said is not None
    assert said.title == translate(exc).title and said.message == plain(translate(exc).message)
    assert said.message[0].isalpha() and "ACME" not in said.message
    assert said.context.startswith("After 2 more errors in a row")
    assert said.steps[0].startswith("Try the action again")


def test_error_of_a_failing_check_uses_the_report() -> None:
    """An error with no failure known (a custom check failing) keeps the report's own words."""
    report = {
        "status": "error",
        "title": "Service unavailable",
        "message": "⚠️ prices is not available",
        "recovery": ["Wait a moment and try again."],
        "context": "",
    }
    said = statement(report)
    assert said is not None
    assert (said.title, said.message, said.steps) == (
        "Service unavailable",
        "prices is not available",
        ("Wait a moment and try again.",),
    )


def test_expired_says_refresh_only(small: SessionManager, clock: FakeClock) -> None:
    """Expired: refresh the page (never reconnect, never try again); inputs come back."""
    small.create_session("s")
    clock.advance(31 * MINUTE)
    said = statement(small.check_health("s"), failure=RuntimeError("This session is not running"))
    assert said is not None and said.cause == "expired" and said.actions == ("refresh",)
    assert said.steps[0] == "Refresh the page to start a new session."
    text = " ".join(said.steps).lower()
    assert "reconnect" not in text and not any(phrase in text for phrase in _TRY_AGAIN)


def test_not_found_is_a_restart_not_the_users_fault(small: SessionManager) -> None:
    """A session the server no longer knows: the cause is a restart, the step is a refresh, and the
    words are the health report's (one voice: the banner and the page say the same)."""
    report = small.check_health("unknown")
    said = statement(report)
    assert said is not None and said.cause == "restarted" and said.actions == ("refresh",)
    assert said.message == plain(report.message) == "We could not find your session"
    assert list(said.steps) == report.recovery and "restart" in said.context


def test_idle_in_words(clock: FakeClock) -> None:
    """Idle: durations in words; no "0 minutes"."""
    manager = SessionManager(Settings(idle_after_seconds=30, session_timeout_minutes=2), clock=clock)
    manager.create_session("s")
    clock.advance(45)
    said = statement(manager.check_health("s"))
    assert said is not None and said.tone == "info"
    assert said.message == "Your session is idle: no activity for less than a minute"
    assert "Without activity it expires in 1 minute." in said.steps


@pytest.mark.parametrize("status", ["idle", "error", "disconnected", "expired", "not_found", "degraded"])
@pytest.mark.parametrize(
    "failure", [None, ConnectionError("x"), RuntimeError("x")], ids=["none", "net", "be"]
)
def test_every_statement_is_json_and_plain(
    small: SessionManager, clock: FakeClock, status: str, failure: Exception | None
) -> None:
    """Every statement is JSON-ready, starts with a letter, and names a known cause."""
    report = {
        "status": status,
        "title": "T",
        "message": "💤 text",
        "recovery": [],
        "context": "",
        "seconds_idle": 0.0,
        "seconds_until_expiry": 60.0,
    }
    said = statement(report, failure=failure)
    assert said is not None and said.cause in CAUSES
    assert said.message[0].isalpha() and said.title
    assert json.loads(json.dumps(said.as_dict()))["status"] == status
    if status in ("disconnected", "expired", "not_found"):
        assert not any(p in " ".join(said.steps).lower() for p in _TRY_AGAIN)


def test_unknown_status_is_named() -> None:
    """A report without a known status is an error naming it."""
    with pytest.raises(ValueError, match="'sleepy'"):
        statement({"status": "sleepy"})


def test_cause_of() -> None:
    """Connection and timeout errors are the network; others the backend; None is unknown."""
    assert cause_of(TimeoutError()) == "network"
    assert cause_of(translate(ConnectionResetError())) == "network"
    assert cause_of(DataLoadError("x")) == "backend"
    assert cause_of(None) == "unknown"


def test_one_action_counts_once() -> None:
    """Repeated failures of one callback within one action count once; another action counts again."""
    ledger = ActionLedger()
    assert ledger.counts("s", "tick", "job-1")
    assert not ledger.counts("s", "tick", "job-1")
    assert ledger.counts("s", "tick", "job-2") and ledger.counts("other", "tick", "job-1")
    ledger.forget("s")
    assert ledger.counts("s", "tick", "job-1")


def test_ledger_is_bounded() -> None:
    """The ledger forgets its oldest entries first; a size below 1 is refused."""
    ledger = ActionLedger(max_entries=2)
    for action in ("a", "b", "c"):
        assert ledger.counts("s", "cb", action)
    assert ledger.counts("s", "cb", "a") and not ledger.counts("s", "cb", "c")
    with pytest.raises(ValueError, match="max_entries"):
        ActionLedger(max_entries=0)


def test_log_failure_is_one_line_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A failure logs one WARNING naming the callback, the type and the short session id; no traceback."""
    logger = logging.getLogger("test.voice")
    logger.setLevel(logging.INFO)
    err = translate(DataLoadError("prices.csv has gaps"))
    with caplog.at_level(logging.INFO, logger="test.voice"):
        log_failure(logger, err, callback="scan", session_id="abcdefghijklmnop")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == "scan failed: DataLoadError (session abcdef…)"
    assert "prices.csv" not in caplog.text and "abcdefghijklmnop" not in caplog.text


@pytest.mark.parametrize("debug", [True, False], ids=["debug-mode", "debug-level"])
def test_log_failure_traceback_in_debug(caplog: pytest.LogCaptureFixture, debug: bool) -> None:
    """In debug mode, or with the logger at DEBUG, the traceback is attached."""
    logger = logging.getLogger("test.voice.debug")
    logger.setLevel(logging.WARNING if debug else logging.DEBUG)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        with caplog.at_level(logging.DEBUG, logger="test.voice.debug"):
            log_failure(logger, exc, callback="tick", session_id=None, debug=debug)
    (record,) = caplog.records
    assert record.exc_info is not None and "(session none)" in record.getMessage()


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        pytest.param(RuntimeError("This session is not running"), "backend", id="backend"),
        pytest.param(ConnectionRefusedError("refused"), "network", id="network"),
    ],
)
def test_health_poll_knows_the_cause(small: SessionManager, failure: Exception, cause: str) -> None:
    """Without the failure at hand (a health poll), the report's cause picks the steps."""
    _disconnect(small, failure)
    report = small.check_health("s")
    assert report["cause"] == cause and "RuntimeError" not in json.dumps(report)
    said = statement(report)
    assert said is not None and said.cause == cause


@pytest.mark.parametrize(
    ("last_error", "cause"),
    [
        pytest.param("TimeoutError: read timed out", "network", id="timeout"),
        pytest.param("DataLoadError: gaps", "backend", id="data"),
        pytest.param("backend failed", None, id="plain-text"),
        pytest.param(None, None, id="none"),
    ],
)
def test_cause_of_error(last_error: str | None, cause: str | None) -> None:
    """The cause is read off the type name a record keeps; a plain message names none."""
    assert cause_of_error(last_error) == cause


def test_degraded_says_nothing_to_reconnect() -> None:
    """A paused dependency (breaker): the report's own words, no Reconnect, no refresh."""
    report = {
        "status": "degraded",
        "title": "Service paused",
        "message": "⏸️ prices is paused",
        "recovery": ["Your session is fine: there is nothing to reconnect."],
        "context": "",
    }
    said = statement(report)
    assert said is not None and said.actions == () and said.message == "prices is paused"


def test_a_failure_the_session_is_not_blamed_for_is_still_said(small: SessionManager) -> None:
    """A healthy session whose action failed (a breaker counted the failure, not the session):
    the failure is said, with no count of errors towards a disconnect."""
    small.create_session("s")
    failure = DataLoadError("prices missing")
    said = statement(small.check_health("s"), failure=failure)
    assert said is not None and said.status == "error" and said.title == translate(failure).title
    assert said.context == "" and said.actions == ()


@pytest.mark.parametrize("seconds", [0.2, 1, 2, 25, 30])
def test_paused_message_is_the_breakers_own(seconds: float) -> None:
    """The countdown's words are those of the refusal the user's action gets: one voice."""
    refused = BreakerOpenError("market-data", "market data", seconds)
    assert paused_message("market data", seconds) == refused.message
    assert PAUSED_COUNTDOWN.format(service="market data", n=math.ceil(seconds)) == refused.message


def test_paused_with_no_time_left_is_trying_now() -> None:
    """An open breaker whose pause is over (a probe is due) is "trying again now", not "in 1 second"."""
    report = {
        "status": "degraded",
        "message": "⏸️ The market data service is paused; we will try again in 1 second",
        "recovery": [],
        "dependencies": [{"name": "market-data", "service": "market data", "state": "open", "retry_in": 0}],
    }
    said = statement(report)
    assert said is not None and said.message == "The market data service is paused; trying again now"
    report["dependencies"][0]["retry_in"] = 1  # type: ignore[index]
    said = statement(report)
    assert said is not None and said.message.endswith("we will try again in 1 second")
    assert paused_message("market data", -3) == PAUSED_NOW.format(service="market data")



@pytest.mark.parametrize(
    ("minutes", "hours", "said"),
    [
        (1, 1, ("Sessions expire after 1 minute without activity.", "sessions end after 1 hour.")),
        (30, 12, ("Sessions expire after 30 minutes without activity.", "sessions end after 12 hours.")),
        (0.5, 1.5, ("Sessions expire after 30 seconds without activity.", "end after 1 hour 30 minutes.")),
    ],
)
def test_the_policy_is_said_in_plain_numbers(minutes: float, hours: float, said: tuple[str, str]) -> None:
    """An expired session's context names the timeout as a person says it: "1 minute", not "1 minutes"."""
    from sessionmw._session import Policy, SessionRecord
    from sessionmw._states import SessionState
    from sessionmw.health import HealthReport

    policy = Policy(idle_after=10, timeout=minutes * 60, absolute_timeout=hours * 3600)
    for reason, text in (("timeout", said[0]), ("lifetime_exceeded", said[1])):
        record = SessionRecord("s", SessionState.EXPIRED, 0.0, 0.0, 0, None, 1.0, reason)
        assert text in HealthReport.build("s", record, 2.0, policy).context
