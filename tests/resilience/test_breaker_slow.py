"""Slow calls: a duration threshold and a slow-call rate (Resilience4j's slowCallDurationThreshold
and slowCallRateThreshold), sync and async, on every path through a breaker."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support.fakes import fresh_breaker_registry  # noqa: F401  (autouse: each test with a fresh registry)

from sessionmw import (
    Breaker,
    BreakerOpenError,
    BreakerState,
    ConfigurationError,
    SessionManager,
    guarded,
    signals,
)
from sessionmw import _breaker as breaker_module
from sessionmw.stores.breakers import SQLiteBreakers
from sessionmw.testing import FakeClock, capture_signals, force_breaker


def _slow_breaker(manager: SessionManager, **kwargs: Any) -> Breaker:
    """Slow from 1 s; opens when half of the last 4 calls were slow (failures alone never open it)."""
    settings: dict[str, Any] = {
        "failure_threshold": 100,
        "slow_call_duration": 1.0,
        "slow_call_rate": 0.5,
        "window": 4,
        "min_calls": 4,
        "open_for": 30.0,
    }
    return Breaker("slow", manager=manager, **{**settings, **kwargs})


def _work(clock: FakeClock, seconds: float) -> str:
    clock.advance(seconds)
    return "done"


def test_half_of_the_last_calls_slow_opens_it(manager: SessionManager, clock: FakeClock) -> None:
    """Two fast calls, then two slow ones: the fourth call makes half of the last four slow."""
    breaker = _slow_breaker(manager)
    with capture_signals(signals.breaker_opened) as opened:
        for seconds in (0.1, 0.5, 1.0):
            breaker.call(_work, clock, seconds)
        assert breaker.state is BreakerState.CLOSED and not opened
        assert breaker.call(_work, clock, 2.5) == "done"  # slow and successful: it still returns
    assert len(opened) == 1 and breaker.state.value == "open"
    record = breaker.snapshot()
    assert (record.slow, record.successful, record.failed) == (2, 4, 0)
    with pytest.raises(BreakerOpenError):
        breaker.call(_work, clock, 0.0)


def test_slow_failures_count_as_slow_and_as_failed(manager: SessionManager, clock: FakeClock) -> None:
    breaker = _slow_breaker(manager)

    def slow_failure() -> None:
        clock.advance(3.0)
        raise ConnectionError("timed out the slow way")

    for _ in range(2):
        breaker.call(_work, clock, 0.0)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(slow_failure)
    record = breaker.snapshot()
    assert (record.state, record.slow, record.failed) == (BreakerState.OPEN, 2, 2)


def test_async_calls_guarded_functions_and_with_blocks_are_timed(
    manager: SessionManager, clock: FakeClock
) -> None:
    """call_async, @guarded (sync and async), `with` and `async with`: each slow call counts."""
    breaker = _slow_breaker(manager, window=8, min_calls=8)

    @guarded(breaker=breaker, retry=None)
    def guarded_sync() -> None:
        clock.advance(1.5)

    @guarded(breaker=breaker, retry=None)
    async def guarded_async() -> None:
        clock.advance(1.5)

    async def slow_async() -> None:
        clock.advance(1.5)

    async def scenario() -> None:
        await breaker.call_async(slow_async)
        await guarded_async()
        async with breaker:
            clock.advance(1.5)

    guarded_sync()
    with breaker:
        clock.advance(1.5)
    asyncio.run(scenario())
    assert breaker.snapshot().slow == 5
    for _ in range(2):
        breaker.call(_work, clock, 0.0)
    assert breaker.snapshot().state is BreakerState.CLOSED  # 7 calls: under min_calls
    breaker.call(_work, clock, 1.0)  # 6 slow of the last 8 (the rate is judged on a slow call)
    assert breaker.state is BreakerState.OPEN


def test_a_slow_probe_counts_as_a_failed_probe(manager: SessionManager, clock: FakeClock) -> None:
    breaker = _slow_breaker(manager)
    force_breaker(breaker, "open")
    clock.advance(30.0)
    assert breaker.call(_work, clock, 5.0) == "done"
    assert breaker.state.value == "open"
    clock.advance(30.0)
    breaker.call(_work, clock, 0.1)
    assert breaker.state is BreakerState.CLOSED


def test_without_slow_call_duration_durations_are_not_read(manager: SessionManager, clock: FakeClock) -> None:
    breaker = Breaker("plain", manager=manager, window=4, min_calls=4, failure_rate=0.5)
    for _ in range(10):
        breaker.call(_work, clock, 100.0)
    assert breaker.snapshot().slow == 0 and breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"slow_call_rate": 0.5}, "needs slow_call_duration"),
        ({"slow_call_duration": 0}, "slow_call_duration"),
        ({"slow_call_duration": 1e9}, "slow_call_duration"),
        ({"slow_call_duration": 1.0, "slow_call_rate": 1.5}, "slow_call_rate"),
    ],
)
def test_bad_slow_settings_are_named(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Breaker("bad", **kwargs)


def test_a_table_made_before_the_slow_count_gets_its_column(tmp_path: Path) -> None:
    """An SQLite file whose breaker table has none of the later counts (an older sessionmw): its
    rows read with 0 for each."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE sessionmw_breakers (name TEXT PRIMARY KEY, state TEXT NOT NULL,"
            " failures INTEGER NOT NULL, window TEXT NOT NULL, open_until REAL NOT NULL,"
            " probes INTEGER NOT NULL, probe_at REAL NOT NULL, opens INTEGER NOT NULL,"
            " successful INTEGER NOT NULL, failed INTEGER NOT NULL, rejected INTEGER NOT NULL,"
            " changed_at REAL NOT NULL)"
        )
        connection.execute(
            "INSERT INTO sessionmw_breakers VALUES ('old', 'closed', 1, '', 0, 0, 0, 2, 7, 3, 0, 5)"
        )
    (record,) = SQLiteBreakers(str(path)).records()
    assert (record.name, record.failures, record.successful, record.slow) == ("old", 1, 7, 0)
    assert (record.reopens, record.probe_successes) == (0, 0)  # (the recovery counts: also added)


def test_a_redis_hash_without_the_slow_count_reads_as_zero(redis_url: str, redis_prefix: str) -> None:
    manager = SessionManager(store=f"{redis_url}?prefix={redis_prefix}")
    clock = FakeClock()
    breaker = _slow_breaker(manager, clock=clock, monotonic=clock)
    breaker.call(_work, clock, 2.0)
    client = manager.store._client  # type: ignore[attr-defined]
    client.hdel(f"{{{redis_prefix}:breaker:slow}}", "slow")
    assert breaker.snapshot().slow == 0
    breaker.call(_work, clock, 2.0)
    assert breaker.snapshot().slow == 1
    (record,) = breaker_module.breakers_for(manager.store).records()
    assert record.slow == 1
    manager.close()
