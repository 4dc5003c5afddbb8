"""The breaker backends beside each store (memory, SQLite, Redis): each decides as the memory one
(the Python step), old tables and hashes gain their new columns, and a corrupt record is named,
served around and repaired."""

from __future__ import annotations

import logging
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from support.breakers import START, calls, fail, slow_breaker, timed_breaker, work
from support.fakes import fresh_breaker_registry  # noqa: F401  (autouse: each test with a fresh registry)
from support.stores import shared_store_url

from sessionmw import (
    Breaker,
    BreakerOpenError,
    BreakerState,
    SessionManager,
    guarded,
    session_scope,
    signals,
)
from sessionmw import _breaker as breaker_module
from sessionmw._breaker_table import (
    BreakerConfig,
    BreakerOp,
    BreakerRecord,
)
from sessionmw.stores.breakers import CorruptBreakerError, MemoryBreakers, SQLiteBreakers
from sessionmw.testing import FakeClock, capture_signals

_OPS = st.lists(
    st.tuples(st.sampled_from(list(BreakerOp)), st.sampled_from([0.0, 0.5, 4.0, 10.0, 30.0])),
    min_size=1,
    max_size=40,
)


_CONFIGS = st.builds(
    BreakerConfig,
    failure_threshold=st.integers(1, 4),
    failure_rate=st.sampled_from([None, 0.5, 1.0]),
    window=st.just(4),
    min_calls=st.integers(1, 4),
    open_for=st.sampled_from([5.0, 30.0]),
    half_open_calls=st.integers(1, 2),
    slow_call_rate=st.sampled_from([None, 0.5, 1.0]),
    open_for_multiplier=st.sampled_from([2.0, 3.0]),
    max_open_for=st.sampled_from([None, 40.0]),
    success_threshold=st.integers(1, 2),
)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_shared_backends_decide_as_the_memory_one(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Random operations (slow outcomes and released probes among them), counts riding along and
    clock jumps: SQLite's transactions and Redis's Lua script leave the same records as
    :func:`step` under a lock, and report the same changes."""
    from hypothesis import given

    from sessionmw.stores.breakers import MemoryBreakers

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'b.db'}"
    else:
        url = f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"
    manager = SessionManager(store=url)
    shared = breaker_module.breakers_for(manager.store)
    runs = [0]

    @settings(max_examples=40, deadline=None)
    @given(config=_CONFIGS, ops=_OPS, pending=st.integers(0, 2))
    def check(config: BreakerConfig, ops: list[tuple[BreakerOp, float]], pending: int) -> None:
        runs[0] += 1
        name = f"b{runs[0]}"
        memory = MemoryBreakers()
        now = float(START)
        for op, jump in ops:
            now += jump
            expected = memory.apply(name, op, now, config, pending, pending)
            got = shared.apply(name, op, now, config, pending, pending)
            assert got[1] == expected[1]
            if op is not BreakerOp.READ or pending:
                assert got[0] == expected[0]
        assert [record for record in shared.records() if record.name == name] == memory.records()

    check()
    assert runs[0] >= 20
    manager.close()


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
    breaker = slow_breaker(manager, clock=clock, monotonic=clock)
    breaker.call(work, clock, 2.0)
    client = manager.store._client  # type: ignore[attr-defined]
    client.hdel(f"{{{redis_prefix}:breaker:slow}}", "slow")
    assert breaker.snapshot().slow == 0
    breaker.call(work, clock, 2.0)
    assert breaker.snapshot().slow == 1
    (record,) = breaker_module.breakers_for(manager.store).records()
    assert record.slow == 1
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
    breaker = timed_breaker(manager)
    calls(breaker, failures=1)
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
    breaker = timed_breaker(manager)
    calls(breaker, failures=1)
    record = breaker.snapshot()
    assert (record.successful, record.failed, record.buckets) == (7, 1, f"{int(clock.now)}:1:1:0")
    manager.close()


def _corrupt_sqlite(path: Path, name: str, column: str, value: Any) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE sessionmw_breakers SET {column} = {value} WHERE name = ?", (name,))


_SQLITE_DAMAGE = {
    "state-bogus": ("state", "'bogus'"),
    "failures-abc": ("failures", "'abc'"),
    "opens-inf": ("opens", "1e400"),
    "window-binary": ("window", "X'00ff01'"),
}


_REDIS_DAMAGE: dict[str, tuple[str, Any]] = {
    "state-bogus": ("state", "bogus"),
    "failures-abc": ("failures", "abc"),
    "opens-inf": ("opens", "1e400"),
    "window-binary": ("window", b"\x00\xff\x01"),
    "wrong-type": ("", ""),
}


@pytest.fixture(name="damaged")
def _damaged(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[tuple[SessionManager, str]]:
    """A store (SQLite or Redis) holding breaker 'market-data' with one damaged value, and a
    healthy breaker 'other'; yields the manager and the damaged record's key as messages name it."""
    kind, damage = request.param
    if kind == "sqlite":
        path = tmp_path / "s.db"
        manager = SessionManager(store=f"sqlite:///{path}", clock=clock)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        manager = SessionManager(store=f"{request.getfixturevalue('redis_url')}?prefix={prefix}", clock=clock)
    for name in ("market-data", "other"):
        breaker = Breaker(name, manager=manager)
        breaker.call(lambda: None)
        breaker.snapshot()  # (written)
    if kind == "sqlite":
        column, value = _SQLITE_DAMAGE[damage]
        _corrupt_sqlite(path, "market-data", column, value)
        key = "'market-data'"
    else:
        key = f"{{{prefix}:breaker:market-data}}"
        client = manager.store._client  # type: ignore[attr-defined]
        field, raw = _REDIS_DAMAGE[damage]
        if damage == "wrong-type":
            client.delete(key)
            client.set(key, "not a hash")
        else:
            client.hset(key, field, raw)
    breaker_module._REGISTRY.clear()
    yield manager, key
    manager.close()


_DAMAGES = [
    *(pytest.param(("sqlite", damage), id=f"sqlite-{damage}") for damage in _SQLITE_DAMAGE),
    *(pytest.param(("redis", damage), id=f"redis-{damage}") for damage in _REDIS_DAMAGE),
]


@pytest.mark.parametrize("damaged", _DAMAGES, indirect=True)
def test_a_corrupt_record_is_named_once_and_the_breaker_serves_meanwhile(
    damaged: tuple[SessionManager, str], caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """Every call works through this process's own breaker; a log line names the key, in one
    line; the breaker's failures still count and open it locally; close() repairs the record."""
    manager, key = damaged
    breaker = Breaker("market-data", manager=manager, failure_threshold=2)
    with (
        caplog.at_level(logging.WARNING, logger="sessionmw._breaker"),
        capture_signals(signals.store_error) as sent,
    ):
        for _ in range(5):
            assert breaker.call(lambda: "ok") == "ok"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "sessionmw._breaker"]
    assert key in line and "unreadable" in line and "\n" not in line
    assert isinstance(sent[0].kwargs["error"], CorruptBreakerError)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    with pytest.raises(BreakerOpenError):
        breaker.call(lambda: None)
    assert breaker.close().state is BreakerState.CLOSED
    records = breaker_module.breakers_for(manager.store).scan()
    assert [(r.name, r.state) for r in records if isinstance(r, BreakerRecord)] == [
        ("market-data", BreakerState.CLOSED),
        ("other", BreakerState.CLOSED),
    ]
    clock.advance(10.0)
    assert breaker.call(lambda: "again") == "again"


@pytest.mark.parametrize(
    "damaged",
    [pytest.param(("sqlite", "state-bogus"), id="sqlite"), pytest.param(("redis", "wrong-type"), id="redis")],
    indirect=True,
)
def test_a_corrupt_record_never_blames_a_session(damaged: tuple[SessionManager, str]) -> None:
    """Under @guarded in a session: calls are served, the session's error count stays 0, and its
    health report keeps the breaker's check."""
    manager, _key = damaged
    breaker = Breaker("market-data", manager=manager)

    @guarded(breaker=breaker, retry=None)
    def fetch() -> str:
        return "prices"

    sid = manager.create_session().session_id
    for _ in range(6):
        with session_scope(manager, sid):
            assert fetch() == "prices"
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 0 and record.state.value == "active"
    checks = [check["name"] for check in manager.check_health(sid).checks]
    assert "breaker:market-data" in checks


@pytest.mark.parametrize("damaged", _DAMAGES[:1] + _DAMAGES[-1:], indirect=True)
def test_listing_skips_a_corrupt_record_and_logs_it(
    damaged: tuple[SessionManager, str], caplog: pytest.LogCaptureFixture
) -> None:
    manager, key = damaged
    with caplog.at_level(logging.WARNING, logger="sessionmw._breaker"):
        records = breaker_module.breakers_for(manager.store).records()
    assert [record.name for record in records] == ["other"]
    assert any(key in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "damaged",
    [pytest.param(("sqlite", "state-bogus"), id="sqlite"), pytest.param(("redis", "wrong-type"), id="redis")],
    indirect=True,
)
def test_a_corrupt_record_under_the_wsgi_middleware_fails_no_request(
    damaged: tuple[SessionManager, str],
) -> None:
    """As the issue saw it: an app calling @guarded(breaker=...) under the WSGI middleware answered
    500 to every request and counted each against the user's session, disconnected after 5. Now
    every request is served and the session is not blamed."""
    from werkzeug.test import Client

    from sessionmw.integrations.wsgi import SessionMiddleware

    manager, _key = damaged

    @guarded(breaker=Breaker("market-data", manager=manager), retry=None)
    def fetch_prices() -> bytes:
        return b"prices"

    def app(environ: Any, start_response: Any) -> list[bytes]:
        body = fetch_prices()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    client = Client(SessionMiddleware(app, manager=manager, secret_key="k"))
    assert [client.get("/").status_code for _ in range(8)] == [200] * 8
    (record,) = manager.store.records()
    assert (record.error_count, record.state.value) == (0, "active")
