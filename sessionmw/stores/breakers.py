"""Breaker backends that live beside each store, for :class:`sessionmw.Breaker`.

Every operation on a breaker (read, admit, record an outcome, an operator's command) is **one
atomic store operation**, as for sessions: a lock (memory), one ``BEGIN IMMEDIATE`` transaction
(SQLite), one Lua script on the breaker's own hash-tagged key (Redis, Redis Cluster). The
decision is :func:`sessionmw.breaker_table.step` (the Lua script carries the same table), so every
process on a store sees one breaker: four processes failing at once open it once, and in
HALF_OPEN exactly ``half_open_calls`` probes are admitted across all of them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from sessionmw.breaker_table import (
    BreakerConfig,
    BreakerEvent,
    BreakerOp,
    BreakerRecord,
    BreakerState,
    Change,
    StepResult,
    lua_table,
    step,
)
from sessionmw.errors import StoreUnavailableError
from sessionmw.stores._forks import reset_after_fork
from sessionmw.stores._wal import use_wal
from sessionmw.stores.redis_errors import unreachable_errors

if TYPE_CHECKING:
    import redis

__all__ = [
    "BreakerBackend",
    "BreakerStore",
    "MemoryBreakers",
    "RedisBreakers",
    "SQLiteBreakers",
]

#: What one operation returns: the record afterwards, and what :func:`step` did.
Applied = tuple[BreakerRecord, StepResult]


class BreakerBackend(Protocol):
    """Where breakers live."""

    def apply(
        self,
        name: str,
        op: BreakerOp,
        now: float,
        config: BreakerConfig,
        successes: int = 0,
        rejections: int = 0,
    ) -> Applied:
        """Atomically add ``successes`` and ``rejections`` (seen by this process without a round
        trip) to the counts, apply ``op`` at ``now``, and return the record and what changed."""
        ...

    def records(self) -> list[BreakerRecord]:
        """Every breaker the store holds, by name."""
        ...


@runtime_checkable
class BreakerStore(Protocol):
    """A store that keeps circuit breakers beside its sessions (all built-in stores)."""

    def breakers(self) -> BreakerBackend:
        """The breaker backend beside the store's sessions."""
        ...


class MemoryBreakers:
    """Breakers in a dict, for the memory store (and a process's own breakers while a shared
    store is down); thread-safe."""

    #: Its calls never wait: async callers make them inline (see :mod:`sessionmw.stores.aio`).
    blocks = False

    def __init__(self) -> None:
        self._records: dict[str, BreakerRecord] = {}
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held the parent's)."""
        self._lock = threading.Lock()

    def apply(
        self,
        name: str,
        op: BreakerOp,
        now: float,
        config: BreakerConfig,
        successes: int = 0,
        rejections: int = 0,
    ) -> Applied:
        with self._lock:
            record = self._records.get(name)
            if record is None:
                if _reads_only(op, successes, rejections):
                    return BreakerRecord(name, changed_at=now), _UNCHANGED
                record = self._records[name] = BreakerRecord(name, changed_at=now)
            result = _counted_step(record, op, now, config, successes, rejections)
            return record.copy(), result

    def records(self) -> list[BreakerRecord]:
        with self._lock:
            return [self._records[name].copy() for name in sorted(self._records)]


_COLUMNS = (
    "state",
    "failures",
    "window",
    "open_until",
    "probes",
    "probe_at",
    "opens",
    "successful",
    "failed",
    "rejected",
    "changed_at",
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessionmw_breakers ("
    " name TEXT PRIMARY KEY, state TEXT NOT NULL, failures INTEGER NOT NULL,"
    " window TEXT NOT NULL, open_until REAL NOT NULL, probes INTEGER NOT NULL,"
    " probe_at REAL NOT NULL, opens INTEGER NOT NULL, successful INTEGER NOT NULL,"
    " failed INTEGER NOT NULL, rejected INTEGER NOT NULL, changed_at REAL NOT NULL)"
)
_SELECT = f"SELECT name, {', '.join(_COLUMNS)} FROM sessionmw_breakers"
_UPSERT = (
    f"INSERT INTO sessionmw_breakers (name, {', '.join(_COLUMNS)}) VALUES ({', '.join('?' * 12)})"
    f" ON CONFLICT (name) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS)}"
)


def _reads_only(op: BreakerOp, successes: int, rejections: int) -> bool:
    """True if the operation changes nothing: a read with no counts to add."""
    return op is BreakerOp.READ and not successes and not rejections


def _counted_step(
    record: BreakerRecord, op: BreakerOp, now: float, config: BreakerConfig, successes: int, rejections: int
) -> StepResult:
    """Add the counts a process gathered without a round trip, then :func:`step` (in place)."""
    record.successful += successes
    record.rejected += rejections
    return step(record, op, now, config)


_UNCHANGED: Final = StepResult(None, False)
#: How each of :data:`_COLUMNS` is read back from a row, a script's reply or a hash (all strings
#: for Redis).
_KINDS: Final[tuple[Callable[[Any], Any], ...]] = (
    BreakerState, int, str, float, int, float, int, int, int, int, float
)


def _record_of(name: str, values: Sequence[Any]) -> BreakerRecord:
    """A breaker's record from its :data:`_COLUMNS` values, in that order."""
    return BreakerRecord(name, *(kind(value) for kind, value in zip(_KINDS, values, strict=True)))


def _row_record(row: tuple[Any, ...]) -> BreakerRecord:
    return _record_of(row[0], row[1:])


def _record_row(record: BreakerRecord) -> tuple[Any, ...]:
    return (record.name, record.state.value, *(getattr(record, column) for column in _COLUMNS[1:]))


class SQLiteBreakers:
    """Breakers in a table of the store's SQLite file (WAL; one connection per thread).

    An operation is one ``BEGIN IMMEDIATE`` transaction: read the row, :func:`step`, write it. A
    read with nothing to add is a plain ``SELECT``. A forked child opens its own connections.
    """

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's connections (never used, never closed here)."""
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection; its first use creates the table (as the store does, in a
        ``BEGIN IMMEDIATE`` that waits ``timeout`` for other processes)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            try:
                connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                use_wal(connection, self.timeout)
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(_SCHEMA)
                connection.execute("COMMIT")
            except BaseException:
                connection.close()
                raise
            self._local.connection = connection
        return connection

    def apply(
        self,
        name: str,
        op: BreakerOp,
        now: float,
        config: BreakerConfig,
        successes: int = 0,
        rejections: int = 0,
    ) -> Applied:
        try:
            connection = self._connect()
            if _reads_only(op, successes, rejections):
                return self._select(connection, name, now), _UNCHANGED
            connection.execute("BEGIN IMMEDIATE")
            try:
                record = self._select(connection, name, now)
                result = _counted_step(record, op, now, config, successes, rejections)
                connection.execute(_UPSERT, _record_row(record))
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite breakers at {self.path}: {exc}") from exc
        return record, result

    @staticmethod
    def _select(connection: sqlite3.Connection, name: str, now: float) -> BreakerRecord:
        row = connection.execute(f"{_SELECT} WHERE name = ?", (name,)).fetchone()
        return BreakerRecord(name, changed_at=now) if row is None else _row_record(row)

    def records(self) -> list[BreakerRecord]:
        try:
            rows = self._connect().execute(f"{_SELECT} ORDER BY name").fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite breakers at {self.path}: {exc}") from exc
        return [_row_record(row) for row in rows]


#: The Redis script: one breaker operation on the breaker's hash, the table generated from
#: :data:`~sessionmw.breaker_table.BREAKER_TRANSITIONS`. Mirrors :func:`~sessionmw.breaker_table.step`.
_LUA = """
local T = %(table)s
local key = KEYS[1]
local op, now = ARGV[1], tonumber(ARGV[2])
local threshold, rate, size = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local min_calls, open_for, half_open_calls = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local successes, rejections = tonumber(ARGV[9]), tonumber(ARGV[10])
local r = {state='closed', failures=0, window='', open_until=0, probes=0, probe_at=0, opens=0,
           successful=0, failed=0, rejected=0, changed_at=now}
local h = redis.call('HGETALL', key)
for i = 1, #h, 2 do
  local f, v = h[i], h[i + 1]
  if f == 'state' or f == 'window' then r[f] = v else r[f] = tonumber(v) end
end
local function fmt(x) return string.format('%%.17g', x) end
local function out(old, event, admitted)
  return {r.state, tostring(r.failures), r.window, fmt(r.open_until), tostring(r.probes), fmt(r.probe_at),
          tostring(r.opens), tostring(r.successful), tostring(r.failed), tostring(r.rejected),
          fmt(r.changed_at), old, event, admitted and '1' or '0'}
end
if op == 'read' and successes == 0 and rejections == 0 then return out('', '', false) end
r.successful = r.successful + successes
r.rejected = r.rejected + rejections
local function push(o) if rate >= 0 then r.window = string.sub(r.window .. o, -size) end end
local function tripped()
  if r.failures >= threshold then return true end
  if rate < 0 or string.len(r.window) < min_calls then return false end
  local _, ones = string.gsub(r.window, '1', '')
  return ones >= rate * string.len(r.window) - 1e-9
end
local s, event = r.state, nil
if op == 'admit' then
  if s == 'open' and now >= r.open_until then event = 'probe'
  elseif s == 'half_open' and (r.probes < half_open_calls or now >= r.probe_at + open_for) then
    event = 'probe'
  elseif s == 'open' or s == 'forced_open' or s == 'half_open' then r.rejected = r.rejected + 1 end
elseif op == 'success' or op == 'probe_success' then
  r.successful = r.successful + 1
  if op == 'probe_success' and s == 'half_open' then event = 'probe_success'
  elseif s == 'closed' then r.failures = 0; push('0'); event = 'success' end
elseif op == 'failure' or op == 'probe_failure' then
  r.failed = r.failed + 1
  if op == 'probe_failure' and s == 'half_open' then event = 'probe_failure'
  elseif s == 'closed' then
    r.failures = r.failures + 1; push('1')
    if tripped() then event = 'trip' else event = 'failure' end
  end
elseif op == 'force_open' or op == 'force_close' or op == 'disable' then event = op end
local admitted = op == 'admit' and (s == 'closed' or s == 'disabled')
local old, new = s, s
if event then
  new = T[s .. '|' .. event] or s
  if event == 'probe' then
    if s == 'open' or now >= r.probe_at + open_for then r.probes = 0 end
    r.probes = r.probes + 1; r.probe_at = now; admitted = true
  end
  if new ~= s or event == 'force_close' or event == 'force_open' then
    if new ~= s then r.changed_at = now end
    if new == 'open' or (new == 'forced_open' and s ~= 'forced_open') then r.opens = r.opens + 1 end
    r.state = new; r.failures = 0; r.window = ''
    if new == 'open' then r.open_until = now + open_for end
    if new ~= 'half_open' then r.probes = 0 end
  end
end
redis.call('HSET', key, 'state', r.state, 'failures', r.failures, 'window', r.window,
  'open_until', fmt(r.open_until), 'probes', r.probes, 'probe_at', fmt(r.probe_at), 'opens', r.opens,
  'successful', r.successful, 'failed', r.failed, 'rejected', r.rejected, 'changed_at', fmt(r.changed_at))
if new ~= old then return out(old, event, admitted) end
return out('', '', admitted)
"""


def lua_source() -> str:
    """The Redis script's source, with the table generated from the Python one."""
    return _LUA % {"table": lua_table()}


class RedisBreakers:
    """Breakers in Redis: one hash per breaker under its own hash tag (``{<prefix>:breaker:<name>}``),
    so each operation is one script on one cluster slot; a set ``{<prefix>:breakers}`` lists the
    names (added once per name and process)."""

    def __init__(self, client: redis.Redis | redis.RedisCluster, prefix: str = "sessionmw") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(lua_source())
        self._known: set[str] = set()
        self._errors = unreachable_errors()

    def _key(self, name: str) -> str:
        return f"{{{self.prefix}:breaker:{name}}}"

    @property
    def _index(self) -> str:
        return f"{{{self.prefix}:breakers}}"

    def apply(
        self,
        name: str,
        op: BreakerOp,
        now: float,
        config: BreakerConfig,
        successes: int = 0,
        rejections: int = 0,
    ) -> Applied:
        rate = -1.0 if config.failure_rate is None else config.failure_rate
        args = [
            op.value,
            repr(float(now)),
            config.failure_threshold,
            repr(float(rate)),
            config.window,
            config.min_calls,
            repr(float(config.open_for)),
            config.half_open_calls,
            successes,
            rejections,
        ]
        try:
            if name not in self._known:
                self.client.sadd(self._index, name)
                self._known.add(name)
            reply = self._script(keys=[self._key(name)], args=args)
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis breakers: {type(exc).__name__}") from exc
        values = [item.decode() if isinstance(item, bytes) else str(item) for item in reply]
        record = _record_of(name, values[:11])
        change = None
        if values[11]:
            change = Change(BreakerState(values[11]), record.state, BreakerEvent(values[12]))
        return record, StepResult(change, values[13] == "1")

    def records(self) -> list[BreakerRecord]:
        """Every breaker in the store: two round trips (the names, then their hashes in a pipeline)."""
        try:
            names = sorted(
                item.decode() if isinstance(item, bytes) else str(item)
                for item in self.client.smembers(self._index)
            )
            with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(self._key(name))
                replies = pipe.execute()
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis breakers: {type(exc).__name__}") from exc
        return [_hash_record(name, reply) for name, reply in zip(names, replies, strict=True) if reply]


def _hash_record(name: str, reply: dict[Any, Any]) -> BreakerRecord:
    """A breaker's hash as the script wrote it."""
    values = {
        (key.decode() if isinstance(key, bytes) else str(key)): (
            value.decode() if isinstance(value, bytes) else str(value)
        )
        for key, value in reply.items()
    }
    return _record_of(name, [values[column] for column in _COLUMNS])
