"""Which session the current code serves, carried by a context variable.

Adapters (WSGI, Flask, Dash) open a :func:`session_scope` around each request; code deep in the
call stack, including :func:`~sessionmw.guarded` functions, finds the session with
:func:`current_session_id` and :func:`current_manager`. Context variables follow threads and
asyncio tasks correctly.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from sessionmw.texts import follow_scopes

if TYPE_CHECKING:
    from sessionmw._manager import SessionManager

__all__ = [
    "Scope",
    "current_debug",
    "current_manager",
    "current_scope",
    "current_session_id",
    "enter_scope",
    "leave_scope",
    "session_scope",
]


class Scope(NamedTuple):
    """The session the current code serves: its manager and its id."""

    manager: SessionManager
    session_id: str
    #: For a session issued to the client but not stored yet (an adapter's pending session):
    #: stores it. ``@guarded`` calls it when the session is first used for work; None otherwise.
    store_pending: Callable[[], object] | None = None
    #: What chooses the request's language (:class:`~sessionmw.languages.Negotiator`), for the
    #: words sessionmw writes in the scope (:func:`sessionmw.texts.local`); None: English.
    languages: Any = None
    #: The request the scope serves (its view, which ``languages`` reads when words are written).
    request: Any = None


_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("sessionmw_scope", default=None)

#: The current :class:`Scope`, or None outside any :func:`session_scope` (the context variable's
#: own ``get``: no call layer on the hot paths of ``@guarded`` and the adapters).
current_scope: Final[Callable[[], Scope | None]] = _current.get


def current_session_id() -> str | None:
    """The id of the session the current code serves, or None outside any :func:`session_scope`."""
    scope = _current.get()
    return None if scope is None else scope.session_id


def current_manager() -> SessionManager | None:
    """The manager of the current :func:`session_scope`, or None outside any."""
    scope = _current.get()
    return None if scope is None else scope.manager


def current_debug() -> bool:
    """The current session manager's ``debug`` setting; False outside any :func:`session_scope`."""
    scope = _current.get()
    return scope is not None and scope.manager.settings.debug


def enter_scope(
    manager: SessionManager,
    session_id: str,
    store_pending: Callable[[], object] | None = None,
    languages: Any = None,
    request: Any = None,
) -> contextvars.Token[Scope | None]:
    """Start serving ``session_id`` of ``manager`` until :func:`leave_scope` with the token returned.

    :func:`session_scope` as two calls, for adapters whose start and end of a request are two hooks.
    ``store_pending`` stores a session the adapter issued but has not stored yet (see :class:`Scope`).
    ``languages`` and ``request``: what sessionmw writes in the scope is in the request's language,
    chosen by ``languages`` only when words are written (the one context variable an adapter sets
    per request is the scope's).
    """
    return _set(_new_scope(Scope, (manager, session_id, store_pending, languages, request)))


#: End the scope :func:`enter_scope` started (with the token it returned): the previous scope is
#: current again. The context variable's own ``reset``: no call layer on every request.
leave_scope: Final[Callable[[contextvars.Token[Scope | None]], None]] = _current.reset
_set = _current.set
_new_scope = tuple.__new__  # a Scope without its Python-level __new__ (on every request)
follow_scopes(_current.get)  # the words read the request's language from the scope


@contextlib.contextmanager
def session_scope(manager: SessionManager, session_id: str) -> Iterator[str]:
    """Run the ``with`` block as serving ``session_id`` of ``manager``; yields the id.

    Scopes nest: the previous scope is restored on exit, even after an exception.
    """
    token = _current.set(Scope(manager, session_id))
    try:
        yield session_id
    finally:
        _current.reset(token)
