"""The time-based sliding window (Resilience4j's TIME_BASED): the calls of the last ``window``
seconds in per-second buckets, the same on every store and exact across processes."""

from __future__ import annotations

import multiprocessing.synchronize
import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.fakes import fresh_breaker_registry  # noqa: F401  (autouse)
from support.processes import run_processes
from support.stores import shared_store_url

from sessionmw import (
    Breaker,
    BreakerOpenError,
    BreakerState,
    ConfigurationError,
    SessionManager,
    signals,
)
from sessionmw import _breaker as breaker_module
from sessionmw._breaker_table import BreakerConfig, BreakerOp
from sessionmw.stores.breakers import CorruptBreakerError, MemoryBreakers
from sessionmw.testing import FakeClock, capture_signals

START = 1_700_000_000
KINDS = ["memory", "sqlite", "redis", "cluster"]

pytestmark = pytest.mark.usefixtures("spawn_importable")


def _fail() -> None:
    raise ConnectionError("backend down")


def _timed(manager: SessionManager, **kwargs: Any) -> Breaker:
    """Opens when half the calls of the last 10 seconds failed, once 4 were made (never on a streak)."""
    settings: dict[str, Any] = {
        "failure_threshold": 100,
        "failure_rate": 0.5,
        "window_type": "time",
        "window": 10,
        "min_calls": 4,
        "state_ttl": 0,
    }
    return Breaker("timed", manager=manager, **{**settings, **kwargs})


def _calls(breaker: Breaker, successes: int = 0, failures: int = 0) -> None:
    """Successes, then failures, all at the clock's present second (the successes reach the store
    with a read, as they would with the process's next round trip)."""
    for _ in range(successes):
        breaker.call(lambda: None)
    if successes:
        breaker.snapshot()
    for _ in range(failures):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)


@pytest.fixture(name="store_url")
def _store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return shared_store_url(request.param, request, tmp_path)


@pytest.mark.parametrize("store_url", KINDS, indirect=True)
def test_the_failure_rate_is_over_the_last_seconds(store_url: str) -> None:
    """Failures older than the window are forgotten: 3 failures, 10 seconds of quiet, then the rate
    counts only the calls since; it opens when half the calls of the last 10 seconds failed."""
    clock = FakeClock(START)
    manager = SessionManager(store=store_url, clock=clock)
    breaker = _timed(manager)
    with capture_signals(signals.breaker_opened) as opened:
        _calls(breaker, failures=3)  # 3 calls: fewer than min_calls
        assert breaker.snapshot().buckets == f"{START}:3:3:0"
        clock.advance(10.0)  # the first second has left the window
        _calls(breaker, successes=3, failures=1)  # 4 calls, 1 failed
        clock.advance(5.5)
        _calls(breaker, failures=1)  # 5 calls, 2 failed
        assert breaker.snapshot().buckets == f"{START + 10}:4:1:0,{START + 15}:1:1:0"
        assert breaker.snapshot().window_rates() == (0.4, 0.0)
        assert breaker.state is BreakerState.CLOSED and not opened
        clock.advance(4.0)  # second START + 19: the bucket of START + 10 is still in
        _calls(breaker, failures=1)  # 6 calls, 3 failed
    assert len(opened) == 1 and breaker.state.value == "open"
    assert breaker.snapshot().buckets == ""  # a new window once it closes again
    with pytest.raises(BreakerOpenError):
        breaker.call(lambda: None)
    manager.close()


@pytest.mark.parametrize("store_url", KINDS, indirect=True)
def test_min_calls_counts_only_the_calls_still_in_the_window(store_url: str) -> None:
    """The same calls a second later: the bucket of START + 10 has expired, two calls are left (both
    failed), fewer than min_calls: it stays closed."""
    clock = FakeClock(START + 10)
    manager = SessionManager(store=store_url, clock=clock)
    breaker = _timed(manager)
    _calls(breaker, successes=3, failures=1)
    clock.advance(5.0)
    _calls(breaker, failures=1)
    clock.advance(5.0)  # second START + 20
    _calls(breaker, failures=1)
    record = breaker.snapshot()
    assert (record.state, record.buckets) == (BreakerState.CLOSED, f"{START + 15}:1:1:0,{START + 20}:1:1:0")
    assert record.window_rates() == (1.0, 0.0)
    manager.close()


def test_the_window_holds_at_most_one_bucket_per_second_of_it(
    manager: SessionManager, clock: FakeClock
) -> None:
    """A call every second for a minute: the record keeps the last 10 seconds' buckets."""
    breaker = _timed(manager)
    for _ in range(60):
        _calls(breaker, successes=1)
        clock.advance(1.0)
    buckets = breaker.snapshot().buckets.split(",")
    assert len(buckets) == 10 and buckets[0].startswith(f"{int(clock.now) - 10}:")


def test_the_slow_call_rate_is_over_the_last_seconds(manager: SessionManager, clock: FakeClock) -> None:
    """A slow success and a fast failure in the same 5 seconds: half the calls were slow, it opens."""
    breaker = Breaker(
        "slow",
        manager=manager,
        failure_threshold=100,
        slow_call_duration=1.0,
        slow_call_rate=0.5,
        window_type="time",
        window=5,
        min_calls=2,
        state_ttl=0,
    )
    breaker.call(clock.advance, 1.5)
    assert breaker.snapshot().buckets == f"{int(clock.now)}:1:0:1"
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert breaker.state is BreakerState.OPEN


def test_min_calls_may_exceed_a_time_window(manager: SessionManager) -> None:
    breaker = _timed(manager, window=5, min_calls=100)
    assert (breaker.config.window, breaker.config.min_calls, breaker.config.window_type) == (5, 100, "time")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"window_type": "sliding"}, "window_type must be 'count' or 'time'"),
        ({"window_type": "time", "window": 3_601}, "at most 3600 seconds"),
        ({"window_type": "time", "window": 0}, "window must be a whole number"),
        ({"window_type": "count", "window": 5, "min_calls": 6}, "min_calls (6) must not exceed window"),
    ],
)
def test_bad_window_settings_are_named(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Breaker("w", failure_rate=0.5, **kwargs)
    assert named in str(caught.value)


# -- a corrupt window -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
@pytest.mark.parametrize("damage", ["letters", "three-numbers", "empty-piece", "huge"])
def test_corrupt_buckets_are_refused_and_an_operator_repairs_them(
    kind: str, damage: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> None:
    raw = {
        "letters": f"{START}:a:0:0",
        "three-numbers": f"{START}:1:0",
        "empty-piece": f"{START}:1:0:0,,{START + 1}:1:0:0",
        "huge": f"{START}:{10**15}:0:0",
    }[damage]
    manager = SessionManager(store=shared_store_url(kind, request, tmp_path), clock=clock)
    breaker = _timed(manager)
    _calls(breaker, failures=1)
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "sessions.db") as connection:
            connection.execute("UPDATE sessionmw_breakers SET buckets = ? WHERE name = 'timed'", (raw,))
    else:
        client = manager.store._client  # type: ignore[attr-defined]
        client.hset(breaker_module.breakers_for(manager.store)._key("timed"), "buckets", raw)  # type: ignore[attr-defined]
    backend = breaker_module.breakers_for(manager.store)
    with pytest.raises(CorruptBreakerError) as caught:
        backend.apply("timed", BreakerOp.FAILURE, clock.now, breaker.config)
    assert "buckets is not a text of second:calls:failed:slow numbers" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert [found.breaker for found in backend.scan() if isinstance(found, CorruptBreakerError)] == ["timed"]
    record, _ = backend.apply("timed", BreakerOp.FORCE_CLOSE, clock.now, breaker.config)
    assert (record.state, record.buckets) == (BreakerState.CLOSED, "")
    record, _ = backend.apply("timed", BreakerOp.FAILURE, clock.now, breaker.config)
    assert record.buckets == f"{START}:1:1:0"
    manager.close()


def test_a_table_made_before_buckets_gains_the_column(tmp_path: Path, clock: FakeClock) -> None:
    """A SQLite breakers table without the buckets column (an older version's) is upgraded in place."""
    path = tmp_path / "sessions.db"
    old_schema = (
        "CREATE TABLE sessionmw_breakers ( name TEXT PRIMARY KEY, state TEXT NOT NULL,"
        " failures INTEGER NOT NULL,"
        " window TEXT NOT NULL, open_until REAL NOT NULL, probes INTEGER NOT NULL,"
        " probe_at REAL NOT NULL, opens INTEGER NOT NULL, successful INTEGER NOT NULL,"
        " failed INTEGER NOT NULL, rejected INTEGER NOT NULL, changed_at REAL NOT NULL)"
    )
    with sqlite3.connect(path) as connection:
        connection.execute(old_schema)
        connection.execute(
            "INSERT INTO sessionmw_breakers VALUES ('timed', 'closed', 0, '', 0, 0, 0, 0, 7, 0, 0, 0)"
        )
    manager = SessionManager(store=f"sqlite:///{path}", clock=clock)
    breaker = _timed(manager)
    _calls(breaker, failures=1)
    record = breaker.snapshot()
    assert (record.successful, record.failed, record.buckets) == (7, 1, f"{int(clock.now)}:1:1:0")
    manager.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_stores_step_a_time_window_exactly_as_memory_does(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """500 random operations (outcomes, slow ones, batched successes, admits, an operator's close)
    at random times, some a little in the past: the store's record after each equals the memory
    backend's (the Python step), so the Lua script mirrors it."""
    config = BreakerConfig(
        failure_threshold=6,
        failure_rate=0.5,
        slow_call_rate=0.75,
        window=5,
        min_calls=3,
        open_for=4.0,
        window_type="time",
    )
    manager = SessionManager(store=shared_store_url(kind, request, tmp_path), clock=FakeClock(START))
    store, memory = breaker_module.breakers_for(manager.store), MemoryBreakers()
    ops = [
        BreakerOp.SUCCESS,
        BreakerOp.FAILURE,
        BreakerOp.SLOW_SUCCESS,
        BreakerOp.SLOW_FAILURE,
        BreakerOp.ADMIT,
        BreakerOp.PROBE_SUCCESS,
        BreakerOp.PROBE_FAILURE,
        BreakerOp.READ,
    ]
    chance = random.Random(26)
    now = float(START)
    most_buckets, trips = 0, 0
    for _ in range(500):
        now += chance.choice([0.0, 0.3, 0.9, 2.5, 7.0])
        when = now - chance.choice([0.0, 0.0, 1.2])  # (another process's clock a little behind)
        op = BreakerOp.FORCE_CLOSE if chance.random() < 0.02 else chance.choice(ops)
        successes = chance.choice([0, 0, 1, 3])
        expected, expected_result = memory.apply("w", op, when, config, successes)
        found, result = store.apply("w", op, when, config, successes)
        assert (found, result) == (expected, expected_result)
        most_buckets = max(most_buckets, len(found.buckets.split(",")) if found.buckets else 0)
        trips += result.change is not None and result.change.new is BreakerState.OPEN
    assert most_buckets >= 3 and trips >= 5  # (the sequence tries what it means to)
    manager.close()


def test_the_config_defaults_to_a_count_window() -> None:
    assert BreakerConfig().window_type == "count"


# -- 4 processes ------------------------------------------------------------------------------------

WORKERS = 4
CALLS = 200


def _caller(
    url: str, worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any, min_calls: int
) -> None:
    """One process: CALLS calls, every other one failing, 0.01 s apart on its own clock, through a
    breaker that opens when half the calls of the last 60 seconds failed, once ``min_calls`` were made."""
    clock = FakeClock(START)
    manager = SessionManager(store=url, clock=clock)
    breaker = Breaker(
        "timed",
        failure_threshold=10**6,
        failure_rate=0.5,
        window_type="time",
        window=60,
        min_calls=min_calls,
        open_for=1_000.0,
        manager=manager,
        clock=clock,
        state_ttl=0,
    )
    outcomes: Counter[str] = Counter()
    with capture_signals() as sent:
        barrier.wait(timeout=60)
        for call in range(CALLS):
            clock.advance(0.01)
            try:
                if (call + worker) % 2:
                    breaker.call(_fail)
                breaker.call(lambda: None)
                outcomes["ok"] += 1
            except ConnectionError:
                outcomes["failed"] += 1
            except BreakerOpenError:
                outcomes["rejected"] += 1
        breaker.snapshot()  # (its last plain success rides along with this round trip)
    manager.close()
    results.put((Counter(s.name for s in sent), outcomes))


def _tripping_caller(
    url: str, worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any
) -> None:
    _caller(url, worker, barrier, results, min_calls=100)


def _counting_caller(
    url: str, worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any
) -> None:
    _caller(url, worker, barrier, results, min_calls=10**6)


def _run(target: Any, url: str) -> tuple[Counter[str], Counter[str], Any]:
    sent: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for signals_sent, counts in run_processes(target, url, WORKERS):
        sent += signals_sent
        outcomes += counts
    manager = SessionManager(store=url, clock=FakeClock(START))
    (record,) = breaker_module.breakers_for(manager.store).records()
    manager.close()
    return sent, outcomes, record


@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster"])
def test_four_processes_share_one_time_window_and_open_it_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """4 processes, half their calls failing: the time window's failure rate opens the breaker once,
    and the store counted every call the callers saw."""
    sent, outcomes, record = _run(_tripping_caller, shared_store_url(kind, request, tmp_path))
    assert sent["breaker-opened"] == 1
    assert (record.state, record.opens) == (BreakerState.OPEN, 1)
    assert (record.failed, record.successful) == (outcomes["failed"], outcomes["ok"])
    assert outcomes["failed"] + outcomes["ok"] >= 100 and outcomes["rejected"] > 0


@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster"])
def test_four_processes_count_every_call_in_the_time_window(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """4 processes, 800 calls within 2 seconds, min_calls never reached: the buckets hold exactly the
    calls and failures the callers saw, none lost between processes."""
    sent, outcomes, record = _run(_counting_caller, shared_store_url(kind, request, tmp_path))
    assert sent["breaker-opened"] == 0
    assert record.window_counts() == (WORKERS * CALLS, outcomes["failed"], 0)
    assert outcomes["failed"] == WORKERS * CALLS // 2
    assert len(record.buckets.split(",")) <= 3
