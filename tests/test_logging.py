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
