"""A guarded call costs one store operation, whatever state its session is in.

The counting store below wraps any store; the adapters' request paths can be counted with it too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionmw import HealthReport, SessionManager, UserFacingError, guarded, session_scope
from sessionmw.session import Policy, SessionRecord
from sessionmw.states import Event, SessionState
from sessionmw.stores.base import Outcome, SessionStore
from sessionmw.stores.memory import MemoryStore
from sessionmw.testing import FakeClock
from sessionmw.transitions import Change


class CountingStore:
    """A store that counts the operations made on the store it wraps."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.max_sessions = inner.max_sessions
        self.calls: Counter[str] = Counter()

    def create(self, record: SessionRecord, now: float, policy: Policy) -> None:
        self.calls["create"] += 1
        self.inner.create(record, now, policy)

    def update(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
    ) -> Outcome | None:
        self.calls[f"update:{event}"] += 1
        return self.inner.update(session_id, event, now, policy, error)

    def get(self, session_id: str) -> SessionRecord | None:
        self.calls["get"] += 1
        return self.inner.get(session_id)

    def delete(self, session_id: str) -> bool:
        self.calls["delete"] += 1
        return self.inner.delete(session_id)

    def sweep(self, now: float, policy: Policy, limit: int = 1000) -> list[Change]:
        self.calls["sweep"] += 1
        return self.inner.sweep(now, policy, limit)

    def count(self, state: SessionState | None = None) -> int:
        self.calls["count"] += 1
        return self.inner.count(state)

    def records(self, state: SessionState | None = None) -> Iterator[SessionRecord]:
        self.calls["records"] += 1
        return self.inner.records(state)

    def close(self) -> None:
        self.inner.close()


def _healthy(manager: SessionManager, clock: FakeClock) -> str:
    return manager.create_session().session_id


def _idle(manager: SessionManager, clock: FakeClock) -> str:
    session_id = manager.create_session().session_id
    clock.advance(manager.policy.idle_after + 1)
    return session_id


def _error(manager: SessionManager, clock: FakeClock) -> str:
    session_id = manager.create_session().session_id
    manager.record_error(session_id, ConnectionError("flaky"))
    return session_id


def _disconnected(manager: SessionManager, clock: FakeClock) -> str:
    session_id = manager.create_session().session_id
    for _ in range(manager.policy.error_threshold):
        manager.record_error(session_id, ConnectionError("down"))
    return session_id


def _expired(manager: SessionManager, clock: FakeClock) -> str:
    session_id = manager.create_session().session_id
    clock.advance(manager.policy.timeout + 1)
    return session_id


def _unknown(manager: SessionManager, clock: FakeClock) -> str:
    return "no-such-session"


ACTIVITY = f"update:{Event.ACTIVITY}"

# (make the session, the store operations of one guarded call, the refusal's status or None)
CASES: dict[str, tuple[Callable[[SessionManager, FakeClock], str], dict[str, int], str | None]] = {
    "healthy": (_healthy, {ACTIVITY: 1}, None),
    "idle": (_idle, {ACTIVITY: 1}, None),
    # The success that takes an error session back to active is the call's one write after it.
    "error": (_error, {ACTIVITY: 1, f"update:{Event.SUCCESS}": 1}, None),
    "disconnected": (_disconnected, {ACTIVITY: 1}, "disconnected"),
    "expired": (_expired, {ACTIVITY: 1}, "expired"),
    "unknown": (_unknown, {ACTIVITY: 1}, "not_found"),
}


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_guarded_call_makes_one_store_operation(case: str, kind: str, clock: FakeClock) -> None:
    """Admitting (or refusing) the call is one store operation: no second read to explain a refusal."""
    make, expected, refusal = CASES[case]
    store = CountingStore(MemoryStore())
    manager = SessionManager(store=store, clock=clock)
    session_id = make(manager, clock)
    calls: list[str] = []

    def work() -> str:
        calls.append("called")
        return "done"

    async def work_async() -> str:
        return work()

    guarded_work = guarded(work)
    guarded_async = guarded(work_async)
    store.calls.clear()
    with session_scope(manager, session_id):
        try:
            result: Any = guarded_work() if kind == "sync" else asyncio.run(guarded_async())
        except UserFacingError as error:
            result = error
    assert dict(store.calls) == expected
    if refusal is None:
        assert (result, calls) == ("done", ["called"])
    else:
        assert isinstance(result, UserFacingError)
        assert (result.status, calls) == (refusal, [])


@pytest.mark.parametrize("case", list(CASES))
def test_touch_or_report_returns_the_record_and_the_refusal(case: str, clock: FakeClock) -> None:
    """The session comes back as it is now (None if unknown), with the report that refuses it, if any."""
    make, _operations, expected = CASES[case]
    manager = SessionManager(store="memory://", clock=clock)
    session_id = make(manager, clock)
    record, refusal = manager.touch_or_report(session_id)
    if case == "unknown":
        assert record is None
    else:
        assert record is not None
        assert (record.session_id, record.state.may_work) == (session_id, expected is None)
    if expected is None:
        assert refusal is None
        assert record is not None and record.last_activity == clock()
    else:
        assert isinstance(refusal, HealthReport)
        assert (refusal.status, refusal.healthy) == (expected, False)
