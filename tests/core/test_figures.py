"""The figures read back from the counters: sums over a window of per-minute buckets, and the rates
derived from them (None where there is nothing to divide by)."""

from __future__ import annotations

import pytest

from sessionmw._figures import BUCKET_SECONDS, counters_for, stats
from sessionmw.stores._memory import MemoryStore
from sessionmw.stores.counters import MemoryCounters

#: A clock time at the start of a minute bucket.
NOW = 1_700_000_040.0
MINUTE = int(NOW // BUCKET_SECONDS)


def test_rates_are_derived_from_the_window_sums() -> None:
    counters = MemoryCounters()
    counters.add([MINUTE - 1], {"sessions.created": 3, "sessions.expired": 1, "retries.recovered": 1})
    counters.add([MINUTE], {"sessions.created": 1, "sessions.expired": 1, "retries.exhausted": 3})
    counters.add(
        [MINUTE], {"sessions.disconnected": 2, "sessions.reconnected": 2, "sessions.reconnect_failed": 1}
    )
    counters.add([MINUTE], {"latency.sum": 1.5, "latency.count": 3})
    figures = stats(counters, NOW, window=2 * BUCKET_SECONDS)
    assert figures.counts["sessions.created"] == 4
    assert figures.expiration_rate == 0.5
    assert figures.retry_recovery_rate == 0.25
    assert (figures.reconnect_rate, figures.reconnect_held_rate) == (1.0, 0.5)
    assert figures.mean_latency_seconds == 0.5


def test_buckets_before_the_window_are_left_out() -> None:
    counters = MemoryCounters()
    counters.add([MINUTE - 2], {"sessions.created": 5})
    counters.add([MINUTE - 1, MINUTE], {"sessions.created": 1})
    assert stats(counters, NOW, window=2 * BUCKET_SECONDS).counts == {"sessions.created": 2}


def test_session_hours_are_the_mean_live_sessions_of_each_minute() -> None:
    counters = MemoryCounters()
    counters.add([MINUTE], {"live.sum": 120, "live.samples": 2, "errors.total": 3})  # 60 live for a minute
    figures = stats(counters, NOW, window=BUCKET_SECONDS)
    assert figures.session_hours == 1.0
    assert figures.error_frequency_per_session_hour == 3.0


def test_nothing_to_divide_by_is_none_not_zero() -> None:
    figures = stats(MemoryCounters(), NOW)
    assert figures.counts == {}
    assert figures.expiration_rate is None
    assert figures.error_frequency_per_session_hour is None
    assert figures.retry_recovery_rate is None
    assert figures.as_dict()["reconnect_rate"] is None


def test_a_window_that_is_not_positive_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="window must be positive"):
        stats(MemoryCounters(), NOW, window=0)


def test_one_counter_backend_beside_each_store() -> None:
    store = MemoryStore()
    assert counters_for(store) is counters_for(store)
    assert counters_for(MemoryStore()) is not counters_for(store)
