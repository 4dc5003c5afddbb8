"""Recovery policy: probe successes needed to close (pybreaker's success_threshold) and an open
period that grows after each failed probe (Resilience4j's exponential wait in the open state),
both kept in the store and so shared by every process."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fakes import fresh_breaker_registry  # noqa: F401  (autouse: each test with a fresh registry)

from sessionmw import Breaker, BreakerOpenError, BreakerState, ConfigurationError, SessionManager
from sessionmw.testing import FakeClock, force_breaker


def _fail() -> None:
    raise ConnectionError("still down")


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
        breaker.call(_fail)
    periods = [_refused_for(breaker)]
    for _ in range(4):
        clock.advance(periods[-1])
        with pytest.raises(ConnectionError):
            breaker.call(_fail)  # the probe fails
        periods.append(_refused_for(breaker))
    assert periods == [30.0, 60.0, 120.0, 200.0, 200.0]
    assert breaker.snapshot().reopens == 4
    clock.advance(200.0)
    breaker.call(lambda: None)  # the probe succeeds: closed
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert _refused_for(breaker) == 30.0 and breaker.snapshot().reopens == 0


def test_without_max_open_for_the_period_stays(manager: SessionManager, clock: FakeClock) -> None:
    breaker = Breaker("steady", manager=manager, failure_threshold=1, open_for=30.0)
    force_breaker(breaker, "open")
    for _ in range(3):
        clock.advance(30.0)
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
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
        breaker.call(_fail)
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
        here.call(_fail)
    clock.advance(10.0)
    with pytest.raises(ConnectionError):
        there.call(_fail)  # the probe, made by the other process, fails
    clock.advance(1.0)
    assert _refused_for(here) == 19.0  # 20 s from the failed probe, 1 s ago
    first.close()
    second.close()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_open_for": 10.0, "open_for": 30.0}, "max_open_for"),
        ({"max_open_for": 1e9}, "max_open_for"),
        ({"max_open_for": 60.0, "open_for_multiplier": 0.5}, "open_for_multiplier"),
        ({"success_threshold": 0}, "success_threshold"),
    ],
)
def test_bad_recovery_settings_are_named(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Breaker("bad", **kwargs)  # type: ignore[arg-type]
