"""The seed-compatible manager API: life cycle, signals, health, store faults."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from sessionmw import (
    CheckResult,
    IllegalTransitionError,
    SessionExistsError,
    SessionLimitError,
    SessionManager,
    SessionState,
    StoreUnavailableError,
    get_session_manager,
    set_session_manager,
    signals,
)
from sessionmw._errors import CorruptRecordError
from sessionmw.stores._memory import MemoryStore
from sessionmw.testing import FakeClock, capture_signals
from sessionmw.texts import MESSAGES

MINUTE = 60.0


def names(sent: list[Any]) -> list[str]:
    return [s.name for s in sent]


def test_create_session_with_generated_id_is_random_and_long(manager: SessionManager) -> None:
    """Generated ids are distinct and carry at least 128 bits (URL-safe base64)."""
    ids = {manager.create_session().session_id for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) >= 22 and set(i) <= set(_URLSAFE) for i in ids)


_URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_seed_example_flow(manager: SessionManager) -> None:
    """The seed's example: create, touch, check health, print recovery instructions."""
    session = manager.create_session("my-session")
    assert session.session_id == "my-session" and session.state is SessionState.ACTIVE
    assert manager.update_session_activity("my-session") is True
    health = manager.check_health("my-session")
    assert health["healthy"] and health.healthy and health["status"] == "healthy"
    assert manager.get_recovery_instructions(health).startswith("🎯 What happened: ✅")


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "é", "a\r\nSet-Cookie: x", "../etc"])
def test_invalid_ids_are_refused_by_name(manager: SessionManager, bad: str) -> None:
    """An id with bad characters or length raises ValueError that shows the id."""
    with pytest.raises(ValueError, match="invalid session id"):
        manager.create_session(bad)


def test_live_duplicate_refused_terminal_replaced(manager: SessionManager, clock: FakeClock) -> None:
    """A live id cannot be created twice; an expired one is replaced by a fresh session."""
    manager.create_session("s")
    with pytest.raises(SessionExistsError):
        manager.create_session("s")
    clock.advance(31 * MINUTE)
    fresh = manager.create_session("s")
    assert fresh.state is SessionState.ACTIVE
    assert manager.check_health("s").status == "healthy"


def test_unknown_session_operations_return_false(manager: SessionManager) -> None:
    """Mutating an unknown session reports False (None where the record is returned) instead of raising."""
    assert manager.update_session_activity("nope") is False
    assert manager.record_error("nope", "boom") is None
    assert manager.record_success("nope") is False
    assert manager.reconnect("nope") is None
    assert manager.end_session("nope") is False
    assert manager.get_session("nope") is None


def test_not_found_health(manager: SessionManager) -> None:
    """An unknown id gives a not_found report, never an exception."""
    health = manager.check_health("ghost")
    assert (health.status, health.healthy, health.state) == ("not_found", False, None)
    assert health.message == MESSAGES["not_found"].message
    assert health.recovery and "Refresh the page" in health.recovery[0]
    json.dumps(dict(health))


def test_every_status_code_and_message(manager: SessionManager, clock: FakeClock) -> None:
    """The life of a session passes through each status with its own friendly message."""
    manager.create_session("s")
    seen = {manager.check_health("s").status: manager.check_health("s").message}
    clock.advance(6 * MINUTE)
    seen[manager.check_health("s").status] = manager.check_health("s").message
    manager.record_error("s", ValueError("secret detail"))
    seen[manager.check_health("s").status] = manager.check_health("s").message
    for _ in range(4):
        manager.record_error("s", "again")
    seen[manager.check_health("s").status] = manager.check_health("s").message
    clock.advance(30 * MINUTE)
    seen[manager.check_health("s").status] = manager.check_health("s").message
    seen[manager.check_health("other").status] = manager.check_health("other").message
    assert seen == {
        "healthy": "✅ Your session is active",
        "idle": "💤 Your session is idle: no activity for 6 minutes",
        "error": "⚠️ An error occurred while processing your request",
        "disconnected": "🔌 Your session was disconnected after repeated errors",
        "expired": "⏱️ Your session has expired due to inactivity",
        "not_found": "❓ We could not find your session",
    }


def test_report_fields_and_json(manager: SessionManager, clock: FakeClock) -> None:
    """The report carries id, state, error count, idle seconds and seconds to expiry; dumps to JSON."""
    manager.create_session("s")
    clock.advance(100)
    manager.record_error("s", KeyError("k"))
    clock.advance(20)
    health = manager.check_health("s")
    assert health.session_id == "s" and health.state == "error" and health.error_count == 1
    assert health.seconds_idle == 20 and health.seconds_until_expiry == 1780
    assert json.loads(json.dumps(dict(health)))["status"] == "error"
    assert "KeyError" not in json.dumps(health) and "last_error" not in health


def test_debug_shows_last_error(clock: FakeClock) -> None:
    """In debug mode the technical last error appears in the report."""
    manager = SessionManager(store="memory://", clock=clock, debug=True)
    manager.create_session("s")
    manager.record_error("s", KeyError("k"))
    assert manager.check_health("s")["last_error"] == "KeyError: 'k'"


def test_lifetime_expiry_message(manager: SessionManager, clock: FakeClock) -> None:
    """Reaching the absolute lifetime is explained differently from inactivity."""
    manager.create_session("s")
    for _ in range(12 * 4):
        clock.advance(15 * MINUTE)
        if manager.get_session("s") and manager.check_health("s").status != "expired":
            manager.update_session_activity("s")
    health = manager.check_health("s")
    assert health.status == "expired" and "maximum length" in health.message
    assert "12 hours" in health.context


def test_ended_session(manager: SessionManager) -> None:
    """An ended session reports expired with the 'ended' message and refuses activity."""
    manager.create_session("s")
    with capture_signals(signals.session_ended) as sent:
        assert manager.end_session("s")
    assert len(sent) == 1
    health = manager.check_health("s")
    assert (health.status, health.state, health.title) == ("expired", "ended", "Session ended")
    with pytest.raises(IllegalTransitionError, match="ended"):
        manager.update_session_activity("s")


def test_activity_on_expired_raises_after_announcing_expiry(
    manager: SessionManager, clock: FakeClock
) -> None:
    """Touching a session that timed out sends its expiry first, then raises naming state and event."""
    manager.create_session("s")
    clock.advance(31 * MINUTE)
    with capture_signals() as sent, pytest.raises(IllegalTransitionError) as info:
        manager.update_session_activity("s")
    assert names(sent) == ["state-changed", "session-expired"]
    assert (info.value.state, info.value.event, info.value.session_id) == ("expired", "activity", "s")


def test_signals_for_a_whole_life(manager: SessionManager, clock: FakeClock) -> None:
    """Each transition sends state_changed plus its own signal, in order, with old/new/reason."""
    with capture_signals() as sent:
        manager.create_session("s")
        manager.update_session_activity("s")
        manager.record_error("s", "e1")
        manager.record_success("s")
        for n in range(5):
            manager.record_error("s", f"e{n}")
        manager.reconnect("s")
        clock.advance(31 * MINUTE)
        manager.check_health("s")
    assert names(sent) == [
        "session-created",
        "activity",
        "state-changed",
        "error-recorded",
        "state-changed",
        "session-recovered",
        "state-changed",
        "error-recorded",
        "error-recorded",
        "error-recorded",
        "error-recorded",
        "state-changed",
        "session-disconnected",
        "error-recorded",
        "state-changed",
        "session-recovered",
        "state-changed",
        "session-expired",
    ]
    changes = [
        (s.kwargs["old"], s.kwargs["new"], s.kwargs["reason"]) for s in sent if s.name == "state-changed"
    ]
    S = SessionState
    assert changes == [
        (S.ACTIVE, S.ERROR, "error"),
        (S.ERROR, S.ACTIVE, "success"),
        (S.ACTIVE, S.ERROR, "error"),
        (S.ERROR, S.DISCONNECTED, "error_threshold"),
        (S.DISCONNECTED, S.ACTIVE, "reconnect"),
        (S.ACTIVE, S.EXPIRED, "timeout"),
    ]
    assert all(s.sender is manager for s in sent)
    expired = sent[-1].kwargs["session"]
    assert expired.state is S.EXPIRED and expired.session_id == "s"


def test_raising_receiver_is_logged_and_others_still_run(
    manager: SessionManager, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver that raises breaks neither the caller nor the receivers after it."""
    calls: list[str] = []

    def bad(sender: object, **kwargs: object) -> None:
        raise RuntimeError("receiver bug")

    def good(sender: object, **kwargs: object) -> None:
        calls.append(str(kwargs["session_id"]))

    with (
        caplog.at_level(logging.ERROR, "sessionmw.signals"),
        signals.session_created.connected_to(bad),
        signals.session_created.connected_to(good),
    ):
        manager.create_session("s")
    assert calls == ["s"]
    assert "receiver bug" in caplog.text


def test_custom_health_checks(manager: SessionManager) -> None:
    """A failing or raising check makes the report unhealthy with its own message; all are listed."""
    manager.create_session("s")
    manager.add_health_check("database", lambda sid: True)
    assert manager.check_health("s").healthy
    manager.add_health_check("backtests", lambda sid: (False, "Backtests are paused for maintenance"))
    health = manager.check_health("s")
    assert (health.healthy, health.status) == (False, "error")
    assert health.message == "Backtests are paused for maintenance"
    assert [c["name"] for c in health.checks] == ["database", "backtests"]

    def broken(sid: str) -> bool:
        raise OSError("secret path /etc/x")

    manager.remove_health_check("backtests")
    manager.add_health_check("scanner", broken)
    health = manager.check_health("s")
    assert not health.healthy and "scanner" in health.message
    assert "secret" not in json.dumps(health)
    manager.remove_health_check("scanner")
    manager.add_health_check("custom", lambda sid: CheckResult("ignored", False, "Custom says no"))
    assert manager.check_health("s").checks[-1] == {
        "name": "custom",
        "healthy": False,
        "message": "Custom says no",
    }


def test_health_check_does_not_count_as_activity(manager: SessionManager, clock: FakeClock) -> None:
    """Polling health every 30 s does not keep a session alive."""
    manager.create_session("s")
    for _ in range(61):
        clock.advance(30)
        manager.check_health("s")
    assert manager.check_health("s").status == "expired"


def test_sweep_expires_due_sessions_once(manager: SessionManager, clock: FakeClock) -> None:
    """sweep() expires every due session exactly once and leaves active ones alone."""
    for n in range(10):
        manager.create_session(f"s{n}")
    clock.advance(20 * MINUTE)
    for n in range(5):
        manager.update_session_activity(f"s{n}")
    clock.advance(11 * MINUTE)
    with capture_signals(signals.session_expired) as sent:
        changes = manager.sweep()
        assert manager.sweep() == []
    assert sorted(c.session_id for c in changes) == [f"s{n}" for n in range(5, 10)]
    assert len(sent) == 5 and all(s.kwargs["session"].state is SessionState.EXPIRED for s in sent)
    assert manager.session_count() == 5


def test_sweep_purges_terminal_records_after_retention(manager: SessionManager, clock: FakeClock) -> None:
    """An expired record is kept (so the user hears 'expired') and dropped after the retention."""
    manager.create_session("s")
    clock.advance(31 * MINUTE)
    manager.sweep()
    assert manager.check_health("s").status == "expired"
    clock.advance(manager.policy.retention + 1)
    manager.sweep()
    assert manager.check_health("s").status == "not_found"


def test_max_sessions_refuses_new_and_keeps_live(clock: FakeClock) -> None:
    """At the cap a new session is refused with a specific error; no live one is evicted."""
    manager = SessionManager(store="memory://", clock=clock, max_sessions=2)
    manager.create_session("a")
    manager.create_session("b")
    with pytest.raises(SessionLimitError, match="full"):
        manager.create_session("c")
    assert manager.check_health("a").healthy and manager.check_health("b").healthy
    manager.end_session("a")
    manager.create_session("c")
    assert manager.session_count() == 2


class BrokenStore(MemoryStore):
    """A memory store that can be switched off, to test fail-open and fail-closed."""

    broken = False

    def update(self, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            raise StoreUnavailableError("store is down")
        return super().update(*args, **kwargs)

    def create(self, *args: Any, **kwargs: Any) -> None:
        if self.broken:
            raise StoreUnavailableError("store is down")
        super().create(*args, **kwargs)


@pytest.mark.parametrize("mode", ["fail_open", "fail_closed"])
def test_store_failure_modes(clock: FakeClock, mode: str) -> None:
    """Fail-open treats the session as healthy and signals; fail-closed raises; both recover."""
    store = BrokenStore()
    manager = SessionManager(store=store, clock=clock, on_store_error=mode)
    manager.create_session("s")
    manager.record_error("s", "x")
    store.broken = True
    with capture_signals(signals.store_error) as sent:
        if mode == "fail_open":
            assert manager.check_health("s").healthy
            assert manager.update_session_activity("s")
        else:
            with pytest.raises(StoreUnavailableError):
                manager.check_health("s")
    assert sent and sent[0].kwargs["operation"] == "check_health"
    with pytest.raises(StoreUnavailableError):
        manager.create_session("t")  # nothing to fail open to
    store.broken = False
    assert manager.check_health("s").status == "error"  # the real state, once the store is back


def test_corrupt_record_is_reported_and_treated_as_unknown(clock: FakeClock) -> None:
    """A record the store cannot decode yields not_found and a store_error signal, not a crash."""

    class CorruptStore(MemoryStore):
        def update(self, *args: Any, **kwargs: Any) -> Any:
            raise CorruptRecordError("session record is malformed")

    manager = SessionManager(store=CorruptStore(), clock=clock)
    with capture_signals(signals.store_error) as sent:
        assert manager.check_health("s").status == "not_found"
    assert len(sent) == 1


def test_process_default_manager_is_shared_and_replaceable() -> None:
    """get_session_manager() returns one manager until set_session_manager replaces it."""
    first = get_session_manager()
    assert get_session_manager() is first
    mine = SessionManager(store="memory://")
    set_session_manager(mine)
    assert get_session_manager() is mine


def test_manager_reads_environment(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """SESSION_TIMEOUT_MINUTES from the environment sets the timeout the manager applies."""
    monkeypatch.setenv("SESSION_TIMEOUT_MINUTES", "2")
    manager = SessionManager(clock=clock)
    manager.create_session("s")
    clock.advance(2 * MINUTE)
    assert manager.check_health("s").status == "expired"
