"""The async store path against the sync one: the cost of one request's store operation.

Run by hand: ``.venv/bin/python bench/bench_async_stores.py [--redis URL] [--quick]``. For each
store it times ``touch_or_report`` (the operation every request makes) called sync, and
``atouch_or_report`` awaited one after another on asyncio's loop and on trio's: the memory store
inline, SQLite in a worker thread, Redis on ``redis.asyncio`` (under trio in a worker thread),
and, to compare, the Redis store's sync call in a worker thread under asyncio. Each store runs
with its read cache (the common request within the renewal window makes no round trip) and with
``cache=false`` (every request reaches the store). Prints microseconds per operation and the
async/sync ratio (the figures in docs/benchmarks.md). Uses a unique key prefix on the Redis and a
temporary directory for SQLite, and cleans both up.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import redis

from sessionmw import SessionManager
from sessionmw.stores.aio import off_loop
from sessionmw.testing import FakeClock

ROUNDS = 5


def best_sync(call: Callable[[], Any], calls: int) -> float:
    """Microseconds per call: the best of ROUNDS timed runs (the least disturbed)."""
    for _ in range(min(calls, 200)):
        call()
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return min(times) * 1e6


def best_async(
    call: Callable[[], Awaitable[Any]], calls: int, backend: str, close: Callable[[], Awaitable[None]]
) -> float:
    """Microseconds per awaited call on ``backend``'s loop (one loop for all the rounds)."""

    async def main() -> float:
        for _ in range(min(calls, 200)):
            await call()
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(calls):
                await call()
            times.append((time.perf_counter() - start) / calls)
        await close()
        return min(times) * 1e6

    result: float = anyio.run(main, backend=backend)
    return result


def measure(name: str, url: str, calls: int, thread_too: bool) -> None:
    manager = SessionManager(store=url, clock=FakeClock())
    session_id = manager.create_session().session_id
    sync = best_sync(lambda: manager.touch_or_report(session_id), calls)
    row = [f"{sync:8.1f}"]
    for backend in ("asyncio", "trio"):
        awaited = best_async(lambda: manager.atouch_or_report(session_id), calls, backend, manager.aclose)
        row.append(f"{awaited:8.1f} ({awaited / sync:4.2f}x)")
    if thread_too:

        def in_thread() -> Awaitable[Any]:
            return off_loop(manager.touch_or_report, session_id)

        threaded = best_async(in_thread, calls, "asyncio", manager.aclose)
        row.append(f"{threaded:8.1f} ({threaded / sync:4.2f}x)")
    else:
        row.append("       -")
    print(f"| {name:<24} | " + " | ".join(row) + " |")
    manager.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    options = parser.parse_args()
    calls = 300 if options.quick else 3000
    prefix = f"bench-async-{secrets.token_hex(4)}"
    version = sys.version.split()[0]
    print(f"python {version}, {calls} calls a round, best of {ROUNDS} rounds, µs per operation")
    print("| store | sync | asyncio | trio | asyncio, sync call in a thread |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "sessions.db"
        measure("memory", "memory://", calls * 10, False)
        measure("SQLite", f"sqlite:///{db}", calls, False)
        measure("SQLite, cache=false", f"sqlite:///{db}?cache=false", calls, False)
    try:
        measure("Redis", f"{options.redis}?prefix={prefix}", calls, True)
        measure("Redis, cache=false", f"{options.redis}?prefix={prefix}&cache=false", calls, True)
    finally:
        client = redis.Redis.from_url(options.redis)
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            client.delete(key)
        client.close()


if __name__ == "__main__":
    main()
