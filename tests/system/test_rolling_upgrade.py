"""docs/stores.md, "During a rolling upgrade", measured with real processes on one real Redis: a cached
worker, an uncached one (``?cache=false``) and one that publishes nothing (a process of an older
sessionmw, from before the read cache) run side by side, each a spawned interpreter with its own
connections and its own fake clock, steered by the test over a pipe.

The bounds checked, from the cached worker's side: a change made by a process that publishes
(cached or not) is seen at once (once its message has arrived: the test waits for that event, not
for a time); a change made by a process that publishes nothing is answered from a copy until one
window (``activity_resolution_seconds``) after the cached worker last read the record from Redis,
not a moment longer, and at once where the worker holds no copy. The older process itself keeps
no copy and sees every change at once.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest
from support.processes import SPAWN

from sessionmw import SessionManager
from sessionmw.stores import store_from_url
from sessionmw.stores._redis import RedisStore
from sessionmw.testing import FakeClock

T0 = 1_700_000_000.0
WINDOW = 20.0
SETTINGS: dict[str, Any] = {
    "idle_after_seconds": 60.0,
    "session_timeout_minutes": 10.0,
    "max_error_threshold": 3,
    "activity_resolution_seconds": WINDOW,
}
#: The longest the test waits for a process's answer or a pub/sub message (an event, not a pause).
DEADLINE = 30.0

pytestmark = pytest.mark.usefixtures("spawn_importable")


def _invalidations(store: RedisStore) -> int:
    """The invalidations a cached store has read so far, subscribing first (the subscriber thread
    is started by the first request that finds no subscription; wait for it to finish)."""
    with store._cache_lock:
        store._current()
        subscriber = store._subscriber
    if subscriber is not None:
        subscriber.join(DEADLINE)
    with store._cache_lock:
        store._current()
        return store._invalidations


def _await_invalidations(store: RedisStore, mark: int, count: int) -> bool:
    """Wait until ``count`` invalidations after ``mark`` have reached the store (the messages
    themselves: select on the subscribed sockets, with a deadline)."""
    deadline = time.monotonic() + DEADLINE
    while _invalidations(store) < mark + count:
        remaining = deadline - time.monotonic()
        listeners = store._listeners
        if remaining <= 0 or listeners is None:
            return False
        socks: list[Any] = [listener._sock for listener in listeners if listener._sock is not None]
        select.select(socks, [], [], remaining)  # the message, not a pause
    return True


def _worker(url: str, role: str, pipe: Connection) -> None:
    """One process: a SessionManager on ``url`` as ``role`` (cached, uncached, older), answering
    the test's commands until it sends None."""
    store = store_from_url(url, cache=role == "cached")
    assert isinstance(store, RedisStore)
    if role == "older":
        store._channel = ""  # as a sessionmw from before the read cache: its scripts publish nothing
    clock = FakeClock(T0)
    manager = SessionManager(store=store, clock=clock, **SETTINGS)
    try:
        while (command := pipe.recv()) is not None:
            name, *args = command
            try:
                if name == "at":
                    clock.now = float(args[0])
                    reply: object = clock.now
                elif name == "create":
                    reply = manager.create_session().session_id
                elif name == "look":
                    report = manager.check_health(args[0])
                    reply = (report.status, report.state)
                elif name == "touch":
                    refusal = manager.touch_or_report(args[0])[1]
                    reply = None if refusal is None else refusal.state
                elif name == "end":
                    reply = manager.end_session(args[0])
                elif name == "errors":
                    for _ in range(SETTINGS["max_error_threshold"]):
                        manager.record_error(args[0], "boom")
                    reply = manager.check_health(args[0]).state
                elif name == "copied":
                    reply = store._cache is not None and args[0] in store._cache
                elif name == "mark":
                    reply = _invalidations(store)
                elif name == "await":
                    reply = _await_invalidations(store, int(args[0]), int(args[1]))
                else:
                    reply = ("failed", f"unknown command {name!r}")
            except Exception as exc:  # the test reports it; the process keeps serving
                reply = ("failed", f"{name}: {type(exc).__name__}: {exc}")
            pipe.send(reply)
    finally:
        manager.close()


class _Process:
    """A spawned worker process and the test's end of its pipe."""

    def __init__(self, url: str, role: str) -> None:
        self.role = role
        self.pipe, theirs = SPAWN.Pipe()
        self.process = SPAWN.Process(target=_worker, args=(url, role, theirs), name=f"sessionmw-{role}")
        self.process.start()
        theirs.close()

    def __call__(self, *command: object) -> Any:
        self.pipe.send(command)
        if not self.pipe.poll(DEADLINE):
            exit_code = self.process.exitcode
            pytest.fail(f"the {self.role} process did not answer {command!r} (exit code {exit_code})")
        reply = self.pipe.recv()
        assert not (isinstance(reply, tuple) and reply[:1] == ("failed",)), f"{self.role}: {reply}"
        return reply

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # it may be gone already
            self.pipe.send(None)
        self.process.join(DEADLINE)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(DEADLINE)
        self.pipe.close()


@pytest.fixture(name="processes")
def _processes(redis_url: str, redis_prefix: str) -> Iterator[dict[str, _Process]]:
    url = f"{redis_url}?prefix={redis_prefix}"
    started = {role: _Process(url, role) for role in ("cached", "uncached", "older")}
    yield started
    for process in started.values():
        process.stop()
    assert [p.process.exitcode for p in started.values()] == [0, 0, 0]


def _everyone_at(processes: dict[str, _Process], now: float) -> None:
    for process in processes.values():
        process("at", now)


def test_rolling_upgrade_cached_uncached_and_older_processes_side_by_side(
    processes: dict[str, _Process],
) -> None:
    cached, uncached, older = processes["cached"], processes["uncached"], processes["older"]
    _everyone_at(processes, T0)
    mark = cached("mark")
    names = ("by_uncached", "ended_by_older", "disconnected_by_older", "never_copied")
    sids = {name: cached("create") for name in names}
    assert cached("await", mark, len(names))  # the creates' own messages, before the copies are read
    for name in names[:3]:
        assert cached("look", sids[name]) == ("healthy", "active")  # read from Redis at T0: a copy
        assert cached("copied", sids[name])
    assert not cached("copied", sids["never_copied"])

    _everyone_at(processes, T0 + 1)
    mark = cached("mark")
    assert uncached("end", sids["by_uncached"])
    assert older("end", sids["ended_by_older"])
    assert older("errors", sids["disconnected_by_older"]) == "disconnected"
    assert older("end", sids["never_copied"])
    assert cached("await", mark, 1)  # the uncached process's message (the older one sends none)

    # A process of this version, cached or not, publishes: its change is seen at once.
    assert cached("look", sids["by_uncached"]) == ("expired", "ended")
    assert cached("touch", sids["by_uncached"]) == "ended"
    # No copy: the older process's change is read from Redis, at once.
    assert cached("look", sids["never_copied"]) == ("expired", "ended")
    # The older process has no cache: it sees everyone's changes at once.
    assert older("look", sids["by_uncached"]) == ("expired", "ended")

    # A copy read at T0: the older process's changes are answered from it until T0 + the window...
    _everyone_at(processes, T0 + WINDOW - 0.001)
    for name in ("ended_by_older", "disconnected_by_older"):
        assert cached("look", sids[name]) == ("healthy", "active")
        assert cached("touch", sids[name]) is None
        assert cached("copied", sids[name])
    # ... and not a moment longer: from T0 + the window the store decides.
    _everyone_at(processes, T0 + WINDOW)
    assert cached("look", sids["ended_by_older"]) == ("expired", "ended")
    assert cached("touch", sids["ended_by_older"]) == "ended"
    assert cached("look", sids["disconnected_by_older"]) == ("disconnected", "disconnected")
    assert cached("touch", sids["disconnected_by_older"]) == "disconnected"
    # An uncached process of this version never answers from a copy.
    assert uncached("look", sids["ended_by_older"]) == ("expired", "ended")
    assert not uncached("copied", sids["ended_by_older"])
