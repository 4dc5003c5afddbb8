"""Retry benchmark: ``@guarded`` and ``RetryStrategy`` against tenacity, stamina, backoff and pybreaker.

Run: .venv/bin/python bench/bench_retry.py
Every contender wraps the same trivial function in the same run. Two paths are timed:

- success: the function returns at once (the cost a wrapper adds to every call);
- retry: the function fails twice with ConnectionError, then succeeds, with every sleep removed
  (an injected no-op sleep where the library takes one; for stamina and backoff, which take no
  sleep function, the ``time.sleep`` they call is patched out; pybreaker, which does not retry,
  runs in a plain three-attempt loop).

Prints per-call medians (of interleaved timed rounds) and the ratios to the bare call and to each peer.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
import time
import types
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib import metadata

import backoff
import backoff._sync
import pybreaker
import stamina
import stamina.instrumentation
import tenacity
import tenacity.nap
import wrapt

from sessionmw import RetryStrategy, SessionManager, guarded, session_scope
from sessionmw.testing import FakeClock

ROUNDS = 15
SUCCESS_CALLS = 50_000
RETRY_CALLS = 5_000


def loop_time(func: Callable[[], object], calls: int) -> float:
    """Seconds per call over one timed loop of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        func()
    return (time.perf_counter() - start) / calls


def measure(
    contenders: dict[str, Callable[[], object]],
    calls: int,
    scopes: dict[str, Callable[[], AbstractContextManager[object]]] | None = None,
) -> dict[str, float]:
    """Median seconds per call of each contender over ROUNDS interleaved rounds.

    Each round times every contender once, so a burst of load from other processes hits all of
    them alike instead of one contender's whole measurement. A contender named in ``scopes`` is
    timed inside that context (entered once per loop, not per call).
    """
    scopes = scopes or {}
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, func in contenders.items():
            with scopes[name]() if name in scopes else contextlib.nullcontext():
                samples[name].append(loop_time(func, calls))
    return {name: statistics.median(times) for name, times in samples.items()}


def no_sleep(seconds: float) -> None:
    """The injected sleep: waits for nothing."""


def ok() -> int:
    """The trivial function."""
    return 1


def fail_twice() -> Callable[[], int]:
    """A function failing with ConnectionError on calls 1 and 2 of every three, succeeding on the third."""
    calls = 0

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls % 3:
            raise ConnectionError("flaky")
        return 1

    return flaky


def success_contenders() -> dict[str, Callable[[], object]]:
    """The success path: each wrapper around ``ok``."""

    @wrapt.decorator
    def pass_through(
        wrapped: Callable[[], int], instance: object, args: tuple[()], kwargs: dict[str, object]
    ) -> int:
        return wrapped(*args, **kwargs)

    return {
        "bare call": ok,
        "wrapt pass-through": pass_through(ok),
        "@guarded, no session": guarded(ok),
        "@guarded, memory session": guarded(ok),  # timed inside a session_scope, see main()
        "@RetryStrategy()": RetryStrategy()(ok),
        "tenacity @retry": tenacity.retry(stop=tenacity.stop_after_attempt(3), sleep=no_sleep)(ok),
        "stamina @retry": stamina.retry(on=ConnectionError, attempts=3)(ok),
        "backoff @on_exception": backoff.on_exception(backoff.expo, ConnectionError, max_tries=3)(ok),
        "pybreaker breaker": pybreaker.CircuitBreaker(fail_max=10**9)(ok),
    }


def retry_contenders() -> dict[str, Callable[[], object]]:
    """The retry path: fail, fail, succeed, with sleeps removed."""
    breaker = pybreaker.CircuitBreaker(fail_max=10**9)
    pybreaker_flaky = fail_twice()

    def pybreaker_loop() -> object:
        for attempt in range(3):
            try:
                return breaker.call(pybreaker_flaky)
            except ConnectionError:
                if attempt == 2:
                    raise
        return None

    strategy = RetryStrategy(sleep=no_sleep)
    execute_flaky = fail_twice()
    return {
        "@guarded(retry=no-op sleep)": guarded(retry=strategy)(fail_twice()),
        "RetryStrategy.execute": lambda: strategy.execute(execute_flaky),
        "tenacity @retry, no-op sleep": tenacity.retry(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_exponential(),
            retry=tenacity.retry_if_exception_type(ConnectionError),
            sleep=no_sleep,
        )(fail_twice()),
        "stamina @retry, sleep patched": stamina.retry(on=ConnectionError, attempts=3)(fail_twice()),
        "backoff @on_exception, sleep patched": backoff.on_exception(
            backoff.expo, ConnectionError, max_tries=3
        )(fail_twice()),
        "pybreaker, 3-attempt loop": pybreaker_loop,
    }


def report(title: str, results: dict[str, float], bare: float, ours: list[str], peers: list[str]) -> None:
    """Print µs per call, the ratio to the bare call, and each of ours against each peer."""
    print(f"\n{title}")
    print(f"{'contender':40} {'µs/call':>9} {'x bare call':>12}")
    for name, seconds in results.items():
        print(f"{name:40} {seconds * 1e6:9.3f} {seconds / bare:12.1f}")
    for name in ours:
        ratios = ", ".join(
            f"{peer.split()[0].rstrip(',')} {results[peer] / results[name]:.1f}x" for peer in peers
        )
        print(f"{name}: peers are slower by {ratios}")


def main() -> None:
    logging.disable(logging.CRITICAL)  # backoff and stamina log retries; nobody listens in this run
    stamina.instrumentation.set_on_retry_hooks([])
    fake_time = types.ModuleType("fake_time")
    fake_time.__dict__["sleep"] = no_sleep
    # backoff and stamina (through tenacity's default sleep) take no sleep function: patch it out.
    vars(backoff._sync)["time"] = fake_time
    vars(tenacity.nap)["time"] = fake_time

    clock = FakeClock()
    manager = SessionManager(store="memory://", clock=clock)
    session_id = manager.create_session().session_id
    success = measure(
        success_contenders(),
        SUCCESS_CALLS,
        {"@guarded, memory session": lambda: session_scope(manager, session_id)},
    )
    bare = success["bare call"]
    peers = ["tenacity @retry", "stamina @retry", "backoff @on_exception", "pybreaker breaker"]
    report("Success path (the function returns at once)", success, bare, ["@guarded, no session"], peers)
    overhead = (success["@guarded, no session"] - success["bare call"]) * 1e6
    print(f"@guarded outside a session adds {overhead:.3f} µs over the bare call")

    retry = measure(retry_contenders(), RETRY_CALLS)
    retry_peers = [
        "tenacity @retry, no-op sleep",
        "stamina @retry, sleep patched",
        "backoff @on_exception, sleep patched",
        "pybreaker, 3-attempt loop",
    ]
    report(
        "Retry path (fail, fail, succeed; no real sleep)",
        retry,
        bare,
        ["@guarded(retry=no-op sleep)", "RetryStrategy.execute"],
        retry_peers,
    )
    wrapt_version = metadata.version("wrapt")
    implementation = type(guarded(ok)).__module__
    print(f"\nPython {sys.version.split()[0]}, wrapt {wrapt_version} ({implementation})")


if __name__ == "__main__":
    main()
