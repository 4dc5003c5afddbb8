"""The vocabulary of a session's life: the public string values of states, events and health codes,
which states are terminal, and the one rule for which states may work."""

from __future__ import annotations

from sessionmw._states import WORKING_STATES, Event, HealthStatus, SessionState


def test_the_string_values_are_the_public_ones() -> None:
    """They appear in health reports, JSON responses, logs and stored records: renaming one breaks them."""
    assert [state.value for state in SessionState] == [
        "active",
        "idle",
        "error",
        "disconnected",
        "expired",
        "ended",
    ]
    assert {event.value for event in Event} == {
        "activity",
        "error",
        "error_threshold",
        "success",
        "reconnect",
        "end",
        "idle_timeout",
        "timeout",
        "lifetime_exceeded",
    }
    assert {status.value for status in HealthStatus} == {
        "healthy",
        "idle",
        "error",
        "disconnected",
        "expired",
        "not_found",
        "degraded",
    }


def test_only_expired_and_ended_are_terminal() -> None:
    assert {state for state in SessionState if state.is_terminal} == {
        SessionState.EXPIRED,
        SessionState.ENDED,
    }


def test_active_idle_and_error_sessions_may_work_and_no_other() -> None:
    assert {state for state in SessionState if state.may_work} == set(WORKING_STATES)
    assert set(WORKING_STATES) == {SessionState.ACTIVE, SessionState.IDLE, SessionState.ERROR}
    assert not any(state.may_work for state in SessionState if state.is_terminal)
    assert not SessionState.DISCONNECTED.may_work


def test_a_state_reads_back_from_its_stored_string() -> None:
    assert all(SessionState(str(state)) is state for state in SessionState)
    assert f"{SessionState.DISCONNECTED}" == "disconnected"  # a StrEnum: formats as its value
