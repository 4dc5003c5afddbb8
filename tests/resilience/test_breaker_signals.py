"""A breaker's per-call outcome signals (issue 26): success, failure, slow, ignored and rejected,
each sent once per call with its payload on every path through a breaker, and nothing sent (not even
a call to ``send``) while nobody subscribes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from blinker import NamedSignal
from support.fakes import fresh_breaker_registry  # noqa: F401  (autouse: each test with a fresh registry)

from sessionmw import Breaker, BreakerState, RetryStrategy, SessionManager, guarded, signals
from sessionmw.testing import FakeClock, capture_signals, force_breaker

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
