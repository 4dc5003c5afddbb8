"""The renewal window (coalesced activity): no write within it; idle and expiry at most that early,
never late; the setting and its derived default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionmw import ConfigurationError, SessionManager, SessionState, Settings
from sessionmw._session import Policy, SessionRecord
from sessionmw._settings import RESOLUTION_SHARE
from sessionmw._states import Event
from sessionmw._transitions import writes_nothing
from sessionmw.testing import FakeClock, capture_signals

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
