"""Counter backends beside each store, and stats summed across two processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionmw.analytics import TOTAL, stats
from sessionmw.stores.counters import CounterBackend, MemoryCounters, RedisCounters, SQLiteCounters

REDIS_URL = os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_counters(prefix: str) -> RedisCounters:
    """Counters on the test Redis under ``prefix``; fails in CI, skips elsewhere, if Redis is down."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is required in CI")
        pytest.skip(f"no Redis at {REDIS_URL}")
    return RedisCounters(client, prefix, shards=4)


@pytest.fixture(name="backend_factory", params=["memory", "sqlite", "redis"])
def _backend_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(kind, location) of a fresh counter backend; Redis keys are removed afterwards."""
    kind = str(request.param)
    location = str(tmp_path / "counters.db") if kind == "sqlite" else f"test-{uuid.uuid4().hex}"
    yield kind, location
    if kind == "redis":
        counters = redis_counters(location)
        for key in counters.client.scan_iter(match=f"{{{location}:*"):
            counters.client.delete(key)


def open_backend(kind: str, location: str) -> CounterBackend:
    if kind == "memory":
        return MemoryCounters()
    if kind == "sqlite":
        return SQLiteCounters(location)
    return redis_counters(location)


def test_add_and_read_by_bucket(backend_factory: tuple[str, str]) -> None:
    """Adds accumulate per bucket and name; unknown buckets are absent."""
    backend = open_backend(*backend_factory)
    backend.add((5, TOTAL), {"a": 1.0, "b": 2.5})
    backend.add((5, TOTAL), {"a": 1.0})
    backend.add((6, TOTAL), {"a": 4.0})
    assert backend.read([5, 6, 7]) == {5: {"a": 2.0, "b": 2.5}, 6: {"a": 4.0}}
    assert backend.read([TOTAL]) == {TOTAL: {"a": 6.0, "b": 2.5}}


# One process's scripted life: 3 sessions, 2 errors each, one ended (argv: kind location worker).
WORKER = """
import sys
from sessionmw import SessionManager
from sessionmw.analytics import Analytics
from sessionmw.stores.counters import RedisCounters, SQLiteCounters
from sessionmw.testing import FakeClock

kind, location, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "sqlite":
    backend = SQLiteCounters(location)
else:
    import redis
    backend = RedisCounters(redis.Redis.from_url(sys.argv[4]), location, shards=4)
clock = FakeClock(1_700_000_000.0 + worker)
manager = SessionManager(store="memory://", clock=clock)
analytics = Analytics(manager, backend).connect()
for n in range(3):
    manager.create_session(f"w{worker}-{n}")
    manager.record_error(f"w{worker}-{n}", TimeoutError("slow"))
    manager.record_error(f"w{worker}-{n}", TimeoutError("slow"))
manager.end_session(f"w{worker}-0")
"""


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_stats_sum_two_processes(kind: str, tmp_path: Path) -> None:
    """Two processes count into one store; stats see the sum of both scripts."""
    location = str(tmp_path / "c.db") if kind == "sqlite" else f"test-{uuid.uuid4().hex}"
    backend = open_backend(kind, location)
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, kind, location, str(w), REDIS_URL]) for w in range(2)
    ]
    assert [process.wait(timeout=60) for process in processes] == [0, 0]
    result = stats(backend, 1_700_000_000.0 + 5, 3600)
    assert result.counts["sessions.created"] == 6
    assert result.counts["sessions.ended"] == 2
    assert result.counts["errors.total"] == 12
    assert result.counts["errors.type.TimeoutError"] == 12
    assert result.counts["transitions.active.error"] == 6
    assert result.expiration_rate == 0.0
    if kind == "redis":
        assert isinstance(backend, RedisCounters)
        for key in backend.client.scan_iter(match=f"{{{location}:*"):
            backend.client.delete(key)
