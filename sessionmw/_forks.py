"""Fork safety: after ``os.fork`` a child must not use the locks and connections its parent held.

A lock another thread held at the fork stays locked for ever in the child, and a SQLite
connection must never be used in two processes. Objects that hold either register here with
:func:`reset_after_fork`; in a forked child their ``_after_fork()`` runs before any other code,
so they start with fresh locks and open their own connections when next used. A module-level
lock is a :class:`ForkSafeLock`. (Redis connection pools check the process id themselves.)
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol

__all__ = ["ForkAware", "ForkSafeLock", "reset_after_fork"]


class ForkAware(Protocol):
    """An object that renews its locks and forgets its connections in a forked child."""

    def _after_fork(self) -> None: ...


_AWARE: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def reset_after_fork(obj: ForkAware) -> None:
    """Call ``obj._after_fork()`` in every child forked from now on (while ``obj`` lives)."""
    _AWARE.add(obj)


class ForkSafeLock:
    """A ``threading.Lock`` (used in a ``with`` block) that a forked child gets fresh: another
    thread may have held the parent's at the fork."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def _in_child() -> None:
    for obj in list(_AWARE):
        obj._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
