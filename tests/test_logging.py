"""Log records: one per transition, structured fields, never a full session id."""

from __future__ import annotations

import logging

import pytest

from sessionmw import SessionManager
from sessionmw.testing import FakeClock


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
