"""Breaker benchmark: what a closed breaker adds to ``@guarded``, side by side with pybreaker's own
in-memory overhead, in one run.

Run: .venv/bin/python bench/bench_breaker.py [--quick]

Four contenders wrap the same trivial function on the success path (a closed breaker):

- ``bare``: the function itself;
- ``guarded``: ``@guarded`` (no session scope, default retry);
- ``guarded+breaker``: ``@guarded(breaker=Breaker(...))`` on the memory store;
- ``pybreaker``: ``pybreaker.CircuitBreaker()`` as a decorator (in-memory state).

The target: ``guarded+breaker - guarded`` (our breaker's cost) < ``pybreaker - bare`` (pybreaker's).
Prints per-call medians of interleaved rounds.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import pybreaker

from sessionmw import Breaker, SessionManager, guarded

ROUNDS = 15
CALLS = 50_000


def loop_time(func: Callable[[], object], calls: int) -> float:
    """Seconds per call over one timed loop of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        func()
    return (time.perf_counter() - start) / calls


def main(argv: list[str]) -> None:
    rounds, calls = (3, 10_000) if "--quick" in argv else (ROUNDS, CALLS)
    manager = SessionManager(store="memory://")
    breaker = Breaker("bench", manager=manager)

    def work() -> int:
        return 1

    contenders: dict[str, Callable[[], object]] = {
        "bare": work,
        "guarded": guarded(work),
        "guarded+breaker": guarded(breaker=breaker)(work),
        "pybreaker": pybreaker.CircuitBreaker()(work),
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, func in contenders.items():
            samples[name].append(loop_time(func, calls))
    median = {name: statistics.median(values) * 1e9 for name, values in samples.items()}
    for name, nanoseconds in median.items():
        print(f"{name:16} {nanoseconds:8.0f} ns/call")
    ours = median["guarded+breaker"] - median["guarded"]
    theirs = median["pybreaker"] - median["bare"]
    print(f"breaker added to @guarded: {ours:.0f} ns; pybreaker's own overhead: {theirs:.0f} ns")
    print("target met" if ours < theirs else "target NOT met")
    manager.close()


if __name__ == "__main__":
    main(sys.argv[1:])
