"""Circuit breakers: the table row by row, a reference model, @guarded composition, session health,
round trips counted on a shared store."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from support.fakes import fresh_breaker_registry  # noqa: F401  (autouse: each test with a fresh registry)

from sessionmw import (
    Breaker,
    BreakerOpenError,
    BreakerState,
    RetryStrategy,
    SessionManager,
    UserFacingError,
    guarded,
    session_scope,
    signals,
)
from sessionmw import _breaker as breaker_module
from sessionmw._breaker_table import (
    BREAKER_TRANSITIONS,
    BreakerConfig,
    BreakerEvent,
    BreakerOp,
    BreakerRecord,
    mermaid,
    step,
)
from sessionmw.stores import _beside
from sessionmw.stores.breakers import BreakerBackend, lua_source
from sessionmw.testing import FakeClock, capture_signals, force_breaker

S, E = BreakerState, BreakerEvent
EXPECTED = {
    (S.CLOSED, E.SUCCESS): S.CLOSED,
    (S.CLOSED, E.FAILURE): S.CLOSED,
    (S.CLOSED, E.TRIP): S.OPEN,
    (S.OPEN, E.PROBE): S.HALF_OPEN,
    (S.HALF_OPEN, E.PROBE): S.HALF_OPEN,
    (S.HALF_OPEN, E.PROBE_SUCCESS): S.CLOSED,
    (S.HALF_OPEN, E.PROBE_FAILURE): S.OPEN,
    **{(state, E.FORCE_OPEN): S.FORCED_OPEN for state in S},
    **{(state, E.FORCE_CLOSE): S.CLOSED for state in S},
    **{(state, E.DISABLE): S.DISABLED for state in S},
}


CONFIG = BreakerConfig(failure_threshold=3, open_for=30.0, half_open_calls=1)
T0 = 1_700_000_000.0


def test_the_table_is_exactly_the_documented_one() -> None:
    """Resilience4j's states, moved only by these rows."""
    assert dict(BREAKER_TRANSITIONS) == EXPECTED


def _record_in(state: BreakerState) -> BreakerRecord:
    """A record in ``state`` as the operations get it there."""
    record = BreakerRecord("b")
    for _ in range(CONFIG.failure_threshold):
        step(record, BreakerOp.FAILURE, T0, CONFIG)
    if state is S.CLOSED:
        step(record, BreakerOp.FORCE_CLOSE, T0, CONFIG)
    elif state is S.HALF_OPEN:
        step(record, BreakerOp.ADMIT, T0 + CONFIG.open_for, CONFIG)
    elif state is S.FORCED_OPEN:
        step(record, BreakerOp.FORCE_OPEN, T0, CONFIG)
    elif state is S.DISABLED:
        step(record, BreakerOp.DISABLE, T0, CONFIG)
    assert record.state is state
    return record


# For each row: the operation that is that event in that state, and the time to apply it at.
_OP_OF_EVENT: dict[BreakerEvent, tuple[BreakerOp, float]] = {
    E.SUCCESS: (BreakerOp.SUCCESS, T0),
    E.FAILURE: (BreakerOp.FAILURE, T0),
    E.PROBE: (BreakerOp.ADMIT, T0 + 2 * CONFIG.open_for),
    E.PROBE_SUCCESS: (BreakerOp.PROBE_SUCCESS, T0 + 1),
    E.PROBE_FAILURE: (BreakerOp.PROBE_FAILURE, T0 + 1),
    E.FORCE_OPEN: (BreakerOp.FORCE_OPEN, T0),
    E.FORCE_CLOSE: (BreakerOp.FORCE_CLOSE, T0),
    E.DISABLE: (BreakerOp.DISABLE, T0),
}


@pytest.mark.parametrize(("row", "new"), list(EXPECTED.items()), ids=lambda v: str(v))
def test_each_row_of_the_table(row: tuple[BreakerState, BreakerEvent], new: BreakerState) -> None:
    """The operation that is the row's event in the row's state leads to the row's next state."""
    state, event = row
    record = _record_in(state)
    if event is E.TRIP:
        record.failures = CONFIG.failure_threshold - 1
        result = step(record, BreakerOp.FAILURE, T0, CONFIG)
    else:
        op, now = _OP_OF_EVENT[event]
        result = step(record, op, now, CONFIG)
    assert record.state is new
    if new is not state:
        assert result.change is not None and result.change.event is event


@pytest.mark.parametrize("state", [S.OPEN, S.FORCED_OPEN, S.DISABLED])
@pytest.mark.parametrize("op", [BreakerOp.SUCCESS, BreakerOp.FAILURE])
def test_an_outcome_outside_the_table_only_counts(state: BreakerState, op: BreakerOp) -> None:
    """The late outcome of a call admitted before the breaker opened changes no state."""
    record = _record_in(state)
    before = (record.successful, record.failed)
    assert step(record, op, T0 + 1, CONFIG).change is None
    assert record.state is state
    assert (record.successful, record.failed) != before


def test_the_guide_carries_the_diagram_generated_from_the_table() -> None:
    """docs/guide.md's breaker diagram is the generated one (it cannot drift)."""
    guide = (Path(__file__).parents[2] / "docs" / "guide.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{mermaid()}```" in guide


def test_the_redis_script_carries_every_row() -> None:
    """The Lua table is generated from BREAKER_TRANSITIONS."""
    source = lua_source()
    for (state, event), new in BREAKER_TRANSITIONS.items():
        assert f'["{state.value}|{event.value}"]="{new.value}"' in source


def test_failure_rate_opens_over_the_window() -> None:
    """With failure_rate, half of the last calls failing opens it once min_calls were made."""
    config = BreakerConfig(failure_threshold=100, failure_rate=0.5, window=4, min_calls=4)
    record = BreakerRecord("b")
    for op in (BreakerOp.FAILURE, BreakerOp.SUCCESS, BreakerOp.FAILURE):
        step(record, op, T0, config)
    assert record.state is S.CLOSED  # 3 calls: under min_calls
    step(record, BreakerOp.SUCCESS, T0, config)
    assert record.state is S.CLOSED  # 2 of 4 failed, but a success never trips
    result = step(record, BreakerOp.FAILURE, T0, config)  # the last 4 calls: 2 failures, at the rate
    assert record.state.value == "open" and result.change is not None and result.change.event is E.TRIP


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"open_for": -1}, "open_for"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"half_open_calls": 0}, "half_open_calls"),
        ({"window": 5, "min_calls": 6}, "min_calls"),
        ({"state_ttl": -1}, "state_ttl"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], named: str) -> None:
    """A setting the breaker cannot use is refused with its name."""
    with pytest.raises(ValueError, match=named):
        Breaker("bad", **kwargs)


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
            market.call(_fail)
    assert market.state is S.DISABLED


def _fail() -> None:
    raise ConnectionError("down")


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
            breaker.call(_fail)
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
        now = T0
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
            there.call(_fail)
    assert there.state is S.OPEN
    clock.advance(0.2)
    assert here.call(lambda: "stale") == "stale"  # within state_ttl: the documented staleness
    clock.advance(0.05)
    with pytest.raises(BreakerOpenError):
        here.call(lambda: "fresh")
    assert here.snapshot().opens == 1
    first.close()
    second.close()
