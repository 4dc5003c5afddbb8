"""Prometheus metrics for sessionmw (extra ``[prometheus]``).

Every worker process serves the same figures: the collector reads the all-time counters that
:class:`sessionmw.analytics.Analytics` keeps **in the session store**, and the session gauges from
the store itself. So a multi-process gunicorn app needs no ``prometheus_client`` multiprocess mode:
scrape any worker and you get the totals of all of them.

.. code-block:: python

    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    instrument(manager, registry)
    print(generate_latest(registry).decode())
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sessionmw.metrics needs prometheus_client: pip install 'sessionmw[prometheus]'"
    ) from exc

from sessionmw._states import SessionState
from sessionmw.analytics import LATENCY_BOUNDS, TOTAL, Analytics, counters_for

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from sessionmw._manager import SessionManager
    from sessionmw.stores._base import SessionStore

__all__ = ["SessionCollector", "breaker_metrics", "instrument"]

_SESSION_EVENTS = (
    "created",
    "expired",
    "ended",
    "disconnected",
    "reconnected",
    "reconnect_failed",
    "recovered",
)


class SessionCollector(Collector):
    """Collects sessionmw's figures from the store at scrape time."""

    def __init__(self, manager: SessionManager, namespace: str = "sessionmw") -> None:
        self.manager = manager
        self.namespace = namespace

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families: one store read for the counters and one for the sessions
        by state (on Redis two round trips, on SQLite two queries, whatever the number of
        sessions)."""
        ns = self.namespace
        totals = counters_for(self.manager.store).read([TOTAL]).get(TOTAL, {})
        events = CounterMetricFamily(f"{ns}_session_events", "Session life-cycle events.", labels=["event"])
        for event in _SESSION_EVENTS:
            events.add_metric([event], totals.get(f"sessions.{event}", 0.0))
        yield events
        transitions = CounterMetricFamily(
            f"{ns}_state_transitions", "State changes by old and new state.", labels=["from", "to"]
        )
        for name, value in sorted(totals.items()):
            if name.startswith("transitions."):
                _, old, new = name.split(".", 2)
                transitions.add_metric([old, new], value)
        yield transitions
        states = GaugeMetricFamily(f"{ns}_sessions", "Sessions in the store by state.", labels=["state"])
        counts = _count_by_state(self.manager.store)
        for state in SessionState:
            states.add_metric([state.value], float(counts[state]))
        yield states
        errors = CounterMetricFamily(f"{ns}_errors", "Recorded errors by translated kind.", labels=["kind"])
        for name, value in sorted(totals.items()):
            if name.startswith("errors.kind."):
                errors.add_metric([name.removeprefix("errors.kind.")], value)
        yield errors
        yield CounterMetricFamily(
            f"{ns}_retry_attempts",
            "Retries made (attempts after the first).",
            value=totals.get("retries.attempts", 0.0),
        )
        outcomes = CounterMetricFamily(
            f"{ns}_retry_outcomes", "Retried calls by outcome.", labels=["outcome"]
        )
        for outcome in ("recovered", "exhausted"):
            outcomes.add_metric([outcome], totals.get(f"retries.{outcome}", 0.0))
        yield outcomes
        cumulative = [(f"{bound:g}", totals.get(f"latency.le.{bound:g}", 0.0)) for bound in LATENCY_BOUNDS]
        count = totals.get("latency.count", 0.0)
        yield HistogramMetricFamily(
            f"{ns}_call_latency_seconds",
            "Latency of calls measured by adapters.",
            buckets=[*cumulative, ("+Inf", count)],
            sum_value=totals.get("latency.sum", 0.0),
        )
        yield from breaker_metrics(self.manager.store, ns)


def breaker_metrics(store: SessionStore, namespace: str = "sessionmw") -> Iterator[Metric]:
    """The circuit breakers' families, from the store in one read: ``<ns>_breaker_state`` (1 for
    each breaker's current state, 0 for the others) and ``<ns>_breaker_calls`` by outcome
    (successful, failed, rejected, slow; a process's refusals and plain successes reach the store
    with its next round trip, so they may lag by ``state_ttl``), and for each breaker that keeps a
    window (``failure_rate`` or ``slow_call_duration``) with calls in it, ``<ns>_breaker_failure_rate``
    and ``<ns>_breaker_slow_call_rate`` over that window."""
    from sessionmw._breaker import breakers_for
    from sessionmw._breaker_table import BreakerState

    records = breakers_for(store).records()
    states = GaugeMetricFamily(
        f"{namespace}_breaker_state",
        "Circuit breaker state (1 for the current one).",
        labels=["breaker", "state"],
    )
    calls = CounterMetricFamily(
        f"{namespace}_breaker_calls",
        "Calls through a circuit breaker by outcome.",
        labels=["breaker", "outcome"],
    )
    rates = {
        kind: GaugeMetricFamily(
            f"{namespace}_breaker_{kind}",
            f"The {kind.replace('_', ' ')} over a circuit breaker's window of last calls.",
            labels=["breaker"],
        )
        for kind in ("failure_rate", "slow_call_rate")
    }
    for record in records:
        for state in BreakerState:
            states.add_metric([record.name, state.value], 1.0 if record.state is state else 0.0)
        calls.add_metric([record.name, "successful"], float(record.successful))
        calls.add_metric([record.name, "failed"], float(record.failed))
        calls.add_metric([record.name, "rejected"], float(record.rejected))
        calls.add_metric([record.name, "slow"], float(record.slow))
        failure_rate, slow_call_rate = record.window_rates()
        if failure_rate is not None and slow_call_rate is not None:  # (a window with calls in it)
            rates["failure_rate"].add_metric([record.name], failure_rate)
            rates["slow_call_rate"].add_metric([record.name], slow_call_rate)
    yield states
    yield calls
    yield from rates.values()


def _count_by_state(store: SessionStore) -> dict[SessionState, int]:
    """Every state's count: the store's ``count_by_state()`` in one read if it has one (the
    built-in stores do), else one ``count(state)`` per state."""
    census = getattr(store, "count_by_state", None)
    if callable(census):
        counts: dict[SessionState, int] = census()
        return counts
    return {state: store.count(state) for state in SessionState}


def instrument(
    manager: SessionManager, registry: CollectorRegistry | None = None, *, namespace: str = "sessionmw"
) -> Analytics:
    """Count ``manager``'s events and expose them to Prometheus through ``registry``.

    Returns the connected :class:`~sessionmw.analytics.Analytics` (disconnect it to stop counting).
    """
    analytics = Analytics(manager).connect()
    (REGISTRY if registry is None else registry).register(SessionCollector(manager, namespace))
    return analytics
