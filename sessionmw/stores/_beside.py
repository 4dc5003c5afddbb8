"""What lives beside a store object: its breaker backend and its counter backend, one of each per
live store (weakly held: a new store never inherits a dead one's breakers or counts).

A :class:`Beside` names one kind of thing and how a store makes it; :func:`beside` finds it, or
makes it on first use. :func:`sessionmw._breaker.breakers_for` and
:func:`sessionmw._figures.counters_for` are the two kinds.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from sessionmw._forks import ForkSafeLock
from sessionmw.stores._base import SessionStore

__all__ = ["Beside", "beside"]

T = TypeVar("T")


class Beside(Generic[T]):
    """One kind of thing that lives beside a store, made by ``make(store)`` on first use."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[SessionStore], T]) -> None:
        self.make = make


_BESIDE: weakref.WeakKeyDictionary[SessionStore, dict[Beside[Any], object]] = weakref.WeakKeyDictionary()
_LOCK = ForkSafeLock()


def beside(store: SessionStore, kind: Beside[T]) -> T:
    """The ``kind`` of thing that lives beside ``store`` (made by ``kind.make(store)`` the first time)."""
    with _LOCK:
        found = _BESIDE.get(store)
        if found is None:
            found = _BESIDE[store] = {}
        thing = found.get(kind)
        if thing is None:
            thing = found[kind] = kind.make(store)
        return cast(T, thing)
