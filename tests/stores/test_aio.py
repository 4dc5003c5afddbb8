"""The async store path: the same outcomes as the sync one, and the event loop never blocked.

Every test runs under asyncio and trio (anyio's pytest plugin), on the memory, SQLite and Redis
stores where it is about stores.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from support.stores import STORE_METHODS, record_threads, seen_of

from sessionmw import Breaker, SessionManager, UserFacingError, guarded, session_scope
from sessionmw._errors import StoreUnavailableError
from sessionmw._states import SessionState
from sessionmw.stores import store_from_url
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.stores.aio import off_loop
from sessionmw.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    redis_url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return f"{redis_url}?prefix={prefix}:{name}"  # (the fixture deletes every key under '{prefix:')


@pytest.fixture(name="pair")
async def _pair(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SessionManager, SessionManager, FakeClock]]:
    """Two managers on two stores of ``kind`` that share one fake clock: one used sync, one async."""
    clock = FakeClock()
    sync = SessionManager(store=_url(kind, request, tmp_path, "sync"), clock=clock)
    awaited = SessionManager(store=_url(kind, request, tmp_path, "async"), clock=clock)
    yield sync, awaited, clock
    await awaited.aclose()
    sync.close()


async def test_every_operation_has_the_same_outcome_sync_and_async(
    pair: tuple[SessionManager, SessionManager, FakeClock],
) -> None:
    sync, awaited, clock = pair
    policy = sync.policy
    steps: list[tuple[str, tuple[Any, ...], float]] = [
        ("create_session", ("s1",), 0),
        ("touch_or_report", ("s1",), 1),
        ("touch", ("s1",), policy.idle_after + 1),  # wakes an idle session
        ("get_session", ("s1",), 1),
        *[("record_error", ("s1", f"boom {n}"), 1) for n in range(policy.error_threshold)],
        ("touch_or_report", ("s1",), 1),  # disconnected: refused, with its report
        ("check_health", ("s1",), 0),
        ("reconnect", ("s1",), 1),
        ("record_error", ("s1", "once"), 1),
        ("record_success", ("s1",), 1),
        ("end_session", ("s1",), 1),
        ("touch_or_report", ("s1",), 1),  # ended
        ("touch", ("s1",), 1),  # raises: ended
        ("touch_or_report", ("nobody",), 0),
        ("create_session", ("s2",), 0),
        ("create_session", ("s2",), 0),  # raises: exists
        ("check_health", ("s2",), policy.timeout + 1),  # expired by time
        ("delete_session", ("s2",), 0),
        ("delete_session", ("s2",), 0),
        ("get_session", ("s2",), 0),
    ]
    for name, args, advance in steps:
        clock.advance(advance)
        try:
            expected = seen_of(getattr(sync, name)(*args))
        except Exception as exc:
            expected = seen_of(exc)
        try:
            got = seen_of(await getattr(awaited, f"a{name}")(*args))
        except Exception as exc:
            got = seen_of(exc)
        assert got == expected, (name, args)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_no_store_call_blocks_the_loop_thread(
    kind: str, anyio_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SQLite in a worker thread; Redis on redis.asyncio under asyncio (no sync network call at
    all) and in a worker thread under trio."""
    manager = SessionManager(store=_url(kind, request, tmp_path, "threads"), clock=FakeClock())
    watched = STORE_METHODS + (("_call",) if kind == "redis" else ())
    calls = record_threads(manager.store, watched)
    store: Any = manager.store
    native = record_threads(store.async_operations(), ("_call",)) if kind == "redis" else []
    loop_thread = threading.get_ident()

    @guarded(retry=None, default="failed")
    async def work(fail: bool) -> str:
        if fail:
            raise ValueError("no")
        return "done"

    def check(session_id: str) -> bool:  # a health check reads something slow, too
        calls.append(("check", threading.get_ident()))
        return True

    manager.add_health_check("feed", check)
    record = await manager.acreate_session()
    with session_scope(manager, record.session_id):
        assert await work(False) == "done"
        assert await work(True) == "failed"  # the error is recorded on the session
        assert await work(False) == "done"  # and the success that clears it
    await manager.acheck_health(record.session_id)
    await manager.adelete_session(record.session_id)
    await manager.aclose()
    if kind == "redis" and anyio_backend == "asyncio":
        checks = [thread for name, thread in calls if name == "check"]
        assert checks and loop_thread not in checks
        assert len(calls) == len(checks), "redis.asyncio makes every call: no sync store call at all"
        assert len(native) >= 5  # (fewer than the operations once the read cache is subscribed)
    else:
        assert len(calls) >= 5 and all(thread != loop_thread for _name, thread in calls), calls


async def test_a_slow_sqlite_store_leaves_the_loop_running(anyio_backend: str, tmp_path: Path) -> None:
    """Another connection holds SQLite's write lock; the loop keeps ticking while the store
    waits for it, and the ticker itself releases it after some ticks: on a blocked loop the ticker
    never runs and the store call fails after its busy timeout."""
    path = tmp_path / "slow.db"
    manager = SessionManager(store=SQLiteStore(path, busy_timeout=30), clock=FakeClock())
    record = await manager.acreate_session()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, until the ticker commits
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while ticks < 1000:
            ticks += 1
            if ticks == 5:
                holder.execute("COMMIT")
            await anyio.sleep(0.001)

    @guarded(retry=None)
    async def failing() -> None:
        raise ValueError("recorded while the store is locked")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ticker)
        with session_scope(manager, record.session_id), pytest.raises(UserFacingError):
            await failing()  # its record_error waits for the lock
        outcome = await manager.aget_session(record.session_id)
        ticks_seen = ticks
        tasks.cancel_scope.cancel()
    holder.close()
    assert ticks_seen >= 5
    assert outcome is not None and outcome.error_count == 1
    await manager.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_breaker_calls_reach_a_shared_store_off_the_loop(
    kind: str, anyio_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    manager = SessionManager(store=_url(kind, request, tmp_path, "breakers"), clock=FakeClock())
    breaker = Breaker("prices", manager=manager, failure_threshold=2, clock=manager.clock)
    backend = breaker._backend()[0]
    calls = record_threads(backend, ("apply",))
    loop_thread = threading.get_ident()

    async def ok() -> str:
        return "ok"

    async def down() -> str:
        raise ConnectionError("down")

    assert await breaker.call_async(ok) == "ok"
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call_async(down)
    assert breaker.state.value == "open"
    assert calls and all(thread != loop_thread for _name, thread in calls), calls
    await manager.aclose()


async def test_the_memory_store_is_called_inline(anyio_backend: str) -> None:
    manager = SessionManager(store="memory://", clock=FakeClock())
    calls = record_threads(manager.store, STORE_METHODS)
    record = await manager.acreate_session()
    await manager.atouch_or_report(record.session_id)
    assert [thread for _name, thread in calls] == [threading.get_ident()] * 2


async def test_an_unreachable_redis_fails_open_as_the_sync_path_does(anyio_backend: str) -> None:
    from support.servers import free_port

    store = store_from_url(f"redis://127.0.0.1:{free_port()}/0?timeout=0.5&connect_timeout=0.5")
    manager = SessionManager(store=store, clock=FakeClock())
    record, refusal = await manager.atouch_or_report("someone")
    assert refusal is None and record is not None and record.reason == "store_unavailable"
    with pytest.raises(StoreUnavailableError):
        await manager.acreate_session()
    await manager.aclose()


async def test_off_loop_runs_in_a_worker_thread(anyio_backend: str) -> None:
    assert await off_loop(threading.get_ident) != threading.get_ident()


async def test_an_async_guarded_call_stores_a_pending_session_off_the_loop(
    anyio_backend: str, tmp_path: Path
) -> None:
    """A session the adapter issued and has not stored yet is stored at its first use for work:
    on the async path, in a worker thread for a store that may wait, then admitted."""
    from sessionmw._context import enter_scope, leave_scope

    manager = SessionManager(store=f"sqlite:///{tmp_path / 'pending.db'}", clock=FakeClock())
    stored: list[int] = []

    def store_pending() -> None:
        stored.append(threading.get_ident())
        manager.create_session("pending-1")

    @guarded(retry=None)
    async def work() -> str:
        return "done"

    token = enter_scope(manager, "pending-1", store_pending)
    try:
        assert await work() == "done"
    finally:
        leave_scope(token)
    assert stored and stored[0] != threading.get_ident()
    assert (await manager.aget_session("pending-1")) is not None
    await manager.aclose()


async def test_without_anyio_asyncio_uses_its_own_threads_and_trio_is_told_what_to_install(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "anyio", None)  # as if not installed: importing it fails
    if anyio_backend == "asyncio":
        assert await off_loop(threading.get_ident) != threading.get_ident()
    else:
        with pytest.raises(RuntimeError, match=r"pip install 'sessionmw\[async\]'"):
            await off_loop(threading.get_ident)


async def test_a_sqlite_cache_hit_is_answered_on_the_loop(anyio_backend: str, tmp_path: Path) -> None:
    """A request within the renewal window on a copy the cache holds makes no store call in a
    thread; the first (a miss) does."""
    manager = SessionManager(store=SQLiteStore(tmp_path / "hits.db"), clock=FakeClock())
    sid = (await manager.acreate_session()).session_id
    calls = record_threads(manager.store, STORE_METHODS)
    first, _ = await manager.atouch_or_report(sid)  # the cache is filled (in a thread)
    assert [name for name, _thread in calls] == ["update"]
    answers = []
    for _ in range(3):
        record, refusal = await manager.atouch_or_report(sid)
        assert refusal is None and record is not None and record.session_id == sid
        answers.append(record)
    assert all(record == first for record in answers)
    # The cache's own copy each time (never changed once kept; a record handed out is to read).
    assert answers[0] is answers[1] is answers[2]
    assert len(calls) == 1, calls
    await manager.aclose()


async def test_a_commit_by_another_connection_is_seen_by_the_next_awaited_request(
    anyio_backend: str, tmp_path: Path
) -> None:
    """The loop's answer from the cache keeps the cache's promise: another process's change is
    seen at once (the copy is not trusted, the next call reads the row in a thread)."""
    path = tmp_path / "shared.db"
    clock = FakeClock()
    here = SessionManager(store=SQLiteStore(path), clock=clock)
    there = SessionManager(store=SQLiteStore(path), clock=clock)
    sid = (await here.acreate_session()).session_id
    await here.atouch_or_report(sid)
    await here.atouch_or_report(sid)  # from the copy
    there.end_session(sid)
    record, refusal = await here.atouch_or_report(sid)
    assert record is not None and record.state is SessionState.ENDED
    assert refusal is not None and refusal.state == SessionState.ENDED.value
    there.close()
    await here.aclose()


async def test_a_sqlite_cache_hit_waits_for_neither_the_store_nor_the_file(
    anyio_backend: str, tmp_path: Path
) -> None:
    """Another connection holds the file's write lock and a worker holds the store's lock: a
    cache hit is answered all the same, while both are still held."""
    path = tmp_path / "held.db"
    store = SQLiteStore(path, busy_timeout=30)
    manager = SessionManager(store=store, clock=FakeClock())
    sid = (await manager.acreate_session()).session_id
    await manager.atouch_or_report(sid)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    lock = store._lock
    lock.acquire()
    released = threading.Event()

    def release() -> None:  # should the call wait for the lock, the test fails instead of hanging
        released.set()
        lock.release()

    timer = threading.Timer(5, release)
    timer.start()
    try:
        record, refusal = await manager.atouch_or_report(sid)
        answered_while_held = not released.is_set()
    finally:
        timer.cancel()
        timer.join()
        if not released.is_set():
            lock.release()
        holder.execute("COMMIT")
        holder.close()
    assert answered_while_held and refusal is None and record is not None
    await manager.aclose()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_touch_now_answers_at_once_what_atouch_or_report_would(
    anyio_backend: str, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A session within its renewal window is answered at once (its record, its activity
    signalled), with no store call of the store's own; past the window, or for a session that
    may not work, None, with nothing written and nothing signalled."""
    from sessionmw import signals

    clock = FakeClock()
    manager = SessionManager(store=_url(kind, request, tmp_path, "now"), clock=clock)
    sid = (await manager.acreate_session()).session_id
    first, _ = await manager.atouch_or_report(sid)  # (SQLite: the read cache is filled)
    calls = record_threads(manager.store, STORE_METHODS)
    active: list[str] = []

    def seen(sender: object, session_id: str) -> None:
        active.append(session_id)

    signals.activity.connect(seen)
    try:
        assert manager.touch_now(sid) == first
        assert active == [sid] and calls == []
        assert manager.touch_now("no-such-session") is None
        clock.advance(manager.policy.activity_resolution)  # its activity is a write now
        assert manager.touch_now(sid) is None
        assert active == [sid] and calls == []
        assert manager.get_session(sid) == first  # nothing written
        record, refusal = await manager.atouch_or_report(sid)  # the write, awaited
        assert refusal is None and record is not None and record.last_activity == clock()
        for _ in range(manager.policy.error_threshold):
            manager.record_error(sid, ConnectionError("down"))
        assert manager.touch_now(sid) is None  # disconnected: the full path refuses it
    finally:
        signals.activity.disconnect(seen)
    await manager.aclose()


async def test_touch_now_leaves_a_store_without_answers_at_once_to_atouch_or_report(
    anyio_backend: str,
) -> None:
    """A store of one's own (no ``answer_cached``), and a memory store whose ``update`` a subclass,
    a mixin or the object itself replaced, are asked through their ``update``: ``touch_now`` says
    None, without calling them."""
    from support.fakes import CountedStore

    from sessionmw.stores._memory import MemoryStore

    class Instrumented(MemoryStore):
        updates = 0

        def update(self, *args: Any, **kwargs: Any) -> Any:
            Instrumented.updates += 1
            return super().update(*args, **kwargs)

    class Audit:
        def update(self, *args: Any, **kwargs: Any) -> Any:
            Instrumented.updates += 1
            return super().update(*args, **kwargs)  # type: ignore[misc]

    class Audited(Audit, MemoryStore):  # update from a mixin
        pass

    class Renamed(MemoryStore):  # no update of its own: answered at once
        pass

    patched = MemoryStore()
    plain_update = patched.update

    def counted_update(*args: Any, **kwargs: Any) -> Any:
        Instrumented.updates += 1
        return plain_update(*args, **kwargs)

    patched.update = counted_update  # type: ignore[method-assign]  # on the object itself
    stores = (
        (CountedStore(MemoryStore()), False),
        (Instrumented(), False),
        (Audited(), False),
        (patched, False),
        (Renamed(), True),
    )
    for store, at_once in stores:
        manager = SessionManager(store=store, clock=FakeClock())
        sid = manager.create_session().session_id
        answered = manager.touch_now(sid)
        assert (answered is not None) == at_once, store
        record, _ = await manager.atouch_or_report(sid)
        assert record is not None and record.session_id == sid
    assert Instrumented.updates == 3  # each awaited call went through the replaced update
