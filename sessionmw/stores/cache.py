"""The local read cache of the shared stores: copies of records this process may answer from.

A store answers from its cache only what :func:`sessionmw._transitions.writes_nothing` allows (a
look, or activity within the renewal window, on a copy it knows to be current), and only within
the renewal window after the copy was read from the store, whatever the record's state: so a
change the store could not announce (a record deleted behind its back, a change by a process
that publishes nothing) is seen at most one window late. Anything that changes a session goes to
the store as one atomic operation, as without the cache. The store
keeps the copies current: SQLite empties the cache whenever ``PRAGMA data_version`` says another
connection committed, Redis drops the copies its invalidation messages name (see
:class:`sessionmw.stores._redis.RedisStore`). A store that may have missed a change empties it.
"""

from __future__ import annotations

from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event
from sessionmw._transitions import writes_nothing
from sessionmw.stores._base import Outcome

__all__ = ["CACHE_LIMIT", "RecordCache"]

_unchanged = tuple.__new__  # an Outcome without its Python-level __new__ (on most requests)

#: The most records a cache keeps; past it, the oldest copy goes.
CACHE_LIMIT = 10_000


class RecordCache:
    """Copies of records by session id, at most ``limit`` of them. Not locked: the store's lock
    (or the single thread that fills it) guards its changes. :meth:`answer` may run in another
    thread meanwhile (the SQLite store's answers on the event loop): a copy is never changed once
    kept, and each lookup is one dict read. An answer hands out the kept copy itself, as the memory
    store hands out its records: a record a store hands out is the caller's to read, never to
    change (:class:`~sessionmw._session.SessionRecord`)."""

    __slots__ = ("_records", "limit")

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        # Each copy with the time (the sessions' clock) at which it was read from the store.
        self._records: dict[str, tuple[SessionRecord, float]] = {}
        #: The most copies kept.
        self.limit = limit

    def answer(self, session_id: str, event: Event | None, now: float, policy: Policy) -> Outcome | None:
        """The outcome of ``event`` at ``now`` from the cached copy, if it writes nothing and was
        read less than the renewal window (``policy.activity_resolution``) ago; else None."""
        cached = self._records.get(session_id)
        if cached is None:
            return None
        record, read_at = cached
        if not read_at <= now < read_at + policy.activity_resolution:
            return None  # a copy is trusted for one window at most (0: never)
        if not writes_nothing(record, event, now, policy):
            return None
        if record.state.is_terminal and now - record.state_changed_at >= policy.retention:
            return None  # the store may have dropped it by now (a Redis TTL tells nobody)
        return _unchanged(Outcome, (record, (), None))  # (no copy: see the class)

    def put(self, record: SessionRecord, now: float) -> None:
        """Keep a copy of ``record``, as the store holds it at ``now`` (the sessions' clock)."""
        records = self._records
        if len(records) >= self.limit and record.session_id not in records:
            del records[next(iter(records))]
        records[record.session_id] = (record.copy(), now)

    def drop(self, session_id: str) -> None:
        """Forget the copy of one session (it changed elsewhere, or is changing here)."""
        self._records.pop(session_id, None)

    def clear(self) -> None:
        """Forget every copy (a change may have been missed)."""
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._records
