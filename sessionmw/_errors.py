"""The exception hierarchy of sessionmw, and nothing else (so any module may import it).

Every exception sessionmw raises derives from :class:`SessionMWError`. The seed's classes
(:class:`SessionError`, :class:`BackendProcessError`, :class:`DataLoadError`) keep their names.
"""

from __future__ import annotations

__all__ = [
    "BackendProcessError",
    "ConfigurationError",
    "CorruptRecordError",
    "DataLoadError",
    "IllegalTransitionError",
    "SessionDisconnectedError",
    "SessionError",
    "SessionExistsError",
    "SessionExpiredError",
    "SessionLimitError",
    "SessionMWError",
    "SessionNotFoundError",
    "StoreError",
    "StoreUnavailableError",
    "TransientError",
]


class SessionMWError(Exception):
    """Base class of every exception raised by sessionmw."""


class ConfigurationError(SessionMWError, ValueError):
    """A setting has a value sessionmw cannot use; the message names the setting and the value."""


class SessionError(SessionMWError):
    """Something is wrong with a session (the seed's ``SessionError``)."""

    def __init__(self, message: str, *, session_id: str | None = None) -> None:
        super().__init__(message)
        #: The session concerned, when one is known.
        self.session_id = session_id


class IllegalTransitionError(SessionError):
    """An event that the session's current state does not allow, e.g. activity on an expired session."""

    def __init__(self, state: str, event: str, *, session_id: str | None = None) -> None:
        super().__init__(
            f"Can't apply event {event!r} to a session in state {state!r}", session_id=session_id
        )
        #: The state the session was in.
        self.state = state
        #: The event that was refused.
        self.event = event


class SessionNotFoundError(SessionError):
    """No session with that id exists (it never did, it was removed, or the store lost it)."""


class SessionExpiredError(SessionError):
    """The session expired (inactivity or lifetime) or was ended; the user needs a new one."""


class SessionDisconnectedError(SessionError):
    """The session was disconnected after too many errors; it must reconnect first."""


class SessionExistsError(SessionError):
    """A live session with that id already exists."""


class SessionLimitError(SessionError):
    """The store holds its maximum number of live sessions; no new session can start now."""


class BackendProcessError(SessionMWError):
    """A backend process (scanner, backtest worker, ...) failed or stopped; usually worth a retry."""


class DataLoadError(SessionMWError):
    """Data could not be loaded (missing file, bad format, failed download)."""


class TransientError(SessionMWError):
    """A failure that may well go away by itself: retry strategies repeat these by default."""


class StoreError(SessionMWError):
    """The session store failed."""


class StoreUnavailableError(StoreError):
    """The session store cannot be reached or did not answer in time."""


class CorruptRecordError(StoreError):
    """A record in the store could not be decoded; it is reported and skipped."""
