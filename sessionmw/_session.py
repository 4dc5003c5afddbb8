"""The session record kept by a store, the timing policy it is judged by, and its JSON form."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sessionmw._errors import CorruptRecordError
from sessionmw._states import SessionState

__all__ = ["Policy", "SessionRecord"]

#: The version of the JSON form written by :meth:`SessionRecord.to_dict`.
RECORD_VERSION = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """The limits a session is judged by, all in seconds (built from :class:`~sessionmw.Settings`)."""

    #: Seconds without activity after which an active session counts as idle.
    idle_after: float = 300.0
    #: Seconds without activity after which a session expires (the seed's 30 minutes).
    timeout: float = 1800.0
    #: Seconds after creation at which a session expires however active it is (OWASP ASVS L2).
    absolute_timeout: float = 12 * 3600.0
    #: Errors in a row at which a session is disconnected (the seed's 5).
    error_threshold: int = 5
    #: Seconds a store keeps an expired or ended session, so a returning user hears "expired".
    retention: float = 3600.0
    #: Seconds within which routine activity is not written again (the renewal window): a
    #: session whose stored ``last_activity`` is younger is not rewritten, so idleness and
    #: expiry may come up to this much early, never late. 0 writes every activity.
    activity_resolution: float = 0.0


@dataclasses.dataclass(slots=True)
class SessionRecord:
    """One session as a store keeps it.

    A record a store hands out is the caller's to read, never to change: the memory store hands
    out the record it keeps (copy-on-write: a change stores a changed copy, so a record once
    handed out never changes). Only :mod:`sessionmw._transitions` changes a record, inside a
    store's atomic operation.
    """

    session_id: str
    state: SessionState
    created_at: float
    last_activity: float
    error_count: int = 0
    #: A short technical description of the last error (never shown to users outside debug mode).
    last_error: str | None = None
    #: When the session entered its current state.
    state_changed_at: float = 0.0
    #: The event that put the session in its current state (e.g. ``"timeout"``).
    reason: str | None = None
    #: When the session was last reconnected, until a success shows the reconnect held.
    reconnected_at: float | None = None

    @classmethod
    def new(cls, session_id: str, now: float) -> SessionRecord:
        """A fresh, active session created at ``now``."""
        return cls(session_id, SessionState.ACTIVE, now, now, 0, None, now, "created")

    def expires_at(self, policy: Policy) -> float:
        """The time at which this session expires unless it sees activity before then."""
        idle_end = self.last_activity + policy.timeout
        lifetime_end = self.created_at + policy.absolute_timeout
        return lifetime_end if lifetime_end < idle_end else idle_end  # min() without the call

    def copy(self) -> SessionRecord:
        """An independent copy of this record."""
        return SessionRecord(
            self.session_id,
            self.state,
            self.created_at,
            self.last_activity,
            self.error_count,
            self.last_error,
            self.state_changed_at,
            self.reason,
            self.reconnected_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-serialisable dict (the form every persistent store writes)."""
        return {
            "v": RECORD_VERSION,
            "id": self.session_id,
            "state": self.state.value,
            "created_at": self.created_at,
            "last_activity": self.last_activity,
            "error_count": self.error_count,
            "last_error": self.last_error,
            "state_changed_at": self.state_changed_at,
            "reason": self.reason,
            "reconnected_at": self.reconnected_at,
        }

    @classmethod
    def from_dict(cls, data: object) -> SessionRecord:
        """Rebuild a record from :meth:`to_dict` output.

        :raises CorruptRecordError: if ``data`` is not a record this version can read.
        """
        if not isinstance(data, dict):
            raise CorruptRecordError(f"session record is a {type(data).__name__}, not an object")
        try:
            session_id = data["id"]
            state = SessionState(data["state"])
            created_at = _number(data["created_at"])
            last_activity = _number(data["last_activity"])
            error_count = data["error_count"]
            last_error = data.get("last_error")
            state_changed_at = _number(data.get("state_changed_at", created_at))
            reason = data.get("reason")
            reconnected_at = data.get("reconnected_at")
            if reconnected_at is not None:
                reconnected_at = _number(reconnected_at)
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptRecordError(f"session record is malformed: {exc!r}") from None
        if not isinstance(session_id, str) or not session_id:
            raise CorruptRecordError("session record has no valid id")
        if isinstance(error_count, bool) or not isinstance(error_count, int) or error_count < 0:
            raise CorruptRecordError("session record has an invalid error count")
        if last_error is not None and not isinstance(last_error, str):
            raise CorruptRecordError("session record has an invalid last error")
        if reason is not None and not isinstance(reason, str):
            raise CorruptRecordError("session record has an invalid reason")
        return cls(
            session_id,
            state,
            created_at,
            last_activity,
            error_count,
            last_error,
            state_changed_at,
            reason,
            reconnected_at,
        )


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError("expected a finite number")
    return result
