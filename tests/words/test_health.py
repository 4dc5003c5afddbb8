"""Health reports: what a session's state means to its user (status, title, message, recovery
steps, the seed's fields), the cause of a recorded error, checks run on the session's behalf and
the dependencies a report lists."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from support.fakes import SESSION_KINDS

from sessionmw import SessionManager, SessionState, health
from sessionmw._session import Policy, SessionRecord
from sessionmw.health import CheckResult, HealthReport, cause_of_error, register_dependency_source, run_check
from sessionmw.testing import FakeClock
from sessionmw.texts import MESSAGES


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


@pytest.mark.parametrize(
    ("kind", "status", "healthy"),
    [
        ("healthy", "healthy", True),
        ("idle", "idle", False),
        ("error", "error", False),
        ("disconnected", "disconnected", False),
        ("expired", "expired", False),
        ("unknown", "not_found", False),
    ],
)
def test_each_state_is_reported_in_its_own_words(
    manager: SessionManager, clock: FakeClock, kind: str, status: str, healthy: bool
) -> None:
    """Each kind of session gets its status, its catalogue message and recovery steps, and a report
    that is plain JSON whose keys are also attributes."""
    session_id = SESSION_KINDS[kind](manager, clock)
    report = manager.check_health(session_id)
    assert (report.status, report.healthy, report.session_id) == (status, healthy, session_id)
    assert report.title == MESSAGES[status].title
    assert json.loads(json.dumps(report)) == dict(report)
    assert all(getattr(report, key) == report[key] for key in ("message", "recovery", "icon", "context"))
    assert "{" not in report.message and all("{" not in step for step in report.recovery)


def test_an_error_report_names_its_cause_and_leaks_the_error_only_in_debug(clock: FakeClock) -> None:
    """A failing session's report says whether the network or the backend failed; the recorded
    error itself is shown only in debug mode."""
    record = SessionRecord.new("s", clock.now)
    record.state, record.error_count, record.last_error = SessionState.ERROR, 1, "TimeoutError: db:5432"
    report = HealthReport.build("s", record, clock.now, Policy())
    assert report["cause"] == "network" and "db:5432" not in json.dumps(report)
    debug = HealthReport.build("s", record, clock.now, Policy(), debug=True)
    assert debug["last_error"] == "TimeoutError: db:5432"


def test_a_failing_check_turns_a_healthy_session_into_an_error_in_its_own_words(clock: FakeClock) -> None:
    """The first failing check makes a healthy session's report an error, in the check's own words."""
    checks = [CheckResult("db", True), CheckResult("quota", False, "Your quota is used up.")]
    report = HealthReport.build("s", SessionRecord.new("s", clock.now), clock.now, Policy(), checks)
    assert (report.status, report.healthy, report.message) == ("error", False, "Your quota is used up.")
    assert report.checks == [check._asdict() for check in checks]


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (True, CheckResult("db", True, "")),
        ((False, "read-only"), CheckResult("db", False, "read-only")),
        (CheckResult("other name", False, "down"), CheckResult("db", False, "down")),
    ],
)
def test_a_check_may_answer_a_bool_a_pair_or_a_result(result: Any, expected: CheckResult) -> None:
    """Whatever form a check answers in, the result carries the name it was registered under."""
    assert run_check("db", lambda session_id: result, "s", debug=False) == expected


def test_a_raising_check_fails_without_leaking_its_exception(caplog: pytest.LogCaptureFixture) -> None:
    """A check that raises fails with a message naming it; logged, its exception shown only in debug."""

    def check(session_id: str) -> bool:
        raise RuntimeError("password=hunter2")

    with caplog.at_level(logging.WARNING, logger="sessionmw.health"):
        quiet = run_check("db", check, "s", debug=False)
    assert not quiet.healthy and "db" in quiet.message and "hunter2" not in quiet.message
    assert "health check 'db' raised" in caplog.text
    loud = run_check("db", check, "s", debug=True)
    assert loud.message.endswith("(RuntimeError: password=hunter2)")


def test_a_paused_dependency_degrades_a_healthy_session_and_a_raising_source_is_skipped(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A dependency that is not passing is listed and makes a healthy session ``degraded`` (no
    reconnect needed); a source that raises is logged and left out; an ended session lists none."""
    monkeypatch.setattr(health, "_DEPENDENCY_SOURCES", [])
    paused = {"name": "prices", "status": "fail", "message": "Prices are paused."}

    def broken(store: object) -> list[dict[str, Any]]:
        raise RuntimeError("source down")

    register_dependency_source(lambda store: [paused])
    register_dependency_source(broken)
    register_dependency_source(broken)  # (registered once)
    record = SessionRecord.new("s", clock.now)
    with caplog.at_level(logging.WARNING, logger="sessionmw.health"):
        report = HealthReport.build("s", record, clock.now, Policy(), store=object())
    assert (report.status, report.healthy, report["dependencies"]) == ("degraded", False, [paused])
    assert "Prices are paused." in report.message
    assert [check["name"] for check in report.checks] == ["breaker:prices"]
    assert caplog.text.count("dependency source") == 1
    record.state = SessionState.ENDED
    assert "dependencies" not in HealthReport.build("s", record, clock.now, Policy(), store=object())
