"""A guarded call costs one store operation, whatever state its session is in.

The counting store (``support.fakes.CountedStore``) wraps any store; the adapters' request paths are
counted with it in ``tests/system/test_store_operations_per_request.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from support.fakes import (
    CountedStore,
    disconnected_session,
    error_session,
    expired_session,
    healthy_session,
    idle_session,
    unknown_session,
)

from sessionmw import HealthReport, SessionManager, UserFacingError, guarded, session_scope
from sessionmw._states import Event
from sessionmw.stores._memory import MemoryStore
from sessionmw.testing import FakeClock

ACTIVITY = f"update:{Event.ACTIVITY}"

# (make the session, the store operations of one guarded call, the refusal's status or None)
CASES: dict[str, tuple[Callable[[SessionManager, FakeClock], str], dict[str, int], str | None]] = {
    "healthy": (healthy_session, {ACTIVITY: 1}, None),
    "idle": (idle_session, {ACTIVITY: 1}, None),
    # The success that takes an error session back to active is the call's one write after it.
    "error": (error_session, {ACTIVITY: 1, f"update:{Event.SUCCESS}": 1}, None),
    "disconnected": (disconnected_session, {ACTIVITY: 1}, "disconnected"),
    "expired": (expired_session, {ACTIVITY: 1}, "expired"),
    "unknown": (unknown_session, {ACTIVITY: 1}, "not_found"),
}


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_guarded_call_makes_one_store_operation(case: str, kind: str, clock: FakeClock) -> None:
    """Admitting (or refusing) the call is one store operation: no second read to explain a refusal."""
    make, expected, refusal = CASES[case]
    store = CountedStore(MemoryStore())
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
