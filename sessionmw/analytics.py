"""Analytics: counters kept in the store, fed by the signals, so totals cover every process.

:class:`Analytics` subscribes to a manager's signals and adds each event to a per-minute bucket
and to an all-time total in a :class:`CounterBackend` that lives beside the sessions (memory,
SQLite or Redis). :func:`stats` (from :mod:`sessionmw._figures`) reads a window of buckets back
and derives the seed's figures: expiration rate, error frequency per session-hour and recovery
rates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sessionmw import signals
from sessionmw._figures import BUCKET_SECONDS, TOTAL, Stats, counters_for, stats
from sessionmw._states import SessionState
from sessionmw.stores.counters import CounterBackend
from sessionmw.translation import translate

if TYPE_CHECKING:
    from sessionmw._manager import SessionManager
    from sessionmw._session import SessionRecord

__all__ = ["TOTAL", "Analytics", "Stats", "counters_for", "stats"]

#: Upper bounds (seconds) of the latency histogram's buckets.
LATENCY_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


_STATE_COUNTER = {
    SessionState.EXPIRED: "sessions.expired",
    SessionState.ENDED: "sessions.ended",
    SessionState.DISCONNECTED: "sessions.disconnected",
}


class Analytics:
    """Counts a manager's events into the counter backend beside its store.

    Call :meth:`connect` to start counting (and :meth:`disconnect` to stop). Activity is not
    counted (it is far too frequent to be worth a write); requests the adapters time
    (``request_finished``) feed the latency histogram.
    """

    def __init__(self, manager: SessionManager, backend: CounterBackend | None = None) -> None:
        self.manager = manager
        #: Where the counts go.
        self.backend = backend if backend is not None else counters_for(manager.store)
        self._sampled_bucket = -1
        self._connected: list[tuple[Any, Any, Any]] = []

    def connect(self) -> Analytics:
        """Start counting; returns self."""
        pairs: list[tuple[Any, Any, Any]] = [
            (signals.session_created, self._on_created, self.manager),
            (signals.state_changed, self._on_state_changed, self.manager),
            (signals.error_recorded, self._on_error, self.manager),
            (signals.request_finished, self._on_request_finished, self.manager),
            (signals.retry_attempt, self._on_retry_attempt, None),
            (signals.retry_succeeded, self._on_retry_succeeded, None),
            (signals.retry_exhausted, self._on_retry_exhausted, None),
        ]
        for signal, receiver, sender in pairs:
            if sender is None:
                signal.connect(receiver, weak=False)
            else:
                signal.connect(receiver, sender=sender, weak=False)
            self._connected.append((signal, receiver, sender))
        self._mark_counting()
        return self

    def _mark_counting(self) -> None:
        """Add to the all-time bucket that a process counts (``sessionmw stats`` tells zeros from
        nobody counting); a store failure here is not the app's problem."""
        from sessionmw._errors import StoreError

        with contextlib.suppress(StoreError):
            self.backend.add((TOTAL,), {"analytics.connected": 1.0})

    def disconnect(self) -> None:
        """Stop counting."""
        for signal, receiver, _sender in self._connected:
            # From every sender: blinker keeps a receiver disconnected from one sender listed.
            signal.disconnect(receiver)
        self._connected.clear()

    def count(self, **counts: float) -> None:
        """Add ``counts`` (dots may be written as ``__``) to this minute and the total."""
        self.add({name.replace("__", "."): value for name, value in counts.items()})

    def add(self, counts: Mapping[str, float]) -> None:
        """Add ``counts`` to this minute's bucket and to the total."""
        bucket = int(self.manager.clock() // BUCKET_SECONDS)
        counts = dict(counts)
        if bucket != self._sampled_bucket:  # once a minute per process: how many sessions live
            self._sampled_bucket = bucket
            counts["live.sum"] = counts.get("live.sum", 0.0) + self.manager.session_count()
            counts["live.samples"] = counts.get("live.samples", 0.0) + 1
        self.backend.add((bucket, TOTAL), counts)

    def observe_latency(self, seconds: float) -> None:
        """Add one measured call of ``seconds`` to the latency histogram."""
        counts = {"latency.count": 1.0, "latency.sum": seconds}
        for bound in LATENCY_BOUNDS:
            if seconds <= bound:
                counts[f"latency.le.{bound:g}"] = 1.0
        self.add(counts)

    def stats(self, window: float = 3600.0) -> Stats:
        """The figures of the last ``window`` seconds."""
        return stats(self.backend, self.manager.clock(), window)

    # -- receivers -------------------------------------------------------------------------------

    def _on_created(self, sender: Any, **_: Any) -> None:
        self.add({"sessions.created": 1.0})

    def _on_state_changed(
        self,
        sender: Any,
        *,
        old: SessionState,
        new: SessionState,
        reason: str,
        session: SessionRecord | None = None,
        **_: Any,
    ) -> None:
        counts = {f"transitions.{old.value}.{new.value}": 1.0}
        name = _STATE_COUNTER.get(new)
        if new is SessionState.DISCONNECTED and session is not None and session.reconnected_at is not None:
            counts["sessions.reconnect_failed"] = 1.0  # disconnected again before any success
        if name is None and new is SessionState.ACTIVE:
            if reason == "reconnect" and old is SessionState.DISCONNECTED:
                name = "sessions.reconnected"
            elif old is SessionState.ERROR:
                name = "sessions.recovered"
        if name is not None:
            counts[name] = 1.0
        self.add(counts)

    def _on_error(self, sender: Any, *, error: BaseException | str, **_: Any) -> None:
        counts = {"errors.total": 1.0, f"errors.kind.{_kind_of(error)}": 1.0}
        if isinstance(error, BaseException):
            counts[f"errors.type.{type(error).__name__}"] = 1.0
        self.add(counts)

    def _on_request_finished(self, sender: Any, *, seconds: float, **_: Any) -> None:
        self.observe_latency(seconds)

    def _on_retry_attempt(self, sender: Any, **_: Any) -> None:
        self.add({"retries.attempts": 1.0})

    def _on_retry_succeeded(self, sender: Any, **_: Any) -> None:
        self.add({"retries.recovered": 1.0})

    def _on_retry_exhausted(self, sender: Any, **_: Any) -> None:
        self.add({"retries.exhausted": 1.0})


def _kind_of(error: BaseException | str) -> str:
    """The translated kind of an error: its user-facing title, as a counter-name-safe slug."""
    if isinstance(error, str):
        return "message"
    title = translate(error).title
    return "".join(ch if ch.isalnum() else "_" for ch in title.lower()).strip("_") or "error"
