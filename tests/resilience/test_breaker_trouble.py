"""Breakers under store and clock trouble, cancelled calls, and the API's traps."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
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
    session_scope,
    signals,
)
from sessionmw import _breaker as breaker_module
from sessionmw._breaker_table import BreakerOp, BreakerRecord
from sessionmw._errors import StoreUnavailableError
from sessionmw.stores._beside import _BESIDE
from sessionmw.stores.breakers import BreakerBackend, CorruptBreakerError
from sessionmw.testing import FakeClock, capture_signals, force_breaker

T0 = 1_700_000_000.0


class Flaky:
    """A backend wrapper: counts the operations that reach it, can be 'down' (every operation
    fails as an unreachable store does), and can make each round trip take time on a clock."""

    def __init__(self, inner: BreakerBackend, slow: tuple[FakeClock, float] | None = None) -> None:
        self.inner = inner
        self.down = False
        self.slow = slow
        self.ops: list[BreakerOp] = []

    def apply(self, name: str, op: BreakerOp, *args: Any) -> Any:
        self.ops.append(op)
        if self.slow is not None:
            self.slow[0].advance(self.slow[1])
        if self.down:
            raise StoreUnavailableError("the store does not answer")
        return self.inner.apply(name, op, *args)

    def records(self) -> list[BreakerRecord]:
        return self.inner.records()

    def scan(self) -> list[Any]:
        return self.inner.scan()


def _wrap(manager: SessionManager, slow: tuple[FakeClock, float] | None = None) -> Flaky:
    flaky = Flaky(breaker_module.breakers_for(manager.store), slow)
    _BESIDE[manager.store][breaker_module._BREAKERS] = flaky  # the store's breakers: these
    return flaky


def _fail() -> None:
    raise ConnectionError("backend down")


# -- 1. a hung store: freshness stamped after the round trip, back-off after an error --------------


def test_the_view_is_fresh_from_the_end_of_its_round_trip(manager: SessionManager, clock: FakeClock) -> None:
    """A round trip slower than state_ttl still gives a view trusted for state_ttl: one read
    serves the calls after it (it used to come back stale, so every call read again)."""
    flaky = _wrap(manager, slow=(clock, 0.5))
    breaker = Breaker("slow-store", manager=manager, clock=clock, state_ttl=0.25)
    for _ in range(20):
        breaker.call(lambda: None)
    assert flaky.ops == [BreakerOp.READ]


def test_after_a_store_error_one_call_per_store_backoff_tries_the_store(
    manager: SessionManager, clock: FakeClock
) -> None:
    """Store down: calls go on in this process, and the store is tried once per store_backoff
    (not once per call, nor once per state_ttl); back up, the next try uses it again."""
    flaky = _wrap(manager)
    breaker = Breaker("backoff", manager=manager, clock=clock, state_ttl=0.25)  # store_backoff: 2 s
    breaker.call(lambda: None)
    flaky.down = True
    flaky.ops.clear()
    with capture_signals(signals.store_error) as errors:
        for _ in range(100):  # 10 seconds of calls, one every 0.1 s
            clock.advance(0.1)
            assert breaker.call(lambda: "served") == "served"
    assert 5 <= len(flaky.ops) <= 6 and len(errors) == len(flaky.ops)
    flaky.down = False
    clock.advance(2.0)
    breaker.call(lambda: None)
    flaky.ops.clear()
    for _ in range(10):
        clock.advance(0.25)
        breaker.call(lambda: None)
    assert flaky.ops == [BreakerOp.READ] * 10  # the store is used again: a read per state_ttl


def test_fail_closed_refuses_at_once_while_the_store_is_known_down(clock: FakeClock) -> None:
    """fail_closed: the first call meets the store's error; the next ones within store_backoff are
    refused with it at once, without a round trip; the function is never called."""
    manager = SessionManager(store="memory://", clock=clock, on_store_error="fail_closed")
    flaky = _wrap(manager)
    breaker = Breaker("closed-mode", manager=manager, clock=clock)  # store_backoff: 2 s
    flaky.down = True
    called: list[int] = []
    for _ in range(9):
        clock.advance(0.2)
        with pytest.raises(StoreUnavailableError):
            breaker.call(called.append, 1)
    assert called == [] and len(flaky.ops) == 1
    clock.advance(0.4)  # store_backoff has passed since the first call: the store is tried again
    with pytest.raises(StoreUnavailableError):
        breaker.call(called.append, 1)
    assert len(flaky.ops) == 2
    manager.close()


class PrivateRedis:
    """A redis-server of this test on a free loopback port, paused and stopped by its pid."""

    def __init__(self) -> None:
        from support.redis_servers import RedisServer
        from support.servers import free_port

        self.server = RedisServer(free_port())

    def __enter__(self) -> Any:
        self.server.start()
        return self.server

    def __exit__(self, *exc: object) -> None:
        process = self.server.process
        if process is not None:
            os.kill(process.pid, signal.SIGCONT)
        self.server.stop()


def test_a_frozen_redis_costs_one_wait_per_store_backoff_not_one_per_call(clock: FakeClock) -> None:
    """The store SIGSTOPped (our own redis-server): the first call waits for the store's timeout;
    after it, only the one call per store_backoff that tries the store again waits (at most the
    timeout), every other call waits for no store at all. Measured: each call's wall time, and
    which calls reached the store."""
    with PrivateRedis() as server:
        timeout = 0.5
        manager = SessionManager(
            store=f"{server.url}?timeout={timeout}&connect_timeout={timeout}", clock=clock
        )
        flaky = _wrap(manager)
        breaker = Breaker("frozen", manager=manager, clock=clock, state_ttl=0.25)  # store_backoff: 2 s
        breaker.call(lambda: None)  # the store is up: read once
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        waits: list[tuple[float, bool]] = []
        for _ in range(60):  # 6 seconds of the breaker's clocks, one call every 0.1 s
            clock.advance(0.1)
            before, trips = time.perf_counter(), len(flaky.ops)
            breaker.call(lambda: None)
            waits.append((time.perf_counter() - before, len(flaky.ops) > trips))
        tried = [wait for wait, reached in waits if reached]
        untried = [wait for wait, reached in waits if not reached]
        assert 3 <= len(tried) <= 4  # the first, then one per 2 s of store_backoff
        assert len(untried) >= 56
        assert max(untried) < timeout / 2  # (microseconds in fact: no call waited on the store)
        assert min(tried) >= timeout * 0.9  # those each waited the timeout, once
        os.kill(server.process.pid, signal.SIGCONT)
        clock.advance(2.0)
        force = Breaker("frozen", manager=SessionManager(store=server.url, clock=clock), clock=clock)
        force.force_open()  # meanwhile an operator opened it in the store
        clock.advance(2.0)
        with pytest.raises(BreakerOpenError, match="maintenance"):
            breaker.call(lambda: None)  # back: the store's state wins
        manager.close()


# -- 2. freshness on a monotonic clock --------------------------------------------------------------


def test_a_wall_clock_stepped_back_does_not_freeze_the_view(manager: SessionManager) -> None:
    """A process holds an OPEN view; an operator closes the breaker elsewhere; this process's wall
    clock is stepped back an hour: within state_ttl (monotonic) it reads the store and lets calls
    through; meanwhile no refusal promises more than open_for."""
    wall, mono = FakeClock(T0), FakeClock(0.0)
    here = Breaker("stepped", manager=manager, clock=wall, monotonic=mono, open_for=30.0)
    force_breaker(here, "open")
    wall.now -= 3600.0  # NTP steps the wall clock back
    with pytest.raises(BreakerOpenError) as refused:
        here.call(lambda: None)
    assert refused.value.retry_after == 30.0  # not 3630
    Breaker("stepped", manager=manager, clock=wall).close()  # the operator, elsewhere
    mono.advance(0.25)
    assert here.call(lambda: "through") == "through"


def test_the_managers_clock_drives_the_breaker(manager: SessionManager, clock: FakeClock) -> None:
    """Breaker(manager=m) reads m's clock (a test's FakeClock), not the real time."""
    breaker = Breaker("fake-time", manager=manager, open_for=30.0)
    assert breaker.clock is clock
    force_breaker(breaker, "open")
    clock.advance(30.0)
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state is BreakerState.CLOSED


# -- 3. fail-open keeps the last known state -------------------------------------------------------


def test_fail_open_keeps_an_open_breaker_open_then_probes_locally(
    manager: SessionManager, clock: FakeClock
) -> None:
    """OPEN in the store, then the store down: this process keeps refusing until open_for ends
    (the dead backend is not called), then admits one probe of its own."""
    flaky = _wrap(manager)
    breaker = Breaker("remembered", manager=manager, clock=clock, failure_threshold=3, open_for=30.0)
    force_breaker(breaker, "open")
    flaky.down = True
    called: list[int] = []
    for _ in range(29):
        clock.advance(1.0)
        with pytest.raises(BreakerOpenError):
            breaker.call(called.append, 1)
    assert called == []
    clock.advance(1.0)
    with pytest.raises(ConnectionError):
        breaker.call(_fail)  # the local probe
    with pytest.raises(BreakerOpenError):
        breaker.call(called.append, 1)  # it failed: open again, locally
    assert called == []


def test_when_the_store_returns_its_state_wins(manager: SessionManager, clock: FakeClock) -> None:
    """Locally opened during an outage; the store, back, says closed: the store's state is used."""
    flaky = _wrap(manager)
    breaker = Breaker("rejoined", manager=manager, clock=clock, failure_threshold=2, open_for=30.0)
    breaker.call(lambda: None)
    flaky.down = True
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    with pytest.raises(BreakerOpenError):
        breaker.call(lambda: None)
    flaky.down = False
    clock.advance(2.0)  # store_backoff
    assert breaker.call(lambda: "back") == "back"
    assert breaker.snapshot().state is BreakerState.CLOSED


# -- 4. cancellation and outer timeouts ------------------------------------------------------------


async def _cancel_while_running(breaker: Breaker) -> None:
    """A call through the breaker that hangs, cancelled once it runs (as an outer wait_for does)."""
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(breaker.call_async(hang))
    while not started.is_set() and not task.done():  # (done: refused)
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_cancelled_probe_gives_its_slot_back_at_once(manager: SessionManager, clock: FakeClock) -> None:
    """Half-open, the probe is cancelled: the next caller is the probe, without waiting open_for."""
    breaker = Breaker("cancelled-probe", manager=manager, clock=clock, open_for=30.0)
    force_breaker(breaker, "open")
    clock.advance(30.0)

    async def scenario() -> str:
        await _cancel_while_running(breaker)

        async def ok() -> str:
            return "probe"

        return await breaker.call_async(ok)

    assert asyncio.run(scenario()) == "probe"
    assert breaker.state is BreakerState.CLOSED


def test_a_cancelled_guarded_probe_gives_its_slot_back(manager: SessionManager, clock: FakeClock) -> None:
    """The same through @guarded on an async def (its first attempt and its retries)."""
    breaker = Breaker("guarded-probe", manager=manager, clock=clock, open_for=30.0)
    force_breaker(breaker, "open")
    clock.advance(30.0)
    started = asyncio.Event()
    hanging = [True]

    @guarded(breaker=breaker, retry=None)
    async def fetch() -> str:
        if hanging[0]:
            started.set()
            await asyncio.Event().wait()
        return "prices"

    async def scenario() -> str:
        task = asyncio.ensure_future(fetch())
        while not started.is_set() and not task.done():
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hanging[0] = False
        result: str = await fetch()
        return result

    assert asyncio.run(scenario()) == "prices"


@pytest.mark.parametrize(("count_cancelled", "state"), [(False, "closed"), (True, "open")])
def test_cancellation_counts_as_a_failure_only_when_asked(
    manager: SessionManager, count_cancelled: bool, state: str
) -> None:
    """Five calls in a row ended by an outer timeout: by default nothing is counted; with
    count_cancelled=True they are five failures and open a breaker whose threshold is 5."""
    breaker = Breaker("timeouts", manager=manager, failure_threshold=5, count_cancelled=count_cancelled)

    async def scenario() -> None:
        for _ in range(5):
            await _cancel_while_running(breaker)

    asyncio.run(scenario())
    assert breaker.state.value == state


def test_async_with_works_like_with(manager: SessionManager, clock: FakeClock) -> None:
    """`async with breaker:` records failures, refuses while open and records a probe's success."""
    breaker = Breaker("async-with", manager=manager, clock=clock, failure_threshold=2, open_for=30.0)

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                async with breaker:
                    raise ConnectionError("down")
        with pytest.raises(BreakerOpenError):
            async with breaker:
                pass
        clock.advance(30.0)
        async with breaker:
            pass

    asyncio.run(scenario())
    assert breaker.state is BreakerState.CLOSED


# -- 5. the API's quiet traps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        pytest.param({"manager": "x"}, "manager must be a SessionManager", id="manager-string"),
        pytest.param({"store": "memory://"}, "store must be a session store", id="store-url"),
        pytest.param({"store": object()}, "store must be a session store", id="store-object"),
        pytest.param({"open_for": 1e308}, "open_for", id="open-for-absurd"),
        pytest.param({"state_ttl": float("nan")}, "state_ttl", id="state-ttl-nan"),
        pytest.param({"store_backoff": 0}, "store_backoff", id="store-backoff-zero"),
        pytest.param({"store_backoff": 1e9}, "store_backoff", id="store-backoff-absurd"),
        pytest.param({"clock": 5}, "clock must be callable", id="clock"),
    ],
)
def test_bad_arguments_are_refused_when_the_breaker_is_made(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Breaker("bad", **kwargs)


def test_manager_and_store_together_are_refused(manager: SessionManager) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        Breaker("both", manager=manager, store=manager.store)


# -- 6. a corrupt or foreign record ----------------------------------------------------------------


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
            breaker.call(_fail)
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
