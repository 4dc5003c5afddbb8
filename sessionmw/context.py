"""Which session the current code serves, carried by a context variable.

Adapters (WSGI, Flask, Dash) open a :func:`session_scope` around each request; code deep in the
call stack, including :func:`~sessionmw.guarded` functions, finds the session with
:func:`current_session_id` and :func:`current_manager`. Context variables follow threads and
asyncio tasks correctly.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from sessionmw.manager import SessionManager

__all__ = ["current_manager", "current_session_id", "session_scope"]


class _Scope(NamedTuple):
    manager: SessionManager
    session_id: str


_current: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("sessionmw_scope", default=None)


def current_session_id() -> str | None:
    """The id of the session the current code serves, or None outside any :func:`session_scope`."""
    scope = _current.get()
    return None if scope is None else scope.session_id


def current_manager() -> SessionManager | None:
    """The manager of the current :func:`session_scope`, or None outside any."""
    scope = _current.get()
    return None if scope is None else scope.manager


@contextlib.contextmanager
def session_scope(manager: SessionManager, session_id: str) -> Iterator[str]:
    """Run the ``with`` block as serving ``session_id`` of ``manager``; yields the id.

    Scopes nest: the previous scope is restored on exit, even after an exception.
    """
    token = _current.set(_Scope(manager, session_id))
    try:
        yield session_id
    finally:
        _current.reset(token)
