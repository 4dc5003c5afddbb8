"""Circuit breakers: the table row by row, a reference model, @guarded composition, session health,
round trips counted on a shared store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from signal import SIGCONT, SIGSTOP
from typing import Any

import pytest
from blinker import NamedSignal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from support.breakers import START, calls, fail, slow_breaker, timed_breaker, work
from support.fakes import fresh_breaker_registry  # noqa: F401  (autouse: each test with a fresh registry)
from support.stores import shared_store_url

from sessionmw import (
    Breaker,
    BreakerOpenError,
    BreakerState,
    ConfigurationError,
    RetryStrategy,
    SessionManager,
    UserFacingError,
    guarded,
    session_scope,
    signals,
)
from sessionmw import _breaker as breaker_module
from sessionmw._breaker_table import (
    BreakerEvent,
    BreakerOp,
    BreakerRecord,
)
from sessionmw._errors import StoreUnavailableError
from sessionmw.stores import _beside
from sessionmw.stores._beside import _BESIDE
from sessionmw.stores.breakers import BreakerBackend
from sessionmw.testing import FakeClock, capture_signals, force_breaker

S, E = BreakerState, BreakerEvent
T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"open_for": -1}, "open_for"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"half_open_calls": 0}, "half_open_calls"),
        ({"window": 5, "min_calls": 6}, "min_calls"),
        ({"state_ttl": -1}, "state_ttl"),
        # recovery
        ({"max_open_for": 10.0, "open_for": 30.0}, "max_open_for"),
        ({"max_open_for": 1e9}, "max_open_for"),
        ({"max_open_for": 60.0, "open_for_multiplier": 0.5}, "open_for_multiplier"),
        ({"success_threshold": 0}, "success_threshold"),
        # slow calls
        ({"slow_call_rate": 0.5}, "needs slow_call_duration"),
        ({"slow_call_duration": 0}, "slow_call_duration"),
        ({"slow_call_duration": 1e9}, "slow_call_duration"),
        ({"slow_call_duration": 1.0, "slow_call_rate": 1.5}, "slow_call_rate"),
        # the window
        ({"failure_rate": 0.5, "window_type": "sliding"}, "window_type must be 'count' or 'time'"),
        ({"failure_rate": 0.5, "window_type": "time", "window": 3_601}, "at most 3600 seconds"),
        ({"failure_rate": 0.5, "window_type": "time", "window": 0}, "window must be a whole number"),
        (
            {"failure_rate": 0.5, "window_type": "count", "window": 5, "min_calls": 6},
            "min_calls (6) must not exceed window",
        ),
        # arguments
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
def test_bad_settings_are_named(kwargs: dict[str, Any], named: str) -> None:
    """A setting or argument the breaker cannot use is refused when it is made, with its name."""
    with pytest.raises(ConfigurationError) as caught:
        Breaker("bad", **kwargs)
    assert named in str(caught.value)


def test_a_bad_name_is_refused() -> None:
    with pytest.raises(ValueError, match="breaker name"):
        Breaker("no spaces please")


# -- a reference model, with clock jumps ------------------------------------------------------------


@dataclasses.dataclass
class Model:
    """What one breaker should do, written without the table."""

    threshold: int
    open_for: float
    state: str = "closed"
    failures: int = 0
    open_until: float = 0.0
    probe_at: float | None = None
    opens: int = 0

    def admit(self, now: float) -> str:
        if self.state in ("closed", "disabled"):
            return "call"
        if self.state == "open" and now >= self.open_until:
            self.state, self.probe_at = "half_open", now
            return "probe"
        if self.state == "half_open" and self.probe_at is not None and now >= self.probe_at + self.open_for:
            self.probe_at = now
            return "probe"
        return "rejected"

    def outcome(self, ticket: str, ok: bool, now: float) -> None:
        if ticket == "probe" and self.state == "half_open":
            if ok:
                self.state, self.failures = "closed", 0
            else:
                self._open(now)
        elif self.state == "closed":
            self.failures = 0 if ok else self.failures + 1
            if self.failures >= self.threshold:
                self._open(now)

    def _open(self, now: float) -> None:
        self.state, self.failures, self.open_until = "open", 0, now + self.open_for
        self.opens += 1


class BreakerMachine(RuleBasedStateMachine):
    """Random calls, outcomes, clock jumps and operator commands against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.manager = SessionManager(store="memory://", clock=self.clock)
        self.breaker = Breaker(
            "model", failure_threshold=3, open_for=10.0, manager=self.manager, clock=self.clock
        )
        self.model = Model(3, 10.0)

    @rule(ok=st.booleans())
    def call(self, ok: bool) -> None:
        expected = self.model.admit(self.clock.now)
        try:
            self.breaker.call(self._outcome, ok)
        except BreakerOpenError:
            assert expected == "rejected"
            return
        except ConnectionError:
            pass
        assert expected != "rejected"
        self.model.outcome(expected, ok, self.clock.now)

    @staticmethod
    def _outcome(ok: bool) -> None:
        if not ok:
            raise ConnectionError("down")

    @rule(seconds=st.sampled_from([0.1, 1.0, 5.0, 9.99, 10.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(command=st.sampled_from(["force_open", "close", "disable"]))
    def operator(self, command: str) -> None:
        getattr(self.breaker, command)()
        if command == "force_open":
            if self.model.state != "forced_open":
                self.model.opens += 1
            self.model.state = "forced_open"
        else:
            self.model.state = "closed" if command == "close" else "disabled"
        self.model.failures = 0

    @invariant()
    def agrees(self) -> None:
        record = self.breaker.snapshot()
        assert record.state.value == self.model.state
        assert record.opens == self.model.opens
        if record.state is S.CLOSED:
            assert record.failures == self.model.failures

    def teardown(self) -> None:
        self.manager.close()


BreakerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_breaker_against_the_model = BreakerMachine.TestCase


# -- @guarded, retries, sessions ---------------------------------------------------------------------


@pytest.fixture(name="market")
def _market(manager: SessionManager, clock: FakeClock) -> Breaker:
    return Breaker("market-data", failure_threshold=3, open_for=30.0, manager=manager, clock=clock)


def _no_wait() -> RetryStrategy:
    return RetryStrategy(max_attempts=5, sleep=lambda seconds: None)


def test_an_open_breaker_refuses_at_once_with_the_service_and_the_countdown(
    market: Breaker, clock: FakeClock
) -> None:
    """The message names the service and the seconds left; __cause__ is the last failure; 503 data."""
    calls: list[int] = []

    @guarded(breaker=market, retry=_no_wait())
    def fetch() -> None:
        calls.append(1)
        raise ConnectionError("scanner down")

    with pytest.raises(BreakerOpenError) as first:
        fetch()
    assert len(calls) == 3  # the retry stopped when the breaker opened, not after 5 attempts
    clock.advance(5)
    with pytest.raises(BreakerOpenError) as second:
        fetch()
    assert len(calls) == 3  # refused without calling
    assert str(second.value) == "The market data service is paused; we will try again in 25 seconds"
    assert second.value.transient and second.value.retry_after == 25.0
    assert isinstance(second.value.__cause__, ConnectionError)
    assert isinstance(first.value, UserFacingError) and first.value.status is None


def test_no_wait_is_spent_once_a_failure_opened_the_breaker(market: Breaker) -> None:
    """The failure that opens the breaker ends the retries at once: no sleep before an attempt that
    would be refused, and the error says the service is paused (its cause: that failure)."""
    waits: list[float] = []

    @guarded(breaker=market, retry=RetryStrategy(max_attempts=5, sleep=waits.append))
    def fetch() -> None:
        raise ConnectionError("down")

    with capture_signals(signals.retry_attempt) as sent, pytest.raises(BreakerOpenError) as refused:
        fetch()
    assert waits == [1.0, 2.0] and len(sent) == 2  # after failures 1 and 2; the 3rd opened it
    assert isinstance(refused.value.__cause__, ConnectionError)


def test_retry_strategy_stops_on_an_open_breaker(market: Breaker) -> None:
    """RetryStrategy makes no further attempt once a breaker refuses (reason "breaker")."""
    force_breaker(market, "open")
    attempts: list[int] = []
    strategy = _no_wait()

    def through() -> None:
        attempts.append(1)
        market.call(lambda: None)

    with capture_signals(signals.retry_exhausted) as sent:
        success, _result, error = strategy.execute(through)
    assert not success and isinstance(error, BreakerOpenError)
    assert len(attempts) == 1
    assert [s.kwargs["details"].reason for s in sent] == ["breaker"]


def test_sessions_are_not_blamed_and_recover_by_themselves(
    manager: SessionManager, market: Breaker, clock: FakeClock
) -> None:
    """Failures the breaker counts, and its refusals, never disconnect a session; its health says
    degraded while the breaker pauses calls and healthy again once it closes."""
    up = False

    @guarded(breaker=market, retry=None)
    def fetch() -> str:
        if not up:
            raise ConnectionError("down")
        return "prices"

    sessions = [manager.create_session().session_id for _ in range(3)]
    for _ in range(4):
        for sid in sessions:
            with session_scope(manager, sid), pytest.raises(UserFacingError):
                fetch()
    for sid in sessions:
        record = manager.get_session(sid)
        assert record is not None and record.error_count == 0 and record.state.value == "active"
        health = manager.check_health(sid)
        assert health.status == "degraded" and not health.healthy
        assert health["dependencies"] == [
            {
                "name": "market-data",
                "service": "market data",
                "state": "open",
                "status": "fail",
                "retry_in": 30,
                "message": "The market data service is paused; we will try again in 30 seconds",
                "failure_rate": None,
                "slow_call_rate": None,
            }
        ]
        assert {"name": "breaker:market-data", "status": "fail"}.items() <= health.checks[-1].items()
    up = True
    clock.advance(30)
    with session_scope(manager, sessions[0]):
        assert fetch() == "prices"
    for sid in sessions:
        assert manager.check_health(sid).status == "healthy"


def test_other_errors_still_count_against_the_session(manager: SessionManager, market: Breaker) -> None:
    """An exception the breaker does not count (a bug, bad input) is the session's as before."""

    @guarded(breaker=market, retry=None)
    def parse() -> None:
        raise ValueError("bad symbol")

    sid = manager.create_session().session_id
    with session_scope(manager, sid), pytest.raises(UserFacingError):
        parse()
    record = manager.get_session(sid)
    assert record is not None and record.error_count == 1
    assert market.snapshot().failures == 0


def test_async_functions_compose_the_same_way(market: Breaker) -> None:
    """@guarded(breaker=...) on an async def: opens, refuses, no further retry."""
    calls: list[int] = []

    async def no_sleep(seconds: float) -> None:
        return None

    @guarded(breaker=market, retry=RetryStrategy(max_attempts=5, async_sleep=no_sleep))
    async def fetch() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(BreakerOpenError):
        asyncio.run(fetch())
    assert len(calls) == 3 and market.state is S.OPEN
    with pytest.raises(BreakerOpenError):
        asyncio.run(fetch())
    assert len(calls) == 3


def test_async_retries_through_the_breaker_return_the_result(market: Breaker) -> None:
    """An async def that fails once, then succeeds: the retry goes through the breaker and its
    result is returned; the breaker counted the failure, then the success reset it."""
    outcomes = iter([ConnectionError("blip"), None])

    async def no_sleep(seconds: float) -> None:
        return None

    @guarded(breaker=market, retry=RetryStrategy(max_attempts=3, async_sleep=no_sleep))
    async def fetch() -> str:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return "prices"

    assert asyncio.run(fetch()) == "prices"
    snapshot = market.snapshot()
    assert market.state is S.CLOSED and snapshot.failures == 0 and snapshot.failed == 1


def test_with_block_and_call(market: Breaker, clock: FakeClock) -> None:
    """`with breaker:` and breaker.call record outcomes; a probe after open_for closes it."""
    for _ in range(3):
        with pytest.raises(ConnectionError), market:
            raise ConnectionError("down")
    with pytest.raises(BreakerOpenError), market:
        pass
    clock.advance(30)
    with capture_signals(signals.breaker_half_opened, signals.breaker_closed) as sent:
        assert market.call(lambda x: x * 2, 21) == 42
    assert [s.name for s in sent] == ["breaker-half-opened", "breaker-closed"]
    assert market.state is S.CLOSED


def test_half_open_admits_only_half_open_calls(market: Breaker, clock: FakeClock) -> None:
    """While the probe is out, other calls are refused; a failed probe re-opens the breaker."""
    force_breaker(market, "open")
    clock.advance(30)
    ticket = market._admit()
    with pytest.raises(BreakerOpenError):
        market._admit()
    with capture_signals(signals.breaker_opened) as sent:
        market._failed(ticket, ConnectionError("still down"))
    assert len(sent) == 1 and market.state is S.OPEN


def test_forced_and_disabled(market: Breaker) -> None:
    """An operator's FORCED_OPEN refuses (no countdown); DISABLED lets everything through."""
    force_breaker(market, "forced_open")
    with pytest.raises(BreakerOpenError, match="maintenance"):
        market.call(lambda: None)
    force_breaker(market, "disabled")
    for _ in range(10):
        with pytest.raises(ConnectionError):
            market.call(fail)
    assert market.state is S.DISABLED


# -- round trips, counted -------------------------------------------------------------------------


class CountingBackend:
    """Counts the operations that reach the real backend (each is one store round trip)."""

    def __init__(self, inner: BreakerBackend) -> None:
        self.inner = inner
        self.ops: list[BreakerOp] = []

    def apply(self, name: str, op: BreakerOp, *args: Any) -> Any:
        self.ops.append(op)
        return self.inner.apply(name, op, *args)

    def records(self) -> list[BreakerRecord]:
        return self.inner.records()

    def scan(self) -> list[Any]:
        return self.inner.scan()


@pytest.fixture(name="counted")
def _counted(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Breaker, CountingBackend]]:
    manager = SessionManager(store=f"sqlite:///{tmp_path / 's.db'}", clock=clock)
    counting = CountingBackend(breaker_module.breakers_for(manager.store))
    _beside._BESIDE[manager.store][breaker_module._BREAKERS] = counting
    yield Breaker("counted", failure_threshold=3, open_for=30.0, manager=manager, clock=clock), counting
    manager.close()


def test_a_closed_breaker_reads_the_store_once_per_state_ttl(
    counted: tuple[Breaker, CountingBackend], clock: FakeClock
) -> None:
    breaker, counting = counted
    for _ in range(100):
        breaker.call(lambda: None)
    assert counting.ops == [BreakerOp.READ]
    clock.advance(breaker.state_ttl)
    breaker.call(lambda: None)
    assert counting.ops == [BreakerOp.READ, BreakerOp.READ]
    assert breaker.snapshot().successful == 101  # the local successes rode along with the reads


def test_one_round_trip_per_recorded_outcome_and_none_to_reject(
    counted: tuple[Breaker, CountingBackend], clock: FakeClock
) -> None:
    breaker, counting = counted
    breaker.call(lambda: None)
    counting.ops.clear()
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    assert counting.ops == [BreakerOp.FAILURE] * 3
    counting.ops.clear()
    for _ in range(50):
        clock.advance(0.5)
        with pytest.raises(BreakerOpenError):
            breaker.call(lambda: None)
    assert counting.ops.count(BreakerOp.ADMIT) == 0
    assert all(op is BreakerOp.READ for op in counting.ops)  # one read per state_ttl at most
    counting.ops.clear()
    clock.advance(30)  # open_for is over: the probe is admitted in one round trip, recorded in one
    breaker.call(lambda: None)
    assert counting.ops == [BreakerOp.ADMIT, BreakerOp.PROBE_SUCCESS]


def test_fake_clock_drives_open_for(market: Breaker, clock: FakeClock) -> None:
    force_breaker(market, "open")
    clock.advance(29.9)
    with pytest.raises(BreakerOpenError):
        market.call(lambda: None)
    clock.advance(0.1)
    assert market.call(lambda: "ok") == "ok"
    assert market.state is S.CLOSED


def test_unused_helpers_stay_typed(market: Breaker) -> None:
    """decorate keeps the function's name; counts() says what the breaker counts."""

    def fetch() -> int:
        return 1

    wrapped: Callable[[], int] = market.decorate(fetch)
    assert wrapped() == 1 and wrapped.__name__ == "fetch"
    assert market.counts(ConnectionError()) and not market.counts(ValueError())


# -- the three backends decide alike ---------------------------------------------------------------


def test_force_breaker_puts_each_state_in_the_store(market: Breaker, clock: FakeClock) -> None:
    """Every state; HALF_OPEN means a probe is out, so other calls are refused."""
    for state in BreakerState:
        assert force_breaker(market, state).state is state
        assert market.snapshot().state is state
    force_breaker(market, "half_open")
    with pytest.raises(BreakerOpenError):
        market.call(lambda: None)


def test_translate_false_raises_the_refusal_itself(market: Breaker) -> None:
    """translate=False re-raises a call's own exception; a refused call has none, so the
    BreakerOpenError itself is raised (not the earlier failure that is its cause)."""

    @guarded(breaker=market, retry=None, translate=False)
    def fetch() -> None:
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            fetch()
    with pytest.raises(BreakerOpenError):
        fetch()  # the third failure opens it: the refusal of further attempts
    with pytest.raises(BreakerOpenError):
        fetch()


def test_another_process_sees_an_opening_within_state_ttl(tmp_path: Path, clock: FakeClock) -> None:
    """Two breakers of one name on one SQLite file (two processes): the one whose closed view is
    fresh lets calls through for at most state_ttl after the other opened it, then refuses."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    first, second = SessionManager(store=url, clock=clock), SessionManager(store=url, clock=clock)
    here = Breaker("shared", failure_threshold=2, manager=first, clock=clock, state_ttl=0.25)
    there = Breaker("shared", failure_threshold=2, manager=second, clock=clock, state_ttl=0.25)
    assert here.call(lambda: "ok") == "ok"  # here's view: closed, fresh for 0.25 s
    for _ in range(2):
        with pytest.raises(ConnectionError):
            there.call(fail)
    assert there.state is S.OPEN
    clock.advance(0.2)
    assert here.call(lambda: "stale") == "stale"  # within state_ttl: the documented staleness
    clock.advance(0.05)
    with pytest.raises(BreakerOpenError):
        here.call(lambda: "fresh")
    assert here.snapshot().opens == 1
    first.close()
    second.close()


# == under store and clock trouble =================================================================
# Breakers under store and clock trouble, cancelled calls, and the API's traps.

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
            os.kill(process.pid, SIGCONT)
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
        os.kill(server.process.pid, SIGSTOP)
        waits: list[tuple[float, bool]] = []
        for _ in range(60):  # 6 seconds of the breaker's clocks, one call every 0.1 s
            clock.advance(0.1)
            before, trips = time.perf_counter(), len(flaky.ops)
            breaker.call(lambda: None)
            waits.append((time.perf_counter() - before, len(flaky.ops) > trips))
        tried = [wait for wait, reached in waits if reached]
        untried = [wait for wait, reached in waits if not reached]
        assert 3 <= len(tried) <= 4  # the first, then one per 2 s of store_backoff
        attempts = [number for number, (_wait, reached) in enumerate(waits) if reached]
        assert all(later - earlier >= 20 for earlier, later in itertools.pairwise(attempts))  # 2 s apart
        assert len(untried) >= 56
        assert max(untried) < timeout / 2  # (microseconds in fact: no call waited on the store)
        assert min(tried) >= timeout * 0.9  # those each waited the timeout, once:
        assert max(tried) < timeout * 2  # (not twice: no retry inside the client; 0.5 s each in fact)
        os.kill(server.process.pid, SIGCONT)
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
        breaker.call(fail)  # the local probe
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
            breaker.call(fail)
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


def test_manager_and_store_together_are_refused(manager: SessionManager) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        Breaker("both", manager=manager, store=manager.store)


# -- 6. a corrupt or foreign record ----------------------------------------------------------------


# == slow calls ====================================================================================
# Slow calls: a duration threshold and a slow-call rate (Resilience4j's slowCallDurationThreshold
# and slowCallRateThreshold), sync and async, on every path through a breaker.


def test_half_of_the_last_calls_slow_opens_it(manager: SessionManager, clock: FakeClock) -> None:
    """Two fast calls, then two slow ones: the fourth call makes half of the last four slow."""
    breaker = slow_breaker(manager)
    with capture_signals(signals.breaker_opened) as opened:
        for seconds in (0.1, 0.5, 1.0):
            breaker.call(work, clock, seconds)
        assert breaker.state is BreakerState.CLOSED and not opened
        assert breaker.call(work, clock, 2.5) == "done"  # slow and successful: it still returns
    assert len(opened) == 1 and breaker.state.value == "open"
    record = breaker.snapshot()
    assert (record.slow, record.successful, record.failed) == (2, 4, 0)
    with pytest.raises(BreakerOpenError):
        breaker.call(work, clock, 0.0)


def test_slow_failures_count_as_slow_and_as_failed(manager: SessionManager, clock: FakeClock) -> None:
    breaker = slow_breaker(manager)

    def slow_failure() -> None:
        clock.advance(3.0)
        raise ConnectionError("timed out the slow way")

    for _ in range(2):
        breaker.call(work, clock, 0.0)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(slow_failure)
    record = breaker.snapshot()
    assert (record.state, record.slow, record.failed) == (BreakerState.OPEN, 2, 2)


def test_async_calls_guarded_functions_and_with_blocks_are_timed(
    manager: SessionManager, clock: FakeClock
) -> None:
    """call_async, @guarded (sync and async), `with` and `async with`: each slow call counts."""
    breaker = slow_breaker(manager, window=8, min_calls=8)

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
        breaker.call(work, clock, 0.0)
    assert breaker.snapshot().state is BreakerState.CLOSED  # 7 calls: under min_calls
    breaker.call(work, clock, 1.0)  # 6 slow of the last 8 (the rate is judged on a slow call)
    assert breaker.state is BreakerState.OPEN


def test_a_slow_probe_counts_as_a_failed_probe(manager: SessionManager, clock: FakeClock) -> None:
    breaker = slow_breaker(manager)
    force_breaker(breaker, "open")
    clock.advance(30.0)
    assert breaker.call(work, clock, 5.0) == "done"
    assert breaker.state.value == "open"
    clock.advance(30.0)
    breaker.call(work, clock, 0.1)
    assert breaker.state is BreakerState.CLOSED


def test_without_slow_call_duration_durations_are_not_read(manager: SessionManager, clock: FakeClock) -> None:
    breaker = Breaker("plain", manager=manager, window=4, min_calls=4, failure_rate=0.5)
    for _ in range(10):
        breaker.call(work, clock, 100.0)
    assert breaker.snapshot().slow == 0 and breaker.state is BreakerState.CLOSED


# == the time-based window =========================================================================
# The time-based sliding window (Resilience4j's TIME_BASED): the calls of the last ``window``
# seconds in per-second buckets, the same on every store and exact across processes.

KINDS = ["memory", "sqlite", "redis", "cluster"]


@pytest.fixture(name="store_url")
def _store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return shared_store_url(request.param, request, tmp_path)


@pytest.mark.parametrize("store_url", KINDS, indirect=True)
def test_the_failure_rate_is_over_the_last_seconds(store_url: str) -> None:
    """Failures older than the window are forgotten: 3 failures, 10 seconds of quiet, then the rate
    counts only the calls since; it opens when half the calls of the last 10 seconds failed."""
    clock = FakeClock(START)
    manager = SessionManager(store=store_url, clock=clock)
    breaker = timed_breaker(manager)
    with capture_signals(signals.breaker_opened) as opened:
        calls(breaker, failures=3)  # 3 calls: fewer than min_calls
        assert breaker.snapshot().buckets == f"{START}:3:3:0"
        clock.advance(10.0)  # the first second has left the window
        calls(breaker, successes=3, failures=1)  # 4 calls, 1 failed
        clock.advance(5.5)
        calls(breaker, failures=1)  # 5 calls, 2 failed
        assert breaker.snapshot().buckets == f"{START + 10}:4:1:0,{START + 15}:1:1:0"
        assert breaker.snapshot().window_rates() == (0.4, 0.0)
        assert breaker.state is BreakerState.CLOSED and not opened
        clock.advance(4.0)  # second START + 19: the bucket of START + 10 is still in
        calls(breaker, failures=1)  # 6 calls, 3 failed
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
    breaker = timed_breaker(manager)
    calls(breaker, successes=3, failures=1)
    clock.advance(5.0)
    calls(breaker, failures=1)
    clock.advance(5.0)  # second START + 20
    calls(breaker, failures=1)
    record = breaker.snapshot()
    assert (record.state, record.buckets) == (BreakerState.CLOSED, f"{START + 15}:1:1:0,{START + 20}:1:1:0")
    assert record.window_rates() == (1.0, 0.0)
    manager.close()


def test_the_window_holds_at_most_one_bucket_per_second_of_it(
    manager: SessionManager, clock: FakeClock
) -> None:
    """A call every second for a minute: the record keeps the last 10 seconds' buckets."""
    breaker = timed_breaker(manager)
    for _ in range(60):
        calls(breaker, successes=1)
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
        breaker.call(fail)
    assert breaker.state is BreakerState.OPEN


def test_min_calls_may_exceed_a_time_window(manager: SessionManager) -> None:
    breaker = timed_breaker(manager, window=5, min_calls=100)
    assert (breaker.config.window, breaker.config.min_calls, breaker.config.window_type) == (5, 100, "time")


# -- a corrupt window -------------------------------------------------------------------------------


# == recovery ======================================================================================
# Recovery policy: probe successes needed to close (pybreaker's success_threshold) and an open
# period that grows after each failed probe (Resilience4j's exponential wait in the open state),
# both kept in the store and so shared by every process.


def _refused_for(breaker: Breaker) -> float:
    with pytest.raises(BreakerOpenError) as refused:
        breaker.call(lambda: None)
    assert refused.value.retry_after is not None
    return refused.value.retry_after


def test_the_open_period_doubles_after_each_failed_probe_up_to_its_cap(
    manager: SessionManager, clock: FakeClock
) -> None:
    """30 s, then 60, 120, capped at 200; a closed breaker starts again from 30 s."""
    breaker = Breaker("growing", manager=manager, failure_threshold=1, open_for=30.0, max_open_for=200.0)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    periods = [_refused_for(breaker)]
    for _ in range(4):
        clock.advance(periods[-1])
        with pytest.raises(ConnectionError):
            breaker.call(fail)  # the probe fails
        periods.append(_refused_for(breaker))
    assert periods == [30.0, 60.0, 120.0, 200.0, 200.0]
    assert breaker.snapshot().reopens == 4
    clock.advance(200.0)
    breaker.call(lambda: None)  # the probe succeeds: closed
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    assert _refused_for(breaker) == 30.0 and breaker.snapshot().reopens == 0


def test_without_max_open_for_the_period_stays(manager: SessionManager, clock: FakeClock) -> None:
    breaker = Breaker("steady", manager=manager, failure_threshold=1, open_for=30.0)
    force_breaker(breaker, "open")
    for _ in range(3):
        clock.advance(30.0)
        with pytest.raises(ConnectionError):
            breaker.call(fail)
        assert _refused_for(breaker) == 30.0


def test_success_threshold_needs_that_many_probe_successes(manager: SessionManager, clock: FakeClock) -> None:
    """Three probe successes close it (one probe at a time: each success frees the slot); a failed
    probe on the way opens it again and the count starts over."""
    breaker = Breaker("careful", manager=manager, failure_threshold=1, open_for=30.0, success_threshold=3)
    force_breaker(breaker, "open")
    clock.advance(30.0)
    for _ in range(2):
        breaker.call(lambda: None)
        assert breaker.snapshot().state is BreakerState.HALF_OPEN
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    assert breaker.snapshot().state is BreakerState.OPEN
    clock.advance(30.0)
    for _ in range(3):
        breaker.call(lambda: None)
    assert breaker.snapshot().state is BreakerState.CLOSED


def test_the_grown_period_is_shared(tmp_path: Path, clock: FakeClock) -> None:
    """Two processes on one SQLite file: a probe failed in one lengthens the other's refusals."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    first, second = SessionManager(store=url, clock=clock), SessionManager(store=url, clock=clock)
    here = Breaker("shared", manager=first, failure_threshold=1, open_for=10.0, max_open_for=100.0)
    there = Breaker("shared", manager=second, failure_threshold=1, open_for=10.0, max_open_for=100.0)
    with pytest.raises(ConnectionError):
        here.call(fail)
    clock.advance(10.0)
    with pytest.raises(ConnectionError):
        there.call(fail)  # the probe, made by the other process, fails
    clock.advance(1.0)
    assert _refused_for(here) == 19.0  # 20 s from the failed probe, 1 s ago
    first.close()
    second.close()


# == per-call outcome signals ======================================================================
# A breaker's per-call outcome signals (issue 26): success, failure, slow, ignored and rejected,
# each sent once per call with its payload on every path through a breaker, and nothing sent (not even
# a call to ``send``) while nobody subscribes.

OUTCOMES = (
    signals.breaker_call_succeeded,
    signals.breaker_call_failed,
    signals.breaker_call_slow,
    signals.breaker_call_ignored,
    signals.breaker_rejected,
)

Body = Callable[[], None]


def _through(path: str, breaker: Breaker, body: Body) -> None:
    """Run ``body`` once through ``breaker`` the way ``path`` says; its exception is swallowed."""

    async def body_async() -> None:
        body()

    async def in_async_with() -> None:
        async with breaker:
            body()

    with contextlib.suppress(Exception):
        if path == "call":
            breaker.call(body)
        elif path == "decorate":
            breaker.decorate(body)()
        elif path == "with":
            with breaker:
                body()
        elif path == "call_async":
            asyncio.run(breaker.call_async(body_async))
        elif path == "async with":
            asyncio.run(in_async_with())
        elif path == "guarded":
            guarded(breaker=breaker, retry=None)(body)()
        elif path == "guarded async":
            asyncio.run(guarded(breaker=breaker, retry=None)(body_async)())
        else:  # pragma: no cover
            raise AssertionError(path)


PATHS = ("call", "decorate", "with", "call_async", "async with", "guarded", "guarded async")


def _breaker(manager: SessionManager) -> Breaker:
    """Counts ConnectionError only, never opens by itself, and calls of 1 s or more are slow."""
    return Breaker(
        "market-data", manager=manager, failure_threshold=100, counts=ConnectionError, slow_call_duration=1.0
    )


def _taking(clock: FakeClock, seconds: float, error: Exception | None = None) -> Body:
    def body() -> None:
        clock.advance(seconds)
        if error is not None:
            raise error

    return body


def _every_outcome(path: str, breaker: Breaker, clock: FakeClock) -> tuple[Exception, Exception]:
    """A fast success, a slow success, a slow counted failure, an ignored exception, a rejection."""
    failure, ignored = ConnectionError("refused"), ValueError("not the service's fault")
    _through(path, breaker, _taking(clock, 0.5))
    _through(path, breaker, _taking(clock, 1.5))
    _through(path, breaker, _taking(clock, 2.0, failure))
    _through(path, breaker, _taking(clock, 0.25, ignored))
    force_breaker(breaker, "open")
    _through(path, breaker, _taking(clock, 0.0))
    return failure, ignored


@pytest.mark.parametrize("path", PATHS)
def test_each_outcome_sends_its_signal_once_with_its_payload(
    path: str, manager: SessionManager, clock: FakeClock
) -> None:
    breaker = _breaker(manager)
    with capture_signals(*OUTCOMES) as sent:
        failure, ignored = _every_outcome(path, breaker, clock)
    assert all(signal.sender is breaker for signal in sent)
    name = "market-data"
    assert [(signal.name, signal.kwargs) for signal in sent] == [
        ("breaker-call-succeeded", {"name": name, "seconds": pytest.approx(0.5)}),
        ("breaker-call-succeeded", {"name": name, "seconds": pytest.approx(1.5)}),
        ("breaker-call-slow", {"name": name, "seconds": pytest.approx(1.5), "error": None}),
        ("breaker-call-failed", {"name": name, "seconds": pytest.approx(2.0), "error": failure}),
        ("breaker-call-slow", {"name": name, "seconds": pytest.approx(2.0), "error": failure}),
        ("breaker-call-ignored", {"name": name, "seconds": pytest.approx(0.25), "error": ignored}),
        ("breaker-rejected", {"name": name, "state": BreakerState.OPEN}),
    ]


def test_without_slow_call_duration_no_call_is_slow(manager: SessionManager, clock: FakeClock) -> None:
    """The durations are still given to the subscribers; slowness needs ``slow_call_duration``."""
    breaker = Breaker("plain", manager=manager)
    with capture_signals(*OUTCOMES) as sent:
        breaker.call(_taking(clock, 100.0))
    assert [(signal.name, signal.kwargs) for signal in sent] == [
        ("breaker-call-succeeded", {"name": "plain", "seconds": pytest.approx(100.0)})
    ]


@pytest.mark.parametrize("count_cancelled", [False, True])
def test_a_cancelled_call_is_ignored_unless_cancellation_counts(
    count_cancelled: bool, manager: SessionManager, clock: FakeClock
) -> None:
    breaker = Breaker("cancelled", manager=manager, count_cancelled=count_cancelled)

    async def hangs() -> None:
        clock.advance(3.0)
        await asyncio.Event().wait()

    before = clock.now

    async def scenario() -> None:
        task = asyncio.create_task(breaker.call_async(hangs))
        while clock.now == before:  # until the call has started (and moved the clock)
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with capture_signals(*OUTCOMES) as sent:
        asyncio.run(scenario())
    assert len(sent) == 1
    assert sent[0].name == ("breaker-call-failed" if count_cancelled else "breaker-call-ignored")
    assert isinstance(sent[0].kwargs["error"], asyncio.CancelledError)
    assert sent[0].kwargs["seconds"] == pytest.approx(3.0)


def test_a_subscriber_that_left_sees_nothing(manager: SessionManager, clock: FakeClock) -> None:
    breaker = _breaker(manager)
    seen: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs["name"])

    for signal in OUTCOMES:
        signal.connect(receiver)
        signal.disconnect(receiver)
    for path in PATHS:
        force_breaker(breaker, "closed")
        _every_outcome(path, breaker, clock)
    assert seen == []


def test_nothing_is_sent_when_nobody_subscribes(
    monkeypatch: pytest.MonkeyPatch, manager: SessionManager, clock: FakeClock
) -> None:
    """Not even a call to ``send``: an outcome nobody listens to costs an attribute check."""
    calls: list[str] = []

    def counting_send(signal: NamedSignal, *args: Any, **kwargs: Any) -> None:
        calls.append(signal.name)

    monkeypatch.setattr(signals, "send", counting_send)
    for signal in OUTCOMES:
        monkeypatch.setattr(signal, "send", lambda *args, _name=signal.name, **kwargs: calls.append(_name))
    breaker = _breaker(manager)
    for path in PATHS:
        force_breaker(breaker, "closed")
        _every_outcome(path, breaker, clock)
    assert calls == []
    with capture_signals(signals.breaker_call_succeeded) as sent:  # (the patched send sees a subscriber)
        breaker.close()
        breaker.call(_taking(clock, 0.0))
    assert calls == ["breaker-call-succeeded"] and sent == []


def test_each_attempt_of_a_retry_is_a_call(manager: SessionManager, clock: FakeClock) -> None:
    breaker = _breaker(manager)
    errors = [ConnectionError("first"), ConnectionError("second")]

    @guarded(breaker=breaker, retry=RetryStrategy(max_attempts=3, sleep=lambda seconds: None))
    def fetch() -> str:
        clock.advance(0.5)
        if errors:
            raise errors.pop(0)
        return "prices"

    first, second = errors
    with capture_signals(*OUTCOMES) as sent:
        assert fetch() == "prices"
    assert [(signal.name, signal.kwargs.get("error")) for signal in sent] == [
        ("breaker-call-failed", first),
        ("breaker-call-failed", second),
        ("breaker-call-succeeded", None),
    ]


def test_a_slow_probe_that_raised_an_ignored_exception_is_ignored_and_slow(
    manager: SessionManager, clock: FakeClock
) -> None:
    breaker = _breaker(manager)
    force_breaker(breaker, "open")
    clock.advance(breaker.config.open_for)
    ignored = ValueError("answered, late")
    with capture_signals(*OUTCOMES) as sent:
        _through("call", breaker, _taking(clock, 2.0, ignored))
    assert [(signal.name, signal.kwargs) for signal in sent] == [
        ("breaker-call-ignored", {"name": "market-data", "seconds": pytest.approx(2.0), "error": ignored}),
        ("breaker-call-slow", {"name": "market-data", "seconds": pytest.approx(2.0), "error": ignored}),
    ]
    assert breaker.state is BreakerState.OPEN  # a slow probe is a failed probe
