"""Core benchmark: the manager on the memory store, against a bare dict update in the same run.

Run: .venv/bin/python bench/bench_core.py
Prints per-call medians (of several timed repeats) and ratios, plus the heap used by live sessions.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

from blinker import Signal

from sessionmw import SessionManager, signals
from sessionmw.testing import FakeClock

CALLS = 200_000
REPEATS = 7


def per_call(func: Callable[[], object], calls: int = CALLS) -> float:
    """Median seconds per call over REPEATS timed loops."""
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def main() -> None:
    clock = FakeClock()
    manager = SessionManager(store="memory://", clock=clock)
    for n in range(1000):
        manager.create_session(f"s{n}")
    bare: dict[str, float] = {"s1": 0.0}

    def dict_update() -> None:
        bare["s1"] = 1.0

    results = {
        "bare dict update": per_call(dict_update),
        "update_session_activity": per_call(lambda: manager.update_session_activity("s1")),
        "check_health": per_call(lambda: manager.check_health("s1")),
        "record_error + record_success": per_call(
            lambda: (manager.record_error("s2", "x"), manager.record_success("s2")), CALLS // 4
        ),
    }
    empty, one = Signal(), Signal()
    one.connect(lambda sender, **kw: None, weak=False)
    results["blinker send, no receiver"] = per_call(lambda: empty.send("x"))
    results["blinker send, one receiver"] = per_call(lambda: one.send("x"))
    results["sessionmw signals.send, no receiver"] = per_call(
        lambda: signals.send(signals.activity, manager, session_id="s1")
    )

    base = results["bare dict update"]
    print(f"{'operation':40} {'µs/call':>9} {'x bare dict':>12}")
    for name, seconds in results.items():
        print(f"{name:40} {seconds * 1e6:9.3f} {seconds / base:12.1f}")

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    big = SessionManager(store="memory://", clock=clock)
    for _ in range(100_000):
        big.create_session()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    print(f"\n100,000 live sessions (memory store): {used / 1e6:.1f} MB of Python heap (tracemalloc)")
    print(f"per session: {used / 100_000:.0f} bytes")


if __name__ == "__main__":
    main()
