"""Staleness benchmark: how long after a state change in one process another process sees it.

Run: .venv/bin/python bench/bench_staleness.py [--changes N] [--no-cache]

Two processes share a store (a SQLite file in a temporary folder; Redis at 127.0.0.1:6379
database 15, or SESSIONMW_TEST_REDIS_URL, under a unique key prefix deleted afterwards). The
changer alternates a session between disconnected (one error, the threshold being 1) and active
(a reconnect); the watcher asks for the session's health in a tight loop, as requests would, with
its read cache filled. For each change: the time from the return of the changing call to the
watcher's first answer that shows it (``time.monotonic``, one clock for both processes). A
negative figure means the watcher saw the change before the changing call had returned to its
caller. Prints the median, 99th percentile and maximum per store, and how many of the watcher's
health checks made a store round trip (Redis: counted at the script call).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from typing import Any

REDIS_URL = os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SETTINGS: dict[str, Any] = {"max_error_threshold": 1}


def _watch(url: str, sid: str, changes: int, cache: bool, pipe: Any) -> None:
    """The watcher: polls the session's health; reports when each change became visible."""
    from sessionmw import SessionManager
    from sessionmw.stores import store_from_url

    store = store_from_url(url, cache=cache)
    manager = SessionManager(store=store, **SETTINGS)
    trips = [0]
    evalsha = getattr(store, "_evalsha", None)
    if evalsha is not None:

        def counted(*args: Any) -> Any:
            trips[0] += 1
            return evalsha(*args)

        store._evalsha = counted  # type: ignore[attr-defined]
    polls = 0
    state = manager.check_health(sid).state
    pipe.send("ready")
    seen: list[float] = []
    while len(seen) < changes:
        now_state = manager.check_health(sid).state
        polls += 1
        if now_state != state:
            seen.append(time.monotonic())
            state = now_state
            pipe.send(("seen", len(seen)))
    pipe.send((seen, polls, trips[0]))
    manager.close()


def measure(url: str, changes: int, cache: bool) -> tuple[list[float], int, int]:
    """Delays (seconds) from each change's return to its visibility in the other process."""
    from sessionmw import SessionManager
    from sessionmw.stores import store_from_url

    manager = SessionManager(store=store_from_url(url, cache=cache), **SETTINGS)
    sid = manager.create_session().session_id
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    watcher = context.Process(target=_watch, args=(url, sid, changes, cache, there))
    watcher.start()
    assert here.recv() == "ready"
    done: list[float] = []
    try:
        for n in range(changes):
            if n % 2 == 0:
                manager.record_error(sid, "benchmark")  # active -> disconnected
            else:
                manager.reconnect(sid)  # disconnected -> active
            done.append(time.monotonic())
            assert here.recv() == ("seen", n + 1)
        seen, polls, trips = here.recv()
    finally:
        watcher.join(timeout=30)
        manager.delete_session(sid)
        manager.close()
    return [s - d for s, d in zip(seen, done, strict=True)], polls, trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--no-cache", action="store_true", help="the stores without their read caches")
    args = parser.parse_args()
    cache = not args.no_cache
    with tempfile.TemporaryDirectory() as folder:
        urls = {
            "SQLite": f"sqlite:///{os.path.join(folder, 'sessions.db')}",
            "Redis": f"{REDIS_URL}?prefix=bench-stale-{secrets.token_hex(4)}",
        }
        print(
            f"{args.changes} state changes per store, read cache {'on' if cache else 'off'}"
            f" (Python {sys.version.split()[0]}); visibility after the changing call returned"
        )
        columns = ["median µs", "p99 µs", "max µs", "polls", "round trips"]
        print(f"| {'store':<8} | " + " | ".join(columns) + " |")
        print("|" + "-" * 10 + "|" + "|".join("-" * (len(c) + 1) + ":" for c in columns) + "|")
        for name, url in urls.items():
            delays, polls, trips = measure(url, args.changes, cache)
            delays.sort()
            p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
            shown_trips = f"{trips}" if name == "Redis" else "-"
            cells = [f"{statistics.median(delays) * 1e6:.0f}", f"{p99 * 1e6:.0f}", f"{delays[-1] * 1e6:.0f}"]
            cells += [str(polls), shown_trips]
            padded = [f"{value:>{len(column)}}" for value, column in zip(cells, columns, strict=True)]
            print(f"| {name:<8} | " + " | ".join(padded) + " |")


if __name__ == "__main__":
    main()
