"""Store helpers: a session created in a store, a walk of operations, outcomes compared, and a
store URL of each kind (memory, SQLite, Redis, Redis Cluster) for a test, and what the async
path tests compare: what a caller sees of an answer, the threads a store's methods ran in."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event
from sessionmw.health import HealthReport
from sessionmw.stores._base import Outcome, SessionStore

#: The policy the store tests run with, and the clock time they start at.
POLICY = Policy(idle_after=10.0, timeout=30.0, absolute_timeout=100.0, error_threshold=3, retention=20.0)
T0 = 1_700_000_000.0


def new_record(store: SessionStore, session_id: str, now: float = T0) -> SessionRecord:
    """Create a new session ``session_id`` in ``store`` under :data:`POLICY`; its record."""
    record = SessionRecord.new(session_id, now)
    store.create(record, now, POLICY)
    return record


def created(store: SessionStore, session_id: str, now: float, policy: Policy) -> str:
    """Create a new session ``session_id`` in ``store``: ``"created"``, or ``"exists"`` if it did."""
    from sessionmw import SessionExistsError

    try:
        store.create(SessionRecord.new(session_id, now), now, policy)
    except SessionExistsError:
        return "exists"
    return "created"


def walk(operations: list[tuple[object, ...]], run: str, now: float) -> Iterator[tuple[str, str, Any, float]]:
    """A differential test's operations, from the clock time ``now``: ``("advance", seconds)`` moves
    the clock on; every other one is yielded as ``(kind, session id, event, now)``, the session
    id ``f"{run}-{name}"`` for ``(kind, name[, event])`` (``""`` without a name), the event None
    when there is none."""
    for operation in operations:
        kind = str(operation[0])
        if kind == "advance":
            now += float(operation[1])  # type: ignore[arg-type]
            continue
        session_id = f"{run}-{operation[1]}" if kind != "sweep" else ""
        event = operation[2] if len(operation) > 2 else None
        assert event is None or isinstance(event, Event)
        yield kind, session_id, event, now


def assert_same_outcome(got: Outcome | None, expected: Outcome | None) -> None:
    """A store's update outcome is the model's: the same record, changes and refusal."""
    if expected is None or got is None:
        assert expected is got
    else:
        assert got.record == expected.record
        assert got.changes == expected.changes
        assert repr(got.refused) == repr(expected.refused)


def shared_store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a store of ``kind`` for one test: ``memory``, ``sqlite`` (a file in
    ``tmp_path``), ``redis`` (the test Redis, under the test's own key prefix, deleted afterwards)
    or ``redis-cluster`` (or ``cluster``: the private cluster, under a fresh prefix, nothing to
    clean up)."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    if kind == "redis":
        return f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"
    if kind in ("redis-cluster", "cluster"):
        return f"{request.getfixturevalue('redis_cluster_url')}?prefix=t{secrets.token_hex(6)}&cluster=true"
    raise ValueError(f"no store kind {kind!r}")


#: The store methods the request path calls.
STORE_METHODS = ("create", "update", "get", "delete")


def seen_of(value: Any) -> Any:
    """What a caller sees of an answer, without the times and ids that differ between two runs."""
    if isinstance(value, SessionRecord):
        return (value.state, value.error_count, value.last_error, value.reason)
    if isinstance(value, HealthReport):
        return (value["status"], value["healthy"], value["state"])
    if isinstance(value, tuple):
        return tuple(seen_of(item) for item in value)
    if isinstance(value, BaseException):
        return type(value).__name__
    return value


def record_threads(store: Any, names: tuple[str, ...]) -> list[tuple[str, int]]:
    """Wrap ``store``'s methods ``names`` so that each call notes its thread."""
    calls: list[tuple[str, int]] = []
    for name in names:
        method = getattr(store, name)

        def noted(*args: Any, _method: Callable[..., Any] = method, _name: str = name) -> Any:
            calls.append((_name, threading.get_ident()))
            return _method(*args)

        setattr(store, name, noted)
    return calls
