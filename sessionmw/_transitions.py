"""The transition table: the one place where a session's next state is decided.

:data:`TRANSITIONS` maps ``(state, event)`` to the next state. A pair that is not in the table is
an illegal event for that state. :func:`elapse` applies the passage of time, :func:`apply` applies
one event; both change the record in place and are called by the stores inside one atomic
operation, so that a transition is decided exactly once even across processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

from sessionmw._errors import IllegalTransitionError
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event, SessionState

__all__ = [
    "ACTIVITY_KEEPS",
    "IDLING",
    "TRANSITIONS",
    "Change",
    "apply",
    "elapse",
    "is_routine_activity",
    "mermaid",
    "next_state",
    "writes_nothing",
]

_A, _I, _E = SessionState.ACTIVE, SessionState.IDLE, SessionState.ERROR
_D, _X, _N = SessionState.DISCONNECTED, SessionState.EXPIRED, SessionState.ENDED

_TABLE: Final[dict[tuple[SessionState, Event], SessionState]] = {
    (_A, Event.ACTIVITY): _A,
    (_A, Event.SUCCESS): _A,
    (_A, Event.ERROR): _E,
    (_A, Event.ERROR_THRESHOLD): _D,
    (_A, Event.RECONNECT): _A,
    (_A, Event.END): _N,
    (_A, Event.IDLE_TIMEOUT): _I,
    (_A, Event.TIMEOUT): _X,
    (_A, Event.LIFETIME_EXCEEDED): _X,
    (_I, Event.ACTIVITY): _A,
    (_I, Event.SUCCESS): _A,
    (_I, Event.ERROR): _E,
    (_I, Event.ERROR_THRESHOLD): _D,
    (_I, Event.RECONNECT): _A,
    (_I, Event.END): _N,
    (_I, Event.TIMEOUT): _X,
    (_I, Event.LIFETIME_EXCEEDED): _X,
    (_E, Event.ACTIVITY): _E,
    (_E, Event.SUCCESS): _A,
    (_E, Event.ERROR): _E,
    (_E, Event.ERROR_THRESHOLD): _D,
    (_E, Event.RECONNECT): _A,
    (_E, Event.END): _N,
    (_E, Event.TIMEOUT): _X,
    (_E, Event.LIFETIME_EXCEEDED): _X,
    (_D, Event.ACTIVITY): _D,
    (_D, Event.ERROR): _D,
    (_D, Event.ERROR_THRESHOLD): _D,
    (_D, Event.RECONNECT): _A,
    (_D, Event.END): _N,
    (_D, Event.TIMEOUT): _X,
    (_D, Event.LIFETIME_EXCEEDED): _X,
}

#: ``(state, event) -> next state``. EXPIRED and ENDED have no outgoing transitions.
TRANSITIONS: Final[Mapping[tuple[SessionState, Event], SessionState]] = MappingProxyType(_TABLE)

# Enum members as module constants: apply() and elapse() run in every store update, and reading
# a member through its class costs about 55 ns against 8 ns for a module constant (CPython 3.11).
_ACTIVITY, _ERROR, _ERROR_THRESHOLD = Event.ACTIVITY, Event.ERROR, Event.ERROR_THRESHOLD
_SUCCESS, _RECONNECT = Event.SUCCESS, Event.RECONNECT
_IDLE_TIMEOUT, _TIMEOUT, _LIFETIME = Event.IDLE_TIMEOUT, Event.TIMEOUT, Event.LIFETIME_EXCEEDED

# Read off the table for is_routine_activity and the Redis script's fast path, which mirrors it.
#: The states in which activity changes nothing but the clock (a self-loop in the table).
ACTIVITY_KEEPS: Final = frozenset(
    state for (state, event), new in _TABLE.items() if event is _ACTIVITY and new is state
)
#: The states that become idle after ``policy.idle_after`` seconds without activity.
IDLING: Final = frozenset(state for state, event in _TABLE if event is _IDLE_TIMEOUT)


class Change(NamedTuple):
    """One state change of one session."""

    session_id: str
    old: SessionState
    new: SessionState
    event: Event
    at: float


def next_state(state: SessionState, event: Event) -> SessionState:
    """The state that ``event`` leads to from ``state``.

    :raises IllegalTransitionError: if the table has no such transition.
    """
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransitionError(state.value, event.value) from None


def elapse(record: SessionRecord, now: float, policy: Policy) -> Change | None:
    """Apply the passage of time up to ``now``; return the change it caused, if any."""
    state = record.state
    if state is _X or state is _N:
        return None
    idle = now - record.last_activity
    if now - record.created_at >= policy.absolute_timeout:
        event = _LIFETIME
    elif idle >= policy.timeout:
        event = _TIMEOUT
    elif idle >= policy.idle_after and (state, _IDLE_TIMEOUT) in _TABLE:
        event = _IDLE_TIMEOUT
    else:
        return None
    return _enter(record, _TABLE[state, event], event, now)


def is_routine_activity(record: SessionRecord, now: float, policy: Policy) -> bool:
    """True when activity at ``now`` decides no transition: it only moves ``last_activity``.

    That is: the state keeps itself on activity and no time-derived change (idle, timeout,
    lifetime) is due. Stores use it to skip the general :func:`elapse` and :func:`apply` on the
    most common update; the outcome is the same.
    """
    return record.state in ACTIVITY_KEEPS and writes_nothing(record, None, now, policy)


def writes_nothing(record: SessionRecord, event: Event | None, now: float, policy: Policy) -> bool:
    """True when ``event`` at ``now`` leaves the stored record as it is, so no store write is due.

    That is a look (``event`` None) at a session with no time-derived change due, or routine
    activity (:func:`is_routine_activity`) within the renewal window: the stored
    ``last_activity`` is less than ``policy.activity_resolution`` seconds old. Skipping that
    write is what makes idleness and expiry come up to the window early, never late. Only this
    rule lets a store (or its read cache) answer without writing.
    """
    # Written out (no calls): every look and most activity of every request come through here.
    state = record.state
    if event is None:
        if state is _X or state is _N:
            return True
    elif event is _ACTIVITY:
        resolution = policy.activity_resolution
        if state not in ACTIVITY_KEEPS or not (resolution > 0 and now - record.last_activity < resolution):
            return False
    else:
        return False
    # No time-derived change (lifetime, timeout, idleness) is due.
    idle = now - record.last_activity
    return (
        now - record.created_at < policy.absolute_timeout
        and idle < policy.timeout
        and (idle < policy.idle_after or state not in IDLING)
    )


def apply(
    record: SessionRecord,
    event: Event,
    now: float,
    policy: Policy,
    error: str | None = None,
) -> Change | None:
    """Apply ``event`` at ``now``; return the state change, or None if the state stayed the same.

    ``Event.ERROR`` becomes ``Event.ERROR_THRESHOLD`` when this error reaches the policy's
    threshold. Call :func:`elapse` first so that time-derived states are current.

    :raises IllegalTransitionError: if the current state does not allow the event; the record is
        then left unchanged.
    """
    if event is _ERROR and record.error_count + 1 >= policy.error_threshold:
        event = _ERROR_THRESHOLD
    state = record.state
    new = _TABLE.get((state, event))
    if new is None:
        raise IllegalTransitionError(state.value, event.value, session_id=record.session_id)
    if event is _ACTIVITY:
        record.last_activity = now
    elif event is _ERROR or event is _ERROR_THRESHOLD:
        record.last_activity = now
        record.error_count += 1
        record.last_error = error
    elif event is _SUCCESS or event is _RECONNECT:
        record.last_activity = now
        record.error_count = 0
        record.last_error = None
        record.reconnected_at = now if event is _RECONNECT else None  # a success: the reconnect held
    if new is state:
        return None
    return _enter(record, new, event, now)


def _enter(record: SessionRecord, new: SessionState, event: Event, now: float) -> Change:
    change = Change(record.session_id, record.state, new, event, now)
    record.state = new
    record.state_changed_at = now
    record.reason = event.value
    return change


def mermaid() -> str:
    """The state diagram as Mermaid source, generated from :data:`TRANSITIONS`."""
    edges: dict[tuple[SessionState, SessionState], list[str]] = {}
    for (old, event), new in TRANSITIONS.items():
        if old is not new:
            edges.setdefault((old, new), []).append(event.value)
    lines = ["stateDiagram-v2", "    [*] --> active: created"]
    for (old, new), events in edges.items():
        lines.append(f"    {old.value} --> {new.value}: {', '.join(events)}")
    lines += ["    expired --> [*]", "    ended --> [*]"]
    return "\n".join(lines) + "\n"
