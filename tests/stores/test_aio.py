"""The async store path: the same outcomes as the sync one, and the event loop never blocked.

Every test runs under asyncio and trio (anyio's pytest plugin), on the memory, SQLite and Redis
stores where it is about stores.
"""

from __future__ import annotations

import secrets
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from support.redis_servers import PrivateRedis

from sessionmw import Breaker, SessionManager, UserFacingError, guarded, session_scope
from sessionmw._errors import StoreUnavailableError
from sessionmw._session import SessionRecord
from sessionmw.health import HealthReport
from sessionmw.stores import store_from_url
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.stores.aio import off_loop
from sessionmw.testing import FakeClock

pytestmark = pytest.mark.anyio

STORE_METHODS = ("create", "update", "get", "delete")


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


def _seen(value: Any) -> Any:
    """What a caller sees of an answer, without the times and ids that differ between two runs."""
    if isinstance(value, SessionRecord):
        return (value.state, value.error_count, value.last_error, value.reason)
    if isinstance(value, HealthReport):
        return (value["status"], value["healthy"], value["state"])
    if isinstance(value, tuple):
        return tuple(_seen(item) for item in value)
    if isinstance(value, BaseException):
        return type(value).__name__
    return value


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
            expected = _seen(getattr(sync, name)(*args))
        except Exception as exc:
            expected = _seen(exc)
        try:
            got = _seen(await getattr(awaited, f"a{name}")(*args))
        except Exception as exc:
            got = _seen(exc)
        assert got == expected, (name, args)


def _record_threads(store: Any, names: tuple[str, ...]) -> list[tuple[str, int]]:
    """Wrap ``store``'s methods ``names`` so that each call notes its thread."""
    calls: list[tuple[str, int]] = []
    for name in names:
        method = getattr(store, name)

        def noted(*args: Any, _method: Callable[..., Any] = method, _name: str = name) -> Any:
            calls.append((_name, threading.get_ident()))
            return _method(*args)

        setattr(store, name, noted)
    return calls


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_no_store_call_blocks_the_loop_thread(
    kind: str, anyio_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SQLite in a worker thread; Redis on redis.asyncio under asyncio (no sync network call at
    all) and in a worker thread under trio."""
    manager = SessionManager(store=_url(kind, request, tmp_path, "threads"), clock=FakeClock())
    watched = STORE_METHODS + (("_call",) if kind == "redis" else ())
    calls = _record_threads(manager.store, watched)
    store: Any = manager.store
    native = _record_threads(store.async_operations(), ("_call",)) if kind == "redis" else []
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
    calls = _record_threads(backend, ("apply",))
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
    calls = _record_threads(manager.store, STORE_METHODS)
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


@pytest.fixture(name="private_redis")
def _private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_redis_reloads_the_script_after_script_flush(
    anyio_backend: str, private_redis: PrivateRedis
) -> None:
    """EVALSHA first; on NOSCRIPT (a server that forgot the script) the same script is sent again.
    SCRIPT FLUSH is server-wide: only on a redis-server of the test's own."""
    import redis

    manager = SessionManager(store=f"{private_redis.url}?cache=false", clock=FakeClock())
    admin = redis.Redis.from_url(private_redis.url)
    try:
        record = await manager.acreate_session()
        admin.script_flush()
        admin.config_resetstat()
        assert (await manager.atouch(record.session_id)) is not None  # NOSCRIPT, then the script
        assert (await manager.atouch(record.session_id)) is not None  # EVALSHA again
        stats = admin.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 2
        assert stats["cmdstat_evalsha"]["failed_calls"] == 1
        assert stats["cmdstat_eval"]["calls"] == 1
        await manager.aclose()
    finally:
        admin.close()
        manager.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_redis_answers_from_the_read_cache_and_sees_other_processes_changes(
    anyio_backend: str, redis_url: str, redis_prefix: str
) -> None:
    """A look within the renewal window comes from the cache (no round trip); a change made by
    another store (another process) arrives as an invalidation, read without waiting."""
    clock = FakeClock()
    here = SessionManager(store=f"{redis_url}?prefix={redis_prefix}", clock=clock)
    there = SessionManager(store=f"{redis_url}?prefix={redis_prefix}&cache=false", clock=clock)
    record = await here.acreate_session()
    store: Any = here.store
    with anyio.fail_after(10):  # the subscriber thread subscribes in the background
        while not (await here.atouch(record.session_id) and store._listeners is not None):
            await anyio.sleep(0.01)
    await here.atouch(record.session_id)  # kept in the cache now
    calls = _record_threads(store.async_operations(), ("_call",))
    await here.atouch(record.session_id)
    assert calls == []  # answered from the cache
    there.end_session(record.session_id)
    with anyio.fail_after(10):  # until the invalidation has arrived
        while (await here.atouch_or_report(record.session_id))[1] is None:
            await anyio.sleep(0.01)
    assert (await here.aget_session(record.session_id)) is not None
    assert (await here.aget_session(record.session_id)).state.value == "ended"  # type: ignore[union-attr]
    await here.aclose()
    there.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_redis_cluster_has_the_same_outcomes(anyio_backend: str, redis_cluster_url: str) -> None:
    clock = FakeClock()
    url = f"{redis_cluster_url}?cluster=true&prefix=aio{secrets.token_hex(4)}"
    sync = SessionManager(store=url + "s", clock=clock, max_sessions=2)
    awaited = SessionManager(store=url + "a", clock=clock, max_sessions=2)
    calls = _record_threads(awaited.store, (*STORE_METHODS, "_call"))
    for sid in ("c1", "c2"):
        assert _seen(await awaited.acreate_session(sid)) == _seen(sync.create_session(sid))
    errors = []
    for manager in (sync, awaited):
        try:
            await manager.acreate_session("c3") if manager is awaited else manager.create_session("c3")
        except Exception as exc:
            errors.append(type(exc).__name__)
    assert errors == ["SessionLimitError", "SessionLimitError"]
    assert _seen(await awaited.arecord_error("c1", "x")) == _seen(sync.record_error("c1", "x"))
    assert _seen(await awaited.atouch_or_report("c1")) == _seen(sync.touch_or_report("c1"))
    assert await awaited.adelete_session("c1") and sync.delete_session("c1")
    assert calls == []  # redis.asyncio's cluster client made every call
    await awaited.aclose()
    sync.close()


async def test_off_loop_runs_in_a_worker_thread(anyio_backend: str) -> None:
    assert await off_loop(threading.get_ident) != threading.get_ident()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_store_given_a_client_gets_an_async_client_with_its_options(
    anyio_backend: str, redis_url: str, redis_prefix: str
) -> None:
    """A store built from a redis-py client (not a URL): the async client reads the same server,
    database and timeouts off it."""
    import redis

    from sessionmw.stores._redis import RedisStore

    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    store = RedisStore(client, prefix=redis_prefix, cache=False)
    manager = SessionManager(store=store, clock=FakeClock())
    record = await manager.acreate_session()
    assert manager.get_session(record.session_id) is not None  # written where the sync client reads
    async_client = store.async_operations()._client()
    kwargs = async_client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["socket_timeout"]) == (client.connection_pool.connection_kwargs["db"], 3)
    await manager.aclose()


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


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cluster_store_given_a_client_gets_an_async_cluster_client(
    anyio_backend: str, redis_cluster_url: str
) -> None:
    import redis

    from sessionmw.stores._redis import RedisStore

    client = redis.RedisCluster.from_url(redis_cluster_url)
    store = RedisStore(client, prefix=f"aio{secrets.token_hex(4)}", cache=False)
    manager = SessionManager(store=store, clock=FakeClock())
    calls = _record_threads(store, (*STORE_METHODS, "_call"))
    ids = [f"c{n}" for n in range(8)]  # over the cluster's nodes
    for session_id in ids:
        await manager.acreate_session(session_id)
        assert (await manager.atouch(session_id)) is not None
    await manager.aclose()
    assert calls == []  # redis.asyncio's cluster client made every call
    assert all(manager.get_session(session_id) is not None for session_id in ids)  # where sync reads
    client.close()


async def test_without_anyio_asyncio_uses_its_own_threads_and_trio_is_told_what_to_install(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "anyio", None)  # as if not installed: importing it fails
    if anyio_backend == "asyncio":
        assert await off_loop(threading.get_ident) != threading.get_ident()
    else:
        with pytest.raises(RuntimeError, match=r"pip install 'sessionmw\[async\]'"):
            await off_loop(threading.get_ident)
