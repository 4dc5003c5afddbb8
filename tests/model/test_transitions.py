"""The transition table, row by row, and the rules for time and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionmw import IllegalTransitionError, SessionRecord, SessionState
from sessionmw._session import Policy
from sessionmw._states import Event
from sessionmw._transitions import TRANSITIONS, apply, elapse, is_routine_activity, mermaid, next_state
from sessionmw.stores._base import step

S, E = SessionState, Event
POLICY = Policy(idle_after=300, timeout=1800, absolute_timeout=43200, error_threshold=5)
T0 = 1_000_000.0

EXPECTED = {
    (S.ACTIVE, E.ACTIVITY): S.ACTIVE,
    (S.ACTIVE, E.SUCCESS): S.ACTIVE,
    (S.ACTIVE, E.ERROR): S.ERROR,
    (S.ACTIVE, E.ERROR_THRESHOLD): S.DISCONNECTED,
    (S.ACTIVE, E.RECONNECT): S.ACTIVE,
    (S.ACTIVE, E.END): S.ENDED,
    (S.ACTIVE, E.IDLE_TIMEOUT): S.IDLE,
    (S.ACTIVE, E.TIMEOUT): S.EXPIRED,
    (S.ACTIVE, E.LIFETIME_EXCEEDED): S.EXPIRED,
    (S.IDLE, E.ACTIVITY): S.ACTIVE,
    (S.IDLE, E.SUCCESS): S.ACTIVE,
    (S.IDLE, E.ERROR): S.ERROR,
    (S.IDLE, E.ERROR_THRESHOLD): S.DISCONNECTED,
    (S.IDLE, E.RECONNECT): S.ACTIVE,
    (S.IDLE, E.END): S.ENDED,
    (S.IDLE, E.TIMEOUT): S.EXPIRED,
    (S.IDLE, E.LIFETIME_EXCEEDED): S.EXPIRED,
    (S.ERROR, E.ACTIVITY): S.ERROR,
    (S.ERROR, E.SUCCESS): S.ACTIVE,
    (S.ERROR, E.ERROR): S.ERROR,
    (S.ERROR, E.ERROR_THRESHOLD): S.DISCONNECTED,
    (S.ERROR, E.RECONNECT): S.ACTIVE,
    (S.ERROR, E.END): S.ENDED,
    (S.ERROR, E.TIMEOUT): S.EXPIRED,
    (S.ERROR, E.LIFETIME_EXCEEDED): S.EXPIRED,
    (S.DISCONNECTED, E.ACTIVITY): S.DISCONNECTED,
    (S.DISCONNECTED, E.ERROR): S.DISCONNECTED,
    (S.DISCONNECTED, E.ERROR_THRESHOLD): S.DISCONNECTED,
    (S.DISCONNECTED, E.RECONNECT): S.ACTIVE,
    (S.DISCONNECTED, E.END): S.ENDED,
    (S.DISCONNECTED, E.TIMEOUT): S.EXPIRED,
    (S.DISCONNECTED, E.LIFETIME_EXCEEDED): S.EXPIRED,
}
ALL_PAIRS = [(state, event) for state in S for event in E]


def record_in(state: SessionState, errors: int = 0) -> SessionRecord:
    record = SessionRecord.new("s1", T0)
    record.state = state
    record.error_count = errors
    return record


def test_table_is_exactly_the_documented_one() -> None:
    """The table has the documented rows and no others."""
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda x: str(x))
def test_next_state_follows_table_or_refuses(state: SessionState, event: Event) -> None:
    """Every (state, event) pair either leads where the table says or raises naming both."""
    if (state, event) in EXPECTED:
        assert next_state(state, event) is EXPECTED[state, event]
    else:
        with pytest.raises(IllegalTransitionError) as info:
            next_state(state, event)
        assert info.value.state == state.value
        assert info.value.event == event.value
        assert repr(state.value) in str(info.value)
        assert repr(event.value) in str(info.value)


@pytest.mark.parametrize("state", [S.EXPIRED, S.ENDED])
@pytest.mark.parametrize("event", [E.ACTIVITY, E.ERROR, E.SUCCESS, E.RECONNECT, E.END])
def test_terminal_states_refuse_every_event_and_stay(state: SessionState, event: Event) -> None:
    """Activity (or anything) on an expired or ended session raises and changes nothing."""
    record = record_in(state)
    before = record.copy()
    with pytest.raises(IllegalTransitionError, match=state.value):
        apply(record, event, T0 + 1, POLICY)
    assert record == before


def test_success_on_disconnected_is_refused() -> None:
    """A disconnected session must reconnect before a success can count."""
    with pytest.raises(IllegalTransitionError):
        apply(record_in(S.DISCONNECTED, 5), E.SUCCESS, T0, POLICY)


def test_errors_count_up_to_threshold_then_disconnect() -> None:
    """Errors 1-4 leave the session in ERROR; the 5th disconnects it."""
    record = record_in(S.ACTIVE)
    states = []
    for n in range(1, 6):
        apply(record, E.ERROR, T0 + n, POLICY, error=f"e{n}")
        states.append(record.state)
    assert states == [S.ERROR] * 4 + [S.DISCONNECTED]
    assert record.error_count == 5
    assert record.last_error == "e5"
    assert record.reason == "error_threshold"


def test_success_and_reconnect_reset_errors() -> None:
    """A success after errors, or a reconnect, clears the count and returns to ACTIVE."""
    record = record_in(S.ERROR, 3)
    change = apply(record, E.SUCCESS, T0 + 5, POLICY)
    assert change is not None and (change.old, change.new) == (S.ERROR, S.ACTIVE)
    assert record.error_count == 0 and record.last_error is None
    record = record_in(S.DISCONNECTED, 5)
    apply(record, E.RECONNECT, T0 + 5, POLICY)
    assert (record.state, record.error_count) == (S.ACTIVE, 0)


def test_user_events_reset_the_inactivity_clock_time_events_do_not() -> None:
    """Activity moves last_activity; the passage of time never does."""
    record = record_in(S.ACTIVE)
    apply(record, E.ACTIVITY, T0 + 100, POLICY)
    assert record.last_activity == T0 + 100
    elapse(record, T0 + 100 + 301, POLICY)
    assert record.state is S.IDLE
    assert record.last_activity == T0 + 100


def test_same_state_transition_returns_no_change() -> None:
    """Activity on an active session is legal but is no state change."""
    assert apply(record_in(S.ACTIVE), E.ACTIVITY, T0, POLICY) is None


@pytest.mark.parametrize(
    ("state", "seconds", "expected", "reason"),
    [
        pytest.param(S.ACTIVE, 299, S.ACTIVE, None, id="active-before-idle"),
        pytest.param(S.ACTIVE, 300, S.IDLE, "idle_timeout", id="active-idle"),
        pytest.param(S.ERROR, 600, S.ERROR, None, id="error-does-not-idle"),
        pytest.param(S.IDLE, 1799, S.IDLE, None, id="idle-before-timeout"),
        pytest.param(S.ACTIVE, 1800, S.EXPIRED, "timeout", id="active-timeout"),
        pytest.param(S.IDLE, 1800, S.EXPIRED, "timeout", id="idle-timeout"),
        pytest.param(S.ERROR, 1800, S.EXPIRED, "timeout", id="error-timeout"),
        pytest.param(S.DISCONNECTED, 1800, S.EXPIRED, "timeout", id="disconnected-timeout"),
        pytest.param(S.EXPIRED, 99999, S.EXPIRED, None, id="expired-stays"),
        pytest.param(S.ENDED, 99999, S.ENDED, None, id="ended-stays"),
    ],
)
def test_elapse(state: SessionState, seconds: float, expected: SessionState, reason: str | None) -> None:
    """Time moves sessions to IDLE and EXPIRED at the policy's limits and nowhere else."""
    record = record_in(state)
    change = elapse(record, T0 + seconds, POLICY)
    assert record.state is expected
    assert (change.event.value if change else None) == reason


def test_absolute_lifetime_expires_an_active_session() -> None:
    """However active, a session expires when it reaches its absolute lifetime."""
    record = record_in(S.ACTIVE)
    now = T0
    while now < T0 + POLICY.absolute_timeout - 60:
        now += 60
        elapse(record, now, POLICY)
        apply(record, E.ACTIVITY, now, POLICY)
    assert record.state.value == "active"
    change = elapse(record, T0 + POLICY.absolute_timeout, POLICY)
    assert change is not None and change.event is E.LIFETIME_EXCEEDED
    assert record.state is S.EXPIRED


def test_mermaid_diagram_in_guide_is_generated_from_table() -> None:
    """docs/guide.md carries exactly the diagram generated from the table (it cannot drift)."""
    guide = (Path(__file__).parents[2] / "docs" / "guide.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{mermaid()}```" in guide
    for (old, event), new in TRANSITIONS.items():
        if old is not new:
            assert f"{old.value} --> {new.value}:" in mermaid()
            assert event.value in mermaid()


@given(
    state=st.sampled_from(list(SessionState)),
    age=st.floats(0, 50_000, allow_nan=False),
    idle=st.floats(0, 3_000, allow_nan=False),
    errors=st.integers(0, 4),
)
def test_routine_activity_is_exactly_an_activity_that_changes_nothing_but_the_clock(
    state: SessionState, age: float, idle: float, errors: int
) -> None:
    """is_routine_activity (the stores' fast path) says yes exactly when elapse and apply would
    change no state and refuse nothing, and then they only move last_activity."""
    now = T0 + age
    record = SessionRecord(
        "s", state, T0, max(T0, now - idle), errors, "boom" if errors else None, T0, "created", None
    )
    general = record.copy()
    changes, refused = step(general, E.ACTIVITY, now, POLICY)
    routine = is_routine_activity(record, now, POLICY)
    assert routine == (not changes and refused is None)
    if routine:
        record.last_activity = now
        assert record == general
