"""Websockets and sessions, protocol-free: who may open one, and what its messages count as.

A websocket that names a session (the session header, or the session cookie) is admitted only if
that session exists and may work; otherwise it is refused before it is accepted, with a close code:
:data:`CLOSE_SESSION_REFUSED` (expired, ended, unknown, or none named where one is required) or
:data:`CLOSE_SESSION_DISCONNECTED` (disconnected: reconnect over HTTP, then open it again). An id
the store does not know is never adopted (a pending id this server issued is stored, as when a
request brings it back). A websocket that names none is served outside any session, like an
excluded path, and stores nothing, unless ``require_session``.

An admitted websocket's messages from the client count as activity on its session
(:class:`MessageActivity`): the first message past the renewal window is one store operation, the
others none. The adapter (e.g. :mod:`sessionmw.integrations.quart`) translates its framework's
websocket to a :class:`~sessionmw.integrations.request.RequestView` and closes with the code.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from sessionmw._settings import RESOLUTION_SHARE

if TYPE_CHECKING:
    from sessionmw._manager import SessionManager
    from sessionmw._session import Policy
    from sessionmw.integrations.gate import SessionGate
    from sessionmw.integrations.request import RequestView
    from sessionmw.integrations.request_session import RequestSession

__all__ = [
    "CLOSE_REQUEST_UNREADABLE",
    "CLOSE_SESSION_DISCONNECTED",
    "CLOSE_SESSION_REFUSED",
    "MessageActivity",
    "WebsocketAdmission",
    "admit_websocket",
    "message_window",
    "names_a_session",
]

_log = logging.getLogger("sessionmw.wsgi")

#: The close code of a websocket refused because its session is expired, ended or unknown (or it
#: names none where one is required): the HTTP 401 of a JSON request, in the private range.
CLOSE_SESSION_REFUSED = 4401
#: The close code of a websocket whose opening request cannot be read (headers too large or not
#: pairs of bytes): the HTTP 400 of a request, in the private range; nothing is stored.
CLOSE_REQUEST_UNREADABLE = 4400
#: The close code of a websocket refused because its session is disconnected: the HTTP 503 of a
#: JSON request, in the private range (``POST <prefix>reconnect``, then open it again).
CLOSE_SESSION_DISCONNECTED = 4503


class WebsocketAdmission(NamedTuple):
    """What becomes of a websocket (:func:`admit_websocket`).

    ``(None, None)``: served outside any session; ``(session, None)``: served in ``session``;
    ``(None, code)``: refused before it is accepted, closed with ``code``.
    """

    #: The session serving the websocket, or None.
    session: RequestSession | None
    #: The close code refusing it, or None.
    close_code: int | None


_UNTRACKED = WebsocketAdmission(None, None)
_REFUSED = WebsocketAdmission(None, CLOSE_SESSION_REFUSED)
_DISCONNECTED = WebsocketAdmission(None, CLOSE_SESSION_DISCONNECTED)


def names_a_session(gate: SessionGate, request: RequestView) -> bool:
    """True when ``request`` sends a session id at all (well-formed or not): the session header,
    or a cookie of the session cookie's name."""
    if request.header(gate.options.header_name.lower()) is not None:
        return True
    name = gate.options.cookie_name
    for part in request.cookies.split(";"):
        key, sep, _ = part.strip().partition("=")
        if sep and key == name:
            return True
    return False


async def admit_websocket(
    gate: SessionGate, request: RequestView, *, require_session: bool = False
) -> WebsocketAdmission:
    """Decide what becomes of the websocket ``request`` (see :class:`WebsocketAdmission`).

    An excluded path (and the gate's own prefix and metrics path) is served outside any session.
    A websocket that names a session is admitted as a request is (:meth:`SessionGate.aadmit
    <sessionmw.integrations.gate.SessionGate.aadmit>`: one store operation, the activity), and
    refused where a request would get a fresh id or a refusal: the id is unknown, malformed,
    expired, ended, or no longer stored (:data:`CLOSE_SESSION_REFUSED`), or disconnected
    (:data:`CLOSE_SESSION_DISCONNECTED`). A websocket that names none is served outside any
    session, or refused with ``require_session``. A store failure raises, as for a request.
    """
    path = request.path
    options = gate.options
    if path.startswith(options.prefix) or path == options.metrics_path or options.excluded(path):
        return _UNTRACKED
    if not names_a_session(gate, request):
        return _REFUSED if require_session else _UNTRACKED
    session, _ = await gate.aadmit(request, endpoints=False)
    if session is None:
        return _UNTRACKED
    refusal = session.refusal
    if refusal is not None:
        return _DISCONNECTED if refusal.status == "disconnected" else _REFUSED
    if session.issue_cookie:  # the id it named was not adopted: a request would get a fresh one
        return _REFUSED
    return WebsocketAdmission(session, None)


def message_window(policy: Policy) -> float:
    """How often an open websocket's messages reach the store, in seconds: the renewal window
    (``activity_resolution``), or with a window of 0 its default share of the shorter timeout."""
    if policy.activity_resolution > 0:
        return policy.activity_resolution
    return min(policy.idle_after, policy.timeout) * RESOLUTION_SHARE


class MessageActivity:
    """The messages of one admitted websocket as activity on its session.

    The websocket's admission was its first activity; after it, the first message past the window
    (:func:`message_window`) touches the session (one store operation), the others cost nothing.
    A session that becomes unable to work while the websocket is open is not closed: the next
    websocket or request is refused. A store failure is logged and the message delivered.

    :param manager: the manager that keeps the session.
    :param session_id: the session serving the websocket.
    """

    __slots__ = ("_due", "manager", "session_id", "window")

    def __init__(self, manager: SessionManager, session_id: str) -> None:
        self.manager = manager
        self.session_id = session_id
        #: Seconds between two store operations, at most.
        self.window = message_window(manager.policy)
        self._due = manager.clock() + self.window

    async def message(self) -> None:
        """Count one message from the client."""
        manager = self.manager
        now = manager.clock()
        if now < self._due:
            return
        self._due = now + self.window
        try:
            await manager.atouch_or_report(self.session_id)
        except Exception:  # e.g. the store down with fail_closed: the message is delivered anyway
            _log.warning("could not count a websocket message as session activity", exc_info=True)
