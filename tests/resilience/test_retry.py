"""RetryStrategy, safe_execute and the testing switch: fake sleeps and clocks only. RetryStrategy.recover
and recover_async: going on after a first call the caller made itself."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import inspect
import itertools
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.fakes import Sleeps

from sessionmw import (
    BackendProcessError,
    RetryDetails,
    RetryStrategy,
    SessionManager,
    TransientError,
    UserFacingError,
    safe_execute,
    session_scope,
    signals,
)
from sessionmw import signals as sig
from sessionmw.testing import FakeClock, capture_signals, is_testing, set_testing


class Flaky:
    """Fails with the given exceptions in turn, then returns ``result``."""

    def __init__(self, *errors: Exception, result: object = "ok") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.result = result

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        self.args = (args, kwargs)
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def test_default_schedule_is_the_seeds() -> None:
    """Waits double from 1 s and are capped at 30 s."""
    assert RetryStrategy(max_attempts=8).delays == (1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0)
    assert RetryStrategy().delays == (1.0, 2.0)
    assert RetryStrategy(max_attempts=1).delays == ()
    assert RetryStrategy(max_attempts=4, initial_delay=0.5, backoff_factor=3.0, max_delay=2.0).delays == (
        0.5,
        1.5,
        2.0,
    )


def test_success_first_time_never_sleeps(sleeps: Sleeps) -> None:
    """A call that works returns (True, result, None) at once."""
    func = Flaky(result=42)
    assert RetryStrategy(sleep=sleeps).execute(func, 1, key="v") == (True, 42, None)
    assert func.calls == 1
    assert func.args == ((1,), {"key": "v"})
    assert sleeps.waits == []


def test_transient_failures_are_retried_with_backoff(sleeps: Sleeps) -> None:
    """Two connection errors, then success: two waits of 1 s and 2 s."""
    func = Flaky(ConnectionError("a"), TimeoutError("b"))
    assert RetryStrategy(sleep=sleeps).execute(func) == (True, "ok", None)
    assert func.calls == 3
    assert sleeps.waits == [1.0, 2.0]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConnectionResetError("x"), id="connection"),
        pytest.param(TimeoutError("x"), id="timeout"),
        pytest.param(TransientError("x"), id="TransientError"),
        pytest.param(BackendProcessError("x"), id="BackendProcessError"),
        pytest.param(RuntimeError("This session is not running"), id="not-running"),
    ],
)
def test_default_retries_transient_errors(error: Exception, sleeps: Sleeps) -> None:
    """Connection, timeout, TransientError and BackendProcessError are retried by default."""
    func = Flaky(error)
    success, _, _ = RetryStrategy(sleep=sleeps).execute(func)
    assert success
    assert func.calls == 2


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ValueError("x"), id="ValueError"),
        pytest.param(KeyError("x"), id="KeyError"),
        pytest.param(PermissionError("x"), id="PermissionError"),
        pytest.param(RuntimeError("x"), id="RuntimeError"),
    ],
)
def test_other_errors_fail_at_once(error: Exception, sleeps: Sleeps) -> None:
    """A non-transient error is not retried: one call, no wait, the error is kept."""
    func = Flaky(error)
    success, result, err = RetryStrategy(sleep=sleeps).execute(func)
    assert (success, result) == (False, None)
    assert err is not None
    assert err.original is error
    assert func.calls == 1
    assert sleeps.waits == []


def test_exhausted_keeps_every_attempt(sleeps: Sleeps) -> None:
    """After the last attempt the error's original and cause are the last exception; all are kept."""
    errors = [ConnectionError(str(n)) for n in range(3)]
    func = Flaky(*errors, ConnectionError("never reached"))
    success, result, err = RetryStrategy(sleep=sleeps).execute(func)
    assert (success, result) == (False, None)
    assert isinstance(err, UserFacingError)
    assert err.original is errors[-1]
    assert err.__cause__ is errors[-1]
    assert err.attempts == tuple(errors)
    assert err.title == "Connection problem"
    assert func.calls == 3


def test_zero_delay_calls_no_sleep() -> None:
    """With initial_delay=0 the strategy never calls sleep."""

    def forbidden(seconds: float) -> None:
        raise AssertionError("sleep called")

    func = Flaky(ConnectionError(), ConnectionError())
    assert RetryStrategy(initial_delay=0, sleep=forbidden).execute(func) == (True, "ok", None)
    assert func.calls == 3


def test_jitter_adds_at_most_jitter(sleeps: Sleeps) -> None:
    """Jitter adds between 0 and ``jitter`` seconds to each wait."""
    func = Flaky(*[ConnectionError() for _ in range(4)])
    RetryStrategy(max_attempts=5, jitter=0.5, sleep=sleeps).execute(func)
    for wait, base in zip(sleeps.waits, (1.0, 2.0, 4.0, 8.0), strict=True):
        assert base <= wait <= base + 0.5


class _Busy(TransientError):
    def __init__(self, retry_after: object) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


def test_retry_after_sets_the_next_delay(sleeps: Sleeps) -> None:
    """A server's Retry-After (seconds or HTTP date) sets the wait, capped at max_delay."""
    in_a_while = email.utils.formatdate(time.time() + 7, usegmt=True)
    func = Flaky(_Busy(3), _Busy("120"), _Busy(in_a_while))
    RetryStrategy(max_attempts=4, max_delay=60.0, sleep=sleeps).execute(func)
    assert sleeps.waits[:2] == [3.0, 60.0]
    assert 5.0 <= sleeps.waits[2] <= 7.0


def test_max_elapsed_is_a_deadline(clock: FakeClock) -> None:
    """No wait starts that would end after max_elapsed: 1 s fits in 2.5 s, 1 + 2 s does not."""
    sleeps = Sleeps(clock)
    func = Flaky(*[ConnectionError() for _ in range(9)])
    strategy = RetryStrategy(max_attempts=10, max_elapsed=2.5, sleep=sleeps, clock=clock)
    with capture_signals(sig.retry_exhausted) as sent:
        success, _, err = strategy.execute(func)
    assert not success
    assert sleeps.waits == [1.0]
    assert func.calls == 2
    assert err is not None and len(err.attempts) == 2
    assert sent[0].kwargs["details"].reason == "deadline"


def test_retry_on_classes_tuple_and_predicate(sleeps: Sleeps) -> None:
    """retry_on takes a class, a tuple of classes or a predicate, replacing the default."""
    for retry_on in (KeyError, (IndexError, KeyError), lambda exc: isinstance(exc, KeyError)):
        func = Flaky(KeyError("k"))
        assert RetryStrategy(retry_on=retry_on, sleep=sleeps).execute(func)[0]
        assert func.calls == 2
    func = Flaky(ConnectionError())
    assert not RetryStrategy(retry_on=KeyError, sleep=sleeps).execute(func)[0]
    assert func.calls == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"max_attempts": 0}, ValueError, "max_attempts", id="no-attempts"),
        pytest.param({"max_attempts": True}, ValueError, "max_attempts", id="bool-attempts"),
        pytest.param({"max_attempts": 2.5}, ValueError, "max_attempts", id="float-attempts"),
        pytest.param({"initial_delay": -1}, ValueError, "initial_delay", id="negative-delay"),
        pytest.param({"initial_delay": float("nan")}, ValueError, "initial_delay", id="nan-delay"),
        pytest.param({"backoff_factor": 0.5}, ValueError, "backoff_factor", id="shrinking"),
        pytest.param({"max_delay": "30"}, ValueError, "max_delay", id="text-delay"),
        pytest.param({"jitter": -0.1}, ValueError, "jitter", id="negative-jitter"),
        pytest.param({"max_elapsed": -5}, ValueError, "max_elapsed", id="negative-deadline"),
        pytest.param({"retry_on": int}, TypeError, "retry_on", id="retry-on-int"),
        pytest.param({"retry_on": (KeyError, "x")}, TypeError, "retry_on", id="retry-on-tuple"),
        pytest.param({"retry_on": "KeyError"}, TypeError, "retry_on", id="retry-on-text"),
        pytest.param({"sleep": 1.0}, TypeError, "sleep", id="sleep-not-callable"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    """A bad setting raises at construction, naming the setting."""
    with pytest.raises(error, match=match):
        RetryStrategy(**kwargs)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_interrupts_are_never_swallowed(interrupt: type[BaseException], sleeps: Sleeps) -> None:
    """KeyboardInterrupt, SystemExit and GeneratorExit go straight through, even mid-retry."""
    with pytest.raises(interrupt):
        RetryStrategy(sleep=sleeps).execute(Flaky(interrupt()))  # type: ignore[arg-type]
    with pytest.raises(interrupt):
        RetryStrategy(sleep=sleeps).execute(Flaky(ConnectionError(), interrupt()))  # type: ignore[arg-type]
    with pytest.raises(interrupt):
        safe_execute(Flaky(interrupt()))  # type: ignore[arg-type]


def test_call_returns_or_raises(sleeps: Sleeps) -> None:
    """call() returns the result, or raises the UserFacingError chained to the last exception."""
    strategy = RetryStrategy(max_attempts=2, sleep=sleeps)
    assert strategy.call(Flaky(ConnectionError()), 1) == "ok"
    last = ConnectionError("second")
    with pytest.raises(UserFacingError) as info:
        strategy.call(Flaky(ConnectionError("first"), last))
    assert info.value.__cause__ is last
    assert len(info.value.attempts) == 2


def test_strategy_as_decorator_keeps_the_signature(sleeps: Sleeps) -> None:
    """@strategy keeps name, docstring and signature, retries, and raises a UserFacingError."""
    calls: list[str] = []

    @RetryStrategy(max_attempts=2, sleep=sleeps)
    def fetch(symbol: str, *, days: int = 5) -> str:
        """Fetch prices."""
        calls.append(symbol)
        if len(calls) == 1:
            raise ConnectionError("down")
        if symbol == "BAD":
            raise ValueError("no such symbol")
        return symbol * days

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch prices."
    assert str(inspect.signature(fetch)) == "(symbol: 'str', *, days: 'int' = 5) -> 'str'"
    assert fetch("A", days=2) == "AA"
    with pytest.raises(UserFacingError) as info:
        fetch("BAD")
    assert isinstance(info.value.original, ValueError)


def test_execute_refuses_an_async_function(sleeps: Sleeps) -> None:
    """execute() on an async function raises TypeError instead of returning a coroutine."""

    async def work() -> int:
        return 1

    with pytest.raises(TypeError, match="execute_async"):
        RetryStrategy(sleep=sleeps).execute(work)
    with pytest.raises(TypeError, match="async"):
        safe_execute(work)


def test_async_execute_with_a_real_loop(sleeps: Sleeps) -> None:
    """execute_async awaits the function and the injected async sleep between attempts."""
    calls = 0

    async def work(value: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls < 3:
            raise ConnectionError("down")
        return value * 2

    strategy = RetryStrategy(sleep=sleeps, async_sleep=sleeps.async_sleep)
    assert asyncio.run(strategy.execute_async(work, 21)) == (True, 42, None)
    assert sleeps.waits == [1.0, 2.0]
    calls = -10
    with pytest.raises(UserFacingError) as info:
        asyncio.run(strategy.call_async(work, 1))
    assert len(info.value.attempts) == 3


def test_async_default_sleep_is_asyncio_sleep() -> None:
    """Without an injected async sleep, waits are awaited with asyncio.sleep (here, 0 s)."""
    strategy = RetryStrategy(initial_delay=0.0)
    assert strategy.async_sleep is asyncio.sleep
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TimeoutError()
        return "done"

    assert asyncio.run(strategy.call_async(work)) == "done"


def test_async_decorator(sleeps: Sleeps) -> None:
    """@strategy on an async function keeps it a coroutine function and retries it."""
    calls = 0

    @RetryStrategy(sleep=sleeps, async_sleep=sleeps.async_sleep)
    async def work(x: int) -> int:
        """Do async work."""
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TransientError("blip")
        return x

    assert inspect.iscoroutinefunction(work)
    assert str(inspect.signature(work)) == "(x: 'int') -> 'int'"
    assert asyncio.run(work(7)) == 7
    assert sleeps.waits == [1.0]


def test_signals_carry_one_frozen_record_each(sleeps: Sleeps) -> None:
    """fail, fail, succeed sends two retry_attempt records and one retry_succeeded."""
    errors = [ConnectionError("a"), ConnectionError("b")]
    strategy = RetryStrategy(sleep=sleeps)
    with capture_signals(sig.retry_attempt, sig.retry_succeeded, sig.retry_exhausted) as sent:
        strategy.execute(Flaky(*errors))
    assert [s.name for s in sent] == ["retry-attempt", "retry-attempt", "retry-succeeded"]
    first, second, done = (s.kwargs["details"] for s in sent)
    assert all(s.sender is strategy for s in sent)
    assert (first.attempt, first.delay, first.error, first.waited) == (1, 1.0, errors[0], 0.0)
    assert (second.attempt, second.delay, second.error, second.waited) == (2, 2.0, errors[1], 1.0)
    assert (done.attempt, done.error, done.waited, done.max_attempts) == (3, errors[1], 3.0, 3)
    assert "Flaky" in done.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.attempt = 9


def test_exhausted_signal(sleeps: Sleeps) -> None:
    """Running out of attempts sends retry_exhausted with reason "attempts"."""
    with capture_signals(sig.retry_exhausted, sig.retry_succeeded) as sent:
        RetryStrategy(max_attempts=2, sleep=sleeps).execute(Flaky(TimeoutError(), TimeoutError()))
    assert [s.name for s in sent] == ["retry-exhausted"]
    details: RetryDetails = sent[0].kwargs["details"]
    assert (details.attempt, details.reason) == (2, "attempts")


def test_no_signal_for_an_error_never_retried(sleeps: Sleeps) -> None:
    """A non-transient error on the first attempt is not a retry: no retry signal."""
    with capture_signals(sig.retry_attempt, sig.retry_succeeded, sig.retry_exhausted) as sent:
        RetryStrategy(sleep=sleeps).execute(Flaky(ValueError()))
    assert sent == []


def test_a_raising_receiver_does_not_break_the_retry(sleeps: Sleeps) -> None:
    """A signal receiver that raises is logged; the retry goes on."""

    def bad_receiver(sender: object, **kwargs: object) -> None:
        raise RuntimeError("receiver bug")

    with sig.retry_attempt.connected_to(bad_receiver):
        assert RetryStrategy(sleep=sleeps).execute(Flaky(ConnectionError())) == (True, "ok", None)


def test_no_retry_once_the_session_is_disconnected(manager: SessionManager, sleeps: Sleeps) -> None:
    """Inside a session, a failure after the session was disconnected is not retried."""
    manager.create_session("s1")

    def work() -> None:
        for _ in range(manager.policy.error_threshold):
            manager.record_error("s1", "elsewhere")
        raise ConnectionError("down")

    with session_scope(manager, "s1"), capture_signals(sig.retry_exhausted) as sent:
        success, _, err = RetryStrategy(sleep=sleeps).execute(work)
    assert not success
    assert sleeps.waits == []
    assert err is not None and len(err.attempts) == 1
    assert sent[0].kwargs["details"].reason == "session"
    assert sent[0].kwargs["details"].session_id == "s1"


def test_no_retry_once_the_session_expired(manager: SessionManager, clock: FakeClock, sleeps: Sleeps) -> None:
    """Inside a session, a failure after the session expired is not retried."""
    manager.create_session("s1")
    func = Flaky(ConnectionError(), ConnectionError())
    strategy = RetryStrategy(sleep=sleeps)
    with session_scope(manager, "s1"):
        assert strategy.execute(func)[0]  # a live session retries as usual
        clock.advance(manager.policy.timeout + 1)
        func = Flaky(ConnectionError())
        assert not strategy.execute(func)[0]
    assert func.calls == 1


def test_set_testing_removes_waits(sleeps: Sleeps) -> None:
    """In testing mode no wait happens; the mode is restored when the block ends."""
    strategy = RetryStrategy(sleep=sleeps)
    with set_testing():
        assert is_testing()
        func = Flaky(ConnectionError(), ConnectionError())
        assert strategy.execute(func)[0]
        assert func.calls == 3
    assert not is_testing()
    assert sleeps.waits == []


def test_set_testing_attempts_and_cap(sleeps: Sleeps) -> None:
    """attempts= sets every strategy's attempts; with cap=True it only lowers them."""
    strategy = RetryStrategy(max_attempts=3, sleep=sleeps)
    with set_testing(attempts=1):
        func = Flaky(ConnectionError())
        assert not strategy.execute(func)[0]
        assert func.calls == 1
    with set_testing(attempts=5):
        func = Flaky(*[ConnectionError() for _ in range(4)])
        assert strategy.execute(func)[0]
        assert func.calls == 5
    with set_testing(attempts=5, cap=True):
        func = Flaky(*[ConnectionError() for _ in range(4)])
        assert not strategy.execute(func)[0]
        assert func.calls == 3


def test_set_testing_nests_and_restores() -> None:
    """set_testing takes effect at once and, as a context manager, restores the previous mode."""
    set_testing(attempts=2)
    try:
        with set_testing(False):
            assert not is_testing()
        assert is_testing()
    finally:
        set_testing(False)
    with pytest.raises(ValueError, match="attempts"):
        set_testing(attempts=0)


def test_safe_execute_success_and_failure() -> None:
    """safe_execute returns (True, result, None) or (False, default_value, error)."""

    def divide(a: float, b: float) -> float:
        return a / b

    assert safe_execute(divide, 6, b=3) == (True, 2.0, None)
    success, result, error = safe_execute(divide, 1, 0, error_message="Could not divide", default_value=-1.0)
    assert (success, result) == (False, -1.0)
    assert error is not None
    assert str(error) == "Could not divide"
    assert isinstance(error.original, ZeroDivisionError)
    assert error.recovery


def test_safe_execute_keeps_the_translation_without_a_message() -> None:
    """Without error_message the translated message is kept; a UserFacingError is not changed."""
    success, _, error = safe_execute(Flaky(TimeoutError("slow")))
    assert not success and error is not None
    assert error.title == "Request timed out"
    own = UserFacingError("Original words")
    _, _, error = safe_execute(Flaky(own), error_message="New words")
    assert error is not None and str(error) == "New words"
    assert str(own) == "Original words"


def test_safe_execute_does_not_retry() -> None:
    """safe_execute calls the function once, even for a transient error."""
    func = Flaky(ConnectionError())
    assert not safe_execute(func)[0]
    assert func.calls == 1


def test_errors_follow_the_managers_debug_setting(clock: FakeClock, sleeps: Sleeps) -> None:
    """Inside a session of a debug manager, errors carry details; otherwise never."""
    manager = SessionManager(store="memory://", clock=clock, debug=True)
    manager.create_session("s1")
    with session_scope(manager, "s1"):
        _, _, error = safe_execute(Flaky(ValueError("secret detail")))
    assert error is not None and "secret detail" in str(error)
    _, _, error = safe_execute(Flaky(ValueError("secret detail")))
    assert error is not None and "secret detail" not in str(error)


# -- properties ------------------------------------------------------------------------------------

_delay = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(min_value=1, max_value=15),
    initial=_delay,
    factor=st.floats(min_value=1.0, max_value=10.0),
    cap=_delay,
    jitter=st.floats(min_value=0.0, max_value=5.0),
)
def test_schedule_properties(attempts: int, initial: float, factor: float, cap: float, jitter: float) -> None:
    """Waits never decrease before the cap, never exceed max_delay + jitter, calls <= max_attempts."""
    sleeps = Sleeps()
    strategy = RetryStrategy(
        max_attempts=attempts,
        initial_delay=initial,
        backoff_factor=factor,
        max_delay=cap,
        jitter=jitter,
        sleep=sleeps,
    )
    delays = strategy.delays
    assert len(delays) == attempts - 1
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert all(d <= cap for d in delays)
    func = Flaky(*[ConnectionError() for _ in range(attempts + 3)])
    success, _, error = strategy.execute(func)
    assert not success and error is not None
    assert func.calls == attempts
    assert len(error.attempts) == attempts
    assert all(wait <= cap + jitter for wait in sleeps.waits)
    assert all(wait > 0 for wait in sleeps.waits)  # a zero wait never calls sleep
    if jitter == 0:
        assert sleeps.waits == [d for d in delays if d > 0]


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(min_value=1, max_value=20),
    initial=st.floats(min_value=0.0, max_value=10.0),
    max_elapsed=st.floats(min_value=0.0, max_value=60.0),
    call_time=st.floats(min_value=0.0, max_value=5.0),
)
def test_max_elapsed_property(attempts: int, initial: float, max_elapsed: float, call_time: float) -> None:
    """Whatever the schedule and however long each call takes, no wait ends past the deadline."""
    clock = FakeClock(start=0.0)  # exact float arithmetic near zero
    sleeps = Sleeps(clock)
    start = clock()
    ends: list[float] = []

    def slow_failure() -> None:
        clock.advance(call_time)
        raise TimeoutError()

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        ends.append(clock())

    strategy = RetryStrategy(
        max_attempts=attempts, initial_delay=initial, max_elapsed=max_elapsed, sleep=sleep, clock=clock
    )
    assert not strategy.execute(slow_failure)[0]
    assert all(end - start <= max_elapsed + 1e-9 for end in ends)


def test_recover_counts_the_callers_call_as_the_first_attempt() -> None:
    """The first wait and attempt number follow the caller's call; success is reported once."""
    waits: list[float] = []
    strategy = RetryStrategy(max_attempts=3, initial_delay=1.0, sleep=waits.append)
    calls: list[int] = []

    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise TimeoutError("busy")
        return x * 10

    try:
        flaky(4)
    except TimeoutError as exc:
        first = exc
    with capture_signals(signals.retry_attempt, signals.retry_succeeded) as sent:
        outcome = strategy.recover(flaky, (4,), {}, first)
    assert (outcome, calls, waits) == ((True, 40, None), [4, 4, 4], [1.0, 2.0])
    details: list[RetryDetails] = [s.kwargs["details"] for s in sent]
    assert [(s.name, d.attempt) for s, d in zip(sent, details, strict=True)] == [
        ("retry-attempt", 1),
        ("retry-attempt", 2),
        ("retry-succeeded", 3),
    ]


def test_recover_measures_the_deadline_from_the_given_start() -> None:
    """A first call that used up the time leaves no room for a wait: no retry, every error kept."""
    clock = FakeClock()
    waits: list[float] = []
    strategy = RetryStrategy(
        max_attempts=3, initial_delay=1.0, max_elapsed=2.5, sleep=waits.append, clock=clock
    )
    start = clock()
    clock.advance(2.0)  # the caller's first call took 2 s; a 1 s wait would end at 3 s
    first = ConnectionError("down")
    success, result, error = strategy.recover(print, ("never",), {}, first, start=start)
    assert (success, result, waits) == (False, None, [])
    assert error is not None and error.attempts == (first,)


def test_recover_async_awaits_the_call_and_the_wait() -> None:
    """The async loop drives the same engine: one wait, then the awaited call succeeds."""
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    strategy = RetryStrategy(max_attempts=2, initial_delay=0.5, async_sleep=record_wait)

    async def fetch() -> str:
        return "fresh"

    outcome = asyncio.run(strategy.recover_async(fetch, (), {}, TimeoutError("slow")))
    assert (outcome, waits) == ((True, "fresh", None), [0.5])
