"""Spawned processes for the multi-process tests (a fresh interpreter, as under gunicorn), and the
``sessionmw`` command run in a process of its own."""

from __future__ import annotations

import multiprocessing
import os
import queue
import subprocess
import sys
from collections.abc import Callable
from typing import Any

#: Processes for the multi-process tests: spawned (a fresh interpreter, as under gunicorn).
SPAWN = multiprocessing.get_context("spawn")


def collect(results: Any, count: int, processes: list[Any]) -> list[Any]:
    """``count`` results from the children; fails fast if one of them dies."""
    collected: list[Any] = []
    waited = 0.0
    while len(collected) < count:
        try:
            collected.append(results.get(timeout=1.0))
        except queue.Empty:
            waited += 1.0
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead or waited > 120:
                import pytest

                pytest.fail(f"worker processes failed (exit codes {dead}) or hung")
    return collected


def run_processes(target: Callable[..., None], url: str, count: int) -> list[Any]:
    """Run ``target(url, worker, barrier, results)`` in ``count`` spawned processes (``worker``
    from 0; a barrier of ``count``); return what each put on ``results``, in arrival order."""
    barrier = SPAWN.Barrier(count)
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(url, w, barrier, results)) for w in range(count)]
    for process in processes:
        process.start()
    try:
        collected = collect(results, count, processes)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * count
    return collected


def sessionmw_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sessionmw ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "sessionmw", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
