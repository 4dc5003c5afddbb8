"""The figures: counters read back over a window, and the rates derived from them.

:func:`counters_for` finds the :class:`~sessionmw.stores.counters.CounterBackend` beside a store;
:func:`stats` reads a window of its per-minute buckets and derives the seed's figures:
expiration rate, error frequency per session-hour and recovery rates.
:class:`sessionmw.analytics.Analytics` writes the counters; the manager, the CLI and the
Prometheus collector read them.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from sessionmw.stores._base import SessionStore
from sessionmw.stores._beside import Beside, beside
from sessionmw.stores.counters import CounterBackend, CountingStore, MemoryCounters

__all__ = ["BUCKET_SECONDS", "TOTAL", "Stats", "counters_for", "stats"]

#: The bucket number that holds all-time totals (never expires).
TOTAL = 0
#: Seconds per bucket.
BUCKET_SECONDS = 60


def _counters_of(store: SessionStore) -> CounterBackend:
    return store.counters() if isinstance(store, CountingStore) else MemoryCounters()


_COUNTERS: Beside[CounterBackend] = Beside(_counters_of)


def counters_for(store: SessionStore) -> CounterBackend:
    """The counter backend that lives beside ``store`` (one per store object)."""
    return beside(store, _COUNTERS)


@dataclasses.dataclass(frozen=True)
class Stats:
    """Counters over a window, with the derived rates (None where there is nothing to divide by)."""

    window_seconds: float
    counts: dict[str, float]
    #: Expired sessions / created sessions in the window.
    expiration_rate: float | None
    #: Errors per session-hour (session-hours sampled once a minute per process).
    error_frequency_per_session_hour: float | None
    #: Retried calls that ended in success / retried calls that ended at all.
    retry_recovery_rate: float | None
    #: Reconnects / disconnections in the window.
    reconnect_rate: float | None
    #: Reconnects that held (no new disconnection before a success) / reconnects.
    reconnect_held_rate: float | None
    #: Mean latency of measured calls, in seconds.
    mean_latency_seconds: float | None
    session_hours: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)


def _ratio(top: float, bottom: float) -> float | None:
    return None if bottom <= 0 else top / bottom


def stats(backend: CounterBackend, now: float, window: float = 3600.0) -> Stats:
    """The counters of the last ``window`` seconds up to ``now`` and their rates."""
    if window <= 0:
        raise ValueError(f"window must be positive, not {window!r}")
    last = int(now // BUCKET_SECONDS)
    first = last - max(1, round(window / BUCKET_SECONDS)) + 1
    counts: dict[str, float] = defaultdict(float)
    session_hours = 0.0
    for values in backend.read(range(max(first, 1), last + 1)).values():
        for name, value in values.items():
            counts[name] += value
        if values.get("live.samples"):  # that minute's mean live sessions, for one minute
            session_hours += values.get("live.sum", 0.0) / values["live.samples"] / 60.0
    c = counts.get
    retried_done = c("retries.recovered", 0.0) + c("retries.exhausted", 0.0)
    return Stats(
        window_seconds=window,
        counts=dict(sorted(counts.items())),
        expiration_rate=_ratio(c("sessions.expired", 0.0), c("sessions.created", 0.0)),
        error_frequency_per_session_hour=_ratio(c("errors.total", 0.0), session_hours),
        retry_recovery_rate=_ratio(c("retries.recovered", 0.0), retried_done),
        reconnect_rate=_ratio(c("sessions.reconnected", 0.0), c("sessions.disconnected", 0.0)),
        reconnect_held_rate=_ratio(
            max(0.0, c("sessions.reconnected", 0.0) - c("sessions.reconnect_failed", 0.0)),
            c("sessions.reconnected", 0.0),
        ),
        mean_latency_seconds=_ratio(c("latency.sum", 0.0), c("latency.count", 0.0)),
        session_hours=session_hours,
    )
