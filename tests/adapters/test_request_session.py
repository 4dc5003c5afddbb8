"""The session serving one request: its health read from the record it started with (no store
operation, made once on demand), and a pending session stored only when something needs it."""

from __future__ import annotations

from support.fakes import CountedStore

from sessionmw import SessionManager, SessionState
from sessionmw._session import SessionRecord
from sessionmw.integrations.request_session import RequestSession
from sessionmw.testing import FakeClock


def _pending(manager: SessionManager, clock: FakeClock) -> RequestSession:
    """A session issued to a new client and not stored yet, as the gate makes one."""
    record = SessionRecord.new("pending-id", clock.now)
    return RequestSession("pending-id", manager, record, stored=False, issue_cookie=True, via_header=False)


def test_the_health_is_the_starting_records_made_once_without_a_store_operation(
    manager: SessionManager, clock: FakeClock
) -> None:
    """The health reports the record as of the start of the request, even after the store changed."""
    record = manager.create_session()
    session = RequestSession(
        record.session_id, manager, record, stored=True, issue_cookie=False, via_header=False
    )
    manager.record_error(record.session_id, "backend down")
    report = session.health
    assert (report.status, report.error_count, session.state) == ("healthy", 0, SessionState.ACTIVE)
    assert session.health is report


def test_reading_the_health_costs_no_store_operation(clock: FakeClock) -> None:
    """A request that reads its session's health makes no store operation for it."""
    counted = CountedStore(SessionManager(store="memory://", clock=clock).store)
    manager = SessionManager(store=counted, clock=clock)
    session = _pending(manager, clock)
    assert session.health.session_id == "pending-id"
    assert sum(counted.calls.values()) == 0


def test_a_pending_session_is_stored_once_when_needed(manager: SessionManager, clock: FakeClock) -> None:
    """Only a pending session offers ``store_pending``; storing it twice (or after another request
    stored the same id) is harmless, and the store then knows it."""
    session = _pending(manager, clock)
    assert session.store_pending is not None and manager.get_session("pending-id") is None
    session.ensure_stored()
    session.ensure_stored()
    assert session.stored and session.store_pending is None
    stored = manager.get_session("pending-id")
    assert stored is not None and stored.state is SessionState.ACTIVE
    racing = _pending(manager, clock)  # a second request that came with the same pending id
    racing.ensure_stored()
    assert racing.stored and manager.session_count() == 1
