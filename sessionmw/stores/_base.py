"""The store protocol: what the manager needs from a place that keeps sessions.

Every operation that changes a session is **one atomic store operation**: the store applies the
passage of time and the event with :mod:`sessionmw._transitions` while it holds the session (a lock,
a ``BEGIN IMMEDIATE`` transaction, a Lua script), so the manager never reads, modifies and writes
back. That is what makes a transition happen exactly once when several processes share a store.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol, runtime_checkable

from sessionmw._errors import IllegalTransitionError
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event, SessionState
from sessionmw._transitions import Change, apply, elapse

__all__ = [
    "NamespacedStore",
    "Outcome",
    "PolicyStore",
    "SessionStore",
    "new_incarnation",
    "policy_from_json",
    "policy_to_json",
    "step",
]


class Outcome(NamedTuple):
    """What one atomic update did."""

    #: The session after the update (to read, not to change: see :class:`~sessionmw.SessionRecord`).
    record: SessionRecord
    #: The state changes the update made, in order (time first, then the event).
    changes: tuple[Change, ...]
    #: Set when the event was not allowed in the (time-updated) state; the time changes still hold.
    refused: IllegalTransitionError | None = None


def step(
    record: SessionRecord,
    event: Event | None,
    now: float,
    policy: Policy,
    error: str | None = None,
) -> tuple[tuple[Change, ...], IllegalTransitionError | None]:
    """Apply time, then ``event`` (None: time only), to ``record`` in place.

    The building block of every store's update: returns the changes and, if the event was
    refused, the refusal (the record then keeps its time changes only).
    """
    changes: tuple[Change, ...] = ()
    timed = elapse(record, now, policy)
    if timed is not None:
        changes = (timed,)
    if event is None:
        return changes, None
    try:
        change = apply(record, event, now, policy, error)
    except IllegalTransitionError as refused:
        return changes, refused
    if change is not None:
        changes += (change,)
    return changes, None


@runtime_checkable
class SessionStore(Protocol):
    """A place that keeps session records. Implementations must be safe to share between threads."""

    #: The most live (non-terminal) sessions the store accepts; None for no limit.
    max_sessions: int | None

    def create(self, record: SessionRecord, now: float, policy: Policy) -> None:
        """Store a new session atomically.

        A terminal (expired or ended) record with the same id is replaced.

        :raises SessionExistsError: if a live session with that id exists.
        :raises SessionLimitError: if :attr:`max_sessions` live sessions exist already.
        """
        ...

    def update(
        self,
        session_id: str,
        event: Event | None,
        now: float,
        policy: Policy,
        error: str | None = None,
    ) -> Outcome | None:
        """Atomically apply the passage of time and then ``event`` (None: time only).

        Returns None if there is no such session.
        """
        ...

    def get(self, session_id: str) -> SessionRecord | None:
        """A copy of the stored record as it is (time not applied), or None."""
        ...

    def delete(self, session_id: str) -> bool:
        """Remove a session; True if it existed."""
        ...

    def sweep(self, now: float, policy: Policy, limit: int = 1000) -> list[Change]:
        """Expire up to ``limit`` sessions that are due and drop terminal records past retention.

        Returns the expiries. Cost grows with the number of due sessions, not with all sessions.
        """
        ...

    def count(self, state: SessionState | None = None) -> int:
        """How many records the store holds in ``state`` (None: live sessions, i.e. not terminal)."""
        ...

    def records(self, state: SessionState | None = None) -> Iterator[SessionRecord]:
        """Copies of the stored records (for admin tools; never used on a request path)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class NamespacedStore(Protocol):
    """A store that can name where its sessions live, and tell when it lost them all (the
    built-in stores do).

    A store with a :attr:`namespace` but no :meth:`incarnation` is still used for its namespace:
    it counts as one incarnation that never changes.
    """

    @property
    def namespace(self) -> str:
        """Where this store's sessions live, the same in every process that shares them: an
        SQLite file's real path, a Redis database and key prefix (not the host, which processes may
        name differently), ``"memory"`` for a memory store (its :meth:`incarnation` tells one from
        another). Pending ids are signed for it."""
        ...

    def incarnation(self) -> str:
        """A short random token (letters, digits, ``_`` and ``-``) that changes exactly when the
        store loses all its sessions: one per memory store object; one per SQLite file, made with
        its tables; one per Redis key prefix, made again by the first reader after a restart
        that lost the data. Pending ids carry it, so an id issued before the loss is known for
        one that vanished. Never read on the common request path (one round trip on Redis).

        :raises StoreUnavailableError: if the store cannot be reached.
        """
        ...


@runtime_checkable
class PolicyStore(Protocol):
    """A store that keeps the :class:`~sessionmw._session.Policy` its sessions are made with (the
    built-in stores do), so that another process (the ``sessionmw`` operator commands) judges
    them by the app's timeouts, not by its own defaults.
    """

    def save_policy(self, policy: Policy) -> None:
        """Keep ``policy`` as the one the store's sessions are made with (the last one saved wins).

        :raises StoreUnavailableError: if the store cannot be reached.
        """
        ...

    def saved_policy(self) -> Policy | None:
        """The policy last saved, or None when no app saved one (or it cannot be read).

        :raises StoreUnavailableError: if the store cannot be reached.
        """
        ...


def policy_to_json(policy: Policy) -> str:
    """``policy`` as the JSON text a store keeps."""
    return json.dumps(dataclasses.asdict(policy), separators=(",", ":"), sort_keys=True)


def policy_from_json(text: object) -> Policy | None:
    """The policy in ``text`` (from :func:`policy_to_json`); None if it is not one (a store
    written by another version keeps its unknown fields out)."""
    try:
        data = json.loads(text if isinstance(text, (str, bytes)) else "")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Policy):
        value = data.get(field.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        values[field.name] = int(value) if field.name == "error_threshold" else float(value)
    return Policy(**values) if values else None


def new_incarnation() -> str:
    """A fresh store incarnation: 48 random bits from :mod:`secrets`, 8 URL-safe characters."""
    return secrets.token_urlsafe(6)
