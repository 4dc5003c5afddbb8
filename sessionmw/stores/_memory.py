"""The in-process store: a dict behind a lock. The default; sessions die with the process."""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sessionmw._errors import SessionExistsError, SessionLimitError
from sessionmw._forks import reset_after_fork
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event, SessionState
from sessionmw._transitions import Change, is_routine_activity, writes_nothing
from sessionmw.stores._base import Outcome, new_incarnation, step

if TYPE_CHECKING:
    from sessionmw.stores.breakers import MemoryBreakers

__all__ = ["FORKED_WARNING", "MemoryStore"]

_TERMINAL = frozenset({SessionState.EXPIRED, SessionState.ENDED})
_ACTIVITY = Event.ACTIVITY
_unchanged = tuple.__new__  # an Outcome without its Python-level __new__ (on every request)
_log = logging.getLogger("sessionmw")

#: Logged once by a memory store used in a process forked after the store was made.
FORKED_WARNING = (
    "the memory:// session store is used in a process forked after it was created (a worker of "
    "a pre-forking server such as gunicorn): each process keeps its own sessions, so a client's "
    "session is unknown to the next worker and sessions come and go. Use a store every worker "
    "shares: sqlite:///path/sessions.db on one host, or redis://host:6379/0"
)


class MemoryStore:
    """Keeps sessions in a dict in this process; thread-safe.

    Sweeping uses a heap of deadlines: a session's entry is checked when its deadline passes and
    pushed back if it saw activity since, so :meth:`sweep` costs about the number of due sessions.

    Used in a process forked after it was made, it logs :data:`FORKED_WARNING` once: the
    processes do not share its sessions.
    """

    #: Its calls never wait (a lock held for microseconds, no I/O): async callers make them inline
    #: (see :mod:`sessionmw.stores.aio`).
    blocks = False

    def __init__(self, *, max_sessions: int | None = None) -> None:
        self.max_sessions = max_sessions
        self._records: dict[str, SessionRecord] = {}
        self._lock = threading.Lock()
        self._live = 0
        # (deadline, session_id): at or after deadline the session may be due for expiry or purge.
        self._deadlines: list[tuple[float, str]] = []
        self._forked = False  # set in a forked child until the warning is logged
        # One per store object: a new store (a restarted process) has none of the old sessions.
        self._incarnation = new_incarnation()
        self._policy: Policy | None = None
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held), and warn on use."""
        self._lock = threading.Lock()
        self._forked = True

    def _warn_forked(self) -> None:
        self._forked = False
        _log.warning(FORKED_WARNING)

    def create(self, record: SessionRecord, now: float, policy: Policy) -> None:
        if self._forked:
            self._warn_forked()
        record = record.copy()
        with self._lock:
            old = self._records.get(record.session_id)
            replaced_live = 0  # 1 if the old record still counts as live (it expired just now)
            if old is not None:
                probe = old.copy()  # a refused create changes nothing
                step(probe, None, now, policy)  # an old session may have expired by now
                if not probe.state.is_terminal:
                    raise SessionExistsError(
                        "a live session with this id exists", session_id=record.session_id
                    )
                replaced_live = 0 if old.state.is_terminal else 1
            live = self._live - replaced_live
            if self.max_sessions is not None and live >= self.max_sessions:
                raise SessionLimitError("the session store is full", session_id=record.session_id)
            self._records[record.session_id] = record
            self._live = live + 1
            heapq.heappush(self._deadlines, (record.expires_at(policy), record.session_id))

    def update(
        self,
        session_id: str,
        event: Event | None,
        now: float,
        policy: Policy,
        error: str | None = None,
    ) -> Outcome | None:
        if self._forked:
            self._warn_forked()
        # Copy-on-write: a stored record is never changed (a change stores a changed copy), so
        # one that the update leaves as it is (a look, or activity within the renewal window:
        # sessionmw._transitions.writes_nothing) is answered as it is: no lock, no copy.
        record = self._records.get(session_id)
        if record is None:
            return None
        if writes_nothing(record, event, now, policy):
            return _unchanged(Outcome, (record, (), None))
        with self._lock:
            record = self._records.get(session_id)
            if record is None:
                return None
            if writes_nothing(record, event, now, policy):  # renewed by another thread since the look
                return Outcome(record, ())
            if event is _ACTIVITY and is_routine_activity(record, now, policy):
                # what elapse() and apply() would do, without the detour
                record = record.copy()  # changed before it is kept: a lock-free look never sees it half made
                record.last_activity = now
                self._records[session_id] = record
                return Outcome(record, ())
            record = record.copy()
            was_live = record.state not in _TERMINAL
            changes, refused = step(record, event, now, policy, error)
            self._records[session_id] = record
            if changes and was_live and record.state in _TERMINAL:
                self._live -= 1
            return Outcome(record, changes, refused)

    def answer_cached(
        self, session_id: str, event: Event | None, now: float, policy: Policy
    ) -> Outcome | None:
        """What :meth:`update` would return when it writes nothing (a look, or activity within the
        renewal window: :func:`~sessionmw._transitions.writes_nothing`), at once and with nothing
        done; else None (:class:`~sessionmw.stores.aio.CachedAnswers`: an async caller's way to
        answer most requests without a call of the store's own)."""
        record = self._records.get(session_id)
        if record is None or self._forked or not writes_nothing(record, event, now, policy):
            return None
        return _unchanged(Outcome, (record, (), None))

    def get(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            record = self._records.get(session_id)
            return None if record is None else record.copy()

    def delete(self, session_id: str) -> bool:
        with self._lock:
            record = self._records.pop(session_id, None)
            if record is None:
                return False
            if not record.state.is_terminal:
                self._live -= 1
            return True

    def sweep(self, now: float, policy: Policy, limit: int = 1000) -> list[Change]:
        expired: list[Change] = []
        with self._lock:
            heap = self._deadlines
            while heap and heap[0][0] <= now and len(expired) < limit:
                _, session_id = heapq.heappop(heap)
                record = self._records.get(session_id)
                if record is None:
                    continue  # deleted since
                if record.state.is_terminal:
                    purge_at = record.state_changed_at + policy.retention
                    if purge_at <= now:
                        del self._records[session_id]
                    else:
                        heapq.heappush(heap, (purge_at, session_id))
                    continue
                deadline = record.expires_at(policy)
                if deadline > now:  # saw activity (or was replaced) since the entry was pushed
                    heapq.heappush(heap, (deadline, session_id))
                    continue
                record = record.copy()  # copy-on-write (see update): changed, then kept
                changes, _ = step(record, None, now, policy)
                self._records[session_id] = record
                if record.state.is_terminal:
                    self._live -= 1
                    expired.extend(changes)
                    heapq.heappush(heap, (now + policy.retention, session_id))
                else:  # saw activity since the entry was pushed
                    heapq.heappush(heap, (record.expires_at(policy), session_id))
        return expired

    def count(self, state: SessionState | None = None) -> int:
        with self._lock:
            if state is None:
                return self._live
            return sum(1 for record in self._records.values() if record.state is state)

    def count_by_state(self) -> dict[SessionState, int]:
        """How many records are in each state (one pass over the sessions)."""
        totals = dict.fromkeys(SessionState, 0)
        with self._lock:
            for record in self._records.values():
                totals[record.state] += 1
        return totals

    def records(self, state: SessionState | None = None) -> Iterator[SessionRecord]:
        with self._lock:
            snapshot = [
                record.copy() for record in self._records.values() if state is None or record.state is state
            ]
        return iter(snapshot)

    def close(self) -> None:
        """Nothing to release; the sessions stay until the store is garbage-collected."""

    def __repr__(self) -> str:
        return f"MemoryStore(max_sessions={self.max_sessions!r})"

    @property
    def namespace(self) -> str:
        """``"memory"``: its :meth:`incarnation` tells one memory store from another."""
        return "memory"

    def incarnation(self) -> str:
        """This store object's token (its sessions live in this process only); a forked child
        keeps its parent's (it starts with a copy of the parent's sessions)."""
        return self._incarnation

    def save_policy(self, policy: Policy) -> None:
        """Keep ``policy`` as the one this store's sessions are made with."""
        self._policy = policy

    def saved_policy(self) -> Policy | None:
        """The policy last saved here, or None."""
        return self._policy

    def breakers(self) -> MemoryBreakers:
        """The circuit breaker backend of this store (see :class:`sessionmw.Breaker`)."""
        from sessionmw.stores.breakers import MemoryBreakers

        return MemoryBreakers()
