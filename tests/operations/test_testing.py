"""The helpers in sessionmw.testing that users' test suites rely on."""

from __future__ import annotations

import pytest

from sessionmw import SessionManager, signals
from sessionmw.testing import FakeClock, capture_signals


def test_fake_clock_moves_only_forward() -> None:
    """advance() moves the clock; moving back is refused with a clear error."""
    clock = FakeClock(100.0)
    assert clock() == 100.0
    assert clock.advance(5) == 105.0 and clock() == 105.0
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


def test_capture_signals_records_in_order_and_disconnects() -> None:
    """Signals inside the block are recorded in order; none after it."""
    manager = SessionManager(store="memory://", clock=FakeClock())
    with capture_signals(signals.session_created, signals.activity) as sent:
        manager.create_session("a")
        manager.update_session_activity("a")
    manager.create_session("b")
    assert [(s.name, s.kwargs["session_id"]) for s in sent] == [("session-created", "a"), ("activity", "a")]
    assert not signals.session_created.receivers
