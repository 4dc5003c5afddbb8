"""Counter backends that live beside each store, for :mod:`sessionmw.analytics`.

A counter is a float under a name in a numbered bucket (a minute, or 0 for the all-time total).
Adding is atomic per name, so every process on a store adds to the same figures.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sessionmw._errors import StoreUnavailableError
from sessionmw._forks import reset_after_fork
from sessionmw.stores._wal import use_wal
from sessionmw.stores.redis_errors import unreachable_errors

if TYPE_CHECKING:
    import redis

__all__ = ["CounterBackend", "CountingStore", "MemoryCounters", "RedisCounters", "SQLiteCounters"]

#: Seconds a minute bucket is kept (the total, bucket 0, is kept for ever).
RETENTION_SECONDS = 8 * 24 * 3600


class CounterBackend(Protocol):
    """Where counters live."""

    def add(self, buckets: Iterable[int], counts: Mapping[str, float]) -> None:
        """Add ``counts`` to each of ``buckets``."""
        ...

    def read(self, buckets: Iterable[int]) -> dict[int, dict[str, float]]:
        """The counters of each of ``buckets`` that has any."""
        ...


@runtime_checkable
class CountingStore(Protocol):
    """A store that keeps analytics counters beside its sessions (the SQLite and Redis stores)."""

    def counters(self) -> CounterBackend:
        """The counter backend beside the store's sessions."""
        ...


class MemoryCounters:
    """Counters in a dict, for the memory store; thread-safe."""

    def __init__(self) -> None:
        self._values: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held the parent's)."""
        self._lock = threading.Lock()

    def add(self, buckets: Iterable[int], counts: Mapping[str, float]) -> None:
        with self._lock:
            for bucket in buckets:
                values = self._values[bucket]
                for name, value in counts.items():
                    values[name] += value

    def read(self, buckets: Iterable[int]) -> dict[int, dict[str, float]]:
        with self._lock:
            return {bucket: dict(self._values[bucket]) for bucket in buckets if bucket in self._values}


class SQLiteCounters:
    """Counters in a table of the store's SQLite file (WAL; one connection per thread).

    A forked child opens its own connections (a SQLite connection must not cross a fork).
    """

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        reset_after_fork(self)
        self._connect().execute(
            "CREATE TABLE IF NOT EXISTS sessionmw_counters ("
            " bucket INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,"
            " PRIMARY KEY (bucket, name)) WITHOUT ROWID"
        )

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's connections (never used, never closed here)."""
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            use_wal(connection, self.timeout)
            self._local.connection = connection
        return connection

    def add(self, buckets: Iterable[int], counts: Mapping[str, float]) -> None:
        rows = [(bucket, name, value) for bucket in buckets for name, value in counts.items()]
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT INTO sessionmw_counters (bucket, name, value) VALUES (?, ?, ?)"
                " ON CONFLICT (bucket, name) DO UPDATE SET value = value + excluded.value",
                rows,
            )
            connection.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise StoreUnavailableError(f"SQLite counters at {self.path}: {exc}") from exc

    def read(self, buckets: Iterable[int]) -> dict[int, dict[str, float]]:
        wanted = sorted(set(buckets))
        result: dict[int, dict[str, float]] = {}
        if not wanted:
            return result
        try:
            cursor = self._connect().execute(
                "SELECT bucket, name, value FROM sessionmw_counters WHERE bucket BETWEEN ? AND ?",
                (wanted[0], wanted[-1]),
            )
            chosen = set(wanted)
            for bucket, name, value in cursor:
                if bucket in chosen:
                    result.setdefault(bucket, {})[name] = value
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite counters at {self.path}: {exc}") from exc
        return result


class RedisCounters:
    """Counters in Redis hashes, sharded so no single key takes every increment.

    Each process writes to one shard (chosen from its pid); a shard's buckets share a hash tag
    (``{<prefix>:c<shard>}``), so the minute and the total of one increment go in one pipeline
    to one cluster slot. Reads gather every shard.
    """

    def __init__(
        self, client: redis.Redis | redis.RedisCluster, prefix: str = "sessionmw", *, shards: int = 8
    ) -> None:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards!r}")
        self.client = client
        self.prefix = prefix
        self.shards = shards
        self._shard = os.getpid() % shards
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: its own shard (redis-py's pools reconnect by themselves)."""
        self._shard = os.getpid() % self.shards

    def _key(self, shard: int, bucket: int) -> str:
        return f"{{{self.prefix}:c{shard}}}:counts:{bucket}"

    def add(self, buckets: Iterable[int], counts: Mapping[str, float]) -> None:
        try:
            with self.client.pipeline(transaction=True) as pipe:
                for bucket in buckets:
                    key = self._key(self._shard, bucket)
                    for name, value in counts.items():
                        pipe.hincrbyfloat(key, name, value)
                    if bucket:
                        pipe.expire(key, RETENTION_SECONDS)
                pipe.execute()
        except unreachable_errors() as exc:
            raise StoreUnavailableError(f"Redis counters: {type(exc).__name__}") from exc

    def read(self, buckets: Iterable[int]) -> dict[int, dict[str, float]]:
        wanted = list(buckets)
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for bucket in wanted:
                    for shard in range(self.shards):
                        pipe.hgetall(self._key(shard, bucket))
                replies = pipe.execute()
        except unreachable_errors() as exc:
            raise StoreUnavailableError(f"Redis counters: {type(exc).__name__}") from exc
        result: dict[int, dict[str, float]] = {}
        for index, reply in enumerate(replies):
            if not reply:
                continue
            values = result.setdefault(wanted[index // self.shards], {})
            for name, value in reply.items():
                key = name.decode() if isinstance(name, bytes) else str(name)
                values[key] = values.get(key, 0.0) + float(value)
        return result
