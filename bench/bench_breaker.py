"""Breaker benchmark: a closed breaker's overhead per call, sessionmw's and its peers', in one run.

Run: .venv/bin/python bench/bench_breaker.py [--quick]
(the peers are in the ``bench`` extra: pybreaker, circuitbreaker, aiobreaker, purgatory)

Every contender wraps the same trivial function on the success path (a closed breaker, in-memory
state), timed in interleaved rounds:

- ``bare``: the function itself;
- ``Breaker.call``: ``breaker.call(work)``, a sessionmw ``Breaker`` on the memory store;
- ``Breaker.call slow``: the same with ``slow_call_duration`` (durations read: one clock read more);
- ``Breaker.decorate``: ``breaker.decorate(work)``;
- ``with Breaker``: ``with breaker: work()``;
- ``pybreaker``: ``pybreaker.CircuitBreaker()`` as a decorator;
- ``circuitbreaker``: ``@circuitbreaker.circuit``;
- ``aiobreaker``: ``aiobreaker.CircuitBreaker().call(work)``;
- ``purgatory``: ``SyncCircuitBreakerFactory()("name")`` as a decorator;
- ``guarded`` and ``guarded+breaker``: ``@guarded`` without and with ``breaker=``.

The target (issue 26): sessionmw's closed-state overhead (``Breaker.call - bare``) below each
peer's (``peer - bare``) in the same run. Prints the minimum and the median of the rounds per call,
each contender's overhead over ``bare`` (from the minimums), and whether the target is met.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import aiobreaker
import circuitbreaker
import pybreaker
from purgatory import SyncCircuitBreakerFactory

from sessionmw import Breaker, SessionManager, guarded

ROUNDS = 15
CALLS = 50_000
PEERS = ("pybreaker", "circuitbreaker", "aiobreaker", "purgatory")


def loop_time(func: Callable[[], object], calls: int) -> float:
    """Seconds per call over one timed loop of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        func()
    return (time.perf_counter() - start) / calls


def clock_read() -> float:
    """Nanoseconds per ``time.monotonic()`` call, the least of a few loops."""
    return min(loop_time(time.monotonic, 100_000) for _ in range(5)) * 1e9


def contenders(breaker: Breaker, timed: Breaker) -> dict[str, Callable[[], object]]:
    def work() -> int:
        return 1

    def through_call() -> int:
        return breaker.call(work)

    def through_timed() -> int:
        return timed.call(work)

    def through_with() -> int:
        with breaker:
            return work()

    peer_aio = aiobreaker.CircuitBreaker()

    def through_aiobreaker() -> object:
        return peer_aio.call(work)

    return {
        "bare": work,
        "Breaker.call": through_call,
        "Breaker.call slow": through_timed,
        "Breaker.decorate": breaker.decorate(work),
        "with Breaker": through_with,
        "pybreaker": pybreaker.CircuitBreaker()(work),
        "circuitbreaker": circuitbreaker.circuit(work),
        "aiobreaker": through_aiobreaker,
        "purgatory": SyncCircuitBreakerFactory()("bench")(work),
        "guarded": guarded(work),
        "guarded+breaker": guarded(breaker=breaker)(work),
    }


def main(argv: list[str]) -> None:
    rounds, calls = (3, 10_000) if "--quick" in argv else (ROUNDS, CALLS)
    manager = SessionManager(store="memory://")
    breaker = Breaker("bench", manager=manager, state_ttl=60.0)
    timed = Breaker("bench-slow", manager=manager, state_ttl=60.0, slow_call_duration=1.0)
    racers = contenders(breaker, timed)
    samples: dict[str, list[float]] = {name: [] for name in racers}
    for _ in range(rounds):
        for name, func in racers.items():
            samples[name].append(loop_time(func, calls))
    fastest = {name: min(values) * 1e9 for name, values in samples.items()}
    median = {name: statistics.median(values) * 1e9 for name, values in samples.items()}
    print(f"{'contender':18} {'min ns':>8} {'median ns':>10} {'overhead ns':>12}")
    for name in racers:
        overhead = fastest[name] - fastest["bare"]
        print(f"{name:18} {fastest[name]:8.0f} {median[name]:10.0f} {overhead:12.0f}")
    ours = fastest["Breaker.call"] - fastest["bare"]
    theirs = {peer: fastest[peer] - fastest["bare"] for peer in PEERS}
    print(
        f"Breaker.call overhead {ours:.0f} ns; peers: "
        + ", ".join(f"{peer} {value:.0f} ns ({value / ours:.1f}x)" for peer, value in theirs.items())
    )
    slow = fastest["Breaker.call slow"] - fastest["Breaker.call"]
    print(f"slow_call_duration adds {slow:.0f} ns (one monotonic clock read: {clock_read():.0f} ns)")
    added = fastest["guarded+breaker"] - fastest["guarded"]
    print(f"breaker added to @guarded: {added:.0f} ns")
    print("target met" if all(ours < value for value in theirs.values()) else "target NOT met")
    manager.close()


if __name__ == "__main__":
    main(sys.argv[1:])
