"""The memory store under threads: counts exact, each threshold crossing signalled once."""

from __future__ import annotations

import threading

from sessionmw import SessionManager, signals
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
