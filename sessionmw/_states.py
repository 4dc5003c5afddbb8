"""The vocabulary of a session's life: its states, the events that move it, its health codes.

The string values are public: they appear in health reports, JSON responses, logs and stores.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["WORKING_STATES", "Event", "HealthStatus", "SessionState"]


class SessionState(enum.StrEnum):
    """Where a session is in its life. ``EXPIRED`` and ``ENDED`` are terminal."""

    ACTIVE = "active"
    IDLE = "idle"
    ERROR = "error"
    DISCONNECTED = "disconnected"
    EXPIRED = "expired"
    ENDED = "ended"

    @property
    def is_terminal(self) -> bool:
        """True for states the session never leaves: the user needs a new session."""
        return self is SessionState.EXPIRED or self is SessionState.ENDED

    @property
    def may_work(self) -> bool:
        """True for the states in which a session may do work (see :data:`WORKING_STATES`)."""
        return self in WORKING_STATES


#: The one rule for "may this session work?" (serve a request, run a callback, retry a call): active,
#: idle and error sessions may; disconnected, expired and ended ones are refused, and so is an
#: unknown session.
WORKING_STATES: Final = frozenset({SessionState.ACTIVE, SessionState.IDLE, SessionState.ERROR})


class Event(enum.StrEnum):
    """Something that happened to a session; the transition table maps (state, event) to a state."""

    #: The user did something (a request, a callback, an explicit touch).
    ACTIVITY = "activity"
    #: An error was recorded and the session is still under the error threshold.
    ERROR = "error"
    #: An error was recorded and the error count reached the threshold.
    ERROR_THRESHOLD = "error_threshold"
    #: An operation succeeded: errors are cleared.
    SUCCESS = "success"
    #: The user (or the app) asked to reconnect a disconnected session.
    RECONNECT = "reconnect"
    #: The session was ended on purpose (logout, admin action).
    END = "end"
    #: Time passed: no activity for ``idle_after`` seconds.
    IDLE_TIMEOUT = "idle_timeout"
    #: Time passed: no activity for the inactivity timeout.
    TIMEOUT = "timeout"
    #: Time passed: the session reached its absolute lifetime.
    LIFETIME_EXCEEDED = "lifetime_exceeded"


class HealthStatus(enum.StrEnum):
    """The status code of a health report (the seed's status codes)."""

    HEALTHY = "healthy"
    IDLE = "idle"
    ERROR = "error"
    DISCONNECTED = "disconnected"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"
    #: The session is fine but a dependency it uses is paused by a circuit breaker.
    DEGRADED = "degraded"
