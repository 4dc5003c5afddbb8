"""The seed-compatible manager API: life cycle, signals, health, store faults. The renewal window
(coalesced activity): no write within it; idle and expiry at most that early, never late. Log records:
one per transition, structured fields, never a full session id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sessionmw import (
    CheckResult,
    ConfigurationError,
    IllegalTransitionError,
    SessionExistsError,
    SessionLimitError,
    SessionManager,
    SessionState,
    Settings,
    StoreUnavailableError,
    get_session_manager,
    set_session_manager,
    signals,
)
from sessionmw._errors import CorruptRecordError
from sessionmw._session import Policy, SessionRecord
from sessionmw._settings import RESOLUTION_SHARE
from sessionmw._states import Event
from sessionmw._transitions import writes_nothing
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


IDLE, TIMEOUT_MINUTES, WINDOW = 60.0, 10.0, 20.0


@pytest.fixture(name="kind", params=["memory", "sqlite", "redis", "redis-cluster"])
def _kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="windowed")
def _windowed(url: str, clock: FakeClock) -> Iterator[SessionManager]:
    """A manager with a 20 s renewal window, 60 s to idle, 10 minutes to expiry."""
    manager = SessionManager(
        store=url,
        clock=clock,
        idle_after_seconds=IDLE,
        session_timeout_minutes=TIMEOUT_MINUTES,
        activity_resolution_seconds=WINDOW,
    )
    yield manager
    manager.close()


def _stored_last_activity(manager: SessionManager, session_id: str) -> float:
    record = manager.store.get(session_id)
    assert record is not None
    return record.last_activity


def test_activity_within_the_window_writes_nothing(windowed: SessionManager, clock: FakeClock) -> None:
    start = clock.now
    sid = windowed.create_session().session_id
    clock.advance(WINDOW - 0.001)
    record, refusal = windowed.touch_or_report(sid)
    assert refusal is None and record is not None and record.state is SessionState.ACTIVE
    assert _stored_last_activity(windowed, sid) == start  # not rewritten
    clock.advance(0.001)  # the window is over: this activity is written
    windowed.touch(sid)
    assert _stored_last_activity(windowed, sid) == start + WINDOW


def test_idle_comes_at_most_the_window_early(windowed: SessionManager, clock: FakeClock) -> None:
    start = clock.now
    sid = windowed.create_session().session_id
    clock.advance(WINDOW - 0.001)
    windowed.touch(sid)  # the user's last activity; not written
    clock.now = start + IDLE - 0.001
    assert windowed.check_health(sid).state == SessionState.ACTIVE
    with capture_signals() as sent:
        clock.now = start + IDLE  # the last activity was IDLE - WINDOW + 0.001 ago: early, within the window
        assert windowed.check_health(sid).state == SessionState.IDLE
    assert [s.name for s in sent if s.name == "state-changed"] == ["state-changed"]


def test_idle_and_expiry_are_never_late(windowed: SessionManager, clock: FakeClock) -> None:
    start = clock.now
    sid = windowed.create_session().session_id
    clock.advance(WINDOW)
    windowed.touch(sid)  # written: the window was over
    clock.now = start + WINDOW + IDLE - 0.001
    assert windowed.check_health(sid).state == SessionState.ACTIVE
    clock.now = start + WINDOW + IDLE
    assert windowed.check_health(sid).state == SessionState.IDLE
    windowed.touch(sid)  # an idle session's activity is a transition: always written
    last = clock.now
    assert _stored_last_activity(windowed, sid) == last
    clock.now = last + TIMEOUT_MINUTES * 60 - 0.001
    assert windowed.check_health(sid).state == SessionState.IDLE
    clock.now = last + TIMEOUT_MINUTES * 60
    assert windowed.check_health(sid).state == SessionState.EXPIRED


def test_expiry_comes_at_most_the_window_early(windowed: SessionManager, clock: FakeClock) -> None:
    start = clock.now
    sid = windowed.create_session().session_id
    windowed.record_error(sid, "boom")  # an error session: activity keeps it erroring, never idle
    clock.advance(WINDOW - 0.001)
    windowed.touch(sid)
    assert _stored_last_activity(windowed, sid) == start
    clock.now = start + TIMEOUT_MINUTES * 60 - 0.001
    assert windowed.check_health(sid).state == SessionState.ERROR
    clock.now = start + TIMEOUT_MINUTES * 60
    assert windowed.check_health(sid).state == SessionState.EXPIRED


def test_every_event_but_activity_is_written_within_the_window(
    windowed: SessionManager, clock: FakeClock
) -> None:
    sid = windowed.create_session().session_id
    clock.advance(1)
    windowed.record_error(sid, "boom")
    record = windowed.store.get(sid)
    assert record is not None and (record.state, record.error_count) == (SessionState.ERROR, 1)
    clock.advance(1)
    windowed.record_success(sid)
    record = windowed.store.get(sid)
    assert record is not None and (record.state, record.error_count) == (SessionState.ACTIVE, 0)
    clock.advance(1)
    windowed.end_session(sid)
    assert windowed.touch_or_report(sid)[1] is not None  # ended: refused at once


def test_a_zero_window_writes_every_activity(url: str, clock: FakeClock) -> None:
    manager = SessionManager(store=url, clock=clock, activity_resolution_seconds=0)
    try:
        sid = manager.create_session().session_id
        clock.advance(0.5)
        manager.touch(sid)
        assert _stored_last_activity(manager, sid) == clock.now
    finally:
        manager.close()


def test_writes_nothing_is_the_rule_the_stores_follow() -> None:
    policy = Policy(idle_after=60.0, timeout=600.0, activity_resolution=20.0)
    record = SessionRecord.new("s", 100.0)
    assert writes_nothing(record, Event.ACTIVITY, 119.999, policy)
    assert not writes_nothing(record, Event.ACTIVITY, 120.0, policy)
    assert not writes_nothing(record, Event.ERROR, 101.0, policy)
    assert writes_nothing(record, None, 159.999, policy)
    assert not writes_nothing(record, None, 160.0, policy)  # idle is due: a look writes it
    assert not writes_nothing(record, Event.ACTIVITY, 101.0, Policy(activity_resolution=0.0))


# -- the setting -----------------------------------------------------------------------------


def test_the_default_window_is_a_share_of_the_shorter_timeout() -> None:
    assert Settings().activity_resolution == 300.0 * RESOLUTION_SHARE
    assert Settings(idle_after_seconds=3600, session_timeout_minutes=10).activity_resolution == (
        600.0 * RESOLUTION_SHARE
    )
    assert Settings(activity_resolution_seconds=0).policy.activity_resolution == 0.0


def test_the_window_is_read_from_the_environment() -> None:
    settings = Settings.from_env({"SESSIONMW_ACTIVITY_RESOLUTION_SECONDS": "7.5"})
    assert settings.policy.activity_resolution == 7.5
    assert settings.sources["activity_resolution_seconds"] == "SESSIONMW_ACTIVITY_RESOLUTION_SECONDS"
    derived = Settings.from_env({"SESSIONMW_ACTIVITY_RESOLUTION_SECONDS": "auto"})
    assert derived.activity_resolution_seconds is None


@pytest.mark.parametrize("raw", ["-1", "soon", "nan", "151"])
def test_a_bad_window_is_named(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=r"SESSIONMW_ACTIVITY_RESOLUTION_SECONDS=.* is not valid"):
        Settings.from_env({"SESSIONMW_ACTIVITY_RESOLUTION_SECONDS": raw})


def test_a_window_longer_than_half_the_idle_time_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"activity_resolution_seconds=31 .*at most half"):
        Settings(idle_after_seconds=60, activity_resolution_seconds=31)


def test_transition_logs_have_fields_and_no_full_id(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """Each transition logs once under 'sessionmw' with old/new state and reason; ids are shortened."""
    manager = SessionManager(store="memory://", clock=clock, max_error_threshold=2)
    session_id = manager.create_session().session_id
    with caplog.at_level(logging.INFO, logger="sessionmw"):
        manager.record_error(session_id, "x")
        manager.record_error(session_id, "y")
        manager.reconnect(session_id)
        clock.advance(3600)
        manager.check_health(session_id)
    transitions = [r for r in caplog.records if hasattr(r, "new_state")]
    assert [(r.old_state, r.new_state, r.reason) for r in transitions] == [  # type: ignore[attr-defined]
        ("active", "error", "error"),
        ("error", "disconnected", "error_threshold"),
        ("disconnected", "active", "reconnect"),
        ("active", "expired", "timeout"),
    ]
    assert all(r.name == "sessionmw" for r in transitions)
    for record in caplog.records:
        assert session_id not in record.getMessage()
        assert session_id not in str(record.__dict__)
    assert all(session_id.startswith(r.session.rstrip("…")) for r in transitions)  # type: ignore[attr-defined]


def test_final_failure_logs_once_with_fields(caplog: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    """A guarded call that finally fails logs one WARNING: function, kind, type, attempts, short id."""
    from sessionmw import RetryStrategy, UserFacingError, guarded, session_scope

    manager = SessionManager(store="memory://", clock=clock)
    session_id = manager.create_session().session_id

    @guarded(retry=RetryStrategy(max_attempts=3, initial_delay=0))
    def load_prices() -> None:
        raise ConnectionError("refused by 10.0.0.5")

    with (
        caplog.at_level(logging.WARNING, logger="sessionmw"),
        session_scope(manager, session_id),
        pytest.raises(UserFacingError),
    ):
        load_prices()
    (failure,) = [r for r in caplog.records if hasattr(r, "function")]
    assert failure.function.endswith("load_prices")
    assert failure.error_type == "ConnectionError" and failure.attempts == 3  # type: ignore[attr-defined]
    assert failure.session == session_id[:6] + "…"  # type: ignore[attr-defined]
    assert session_id not in str(failure.__dict__) and "10.0.0.5" not in failure.getMessage()
