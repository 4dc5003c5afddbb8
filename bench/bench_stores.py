"""Benchmark the SQLite and Redis stores against their bare clients, measured in the same run.

Run by hand: ``.venv/bin/python bench/bench_stores.py [--redis URL] [--quick]``. Prints calls per
second and ratios (the figures in docs/benchmarks.md). Uses a unique key prefix on the Redis and a
temporary directory for SQLite, and cleans both up.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.synchronize
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from sessionmw import SessionManager
from sessionmw._session import Policy, SessionRecord
from sessionmw.stores._redis import RedisStore
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.testing import FakeClock

T0 = 1_700_000_000.0
ROUNDS = 5


def rate(loop: Callable[[int], None], calls: int) -> float:
    """Calls per second of ``loop(calls)``: the best of ROUNDS timed runs (the least disturbed)."""
    loop(min(calls, 2000))  # warm up
    rates = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        loop(calls)
        rates.append(calls / (time.perf_counter() - start))
    return max(rates)


def paired(
    base: Callable[[int], None], loop: Callable[[int], None], calls: int
) -> tuple[float, float, float]:
    """Rates of ``base`` and ``loop`` timed in alternating short rounds, and the median of their ratios.

    Alternating keeps a change of load on the shared machine from landing on one side only:
    ``4 * ROUNDS`` rounds of ``calls / 4`` calls each.
    """
    calls = max(1, calls // 4)
    base(min(calls, 2000))
    loop(min(calls, 2000))
    base_rates, loop_rates, ratios = [], [], []
    for _ in range(4 * ROUNDS):
        start = time.perf_counter()
        base(calls)
        middle = time.perf_counter()
        loop(calls)
        end = time.perf_counter()
        base_rates.append(calls / (middle - start))
        loop_rates.append(calls / (end - middle))
        ratios.append((middle - start) / (end - middle))
    return max(base_rates), max(loop_rates), statistics.median(ratios)


def row(name: str, per_second: float, ratio: float | None = None) -> None:
    shown = "" if ratio is None else f"{ratio:14.2f}"
    print(f"{name:48s}{per_second:12,.0f}{1e6 / per_second:10.1f}{shown}")


def header(title: str, base_name: str) -> None:
    print(f"\n{title}\n{'operation':48s}{'calls/s':>12s}{'µs/call':>10s}{'x ' + base_name:>14s}")


# -- Redis ----------------------------------------------------------------------------------------


def bench_redis(url: str, calls: int) -> None:
    prefix = f"bench-{secrets.token_hex(4)}"
    client: Any = redis.Redis.from_url(url)  # untyped commands below (evalsha, script_load)
    key = f"{prefix}:bare"

    def bare_set(n: int) -> None:
        for _ in range(n):
            client.set(key, "x")

    sha = client.script_load("return 1")

    def bare_evalsha(n: int) -> None:
        for _ in range(n):
            client.evalsha(sha, 0)

    manager = SessionManager(store=f"{url}?prefix={prefix}", clock=FakeClock(T0))
    session_id = manager.create_session().session_id

    def touch(n: int) -> None:
        for _ in range(n):
            manager.update_session_activity(session_id)

    def health(n: int) -> None:
        for _ in range(n):
            manager.check_health(session_id)

    try:
        header(f"Redis ({url}), one process, one connection", "SET")
        base, floor, floor_ratio = paired(bare_set, bare_evalsha, calls)
        row("bare redis-py SET", base, 1.0)
        row("bare redis-py EVALSHA 'return 1'", floor, floor_ratio)
        base, touched, touch_ratio = paired(bare_set, touch, calls)
        row("update_session_activity (RedisStore)", touched, touch_ratio)
        base, checked, check_ratio = paired(bare_set, health, calls)
        row("check_health (RedisStore)", checked, check_ratio)
        print("(ratios: median over 20 short rounds that alternate with the SET loop)")
        manager.close()
        bench_sweep(
            "Redis", lambda: RedisStore.from_url(url, prefix=f"{prefix}-sweep-{secrets.token_hex(2)}")
        )
    finally:  # every key this run wrote starts with the prefix (sweep stores add a suffix)
        for pattern in (f"{prefix}*", f"{{{prefix}*"):
            keys = list(client.scan_iter(match=pattern, count=5000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        client.close()


# -- SQLite ---------------------------------------------------------------------------------------


def bench_sqlite(directory: Path, calls: int) -> None:
    bare_path = directory / "bare.db"
    conn = sqlite3.connect(bare_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v REAL)")
    conn.execute("INSERT INTO t VALUES ('a', 0)")

    def bare_update(n: int) -> None:
        for i in range(n):
            conn.execute("UPDATE t SET v = ? WHERE id = 'a'", (float(i),))

    url = f"sqlite:///{directory / 'sessions.db'}"
    manager = SessionManager(store=url, clock=FakeClock(T0))
    session_id = manager.create_session().session_id

    def touch(n: int) -> None:
        for _ in range(n):
            manager.update_session_activity(session_id)

    header("SQLite (WAL, synchronous=NORMAL)", "bare UPDATE")
    base, one, one_ratio = paired(bare_update, touch, calls)
    row("bare WAL UPDATE (autocommit)", base, 1.0)
    row("update_session_activity, 1 process", one, one_ratio)
    two = two_processes(url, calls)
    row("update_session_activity, 2 processes (total)", two, two / base)
    manager.close()
    conn.close()
    bench_sweep("SQLite", lambda: SQLiteStore(directory / f"sweep-{secrets.token_hex(2)}.db"))


def _touch_worker(url: str, calls: int, barrier: multiprocessing.synchronize.Barrier, out: Any) -> None:
    manager = SessionManager(store=url, clock=FakeClock(T0))
    session_id = manager.create_session().session_id
    barrier.wait()
    start = time.perf_counter()
    for _ in range(calls):
        manager.update_session_activity(session_id)
    out.put((start, time.perf_counter()))
    manager.close()


def two_processes(url: str, calls: int) -> float:
    """Total update_session_activity calls per second of two processes writing at once."""
    ctx = multiprocessing.get_context("spawn")
    results = []
    for _ in range(3):
        barrier = ctx.Barrier(2)
        out = ctx.Queue()
        procs = [ctx.Process(target=_touch_worker, args=(url, calls, barrier, out)) for _ in range(2)]
        for proc in procs:
            proc.start()
        spans = [out.get(timeout=300) for _ in procs]
        for proc in procs:
            proc.join()
        wall = max(end for _, end in spans) - min(start for start, _ in spans)
        results.append(2 * calls / wall)
    return float(statistics.median(results))


# -- sweep ----------------------------------------------------------------------------------------

POLICY = Policy()


def fill(store: SQLiteStore | RedisStore, ids: range, now: float, tag: str = "s") -> None:
    """Sessions ``<tag><i>`` for ``i`` in ``ids``, created at ``now``."""
    if isinstance(store, RedisStore):
        pipe = store._client.pipeline(transaction=False)
        for i in ids:
            record = SessionRecord.new(f"{tag}{i:07d}", now)
            args = [*store._args("create", now, POLICY), json.dumps(record.to_dict())]
            store._script(keys=store._keys(record.session_id), args=args, client=pipe)
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        return
    for i in ids:
        store.create(SessionRecord.new(f"{tag}{i:07d}", now), now, POLICY)


def bench_sweep(name: str, make: Callable[[], SQLiteStore | RedisStore]) -> None:
    """Sweep time with 1,000 due sessions among 10,000 and among 100,000 (best of 3 sweeps)."""
    print(f"\n{name}: sweep of 1,000 due sessions (best of 3)")
    times = {}
    for total in (10_000, 100_000):
        store = make()
        fill(store, range(total - 1000), T0 + POLICY.timeout / 2)  # not due
        best = float("inf")
        for attempt in range(3):
            fill(store, range(1000), T0, tag=f"due{attempt}-")  # due at the sweep below
            start = time.perf_counter()
            expired = store.sweep(T0 + POLICY.timeout + 1, POLICY, limit=10_000)
            best = min(best, time.perf_counter() - start)
            assert len(expired) == 1000, len(expired)
        times[total] = best
        print(f"  {total:>7,} sessions, 1,000 due: {best * 1000:8.1f} ms")
        cleanup(store)
    print(f"  ratio 100k / 10k: {times[100_000] / times[10_000]:.2f}")


def cleanup(store: SQLiteStore | RedisStore) -> None:
    if isinstance(store, RedisStore):
        keys = list(store._client.scan_iter(match=f"{{{store.prefix}:*", count=5000))
        for start in range(0, len(keys), 1000):
            store._client.delete(*keys[start : start + 1000])
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--redis", default=os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    parser.add_argument("--calls", type=int, default=20_000, help="calls per timed loop")
    parser.add_argument("--only", choices=["sqlite", "redis"], help="run one store's benchmarks")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, redis-py {redis.__version__}")
    print(f"{os.cpu_count()} cores; best of {ROUNDS} timed loops of {args.calls:,} calls")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    if args.only != "redis":
        with tempfile.TemporaryDirectory() as directory:
            bench_sqlite(Path(directory), args.calls)
    if args.only != "sqlite":
        bench_redis(args.redis, args.calls)


if __name__ == "__main__":
    main()
