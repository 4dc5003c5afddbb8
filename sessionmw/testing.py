"""Helpers for tests, ours and our users': a clock you move by hand, a signal recorder, and
:func:`set_testing`, which takes every real wait out of retries.

.. code-block:: python

    clock = FakeClock()
    manager = SessionManager(clock=clock)
    manager.create_session("s1")
    with capture_signals() as sent:
        clock.advance(31 * 60)
        manager.check_health("s1")
    assert [s.name for s in sent] == ["state-changed", "session-expired"]
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from blinker import NamedSignal

from sessionmw import signals as _signals
from sessionmw._breaker import Breaker
from sessionmw._breaker_table import BreakerOp, BreakerRecord, BreakerState
from sessionmw._retry import is_testing, set_testing

__all__ = ["FakeClock", "SentSignal", "capture_signals", "force_breaker", "is_testing", "set_testing"]


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it. Pass it as ``clock=``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        #: The current time in seconds.
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (not backward) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a FakeClock only moves forward, not by {seconds!r} seconds")
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"


@dataclasses.dataclass(frozen=True)
class SentSignal:
    """One signal seen by :func:`capture_signals`."""

    name: str
    sender: Any
    kwargs: dict[str, Any]


def _all_signals() -> list[NamedSignal]:
    return [value for name in _signals.__all__ if isinstance(value := getattr(_signals, name), NamedSignal)]


@contextlib.contextmanager
def capture_signals(*which: NamedSignal) -> Iterator[list[SentSignal]]:
    """Record the signals sent inside the ``with`` block (default: all of sessionmw's), in order."""
    sent: list[SentSignal] = []
    with contextlib.ExitStack() as stack:
        for signal in which or _all_signals():

            def receiver(sender: Any, _name: str = signal.name, **kwargs: Any) -> None:
                sent.append(SentSignal(_name, sender, kwargs))

            stack.enter_context(signal.connected_to(receiver))
        yield sent


def force_breaker(breaker: Breaker, state: BreakerState | str) -> BreakerRecord:
    """Put ``breaker`` in ``state`` in its store, as if its calls had got it there, and return its
    record. OPEN opens it for its ``open_for`` from the breaker's clock (move a
    :class:`FakeClock` past it and the next call is the probe); HALF_OPEN is the moment after: a
    probe is out (as if another worker were making it), so calls are refused until it reports or
    ``open_for`` passes again."""
    wanted = BreakerState(state)
    now = breaker.clock()
    if wanted is BreakerState.FORCED_OPEN:
        return breaker.force_open()
    if wanted is BreakerState.DISABLED:
        return breaker.disable()
    breaker.close()
    if wanted is BreakerState.CLOSED:
        return breaker.snapshot()
    opened_at = now - breaker.config.open_for if wanted is BreakerState.HALF_OPEN else now
    for _ in range(breaker.config.failure_threshold):
        breaker._apply(BreakerOp.FAILURE, opened_at)
    if wanted is BreakerState.HALF_OPEN:
        breaker._apply(BreakerOp.ADMIT, now)
    return breaker.snapshot()
