"""Breakers across 4 real processes on SQLite, Redis and a Redis Cluster (opens once, one probe, the
count and time windows with min_calls and slow calls exact), and a Redis outage under each
``on_store_error``."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from support.breakers import fail
from support.fakes import fresh_breaker_registry  # noqa: F401  (autouse)
from support.processes import run_processes
from support.stores import shared_store_url as _shared_store_url

from sessionmw import (
    Breaker,
    BreakerOpenError,
    BreakerState,
    SessionManager,
    UserFacingError,
    guarded,
)
from sessionmw import _breaker as breaker_module
from sessionmw._breaker_table import BreakerRecord
from sessionmw.testing import FakeClock, capture_signals, force_breaker


def shared_store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared store of ``kind``; SQLite with a 60 s busy timeout: four processes write one file,
    and on a loaded machine (load average 20) a writer once waited past the default 5 s. These
    tests check what is counted, not how long a writer waits."""
    url = _shared_store_url(kind, request, tmp_path)
    return url + "?busy_timeout=60" if kind == "sqlite" else url


WORKERS = 4
CALLS = 200
START = 1_700_000_000.0
OPEN_FOR = 1_000.0

pytestmark = pytest.mark.usefixtures("spawn_importable")


def _opener(url: str, _worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any) -> None:
    """One process: CALLS failing calls through the shared breaker, as fast as it can."""
    clock = FakeClock(START)
    manager = SessionManager(store=url, clock=clock)
    breaker = Breaker(
        "shared", failure_threshold=5, open_for=OPEN_FOR, manager=manager, clock=clock, state_ttl=0
    )

    def attempt(_call: int) -> str:
        try:
            breaker.call(fail)
        except ConnectionError:
            return "failed"
        raise AssertionError("the backend is down")

    _race(manager, barrier, results, attempt)


def _race(
    manager: SessionManager,
    barrier: multiprocessing.synchronize.Barrier,
    results: Any,
    attempt: Callable[[int], str],
) -> None:
    """Once every process is ready, ``attempt(call)`` CALLS times as fast as possible (its outcome's
    name, or "rejected" for a BreakerOpenError); put the signals sent and the outcomes counted."""
    outcomes: Counter[str] = Counter()
    with capture_signals() as sent:
        barrier.wait(timeout=60)
        for call in range(CALLS):
            try:
                outcomes[attempt(call)] += 1
            except BreakerOpenError:
                outcomes["rejected"] += 1
    manager.close()
    for signal in sent:  # (none expected: named in a failing assertion's message)
        if signal.name == "store-error":
            outcomes[f"store error: {signal.kwargs.get('error')}"] += 1
    results.put((Counter(s.name for s in sent), outcomes))


def _prober(
    url: str, _worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any, slots: int = 1
) -> None:
    """One process: after open_for, CALLS attempts to be admitted while the probes are out (a breaker
    that admits ``slots`` probes at once)."""
    clock = FakeClock(START + OPEN_FOR + 1)
    manager = SessionManager(store=url, clock=clock)
    breaker = Breaker(
        "shared",
        failure_threshold=5,
        open_for=OPEN_FOR,
        half_open_calls=slots,
        manager=manager,
        clock=clock,
        state_ttl=0,
    )
    admitted = 0
    barrier.wait(timeout=60)
    for _ in range(CALLS):
        try:
            breaker._admit()
        except BreakerOpenError:
            continue
        admitted += 1
    manager.close()
    results.put((Counter(), Counter(admitted=admitted)))


def _run(target: Any, url: str) -> tuple[Counter[str], Counter[str]]:
    sent: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for signals, counts in run_processes(target, url, WORKERS):
        sent += signals
        outcomes += counts
    return sent, outcomes


def _opened_once(target: Any, url: str) -> tuple[Counter[str], BreakerRecord]:
    """Run ``target`` in the processes; assert one breaker_opened in all and one open in the store;
    return what the processes counted and the store's record."""
    sent, outcomes = _run(target, url)
    assert sent["breaker-opened"] == 1
    manager = SessionManager(store=url, clock=FakeClock(START))
    (record,) = breaker_module.breakers_for(manager.store).records()
    manager.close()
    assert (record.state, record.opens) == (BreakerState.OPEN, 1)
    return outcomes, record


@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster"])
def test_four_processes_open_it_once(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """4 processes failing at once: one breaker_opened in total, and the store counted one open."""
    url = shared_store_url(kind, request, tmp_path)
    outcomes, record = _opened_once(_opener, url)
    # every failure counted once in the store: none lost to a store error (fail-open)
    assert record.failed == outcomes["failed"], outcomes
    # a refusal costs no round trip: its count rides along with the process's next one (the
    # last refusal of each process had none)
    assert outcomes["rejected"] - WORKERS <= record.rejected <= outcomes["rejected"]
    assert outcomes["failed"] + outcomes["rejected"] == WORKERS * CALLS


def _forced_open(url: str) -> tuple[SessionManager, Breaker]:
    """The breaker "shared" opened in the store at START (so due for probes at START + OPEN_FOR)."""
    clock = FakeClock(START)
    manager = SessionManager(store=url, clock=clock)
    breaker = Breaker("shared", failure_threshold=5, open_for=OPEN_FOR, manager=manager, clock=clock)
    force_breaker(breaker, "open")
    return manager, breaker


def _two_slot_prober(
    url: str, worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any
) -> None:
    _prober(url, worker, barrier, results, slots=2)


@pytest.mark.parametrize("slots", [1, 2])
@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster"])
def test_four_processes_racing_in_half_open_admit_exactly_the_probe_slots(
    kind: str, slots: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """After open_for, 4 processes x CALLS attempts: exactly ``half_open_calls`` probes are admitted
    (one, or two)."""
    url = shared_store_url(kind, request, tmp_path)
    manager, breaker = _forced_open(url)
    _sent, outcomes = _run(_prober if slots == 1 else _two_slot_prober, url)
    assert outcomes["admitted"] == slots
    assert breaker.snapshot().state is BreakerState.HALF_OPEN
    manager.close()


def _recoverer(url: str, _worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any) -> None:
    """One process: after open_for, CALLS successful calls through a breaker that admits 2 probes
    at once and closes after 3 probe successes."""
    clock = FakeClock(START + OPEN_FOR + 1)
    manager = SessionManager(store=url, clock=clock)
    breaker = Breaker(
        "shared",
        failure_threshold=5,
        open_for=OPEN_FOR,
        half_open_calls=2,
        success_threshold=3,
        manager=manager,
        clock=clock,
        state_ttl=0,
    )

    def attempt(_call: int) -> str:
        breaker.call(lambda: None)
        return "admitted"

    _race(manager, barrier, results, attempt)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster"])
def test_four_processes_close_it_once_after_the_shared_success_threshold(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Half-open with 2 probe slots and a success threshold of 3, 4 processes racing: it is
    half-opened once and closed once, by the third probe success counted across them all."""
    url = shared_store_url(kind, request, tmp_path)
    manager, breaker = _forced_open(url)
    sent, outcomes = _run(_recoverer, url)
    assert (sent["breaker-half-opened"], sent["breaker-closed"]) == (1, 1)
    record = breaker.snapshot()
    assert (record.state, record.opens, record.probe_successes) == (BreakerState.CLOSED, 1, 0)
    assert outcomes["admitted"] + outcomes["rejected"] == WORKERS * CALLS
    manager.close()


def _slow_caller(url: str, worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any) -> None:
    """One process: CALLS calls, every other one slow (2 s on its monotonic clock, from 1 s), through a
    breaker that opens when half of the last 20 calls were slow; counts what it saw."""
    clock = FakeClock(START)
    manager = SessionManager(store=url, clock=clock)
    breaker = Breaker(
        "slow",
        failure_threshold=10**6,
        slow_call_duration=1.0,
        slow_call_rate=0.5,
        window=20,
        min_calls=20,
        open_for=OPEN_FOR,
        manager=manager,
        clock=clock,
        state_ttl=0,
    )

    def attempt(call: int) -> str:
        seconds = 2.0 if (call + worker) % 2 else 0.0
        breaker.call(clock.advance, seconds)
        if call == CALLS - 1:
            breaker.snapshot()  # (a plain success rides along with the next round trip: this one)
        return "slow" if seconds else "fast"

    _race(manager, barrier, results, attempt)


@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster"])
def test_four_processes_count_slow_calls_exactly(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """4 processes, half their calls slow: the store counts every slow call and every success the
    callers saw, and the slow-call rate opens the breaker once."""
    url = shared_store_url(kind, request, tmp_path)
    outcomes, record = _opened_once(_slow_caller, url)
    assert record.slow == outcomes["slow"] and record.successful == outcomes["slow"] + outcomes["fast"]
    assert outcomes["slow"] + outcomes["fast"] >= 20  # min_calls
    assert outcomes["rejected"] > 0


# -- a Redis outage ---------------------------------------------------------------------------------


@pytest.fixture(name="server")
def _server() -> Iterator[Any]:
    from support.redis_servers import RedisServer
    from support.servers import free_port

    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("mode", ["fail_open", "fail_closed"])
def test_a_redis_outage_follows_on_store_error(mode: str, server: Any, clock: FakeClock) -> None:
    """fail_open: the breaker works per process meanwhile, from its last view (and trips there);
    fail_closed: the call is refused with the store's error, the function is not called."""
    manager = SessionManager(
        store=f"{server.url}?timeout=0.3&connect_timeout=0.3", clock=clock, on_store_error=mode
    )
    breaker = Breaker("outage", failure_threshold=2, open_for=30.0, manager=manager, clock=clock)
    calls: list[int] = []

    @guarded(breaker=breaker, retry=None)
    def fetch() -> None:
        calls.append(1)
        raise ConnectionError("backend down")

    with pytest.raises(UserFacingError):
        fetch()  # the store is up: one failure recorded there
    server.stop()
    clock.advance(1)
    with capture_signals() as sent:
        for _ in range(3):
            with pytest.raises(UserFacingError) as refused:
                fetch()
    names = [s.name for s in sent]
    assert "store-error" in names
    if mode == "fail_open":
        # this process's own breaker goes on from its last view (one failure): the next opens it
        assert len(calls) == 2
        assert isinstance(refused.value, BreakerOpenError) and "breaker-opened" in names
    else:
        assert len(calls) == 1
        assert refused.value.title == "Service unavailable"
        assert not isinstance(refused.value, BreakerOpenError)
    manager.close()


# -- the time window across 4 processes --------------------------------------------------------------


def _time_window_caller(
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
                    breaker.call(fail)
                breaker.call(lambda: None)
                outcomes["ok"] += 1
            except ConnectionError:
                outcomes["failed"] += 1
            except BreakerOpenError:
                outcomes["rejected"] += 1
        breaker.snapshot()  # (its last plain success rides along with this round trip)
    manager.close()
    results.put((Counter(s.name for s in sent), outcomes))


def _time_window_tripping_caller(
    url: str, worker: int, barrier: multiprocessing.synchronize.Barrier, results: Any
) -> None:
    _time_window_caller(url, worker, barrier, results, min_calls=100)


def _run_window(target: Any, url: str) -> tuple[Counter[str], Counter[str], Any]:
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
    url = shared_store_url(kind, request, tmp_path)
    sent, outcomes, record = _run_window(_time_window_tripping_caller, url)
    assert sent["breaker-opened"] == 1
    assert (record.state, record.opens) == (BreakerState.OPEN, 1)
    assert (record.failed, record.successful) == (outcomes["failed"], outcomes["ok"])
    assert outcomes["failed"] + outcomes["ok"] >= 100 and outcomes["rejected"] > 0


# -- either window across 4 processes: min_calls counted across them, every call kept ------------------

MIN_CALLS = 40
FAILING_CALLS = 15  # per process: fewer than MIN_CALLS alone, more together


def _window_breaker(
    manager: SessionManager,
    window_type: Literal["count", "time"],
    min_calls: int,
    state_ttl: float,
    clock: FakeClock,
    monotonic: FakeClock,
) -> Breaker:
    """Opens when half the calls of its window failed or were slow, once ``min_calls`` were made;
    a count window of 1,000 calls or a time window of 60 seconds (calls are slow from 1 s)."""
    return Breaker(
        "windowed",
        failure_threshold=10**6,
        failure_rate=0.5,
        slow_call_duration=1.0,
        slow_call_rate=0.5,
        window_type=window_type,
        window=1_000 if window_type == "count" else 60,
        min_calls=min_calls,
        open_for=OPEN_FOR,
        manager=manager,
        clock=clock,
        monotonic=monotonic,
        state_ttl=state_ttl,
    )


def _window_caller(
    url: str,
    worker: int,
    barrier: multiprocessing.synchronize.Barrier,
    results: Any,
    window_type: Literal["count", "time"],
    mixed: bool,
) -> None:
    """One process. ``mixed``: CALLS calls, in turn fast, failing, slow, slow and failing (a slow call
    takes 2 s of the monotonic clock; the wall clock moves 0.001 s a call), min_calls never reached;
    else FAILING_CALLS failing calls, min_calls MIN_CALLS. Counts what it saw."""
    clock, monotonic = FakeClock(START), FakeClock(0.0)
    manager = SessionManager(store=url, clock=clock)
    # mixed: the default state_ttl, so plain successes seen with a fresh view ride along with the
    # process's next round trip (a slow call moves the monotonic clock past it)
    min_calls, state_ttl = (1_000, 0.25) if mixed else (MIN_CALLS, 0.0)
    breaker = _window_breaker(manager, window_type, min_calls, state_ttl, clock, monotonic)

    def call(seconds: float, failing: bool) -> None:
        monotonic.advance(seconds)
        if failing:
            fail()

    outcomes: Counter[str] = Counter()
    with capture_signals() as sent:
        barrier.wait(timeout=60)
        for number in range(CALLS if mixed else FAILING_CALLS):
            clock.advance(0.001)
            kind = (number + worker) % 4 if mixed else 1
            slow, failing = kind >= 2, kind % 2 == 1
            try:
                breaker.call(call, 2.0 if slow else 0.0, failing)
                outcomes["ok"] += 1
            except ConnectionError:
                outcomes["failed"] += 1
            except BreakerOpenError:
                outcomes["rejected"] += 1
                continue
            outcomes["slow"] += slow
        breaker.snapshot()  # (its last plain success rides along with this round trip)
    manager.close()
    results.put((Counter(s.name for s in sent), outcomes))


def _count_window_failing(url: str, worker: int, barrier: Any, results: Any) -> None:
    _window_caller(url, worker, barrier, results, "count", mixed=False)


def _time_window_failing(url: str, worker: int, barrier: Any, results: Any) -> None:
    _window_caller(url, worker, barrier, results, "time", mixed=False)


def _count_window_mixed(url: str, worker: int, barrier: Any, results: Any) -> None:
    _window_caller(url, worker, barrier, results, "count", mixed=True)


def _time_window_mixed(url: str, worker: int, barrier: Any, results: Any) -> None:
    _window_caller(url, worker, barrier, results, "time", mixed=True)


@pytest.mark.parametrize("window_type", ["count", "time"])
@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster"])
def test_four_processes_reach_min_calls_together_and_open_it_at_that_call(
    kind: str, window_type: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """4 processes, 15 failing calls each (each alone under min_calls = 40): the window counts the
    calls of all of them, so the breaker opens once, at the 40th failure the store counted. Only a
    call each other process had in flight then is counted after it (40 to 43 failures in all); a
    window per process would never open, a lost count would open it later."""
    url = shared_store_url(kind, request, tmp_path)
    target = _count_window_failing if window_type == "count" else _time_window_failing
    sent, outcomes, record = _run_window(target, url)
    assert sent["breaker-opened"] == 1
    assert (record.state, record.opens) == (BreakerState.OPEN, 1)
    assert record.failed == outcomes["failed"]
    assert MIN_CALLS <= outcomes["failed"] <= MIN_CALLS + WORKERS - 1, outcomes
    assert outcomes["failed"] + outcomes["rejected"] == WORKERS * FAILING_CALLS


@pytest.mark.parametrize("window_type", ["count", "time"])
@pytest.mark.parametrize("kind", ["sqlite", "redis", "cluster"])
def test_four_processes_count_every_call_in_one_window(
    kind: str, window_type: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """4 processes, 200 calls each, a quarter each fast, failing, slow, slow and failing (min_calls
    1,000 never reached): the shared window holds exactly the 800 calls, 400 failed and 400 slow, and the
    store's totals are the callers' (none lost between processes)."""
    url = shared_store_url(kind, request, tmp_path)
    target = _count_window_mixed if window_type == "count" else _time_window_mixed
    sent, outcomes, record = _run_window(target, url)
    assert sent["breaker-opened"] == 0
    assert record.window_counts() == (WORKERS * CALLS, WORKERS * CALLS // 2, WORKERS * CALLS // 2)
    assert (record.failed, record.slow) == (outcomes["failed"], outcomes["slow"]) == (400, 400)
    assert record.successful == outcomes["ok"] == 400
    if window_type == "time":
        assert len(record.buckets.split(",")) == 1  # (each process's wall clock moved 0.2 s)
    else:
        assert record.buckets == ""
