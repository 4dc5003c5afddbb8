"""RetryStrategy.recover and recover_async: going on after a first call the caller made itself."""

from __future__ import annotations

import asyncio

from sessionmw import RetryDetails, RetryStrategy, signals
from sessionmw.testing import FakeClock, capture_signals


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
