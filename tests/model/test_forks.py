"""Fork safety: after os.fork a child never uses a lock or connection its parent held (SQLite, memory,
Redis, the module locks), and a memory store used across a fork warns once, naming the fix."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from support.stores import POLICY, T0

from sessionmw import SessionManager
from sessionmw._session import SessionRecord
from sessionmw._states import Event
from sessionmw.stores._redis import RedisStore
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.testing import FakeClock


def in_child(work: Callable[[], object], *, seconds: int = 5) -> object:
    """Run ``work`` in a real ``os.fork`` child and return what it returned (JSON); a child
    stuck for ``seconds`` (a lock held for ever) is ended by SIGALRM and fails the test."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(reader)
            signal.alarm(seconds)
            payload = json.dumps({"ok": work()})
            code = 0
        except BaseException as exc:  # reported to the parent
            payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        finally:
            with os.fdopen(writer, "w") as out:
                out.write(payload)
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader) as got:
        text = got.read()
    _, status = os.waitpid(pid, 0)
    assert not os.WIFSIGNALED(status), f"the child hung and was killed by signal {os.WTERMSIG(status)}"
    result = json.loads(text)
    assert "error" not in result, result["error"]
    return result["ok"]


def test_sqlite_counters_open_their_own_connection_after_fork(tmp_path: Path) -> None:
    """Analytics connected before a fork (gunicorn --preload): the child counts through a
    connection it opened itself, never the parent's, and the counts of both reach the file."""
    store = SQLiteStore(tmp_path / "s.db")
    counters = store.counters()
    counters.add([0], {"hits": 1.0})  # the parent's connection is open now
    parent_connection = id(counters._connect())

    def child() -> object:
        counters.add([0], {"hits": 1.0})
        return id(counters._connect()) != parent_connection

    assert in_child(child) is True
    counters.add([0], {"hits": 1.0})
    assert counters.read([0]) == {0: {"hits": 3.0}}
    store.close()


def test_sqlite_store_lock_held_at_fork_does_not_hang_the_child(tmp_path: Path) -> None:
    """Another thread inside a SQLite store operation when the process forks: the child can
    still use the store (the lock it inherited, held for ever, is renewed)."""
    store = SQLiteStore(tmp_path / "s.db")
    store.create(SessionRecord.new("s1", T0), T0, POLICY)

    def child() -> object:
        record = store.get("s1")
        return None if record is None else record.session_id

    with store._lock:  # as if another thread were inside at the fork
        assert in_child(child) == "s1"
    store.close()


@pytest.mark.parametrize("target", ["memory store", "memory counters", "analytics"])
def test_locks_held_at_fork_do_not_hang_the_child(target: str) -> None:
    """A lock held by another thread at the fork (the memory store's, the memory counters', the
    analytics registry's) is fresh in the child: no operation there waits for ever."""
    from sessionmw import analytics
    from sessionmw.stores import MemoryStore, _beside
    from sessionmw.stores.counters import MemoryCounters

    store = MemoryStore()
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    counters = analytics.counters_for(store)
    assert isinstance(counters, MemoryCounters)
    lock = {"memory store": store._lock, "memory counters": counters._lock}.get(target, _beside._LOCK)

    def child() -> object:
        outcome = store.update("s1", Event.ACTIVITY, T0 + 1, POLICY)
        analytics.counters_for(store).add([0], {"hits": 1.0})
        return outcome is not None and analytics.counters_for(store).read([0]) == {0: {"hits": 1.0}}

    with lock:  # as if another thread were inside at the fork
        assert in_child(child) is True


def _child_warnings(work: Callable[[], None]) -> list[str]:
    """The WARNING messages logged under ``sessionmw`` while ``work`` runs in a forked child."""

    def child() -> object:
        seen: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.WARNING:
                    seen.append(record.getMessage())

        logging.getLogger("sessionmw").addHandler(Collect())
        work()
        return seen

    result = in_child(child)
    assert isinstance(result, list)
    return [str(message) for message in result]


def test_memory_store_used_after_fork_warns_once_naming_the_fix() -> None:
    """A memory store made before a fork and used in the child (gunicorn --preload with several
    workers): one WARNING saying the workers do not share sessions, naming sqlite:/// and redis://."""
    manager = SessionManager(store="memory://", clock=FakeClock(T0))
    manager.create_session("before-the-fork")

    def work() -> None:
        for number in range(3):
            manager.create_session(f"s{number}")
            manager.update_session_activity(f"s{number}")

    warnings = _child_warnings(work)
    assert len(warnings) == 1, warnings
    assert "memory://" in warnings[0] and "forked" in warnings[0]
    assert "sqlite:///" in warnings[0] and "redis://" in warnings[0]
    manager.close()


def test_memory_store_made_in_the_child_does_not_warn() -> None:
    """A memory store made after the fork, in the process that uses it, is fine: no warning."""

    def work() -> None:
        manager = SessionManager(store="memory://", clock=FakeClock(T0))
        manager.create_session("s1")
        manager.update_session_activity("s1")

    assert _child_warnings(work) == []


def test_redis_store_and_counters_work_on_both_sides_of_a_fork(redis_url: str, redis_prefix: str) -> None:
    """The Redis store and its counters used before a fork work in the child and, after it, in
    the parent (redis-py's pools open new connections in a new process: no shared socket)."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    counters = store.counters()
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    counters.add([0], {"hits": 1.0})

    def child() -> object:
        for step in range(20):
            store.update("s1", Event.ACTIVITY, T0 + 1 + step, POLICY)
            counters.add([0], {"hits": 1.0})
        record = store.get("s1")
        return None if record is None else record.last_activity

    assert in_child(child) == T0 + 20
    outcome = store.update("s1", Event.ACTIVITY, T0 + 30, POLICY)
    assert outcome is not None and outcome.record.last_activity == T0 + 30
    assert counters.read([0]) == {0: {"hits": 21.0}}
    store.close()


@pytest.mark.parametrize("where", ["default manager", "translation registry", "breaker backends"])
def test_module_locks_are_fresh_in_a_forked_child(where: str) -> None:
    """A module-level lock another thread held at the fork does not block the child for ever."""
    from sessionmw import _breaker as breaker
    from sessionmw import _manager as manager
    from sessionmw import translation
    from sessionmw.stores import MemoryStore, _beside

    class Flaky(Exception):
        pass

    work: dict[str, Callable[[], object]] = {
        "default manager": lambda: manager.get_session_manager() is not None,
        "translation registry": lambda: bool(translation.register_translation(Flaky, title="t", message="m")),
        "breaker backends": lambda: breaker.breakers_for(MemoryStore()) is not None,
    }
    lock = {
        "default manager": manager._default_lock,
        "translation registry": translation._lock,
        "breaker backends": _beside._LOCK,
    }[where]
    manager.set_session_manager(None)
    with lock:  # as if another thread were inside at the fork
        assert in_child(work[where]) is True
