"""The Redis store's request path through redis.asyncio: the same outcomes as the sync client (one
server or a cluster, a URL or a client given), the script sent again after a SCRIPT FLUSH, and the
read cache answering without a round trip while other processes' changes arrive."""

from __future__ import annotations

import secrets
from typing import Any

import anyio
import pytest
from support.redis_servers import PrivateRedis
from support.stores import STORE_METHODS, record_threads, seen_of

from sessionmw import SessionManager
from sessionmw.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_redis_reloads_the_script_after_script_flush(
    anyio_backend: str, private_redis: PrivateRedis
) -> None:
    """EVALSHA first; on NOSCRIPT (a server that forgot the script) the same script is sent again.
    SCRIPT FLUSH is server-wide: only on a redis-server of the test's own."""
    import redis

    # (generous timeouts: the test is about NOSCRIPT; once, at load average 20, the first connect
    # took longer than the store's default)
    url = f"{private_redis.url}?cache=false&connect_timeout=10&timeout=10"
    manager = SessionManager(store=url, clock=FakeClock())
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
    calls = record_threads(store.async_operations(), ("_call", "update"))
    await here.atouch(record.session_id)
    assert (await here.atouch_or_report(record.session_id))[1] is None  # a request's admission
    assert calls == []  # answered from the cache: no round trip, not even update's coroutine
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
    calls = record_threads(awaited.store, (*STORE_METHODS, "_call"))
    for sid in ("c1", "c2"):
        assert seen_of(await awaited.acreate_session(sid)) == seen_of(sync.create_session(sid))
    errors = []
    for manager in (sync, awaited):
        try:
            await manager.acreate_session("c3") if manager is awaited else manager.create_session("c3")
        except Exception as exc:
            errors.append(type(exc).__name__)
    assert errors == ["SessionLimitError", "SessionLimitError"]
    assert seen_of(await awaited.arecord_error("c1", "x")) == seen_of(sync.record_error("c1", "x"))
    assert seen_of(await awaited.atouch_or_report("c1")) == seen_of(sync.touch_or_report("c1"))
    assert await awaited.adelete_session("c1") and sync.delete_session("c1")
    assert calls == []  # redis.asyncio's cluster client made every call
    await awaited.aclose()
    sync.close()


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


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cluster_store_given_a_client_gets_an_async_cluster_client(
    anyio_backend: str, redis_cluster_url: str
) -> None:
    import redis

    from sessionmw.stores._redis import RedisStore

    client = redis.RedisCluster.from_url(redis_cluster_url)
    store = RedisStore(client, prefix=f"aio{secrets.token_hex(4)}", cache=False)
    manager = SessionManager(store=store, clock=FakeClock())
    calls = record_threads(store, (*STORE_METHODS, "_call"))
    ids = [f"c{n}" for n in range(8)]  # over the cluster's nodes
    for session_id in ids:
        await manager.acreate_session(session_id)
        assert (await manager.atouch(session_id)) is not None
    await manager.aclose()
    assert calls == []  # redis.asyncio's cluster client made every call
    assert all(manager.get_session(session_id) is not None for session_id in ids)  # where sync reads
    client.close()
