"""Analytics counters and the Prometheus exposition, on the memory store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sessionmw import SessionManager, signals
from sessionmw.analytics import Analytics, stats
from sessionmw.metrics import instrument
from sessionmw.stores.counters import MemoryCounters
from sessionmw.testing import FakeClock

MINUTE = 60.0


@pytest.fixture(name="analytics")
def _analytics(manager: SessionManager) -> Iterator[Analytics]:
    """Analytics counting the test manager's events."""
    analytics = Analytics(manager).connect()
    yield analytics
    analytics.disconnect()


def script(manager: SessionManager, clock: FakeClock) -> None:
    """4 sessions: one expires, one ends, one disconnects and reconnects, one errs and recovers."""
    for name in ("a", "b", "c", "d"):
        manager.create_session(name)
    manager.end_session("b")
    for _ in range(5):
        manager.record_error("c", ConnectionError("refused"))
    manager.reconnect("c")
    manager.record_error("d", "plain message")
    manager.record_success("d")
    clock.advance(10 * MINUTE)
    manager.update_session_activity("c")
    manager.update_session_activity("d")
    clock.advance(25 * MINUTE)
    manager.sweep()  # a expired at 30 minutes; c and d were active 25 minutes ago


def test_counts_and_rates_from_a_scripted_life(
    manager: SessionManager, clock: FakeClock, analytics: Analytics
) -> None:
    """The counters match the script and the rates follow from them."""
    script(manager, clock)
    result = manager.stats(window=3600)
    counts = result.counts
    assert counts["sessions.created"] == 4
    assert counts["sessions.expired"] == 1
    assert counts["sessions.ended"] == 1
    assert counts["sessions.disconnected"] == 1
    assert counts["sessions.reconnected"] == 1
    assert counts["sessions.recovered"] == 1
    assert counts["errors.total"] == 6
    assert counts["errors.type.ConnectionError"] == 5
    assert counts["transitions.error.disconnected"] == 1
    assert result.expiration_rate == pytest.approx(1 / 4)
    assert result.reconnect_rate == 1.0
    assert result.retry_recovery_rate is None  # no retries happened
    assert result.session_hours > 0
    assert result.error_frequency_per_session_hour == pytest.approx(6 / result.session_hours)


def test_reconnects_that_held(manager: SessionManager, analytics: Analytics) -> None:
    """A reconnect followed by a success held; one followed by a new disconnection did not."""
    for name in ("held", "failed"):
        manager.create_session(name)
        for _ in range(5):
            manager.record_error(name, "backend down")
        manager.reconnect(name)
    manager.record_success("held")
    for _ in range(5):
        manager.record_error("held", "a new outage, after the success")  # the reconnect still held
        manager.record_error("failed", "still down")
    result = manager.stats()
    assert result.counts["sessions.reconnected"] == 2
    assert result.counts["sessions.reconnect_failed"] == 1
    assert result.reconnect_held_rate == 0.5


def test_window_excludes_older_buckets(
    manager: SessionManager, clock: FakeClock, analytics: Analytics
) -> None:
    """Events older than the window are not in it; the all-time totals keep them."""
    manager.create_session("old")
    clock.advance(2 * 3600)
    manager.create_session("new")
    assert manager.stats(window=3600).counts["sessions.created"] == 1
    assert manager.stats(window=3 * 3600).counts["sessions.created"] == 2


def test_retry_outcomes_are_counted(manager: SessionManager, analytics: Analytics) -> None:
    """retry signals feed attempts, recovered and exhausted, and the recovery rate."""
    for _ in range(3):
        signals.send(signals.retry_attempt, object(), details=None)
    signals.send(signals.retry_succeeded, object(), details=None)
    signals.send(signals.retry_exhausted, object(), details=None)
    signals.send(signals.retry_succeeded, object(), details=None)
    result = manager.stats()
    assert result.counts["retries.attempts"] == 3
    assert result.retry_recovery_rate == pytest.approx(2 / 3)


def test_session_hours_are_sampled_per_minute(clock: FakeClock) -> None:
    """Ten sessions live for 30 sampled minutes make 5 session-hours."""
    manager = SessionManager(store="memory://", clock=clock)
    analytics = Analytics(manager, MemoryCounters())
    for n in range(10):
        manager.create_session(f"s{n}")
    for _ in range(30):
        analytics.count(pings=1)
        clock.advance(MINUTE)
    assert stats(analytics.backend, clock(), 3600).session_hours == pytest.approx(5.0)


def test_window_must_be_positive(manager: SessionManager) -> None:
    """A zero or negative window is refused by name."""
    with pytest.raises(ValueError, match="window"):
        manager.stats(window=0)


def test_prometheus_exposition_parses_and_matches_counters(manager: SessionManager, clock: FakeClock) -> None:
    """The exposition parses with prometheus_client's parser and carries the counted figures."""
    registry = CollectorRegistry()
    analytics = instrument(manager, registry)
    try:
        script(manager, clock)
        analytics.observe_latency(0.02)
        analytics.observe_latency(3.0)
        text = generate_latest(registry).decode()
    finally:
        analytics.disconnect()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples["sessionmw_session_events_total", (("event", "created"),)] == 4
    assert samples["sessionmw_state_transitions_total", (("from", "error"), ("to", "disconnected"))] == 1
    assert samples["sessionmw_sessions", (("state", "active"),)] == 2  # c and d: idle, but not yet observed
    assert samples["sessionmw_sessions", (("state", "expired"),)] == 1
    assert samples["sessionmw_call_latency_seconds_count", ()] == 2
    assert samples["sessionmw_call_latency_seconds_bucket", (("le", "0.025"),)] == 1
    assert samples["sessionmw_call_latency_seconds_bucket", (("le", "+Inf"),)] == 2
    assert sum(v for (name, _), v in samples.items() if name == "sessionmw_errors_total") == 6
