"""Breaker backends that live beside each store, for :class:`sessionmw.Breaker`.

Every operation on a breaker (read, admit, record an outcome, an operator's command) is **one
atomic store operation**, as for sessions: a lock (memory), one ``BEGIN IMMEDIATE`` transaction
(SQLite), one Lua script on the breaker's own hash-tagged key (Redis, Redis Cluster). The
decision is :func:`sessionmw._breaker_table.step` (the Lua script carries the same table), so every
process on a store sees one breaker: four processes failing at once open it once, and in
HALF_OPEN exactly ``half_open_calls`` probes are admitted across all of them.

A stored record that is not one this version wrote (a state it does not know, a count that is not
a whole number, a window that is not ``0``-``3`` text, time buckets that are not
``second:calls:failed:slow`` numbers (or more than an hour of them), a Redis key that is not a hash) is
**corrupt**: an operation on it raises :class:`CorruptBreakerError` (one line naming the key),
except an operator's (``force_open``, ``close``, ``disable``), which replaces it with a fresh
record. Listing the breakers skips it and logs that line.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from sessionmw._breaker_table import (
    MAX_TIME_WINDOW,
    MAX_WINDOW,
    OPERATOR_OPS,
    BreakerConfig,
    BreakerEvent,
    BreakerOp,
    BreakerRecord,
    BreakerState,
    Change,
    StepResult,
    add_successes,
    lua_table,
    step,
)
from sessionmw._errors import CorruptRecordError, StoreUnavailableError
from sessionmw._forks import reset_after_fork
from sessionmw.stores._wal import use_wal
from sessionmw.stores.redis_errors import unreachable_errors

if TYPE_CHECKING:
    import redis

__all__ = [
    "BreakerBackend",
    "BreakerStore",
    "CorruptBreakerError",
    "MemoryBreakers",
    "RedisBreakers",
    "SQLiteBreakers",
]

#: What one operation returns: the record afterwards, and what :func:`step` did.
Applied = tuple[BreakerRecord, StepResult]

_log = logging.getLogger("sessionmw._breaker")


class CorruptBreakerError(CorruptRecordError):
    """A breaker's stored record cannot be read; the message is one line naming its key.

    ``Breaker.close()`` (or ``sessionmw breakers close NAME``) replaces it with a fresh record.
    """

    def __init__(self, breaker: str, where: str, reason: str) -> None:
        super().__init__(
            f"breaker record {where} is unreadable: {_one_line(reason)}"
            f" (`sessionmw breakers close {breaker}` replaces it)"
        )
        #: The breaker's name.
        self.breaker = breaker


def _one_line(text: str) -> str:
    """``text`` with every unprintable character escaped, cut to 200 characters."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[:200])


#: What :meth:`BreakerBackend.scan` finds for each breaker: its record, or why it is unreadable.
Found = BreakerRecord | CorruptBreakerError


def _readable(found: Iterable[Found]) -> list[BreakerRecord]:
    """The readable records of ``found``; each unreadable one is logged (one line naming its key)."""
    records: list[BreakerRecord] = []
    for item in found:
        if isinstance(item, CorruptBreakerError):
            _log.warning("%s", item, extra={"breaker": item.breaker})
        else:
            records.append(item)
    return records


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
        """Every readable breaker the store holds, by name (each unreadable one is logged)."""
        ...

    def scan(self) -> list[Found]:
        """Every breaker the store holds, by name: its record, or a :class:`CorruptBreakerError`."""
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
            if record is None:  # (a first read adds it too: listings show every breaker used)
                record = self._records[name] = BreakerRecord(name, changed_at=now)
            result = _counted_step(record, op, now, config, successes, rejections)
            return record.copy(), result

    def seed(self, record: BreakerRecord) -> None:
        """Start the breaker of ``record.name`` from a copy of ``record`` (a process's last view)."""
        with self._lock:
            self._records[record.name] = record.copy()

    def records(self) -> list[BreakerRecord]:
        with self._lock:
            return [self._records[name].copy() for name in sorted(self._records)]

    def scan(self) -> list[Found]:
        return list(self.records())


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
    "slow",
    "reopens",
    "probe_successes",
    "buckets",
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessionmw_breakers ("
    " name TEXT PRIMARY KEY, state TEXT NOT NULL, failures INTEGER NOT NULL,"
    " window TEXT NOT NULL, open_until REAL NOT NULL, probes INTEGER NOT NULL,"
    " probe_at REAL NOT NULL, opens INTEGER NOT NULL, successful INTEGER NOT NULL,"
    " failed INTEGER NOT NULL, rejected INTEGER NOT NULL, changed_at REAL NOT NULL,"
    " slow INTEGER NOT NULL DEFAULT 0, reopens INTEGER NOT NULL DEFAULT 0,"
    " probe_successes INTEGER NOT NULL DEFAULT 0, buckets TEXT NOT NULL DEFAULT '')"
)
#: The counts added after the first version: a table made before gets their columns (rows: 0).
_LATER_COUNTS: Final = ("slow", "reopens", "probe_successes")
#: The texts added after the first version (rows: empty).
_LATER_TEXTS: Final = ("buckets",)
_SELECT = f"SELECT name, {', '.join(_COLUMNS)} FROM sessionmw_breakers"
_MARKS = ", ".join("?" * (len(_COLUMNS) + 1))
_ADD = f"INSERT OR IGNORE INTO sessionmw_breakers (name, {', '.join(_COLUMNS)}) VALUES ({_MARKS})"
_UPSERT = (
    f"INSERT INTO sessionmw_breakers (name, {', '.join(_COLUMNS)}) VALUES ({_MARKS})"
    f" ON CONFLICT (name) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS)}"
)


def _reads_only(op: BreakerOp, successes: int, rejections: int) -> bool:
    """True if the operation changes nothing: a read with no counts to add."""
    return op is BreakerOp.READ and not successes and not rejections


def _counted_step(
    record: BreakerRecord, op: BreakerOp, now: float, config: BreakerConfig, successes: int, rejections: int
) -> StepResult:
    """Add the counts a process gathered without a round trip (its plain successes also enter a
    closed breaker's window, before this operation's outcome), then :func:`step` (in place)."""
    record.successful += successes
    record.rejected += rejections
    add_successes(record, successes, now, config)
    return step(record, op, now, config)


_UNCHANGED: Final = StepResult(None, False)
_STATES: Final = {state.value: state for state in BreakerState}
#: Counts are whole numbers in [0, 2**53): every store keeps them exactly.
_MAX_COUNT: Final = 2**53


class _Unreadable(ValueError):
    """One stored value is not what this version writes."""


def _state(value: Any) -> BreakerState:
    state = _STATES.get(value) if isinstance(value, str) else None
    if state is None:
        raise _Unreadable(f"state {value!r:.60} is not a breaker state")
    return state


def _count(value: Any) -> int:
    number: float | int | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                number = None
    if number is None or (isinstance(number, float) and not number.is_integer()):
        raise _Unreadable(f"{value!r:.60} is not a whole number")
    if not 0 <= number < _MAX_COUNT:
        raise _Unreadable(f"{value!r:.60} is out of range")
    return int(number)


def _time(value: Any) -> float:
    number: float | None = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = float(value)
    if number is None or not math.isfinite(number):
        raise _Unreadable(f"{value!r:.60} is not a time in seconds")
    return number


def _window(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_WINDOW or value.strip("0123"):
        raise _Unreadable("window is not a text of the digits 0 to 3")
    return value


#: A stored bucket's numbers are below this (every store keeps them exactly).
_MAX_BUCKET_NUMBER: Final = 10**15
_BUCKET: Final = re.compile(r"([0-9]+):([0-9]+):([0-9]+):([0-9]+)")


def _buckets(value: Any) -> str:
    """A time-based window's buckets as :func:`~sessionmw._breaker_table.step` writes them."""
    if not isinstance(value, str):
        raise _Unreadable("buckets is not text")
    if value:
        pieces = value.split(",")
        if len(pieces) > MAX_TIME_WINDOW or not all(
            (found := _BUCKET.fullmatch(piece)) and all(int(n) < _MAX_BUCKET_NUMBER for n in found.groups())
            for piece in pieces
        ):
            raise _Unreadable("buckets is not a text of second:calls:failed:slow numbers")
    return value


#: How each of :data:`_COLUMNS` is read back from a row, a script's reply or a hash (all strings
#: for Redis), refusing anything this version does not write.
_KINDS: Final[tuple[Callable[[Any], Any], ...]] = (
    _state, _count, _window, _time, _count, _time, _count, _count, _count, _count, _time,
    _count, _count, _count, _buckets,
)


def _record_of(name: str, values: Sequence[Any], where: str) -> BreakerRecord:
    """A breaker's record from its :data:`_COLUMNS` values, in that order.

    :raises CorruptBreakerError: if a value is not one this version writes.
    """
    read: list[Any] = []
    for column, kind, value in zip(_COLUMNS, _KINDS, values, strict=True):
        try:
            read.append(kind(value))
        except _Unreadable as exc:
            reason = str(exc) if column in ("state", "window", "buckets") else f"{column} {exc}"
            raise CorruptBreakerError(name, where, reason) from None
    return BreakerRecord(name, *read)


def _record_row(record: BreakerRecord) -> tuple[Any, ...]:
    return (record.name, record.state.value, *(getattr(record, column) for column in _COLUMNS[1:]))


class SQLiteBreakers:
    """Breakers in a table of the store's SQLite file (WAL; one connection per thread).

    An operation is one ``BEGIN IMMEDIATE`` transaction: read the row, :func:`step`, write it. A
    read with nothing to add is a plain ``SELECT``. A forked child opens its own connections.
    """

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        #: The SQLite file.
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
                columns = {row[1] for row in connection.execute("PRAGMA table_info(sessionmw_breakers)")}
                for column in _LATER_COUNTS:
                    if column not in columns:
                        connection.execute(
                            f"ALTER TABLE sessionmw_breakers ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                        )
                for column in _LATER_TEXTS:
                    if column not in columns:
                        connection.execute(
                            f"ALTER TABLE sessionmw_breakers ADD COLUMN {column} TEXT NOT NULL DEFAULT ''"
                        )
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
                found = self._select(connection, name)
                if found is not None:
                    return found, _UNCHANGED
                # A breaker the store does not hold yet is added (closed, no counts), so that the
                # operator's listing shows every breaker an app has used.
                connection.execute(_ADD, _record_row(BreakerRecord(name, changed_at=now)))
                return self._select(connection, name) or BreakerRecord(name, changed_at=now), _UNCHANGED
            connection.execute("BEGIN IMMEDIATE")
            try:
                try:
                    record = self._select(connection, name) or BreakerRecord(name, changed_at=now)
                except CorruptBreakerError:
                    if op not in OPERATOR_OPS:
                        raise
                    record = BreakerRecord(name, changed_at=now)  # an operator replaces it
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

    def _select(self, connection: sqlite3.Connection, name: str) -> BreakerRecord | None:
        row = connection.execute(f"{_SELECT} WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._row_record(row)

    def _row_record(self, row: tuple[Any, ...]) -> BreakerRecord:
        name = row[0]
        return _record_of(name, row[1:], f"{name!r:.120} in {self.path} (table sessionmw_breakers)")

    def records(self) -> list[BreakerRecord]:
        return _readable(self.scan())

    def scan(self) -> list[Found]:
        try:
            rows = self._connect().execute(f"{_SELECT} ORDER BY name").fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite breakers at {self.path}: {exc}") from exc
        found: list[Found] = []
        for row in rows:
            try:
                found.append(self._row_record(row))
            except CorruptBreakerError as exc:
                found.append(exc)
        return found


#: The Redis script: one breaker operation on the breaker's hash, the table generated from
#: :data:`~sessionmw._breaker_table.BREAKER_TRANSITIONS`. Mirrors :func:`~sessionmw._breaker_table.step`.
_LUA = """
local T = %(table)s
local key = KEYS[1]
local op, now = ARGV[1], tonumber(ARGV[2])
local threshold, rate, size = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local min_calls, open_for, half_open_calls = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local successes, rejections, slow_rate = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local max_open, growth, success_threshold = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local timed = ARGV[15] == 'time'
local r = {state='closed', failures=0, window='', open_until=0, probes=0, probe_at=0, opens=0,
           successful=0, failed=0, rejected=0, changed_at=now, slow=0, reopens=0, probe_successes=0,
           buckets=''}
local STATES = {closed=true, open=true, half_open=true, forced_open=true, disabled=true}
local COUNTS = {'failures', 'probes', 'opens', 'successful', 'failed', 'rejected', 'slow', 'reopens',
                'probe_successes'}
local TIMES = {'open_until', 'probe_at', 'changed_at'}
-- Read the stored record into r; the reason it is unreadable, or nil (as _record_of decides).
local missing = false
-- A time-based window's buckets, {second, calls, failed, slow} each (as parse_buckets), or nil
-- if the text is not what this version writes (as _buckets decides).
local function buckets_of(text)
  local list = {}
  if text == '' then return list end
  for piece in string.gmatch(text .. ',', '([^,]*),') do
    local a, b, c, d = string.match(piece, '^([0-9]+):([0-9]+):([0-9]+):([0-9]+)$')
    if a == nil or #list >= %(max_time_window)d then return nil end
    local bucket = {tonumber(a), tonumber(b), tonumber(c), tonumber(d)}
    for _, x in ipairs(bucket) do if x >= 1e15 then return nil end end
    list[#list + 1] = bucket
  end
  return list
end
local function unreadable()
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then missing = true; return nil end
  if kind ~= 'hash' then return 'it is a Redis ' .. kind .. ', not a hash' end
  local h = redis.call('HGETALL', key)
  local got = {}
  for i = 1, #h, 2 do got[h[i]] = h[i + 1] end
  if not STATES[got.state or ''] then
    return 'state ' .. string.sub(tostring(got.state), 1, 40) .. ' is not a breaker state'
  end
  local w = got.window
  if w == nil or string.find(w, '[^0-3]') or string.len(w) > %(max_window)d then
    return 'window is not a text of the digits 0 to 3'
  end
  -- (a record written before these counts)
  got.slow, got.reopens = got.slow or '0', got.reopens or '0'
  got.probe_successes = got.probe_successes or '0'
  local b = got.buckets or ''
  if buckets_of(b) == nil then return 'buckets is not a text of second:calls:failed:slow numbers' end
  r.state, r.window, r.buckets = got.state, w, b
  for _, f in ipairs(COUNTS) do
    local x = tonumber(got[f] or '')
    if x == nil or x ~= x or x < 0 or x >= 2^53 or math.floor(x) ~= x then
      return f .. ' ' .. string.sub(tostring(got[f]), 1, 40) .. ' is not a whole number in range'
    end
    r[f] = x
  end
  for _, f in ipairs(TIMES) do
    local x = tonumber(got[f] or '')
    if x == nil or x ~= x or x == math.huge or x == -math.huge then
      return f .. ' ' .. string.sub(tostring(got[f]), 1, 40) .. ' is not a time in seconds'
    end
    r[f] = x
  end
  return nil
end
local why = unreadable()
if why then
  if op ~= 'force_open' and op ~= 'force_close' and op ~= 'disable' then return {'corrupt', why} end
  redis.call('DEL', key)  -- an operator's command replaces it
  r = {state='closed', failures=0, window='', open_until=0, probes=0, probe_at=0, opens=0,
       successful=0, failed=0, rejected=0, changed_at=now, slow=0, reopens=0, probe_successes=0,
       buckets=''}
end
local function fmt(x) return string.format('%%.17g', x) end
local function out(old, event, admitted)
  return {r.state, tostring(r.failures), r.window, fmt(r.open_until), tostring(r.probes), fmt(r.probe_at),
          tostring(r.opens), tostring(r.successful), tostring(r.failed), tostring(r.rejected),
          fmt(r.changed_at), tostring(r.slow), tostring(r.reopens), tostring(r.probe_successes),
          r.buckets, old, event, admitted and '1' or '0'}
end
-- (a first read adds a missing breaker, so that listings show every breaker used)
if op == 'read' and successes == 0 and rejections == 0 and not missing then return out('', '', false) end
local keeps = rate >= 0 or slow_rate >= 0
-- As _add_to_buckets: add to the bucket of now's second, drop the buckets older than the window.
local function add_to_buckets(calls, failed, slow)
  local list = buckets_of(r.buckets)
  local second = math.max(0, math.floor(now))
  if #list > 0 and list[#list][1] > second then second = list[#list][1] end
  local kept = {}
  for _, bucket in ipairs(list) do
    if bucket[1] >= second - size + 1 then kept[#kept + 1] = bucket end
  end
  local last = kept[#kept]
  if last and last[1] == second then
    last[2], last[3], last[4] = last[2] + calls, last[3] + failed, last[4] + slow
  else kept[#kept + 1] = {second, calls, failed, slow} end
  local parts = {}
  for i, bucket in ipairs(kept) do
    parts[i] = string.format('%%d:%%d:%%d:%%d', bucket[1], bucket[2], bucket[3], bucket[4])
  end
  r.buckets = table.concat(parts, ',')
  r.window = ''
end
local function push(o)
  if not keeps then return end
  if timed then
    add_to_buckets(1, (o == '1' or o == '3') and 1 or 0, (o == '2' or o == '3') and 1 or 0)
  else r.window = string.sub(r.window .. o, -size); r.buckets = '' end
end
r.successful = r.successful + successes
r.rejected = r.rejected + rejections
if successes > 0 and r.state == 'closed' and keeps then
  if timed then add_to_buckets(successes, 0, 0) else push(string.rep('0', math.min(successes, size))) end
end
-- As BreakerRecord.window_counts: the calls in the window, failed and slow.
local function window_counts()
  if r.buckets ~= '' then
    local n, failed, slow = 0, 0, 0
    for _, bucket in ipairs(buckets_of(r.buckets)) do
      n, failed, slow = n + bucket[2], failed + bucket[3], slow + bucket[4]
    end
    return n, failed, slow
  end
  local _, failed = string.gsub(r.window, '[13]', '')
  local _, slow = string.gsub(r.window, '[23]', '')
  return string.len(r.window), failed, slow
end
local function tripped()
  if r.failures >= threshold then return true end
  local n, failed, slow = window_counts()
  if n < min_calls then return false end
  if rate >= 0 and failed >= rate * n - 1e-9 then return true end
  return slow_rate >= 0 and slow >= slow_rate * n - 1e-9
end
local s, event = r.state, nil
if op == 'admit' then
  if s == 'open' and now >= r.open_until then event = 'probe'
  elseif s == 'half_open' and (r.probes < half_open_calls or now >= r.probe_at + open_for) then
    event = 'probe'
  elseif s == 'open' or s == 'forced_open' or s == 'half_open' then r.rejected = r.rejected + 1 end
elseif op == 'success' or op == 'probe_success' or op == 'slow_success' then
  r.successful = r.successful + 1
  local slow = op == 'slow_success'
  if op == 'probe_success' and s == 'half_open' then
    r.probe_successes = r.probe_successes + 1
    if r.probe_successes >= success_threshold then event = 'probe_success'
    else r.probes = math.max(0, r.probes - 1) end
  else
    if slow then r.slow = r.slow + 1 end
    if s == 'closed' then
      r.failures = 0; push(slow and '2' or '0')
      if slow and tripped() then event = 'trip' else event = 'success' end
    end
  end
elseif op == 'failure' or op == 'probe_failure' or op == 'slow_failure' then
  r.failed = r.failed + 1
  local slow = op == 'slow_failure'
  if op == 'probe_failure' and s == 'half_open' then event = 'probe_failure'
  else
    if slow then r.slow = r.slow + 1 end
    if s == 'closed' then
      r.failures = r.failures + 1; push(slow and '3' or '1')
      if tripped() then event = 'trip' else event = 'failure' end
    end
  end
elseif op == 'release' then
  if s == 'half_open' and r.probes > 0 then r.probes = r.probes - 1 end
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
    if new ~= s then r.changed_at = now; r.probe_successes = 0 end
    if new == 'open' or (new == 'forced_open' and s ~= 'forced_open') then r.opens = r.opens + 1 end
    if new == 'open' and s == 'half_open' then r.reopens = r.reopens + 1
    elseif new == 'closed' then r.reopens = 0 end
    r.state = new; r.failures = 0; r.window = ''; r.buckets = ''
    if new == 'open' then
      local period = open_for
      if max_open >= 0 then
        for _ = 1, math.min(r.reopens, 64) do period = math.min(period * growth, max_open) end
      end
      r.open_until = now + period
    end
    if new ~= 'half_open' then r.probes = 0 end
  end
end
redis.call('HSET', key, 'state', r.state, 'failures', r.failures, 'window', r.window,
  'open_until', fmt(r.open_until), 'probes', r.probes, 'probe_at', fmt(r.probe_at), 'opens', r.opens,
  'successful', r.successful, 'failed', r.failed, 'rejected', r.rejected, 'changed_at', fmt(r.changed_at),
  'slow', r.slow, 'reopens', r.reopens, 'probe_successes', r.probe_successes, 'buckets', r.buckets)
if new ~= old then return out(old, event, admitted) end
return out('', '', admitted)
"""


def lua_source() -> str:
    """The Redis script's source, with the table generated from the Python one."""
    return _LUA % {"table": lua_table(), "max_window": MAX_WINDOW, "max_time_window": MAX_TIME_WINDOW}


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
        slow_rate = -1.0 if config.slow_call_rate is None else config.slow_call_rate
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
            repr(float(slow_rate)),
            repr(float(-1.0 if config.max_open_for is None else config.max_open_for)),
            repr(float(config.open_for_multiplier)),
            config.success_threshold,
            config.window_type,
        ]
        try:
            if name not in self._known:
                self.client.sadd(self._index, name)
                self._known.add(name)
            reply = self._script(keys=[self._key(name)], args=args)
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis breakers: {type(exc).__name__}") from exc
        values = [item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in reply]
        if values[0] == "corrupt":
            raise CorruptBreakerError(name, self._where(name), values[1])
        size = len(_COLUMNS)
        record = _record_of(name, values[:size], self._where(name))
        change = None
        if values[size]:
            change = Change(BreakerState(values[size]), record.state, BreakerEvent(values[size + 1]))
        return record, StepResult(change, values[size + 2] == "1")

    def _where(self, name: str) -> str:
        return f"in Redis key {self._key(name)!r:.160}"

    def records(self) -> list[BreakerRecord]:
        return _readable(self.scan())

    def scan(self) -> list[Found]:
        """Every breaker in the store: two round trips (the names, then their hashes in a pipeline)."""
        import redis as redis_module

        try:
            names = sorted(
                item.decode(errors="replace") if isinstance(item, bytes) else str(item)
                for item in self.client.smembers(self._index)
            )
            with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(self._key(name))
                replies = pipe.execute(raise_on_error=False)
        except self._errors as exc:
            raise StoreUnavailableError(f"Redis breakers: {type(exc).__name__}") from exc
        found: list[Found] = []
        for name, reply in zip(names, replies, strict=True):
            if isinstance(reply, redis_module.ResponseError):  # WRONGTYPE: not a hash
                found.append(CorruptBreakerError(name, self._where(name), "it is not a Redis hash"))
            elif isinstance(reply, BaseException):
                raise StoreUnavailableError(f"Redis breakers: {type(reply).__name__}") from reply
            elif reply:
                try:
                    found.append(self._hash_record(name, reply))
                except CorruptBreakerError as exc:
                    found.append(exc)
        return found

    def _hash_record(self, name: str, reply: dict[Any, Any]) -> BreakerRecord:
        """A breaker's hash as the script wrote it."""
        values: dict[str, Any] = {}
        for key, value in reply.items():
            field = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
            try:
                values[field] = value.decode() if isinstance(value, bytes) else str(value)
            except UnicodeDecodeError:
                values[field] = value  # (not text: refused by its column's kind)
        for column in _LATER_COUNTS:  # (a record written before these counts)
            values.setdefault(column, "0")
        for column in _LATER_TEXTS:
            values.setdefault(column, "")
        missing = [column for column in _COLUMNS if column not in values]
        if missing:
            raise CorruptBreakerError(name, self._where(name), f"it has no field {missing[0]!r}")
        return _record_of(name, [values[column] for column in _COLUMNS], self._where(name))
