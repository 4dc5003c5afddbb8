"""Several processes on one SQLite file or one Redis: exact counts, each transition decided once."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import queue
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sessionmw import SessionManager, SessionState
from sessionmw.testing import FakeClock, capture_signals

WORKERS = 4
CALLS = 5_000
SESSIONS = 8
THRESHOLD = 5
START = 1_700_000_000.0

_SPAWN = multiprocessing.get_context("spawn")
#: The repository root: spawned children import this module (``tests.test_store_processes``) from it.
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _importable_by_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned children find this module's functions (they import it by name)."""
    monkeypatch.syspath_prepend(str(ROOT))


def _collect(results: Any, count: int, processes: list[Any]) -> list[Any]:
    """``count`` results from the children; fails fast if one of them dies."""
    collected: list[Any] = []
    waited = 0.0
    while len(collected) < count:
        try:
            collected.append(results.get(timeout=1.0))
        except queue.Empty:
            waited += 1.0
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead or waited > 120:
                pytest.fail(f"worker processes failed (exit codes {dead}) or hung")
    return collected


def _worker(url: str, worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any) -> None:
    """One process: CALLS errors spread over the shared sessions, then all see them expire."""
    clock = FakeClock(START)
    manager = SessionManager(store=url, clock=clock, max_error_threshold=THRESHOLD)
    ids = [f"shared-{n}" for n in range(SESSIONS)]
    with capture_signals() as sent:
        barrier.wait(timeout=60)
        for call in range(CALLS):
            manager.record_error(ids[(call + worker) % SESSIONS], "boom")
        barrier.wait(timeout=60)  # every error is in before anyone lets time pass
        clock.advance(31 * 60)
        for session_id in ids:
            manager.check_health(session_id)
    manager.close()
    results.put((worker, Counter(s.name for s in sent)))


def _run_workers(url: str) -> Counter[str]:
    """Run WORKERS processes on ``url``; the signals they sent, summed."""
    barrier = _SPAWN.Barrier(WORKERS)
    results = _SPAWN.Queue()
    processes = [_SPAWN.Process(target=_worker, args=(url, w, barrier, results)) for w in range(WORKERS)]
    for process in processes:
        process.start()
    totals: Counter[str] = Counter()
    try:
        for _, counts in _collect(results, WORKERS, processes):
            totals += counts
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * WORKERS
    return totals


def _shared_store_test(url: str) -> None:
    manager = SessionManager(store=url, clock=FakeClock(START), max_error_threshold=THRESHOLD)
    for n in range(SESSIONS):
        manager.create_session(f"shared-{n}")
    signals = _run_workers(url)
    assert signals["error-recorded"] == WORKERS * CALLS
    assert signals["session-disconnected"] == SESSIONS  # each crossing once, in one process
    assert signals["session-expired"] == SESSIONS  # each expiry once, though all four saw it
    records = {record.session_id: record for record in manager.store.records()}
    assert {r.error_count for r in records.values()} == {WORKERS * CALLS // SESSIONS}
    assert {r.state for r in records.values()} == {SessionState.EXPIRED}
    assert manager.session_count() == 0
    manager.close()


def test_four_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    """4 processes x 5,000 errors through SQLite: exact counts, each transition signalled once."""
    _shared_store_test(f"sqlite:///{tmp_path / 'shared.db'}")


def test_four_processes_on_one_redis(redis_url: str, redis_prefix: str) -> None:
    """4 processes x 5,000 errors through Redis: exact counts, each transition signalled once."""
    _shared_store_test(f"{redis_url}?prefix={redis_prefix}")


def _create_in_child(url: str, results: Any) -> None:
    """Create a session with one error in this process, report its id, and exit."""
    manager = SessionManager(store=url, clock=FakeClock(START))
    session = manager.create_session()
    manager.record_error(session.session_id, "first failure")
    manager.close()
    results.put(session.session_id)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_sessions_survive_a_new_process(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A session created by a process that has exited is seen, same state, by a new manager."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 's.db'}"
    else:
        url = f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"
    results = _SPAWN.Queue()
    child = _SPAWN.Process(target=_create_in_child, args=(url, results))
    child.start()
    (session_id,) = _collect(results, 1, [child])
    child.join(timeout=30)
    assert child.exitcode == 0
    manager = SessionManager(store=url, clock=FakeClock(START + 1))
    record = manager.get_session(session_id)
    assert record is not None
    assert (record.state, record.error_count, record.last_error) == (SessionState.ERROR, 1, "first failure")
    manager.close()
