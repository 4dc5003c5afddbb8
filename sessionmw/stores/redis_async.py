"""The Redis store's request-path operations through ``redis.asyncio``, for asyncio's loop.

The same store, the same scripts: :class:`AsyncRedisOperations` sends the :class:`RedisStore
<sessionmw.stores._redis.RedisStore>`'s one Lua script (its source and SHA, built once by the
store) with EVALSHA, and on ``NOSCRIPT`` (a restarted server, ``SCRIPT FLUSH``) loads it again
and runs it; it builds the script's keys and arguments and reads its replies with the store's
own methods, so nothing of the protocol is written twice. A Redis Cluster is served by
:class:`redis.asyncio.cluster.RedisCluster`, each script on the node of its slot.

The read cache is the store's: the invalidations that have arrived are read after a poll that
does not wait (the store's subscriber runs in a thread of its own, never on the loop), so a look
or an activity within the renewal window answered from the cache makes no round trip here either.

``redis.asyncio`` connections belong to the loop that made them: each running loop gets a client
of its own (the same URL and options), closed by :meth:`AsyncRedisOperations.aclose`. Under trio,
which ``redis.asyncio`` does not serve, only the round trips go to a worker thread (the sync
client's): the read cache still answers on the loop.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event
from sessionmw.stores._base import Outcome
from sessionmw.stores.aio import off_loop, running_asyncio

__all__ = ["AsyncRedisOperations"]


class AsyncRedisOperations:
    """:class:`~sessionmw.stores._redis.RedisStore`'s ``create``, ``update``, ``get`` and
    ``delete`` as coroutines on ``redis.asyncio`` (made by :meth:`RedisStore.async_operations
    <sessionmw.stores._redis.RedisStore.async_operations>`)."""

    def __init__(self, store: Any) -> None:
        """``store``: the :class:`~sessionmw.stores._redis.RedisStore` (typed ``Any``: this
        module sits below it, and the store imports it only when asked for it)."""
        import redis as redis_module

        self._store = store
        self._no_script = redis_module.exceptions.NoScriptError
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"AsyncRedisOperations({self._store!r})"

    # -- the client of the running loop ----------------------------------------------------------

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = _async_client(self._store)
        return client

    async def aclose(self) -> None:
        """Close the running loop's client and its connections (under trio: none)."""
        if not running_asyncio():
            return
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
            pool = getattr(client, "connection_pool", None)  # a pool given to a client stays open
            if pool is not None:
                await pool.disconnect()

    # -- calls -----------------------------------------------------------------------------------

    async def _call(self, keys: list[str], args: list[Any]) -> Any:
        """The store's script, EVALSHA first, loaded again on NOSCRIPT: one round trip."""
        store = self._store
        if not running_asyncio():  # trio: the sync client's round trip, in a worker thread
            return await off_loop(store._call, keys, args)
        client = self._client()
        try:
            try:
                result = await client.execute_command("EVALSHA", store._sha, len(keys), *keys, *args)
            except self._no_script:  # the server forgot the script (restart, SCRIPT FLUSH)
                result = await client.execute_command("EVAL", store._source, len(keys), *keys, *args)
        except store._failures as exc:
            raise store._failure(exc) from exc
        return store._checked(result)

    async def create(self, record: SessionRecord, now: float, policy: Policy) -> None:
        """:meth:`RedisStore.create <sessionmw.stores._redis.RedisStore.create>`, awaited."""
        store = self._store
        if store._counts_before_create():
            store._check_room(record, await self._pipeline(store._live_commands(now)))
        keys, args = store._create_call(record, now, policy)
        store._forget(record.session_id)
        store._created(record, await self._call(keys, args))

    def answer_cached(
        self, session_id: str, event: Event | None, now: float, policy: Policy
    ) -> Outcome | None:
        """What :meth:`update` would return from the read cache, at once (no round trip), or None:
        the caller awaits :meth:`update` (:class:`~sessionmw.stores.aio.CachedAnswers`)."""
        answer: Outcome | None = self._store._cached(session_id, event, now, policy)[0]
        return answer

    async def update(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
    ) -> Outcome | None:
        """:meth:`RedisStore.update <sessionmw.stores._redis.RedisStore.update>`, awaited (the
        read cache first, as there)."""
        store = self._store
        answer: Outcome | None
        answer, seen = store._cached(session_id, event, now, policy)
        if answer is not None:
            return answer  # no round trip
        keys, args = store._update_call(session_id, event, now, policy, error)
        outcome: Outcome | None = store._outcome(session_id, now, await self._call(keys, args))
        if store._cache is not None:
            store._keep(session_id, None if outcome is None else outcome.record, seen, now)
        return outcome

    async def get(self, session_id: str) -> SessionRecord | None:
        """:meth:`RedisStore.get <sessionmw.stores._redis.RedisStore.get>`, awaited."""
        from sessionmw.stores.records import decode_record

        store = self._store
        if not running_asyncio():
            return await off_loop(store.get, session_id)
        try:
            raw = await self._client().execute_command("GET", store._keys(session_id)[0])
        except store._errors as exc:
            raise store._failure(exc) from exc
        return None if raw is None else decode_record(raw, session_id, store._name)

    async def delete(self, session_id: str) -> bool:
        """:meth:`RedisStore.delete <sessionmw.stores._redis.RedisStore.delete>`, awaited."""
        from sessionmw._session import Policy

        store = self._store
        args = store._args("delete", 0.0, Policy())
        store._forget(session_id)
        try:
            return bool((await self._call(store._script_keys(session_id), args))[1])
        finally:
            store._forget(session_id)

    async def _pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        store = self._store
        if not running_asyncio():
            return await off_loop(store._pipeline, commands)
        try:
            pipe = self._client().pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())
        except store._errors as exc:
            raise store._failure(exc) from exc


def _async_client(store: Any) -> Any:
    """A ``redis.asyncio`` client to the store's server or cluster, with its options: from the
    store's URL when :meth:`RedisStore.from_url` made it, else read off its sync client."""
    import redis.asyncio as aredis
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.cluster import RedisCluster as AsyncCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    no_retry = Retry(NoBackoff(), 0)  # a script is not retried: it may have run already
    if store._async_source is not None:
        url, connection, cluster = store._async_source
        options = {**connection, "retry": no_retry}
        if cluster:
            return AsyncCluster.from_url(url, **options)
        wait = _pool_wait(connection.get("socket_timeout"))
        pool_of_url = aredis.BlockingConnectionPool.from_url(url, timeout=wait, **options)
        return aredis.Redis(connection_pool=pool_of_url)
    pool = store._pool
    client: Any = store._client
    if pool is None:  # a cluster client given to the store: the same nodes and options
        kwargs = dict(client.nodes_manager.connection_kwargs)
        nodes = [ClusterNode(node.host, node.port) for node in client.get_nodes()]
        kept = {name: kwargs[name] for name in _CLUSTER_OPTIONS if name in kwargs}
        return AsyncCluster(startup_nodes=nodes, retry=no_retry, **kept)
    import redis.asyncio.connection as connections

    kind = getattr(connections, pool.connection_class.__name__, connections.Connection)
    kwargs = {**pool.connection_kwargs, "retry": no_retry}
    limit = pool.max_connections
    wait = _pool_wait(kwargs.get("socket_timeout"))
    pool_of_loop = aredis.BlockingConnectionPool(
        connection_class=kind, max_connections=limit, timeout=wait, **kwargs
    )
    return aredis.Redis(connection_pool=pool_of_loop)


def _pool_wait(socket_timeout: float | None) -> float:
    """How long a call waits for a free connection when ``max_connections`` are in use: the
    store's own ``timeout`` (a burst of requests on one event loop queues for the pool, as threads
    would, instead of failing as if the store were down; redis-py's plain async pool raises
    ``MaxConnectionsError`` at once), or 20 s (redis-py's default) without one."""
    return float(socket_timeout) if socket_timeout else 20.0


# The options of a sync cluster client that the async one takes as they are.
_CLUSTER_OPTIONS = (
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "ssl",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
    "protocol",
)
