"""User-facing errors: the translation registry, health errors, Retry-After and rendering. The message
model: one statement, its cause, and steps the server will not refuse."""

from __future__ import annotations

import email.utils
import json
import math
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import redis.exceptions

from sessionmw import (
    BackendProcessError,
    BreakerOpenError,
    DataLoadError,
    IllegalTransitionError,
    SessionDisconnectedError,
    SessionExpiredError,
    SessionLimitError,
    SessionManager,
    SessionNotFoundError,
    StoreUnavailableError,
    TransientError,
    Translation,
    UserFacingError,
    format_error,
    is_transient,
    register_translation,
    translate,
    unregister_translation,
)
from sessionmw._settings import Settings
from sessionmw.testing import FakeClock
from sessionmw.texts import PAUSED_COUNTDOWN, PAUSED_NOW, paused_message
from sessionmw.translation import (
    CAUSES,
    DEFAULT_RETRY_AFTER,
    SITUATIONS,
    cause_of,
    parse_retry_after,
    plain,
    retry_after_of,
    statement,
    translations,
)

SECRET = "password=hunter2 at db.internal:5432"


@pytest.fixture(name="registered")
def _registered() -> Iterator[list[type[BaseException] | Callable[[BaseException], bool]]]:
    """Matchers appended to this list are unregistered after the test."""
    matchers: list[type[BaseException] | Callable[[BaseException], bool]] = []
    yield matchers
    for match in matchers:
        unregister_translation(match)


BUILTINS = [
    pytest.param(ConnectionError(SECRET), "Connection problem", True, None, id="ConnectionError"),
    pytest.param(
        ConnectionRefusedError(SECRET), "Connection problem", True, None, id="ConnectionRefusedError"
    ),
    pytest.param(ConnectionResetError(SECRET), "Connection problem", True, None, id="ConnectionResetError"),
    pytest.param(TimeoutError(SECRET), "Request timed out", True, None, id="TimeoutError"),
    pytest.param(socket.timeout(SECRET), "Request timed out", True, None, id="socket.timeout"),  # noqa: UP041
    pytest.param(BrokenPipeError(SECRET), "Connection interrupted", True, None, id="BrokenPipeError"),
    pytest.param(PermissionError(SECRET), "Access denied", False, None, id="PermissionError"),
    pytest.param(FileNotFoundError(SECRET), "Data not available", False, None, id="FileNotFoundError"),
    pytest.param(DataLoadError(SECRET), "Data not available", False, None, id="DataLoadError"),
    pytest.param(MemoryError(SECRET), "Request too large", False, None, id="MemoryError"),
    pytest.param(
        BackendProcessError(SECRET), "Background service failed", True, None, id="BackendProcessError"
    ),
    pytest.param(TransientError(SECRET), "Temporary problem", True, None, id="TransientError"),
    pytest.param(
        StoreUnavailableError(SECRET), "Service unavailable", True, None, id="StoreUnavailableError"
    ),
    pytest.param(SessionLimitError(SECRET), "Too many users", True, None, id="SessionLimitError"),
    pytest.param(SessionExpiredError(SECRET), "Session expired", False, "expired", id="SessionExpiredError"),
    pytest.param(
        SessionDisconnectedError(SECRET),
        "Session disconnected",
        False,
        "disconnected",
        id="SessionDisconnected",
    ),
    pytest.param(SessionNotFoundError(SECRET), "Session not found", False, "not_found", id="SessionNotFound"),
    pytest.param(
        IllegalTransitionError("expired", "activity"), "Session expired", False, "expired", id="illegal-exp"
    ),
    pytest.param(
        IllegalTransitionError("ended", "activity"), "Session expired", False, "expired", id="illegal-end"
    ),
    pytest.param(
        IllegalTransitionError("disconnected", "success"),
        "Session disconnected",
        False,
        "disconnected",
        id="illegal-disconnected",
    ),
    pytest.param(
        RuntimeError("This session is not running"), "Session not running", True, None, id="not-running"
    ),
    pytest.param(
        RuntimeError("this session is not running."), "Session not running", True, None, id="not-running2"
    ),
    pytest.param(RuntimeError(SECRET), "Something went wrong", False, None, id="other-RuntimeError"),
    pytest.param(
        redis.exceptions.ConnectionError(SECRET), "Connection problem", True, None, id="redis-connection"
    ),
    pytest.param(redis.exceptions.TimeoutError(SECRET), "Request timed out", True, None, id="redis-timeout"),
    pytest.param(
        redis.exceptions.BusyLoadingError(SECRET), "Connection problem", True, None, id="redis-loading"
    ),
    pytest.param(ValueError(SECRET), "Something went wrong", False, None, id="fallback"),
]


@pytest.mark.parametrize(("exc", "title", "transient", "status"), BUILTINS)
def test_builtin_translations(exc: BaseException, title: str, transient: bool, status: str | None) -> None:
    """Each built-in entry gives its title, transient flag and health status, and keeps the original."""
    err = translate(exc)
    assert err.title == title
    assert err.transient is transient
    assert is_transient(exc) is transient
    assert err.status == status
    assert err.original is exc
    assert err.__cause__ is exc
    assert err.attempts == (exc,)
    assert str(err) == err.message
    assert err.recovery, "every built-in entry tells the user what to do"
    assert (err.retry_after is not None) is transient


@pytest.mark.parametrize(("exc", "title", "transient", "status"), BUILTINS)
def test_no_exception_text_leaks_by_default(
    exc: BaseException, title: str, transient: bool, status: str | None
) -> None:
    """Without debug, no format of the error shows the exception's text or type name."""
    err = translate(exc)
    rendered = [str(err), format_error(err, "text"), format_error(err, "markdown"), format_error(err, "html")]
    rendered.append(json.dumps(format_error(err, "dict")))
    for text in rendered:
        assert "hunter2" not in text
        assert type(exc).__name__ not in text
        assert "Traceback" not in text
    assert err.detail is None


def test_debug_adds_type_text_and_traceback() -> None:
    """With debug=True the error's detail and str() carry the type, the text and the traceback."""
    try:
        raise ValueError(SECRET)
    except ValueError as exc:
        err = translate(exc, debug=True)
    assert err.detail is not None
    assert "ValueError: password=hunter2" in err.detail
    assert "Traceback (most recent call last)" in err.detail
    assert "hunter2" in str(err)
    assert format_error(err, "dict")["detail"] == err.detail
    assert "hunter2" in format_error(err, "text")


def test_user_facing_error_passes_through() -> None:
    """Translating a UserFacingError returns the very same object."""
    err = UserFacingError("Your report is too big", title="Too big")
    assert translate(err) is err
    assert translate(err, debug=True) is err


def test_user_facing_error_validates_severity_and_recovery() -> None:
    """A bad severity or a recovery given as one string is refused with a clear message."""
    with pytest.raises(ValueError, match="severity"):
        UserFacingError("x", severity="fatal")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of steps"):
        UserFacingError("x", recovery="Refresh the page.")


def test_replace_copies_with_changes() -> None:
    """replace() returns a new error with the given attributes changed and the rest kept."""
    original = OSError("disk")
    err = translate(original)
    copy = err.replace(message="Saving failed")
    assert copy is not err
    assert str(copy) == "Saving failed"
    assert copy.title == err.title
    assert copy.original is original
    assert err.message != "Saving failed"
    with pytest.raises(TypeError, match="colour"):
        err.replace(colour="red")


def test_register_class_and_closest_class_wins(registered: list[type[BaseException]]) -> None:
    """A registered class matches its subclasses; the closest class in the MRO wins."""

    class QuotaError(Exception):
        pass

    class DailyQuotaError(QuotaError):
        pass

    registered += [QuotaError, DailyQuotaError]
    register_translation(QuotaError, title="Quota reached", message="You used your quota", recovery=["Wait."])
    assert translate(DailyQuotaError()).title == "Quota reached"
    register_translation(DailyQuotaError, title="Daily quota", message="Come back tomorrow")
    assert translate(DailyQuotaError()).title == "Daily quota"
    assert translate(QuotaError()).title == "Quota reached"


def test_register_replaces_a_builtin_and_unregister_restores(registered: list[type[BaseException]]) -> None:
    """Registering a class again replaces its entry; unregistering falls back to the parent's."""

    class MyConnectionError(ConnectionError):
        pass

    registered.append(MyConnectionError)
    register_translation(MyConnectionError, title="Broker offline", message="The broker is offline")
    assert translate(MyConnectionError()).title == "Broker offline"
    assert translate(MyConnectionError()).transient is False
    assert unregister_translation(MyConnectionError) is True
    assert translate(MyConnectionError()).title == "Connection problem"
    assert unregister_translation(MyConnectionError) is False


def test_predicates_come_first_newest_first(registered: list[Callable[[BaseException], bool]]) -> None:
    """Predicates are tried before classes, the most recently registered first."""

    def about_quota(exc: BaseException) -> bool:
        return "quota" in str(exc)

    def about_daily_quota(exc: BaseException) -> bool:
        return "daily quota" in str(exc)

    registered += [about_quota, about_daily_quota]
    register_translation(about_quota, title="Quota", message="Quota reached", transient=True)
    register_translation(about_daily_quota, title="Daily", message="Daily quota reached")
    assert translate(ConnectionError("quota")).title == "Quota"
    assert translate(ConnectionError("quota")).retry_after == DEFAULT_RETRY_AFTER
    assert translate(ValueError("daily quota")).title == "Daily"
    assert translate(ValueError("other")).title == "Something went wrong"
    assert unregister_translation(about_quota) is True
    assert translate(ConnectionError("quota")).title == "Connection problem"


def test_a_raising_predicate_is_skipped(registered: list[Callable[[BaseException], bool]]) -> None:
    """A predicate that raises does not hide the real error: the next entry applies."""

    def broken(exc: BaseException) -> bool:
        raise KeyError("bug in predicate")

    registered.append(broken)
    register_translation(broken, title="Never", message="Never shown")
    assert translate(TimeoutError()).title == "Request timed out"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"title": "", "message": "m"}, ValueError, "title", id="empty-title"),
        pytest.param({"title": "t", "message": " "}, ValueError, "message", id="blank-message"),
        pytest.param(
            {"title": "t", "message": "m", "severity": "fatal"}, ValueError, "severity", id="severity"
        ),
        pytest.param(
            {"title": "t", "message": "m", "recovery": "Do it."}, TypeError, "list of steps", id="str"
        ),
        pytest.param(
            {"title": "t", "message": "m", "retry_after": -1.0}, ValueError, "retry_after", id="neg-wait"
        ),
    ],
)
def test_register_refuses_bad_entries(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    """A malformed entry is refused with an error naming what is wrong."""
    with pytest.raises(error, match=match):
        register_translation(KeyError, **kwargs)  # type: ignore[arg-type]
    assert translate(KeyError()).title == "Something went wrong"


def test_register_refuses_non_exception_classes() -> None:
    """Only exception classes or predicates can be registered."""
    with pytest.raises(TypeError, match="exception classes"):
        register_translation(int, title="t", message="m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="predicate"):
        register_translation("ValueError", title="t", message="m")  # type: ignore[arg-type]


def test_translations_lists_the_table() -> None:
    """translations() lists every entry, built-ins included."""
    table = dict(translations())
    assert table[ConnectionError].title == "Connection problem"
    assert isinstance(table[redis.exceptions.TimeoutError], Translation)


def test_from_health_uses_the_report(manager: SessionManager, clock: FakeClock) -> None:
    """An expired session's report becomes an error with its title, message, steps and status."""
    manager.create_session("s1")
    clock.advance(manager.policy.timeout + 1)
    report = manager.check_health("s1")
    err = UserFacingError.from_health(report)
    assert (err.title, err.message, err.recovery, err.status) == (
        report.title,
        report.message,
        report.recovery,
        "expired",
    )
    assert isinstance(err.original, SessionExpiredError)
    assert err.__cause__ is err.original
    assert err.transient is False


def test_from_health_disconnected_and_not_found(manager: SessionManager) -> None:
    """Disconnected and unknown sessions give their own status and exception class."""
    manager.create_session("s1")
    for _ in range(manager.policy.error_threshold):
        manager.record_error("s1", "boom")
    disconnected = UserFacingError.from_health(manager.check_health("s1"))
    assert disconnected.status == "disconnected"
    assert isinstance(disconnected.original, SessionDisconnectedError)
    missing = UserFacingError.from_health(manager.check_health("nobody"))
    assert missing.status == "not_found"
    assert isinstance(missing.original, SessionNotFoundError)


def test_from_health_refuses_a_healthy_report(manager: SessionManager) -> None:
    """A healthy report is not an error."""
    manager.create_session("s1")
    with pytest.raises(ValueError, match="healthy"):
        UserFacingError.from_health(manager.check_health("s1"))


class _ServerBusy(ConnectionError):
    def __init__(self, retry_after: object) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


class _Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _HTTPError(TransientError):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("503")
        self.response = _Response(headers)


def test_retry_after_from_the_exception() -> None:
    """A server's Retry-After (attribute, seconds or HTTP date, or a response header) wins."""
    now = 1_700_000_000.0
    assert translate(_ServerBusy(12)).retry_after == 12.0
    assert translate(_ServerBusy("7")).retry_after == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_of(_ServerBusy(date), now=now) == 30.0
    assert retry_after_of(_HTTPError({"Retry-After": "3"}), now=now) == 3.0
    assert translate(_HTTPError({})).retry_after == DEFAULT_RETRY_AFTER
    assert translate(_ServerBusy("soon")).retry_after == DEFAULT_RETRY_AFTER


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(5, 5.0, id="int"),
        pytest.param(2.5, 2.5, id="float"),
        pytest.param(" 120 ", 120.0, id="text"),
        pytest.param(b"9", 9.0, id="bytes"),
        pytest.param("Tue, 14 Nov 2023 22:13:50 GMT", 30.0, id="http-date"),
        pytest.param("Tue, 14 Nov 2023 22:13:00 GMT", 0.0, id="past-date"),
        pytest.param(-1, None, id="negative"),
        pytest.param(float("inf"), None, id="infinite"),
        pytest.param(True, None, id="bool"),
        pytest.param("later", None, id="garbage"),
        pytest.param(None, None, id="none"),
    ],
)
def test_parse_retry_after(value: object, expected: float | None) -> None:
    """Retry-After values are seconds or HTTP dates; anything else is ignored."""
    assert parse_retry_after(value, now=1_700_000_000.0) == expected


def test_redis_is_not_imported_for_its_translations() -> None:
    """Importing sessionmw does not import redis; redis errors translate once redis is in use."""
    code = (
        "import sys, sessionmw\n"
        "assert 'redis' not in sys.modules, 'sessionmw imported redis'\n"
        "import redis.exceptions\n"
        "err = sessionmw.translate(redis.exceptions.ConnectionError('x'))\n"
        "assert err.title == 'Connection problem' and err.transient\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


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


def test_an_error_knows_its_situation() -> None:
    """Built-in translations and session reports name their situation (the stable name API clients
    get in a problem document's type); an app's own translation or error has none."""
    assert translate(TimeoutError()).situation == "timeout"
    assert translate(SessionLimitError("full")).situation == "too-many-users"
    assert translate(RuntimeError("This session is not running")).situation == "not-running"
    assert translate(ValueError()).situation == "unexpected"
    assert translate(TransientError("x")).replace(title="Other").situation == "temporary"
    assert BreakerOpenError("b", "prices", 3).situation == "service-paused"
    assert UserFacingError("mine").situation is None
    register_translation(KeyError, title="Missing", message="Something is missing")
    try:
        assert translate(KeyError("k")).situation is None
    finally:
        unregister_translation(KeyError)
    builtins = {entry.situation for _matcher, entry in translations()}
    assert builtins <= set(SITUATIONS) and len(SITUATIONS) == len(set(SITUATIONS))
