"""The session serving one request: :class:`RequestSession`."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable

from sessionmw._errors import SessionExistsError
from sessionmw._manager import SessionManager
from sessionmw._session import SessionRecord
from sessionmw._states import SessionState
from sessionmw.health import HealthReport

__all__ = ["RequestSession"]


@dataclasses.dataclass(slots=True)
class RequestSession:
    """The session serving one request."""

    #: The session id.
    id: str
    #: The manager that keeps the session.
    manager: SessionManager
    #: The session as of the start of the request (for a pending session, an unsaved fresh record).
    record: SessionRecord
    #: False while the session is pending: issued to the client but not stored until it returns.
    stored: bool
    #: True when the response must (re)set the cookie.
    issue_cookie: bool
    #: True when the client sent its id in the header (an API client).
    via_header: bool
    #: The report of an expired session this one replaced (shown to the user once), or None.
    notice: HealthReport | None = None
    _health: HealthReport | None = None
    #: True once an error was recorded on the session during this request (no success then).
    failed: bool = False
    #: When the request began (:func:`time.perf_counter`), for the ``request_finished`` signal.
    started: float = dataclasses.field(default_factory=time.perf_counter)
    #: Why the session may not work, as the core reports it (the notice of an expired session,
    #: the health of a disconnected one), or None: a JSON client gets it as the response.
    refusal: HealthReport | None = None
    #: False for a request that only reports an operation made elsewhere (a Dash background
    #: callback's poll: its job counts its own outcome): its response is no success.
    counts_success: bool = True
    #: The session as the error recorded during this request left it (what
    #: :meth:`~sessionmw.SessionManager.record_error` answered), or None.
    after_error: SessionRecord | None = None

    @property
    def health(self) -> HealthReport:
        """The session's health: its record as of the start of the request, reported when first
        read (no store operation; made on demand, so a request that never asks pays nothing)."""
        if self._health is None:
            manager = self.manager
            self._health = HealthReport.build(self.id, self.record, manager.clock(), manager.policy)
        return self._health

    @property
    def state(self) -> SessionState:
        """The session's state at the start of the request."""
        return self.record.state

    @property
    def store_pending(self) -> Callable[[], None] | None:
        """For the session's scope: :meth:`ensure_stored` while the session is pending, else None."""
        return None if self.stored else self.ensure_stored

    def ensure_stored(self) -> None:
        """Store a pending session now (e.g. before recording an error on it)."""
        if not self.stored:
            with contextlib.suppress(SessionExistsError):
                self.manager.create_session(self.id)
            self.stored = True

    async def aensure_stored(self) -> None:
        """:meth:`ensure_stored`, without blocking the event loop."""
        if not self.stored:
            with contextlib.suppress(SessionExistsError):
                await self.manager.acreate_session(self.id)
            self.stored = True
