"""The memory store under threads: counts exact, each threshold crossing signalled once, no
record seen half made."""

from __future__ import annotations

import threading
from typing import Any

from sessionmw import SessionManager, SessionState, signals
from sessionmw.testing import FakeClock, capture_signals

THREADS, CALLS, SESSIONS = 8, 10_000, 4


def test_record_error_from_8_threads_is_exact() -> None:
    """8 threads x 10,000 record_error calls on shared sessions lose no increment."""
    manager = SessionManager(store="memory://", clock=FakeClock(), max_error_threshold=10**9)
    for n in range(SESSIONS):
        manager.create_session(f"s{n}")
    barrier = threading.Barrier(THREADS)

    def work(worker: int) -> None:
        barrier.wait()
        for call in range(CALLS):
            manager.record_error(f"s{(worker + call) % SESSIONS}", "boom")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = [manager.check_health(f"s{n}").error_count for n in range(SESSIONS)]
    assert counts == [THREADS * CALLS // SESSIONS] * SESSIONS


def test_threshold_crossing_signalled_once_under_threads() -> None:
    """When 8 threads push a session over the threshold together, it disconnects exactly once."""
    manager = SessionManager(store="memory://", clock=FakeClock(), max_error_threshold=500)
    manager.create_session("s")
    barrier = threading.Barrier(THREADS)

    def work() -> None:
        barrier.wait()
        for _ in range(200):
            manager.record_error("s", "boom")

    with capture_signals(signals.session_disconnected) as sent:
        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(sent) == 1
    assert manager.check_health("s").error_count == THREADS * 200


class _Kept(dict):  # type: ignore[type-arg]
    """The store's records, noting each record's activity at the moment it is kept."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.kept_at: list[tuple[Any, float, SessionState]] = []

    def __setitem__(self, key: str, record: Any) -> None:
        self.kept_at.append((record, record.last_activity, record.state))
        super().__setitem__(key, record)


def test_a_record_is_kept_only_once_it_is_made() -> None:
    """Copy-on-write: a lock-free look (``update``'s, ``answer_cached``'s) never sees a record
    half made, so a changed copy is changed first and kept after, by update and by sweep."""
    from sessionmw.stores._memory import MemoryStore

    clock = FakeClock()
    manager = SessionManager(store=MemoryStore(), clock=clock)
    sid = manager.create_session().session_id
    kept = _Kept(manager.store._records)  # type: ignore[attr-defined]
    manager.store._records = kept  # type: ignore[attr-defined]
    clock.advance(manager.policy.activity_resolution + 1)
    manager.touch(sid)  # routine activity: a copy with the new time
    clock.advance(manager.policy.timeout + 1)
    manager.store.sweep(clock(), manager.policy)  # expired: a copy stepped to EXPIRED
    assert len(kept.kept_at) == 2
    assert all((record.last_activity, record.state) == (at, state) for record, at, state in kept.kept_at)
    assert kept[sid].state is SessionState.EXPIRED
