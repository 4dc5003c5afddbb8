"""Breakers the breaker tests share: a failing call, a breaker on a time window and one that
counts slow calls, and calls made through them on a :class:`~sessionmw.testing.FakeClock`."""

from __future__ import annotations

from typing import Any

import pytest

from sessionmw import Breaker, SessionManager
from sessionmw.testing import FakeClock

#: A start time for fake clocks (a whole second, as the time window's buckets name them).
START = 1_700_000_000


def fail() -> None:
    """A call to a dependency that is down."""
    raise ConnectionError("backend down")


def timed_breaker(manager: SessionManager, **kwargs: Any) -> Breaker:
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


def calls(breaker: Breaker, successes: int = 0, failures: int = 0) -> None:
    """Successes, then failures, all at the clock's present second (the successes reach the store
    with a read, as they would with the process's next round trip)."""
    for _ in range(successes):
        breaker.call(lambda: None)
    if successes:
        breaker.snapshot()
    for _ in range(failures):
        with pytest.raises(ConnectionError):
            breaker.call(fail)


def slow_breaker(manager: SessionManager, **kwargs: Any) -> Breaker:
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


def work(clock: FakeClock, seconds: float) -> str:
    """A call that takes ``seconds`` on ``clock``."""
    clock.advance(seconds)
    return "done"
