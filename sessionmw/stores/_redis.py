"""The distributed store: sessions in Redis, shared by every process on every host.

Each operation is **one round trip**: a Lua script that reads the record, applies the passage of
time and the event, writes the record back with a TTL and updates the expiry index, atomically.
The script's transition table is generated from :data:`sessionmw._transitions.TRANSITIONS` (and its
names from the enums) when this module builds it, so the table still lives in one place.

The common request, an activity that changes no state, takes the script's fast path: it reads
the fields it needs from the record's JSON and rewrites only ``last_activity`` (about 16 µs of
server time instead of 25 on the benchmark machine). Any other record or event takes the full
path, which decodes and validates the record.

Keys (``p`` is the key prefix, ``k`` the session's bucket, derived from its id)::

    {p:b<k>}:s:<id>      the record, JSON (SessionRecord.to_dict), with a TTL
    {p:b<k>}:expiry      sorted set: live session ids scored by their expiry time
    {p:b<k>}:purge       sorted set: ended and expired ids scored by the end of their retention
    {p:b<k>}:states      hash: each session's state, as the census counted it
    {p:b<k>}:census      hash: how many of the bucket's sessions are in each state

The part in braces is a Redis Cluster hash tag: a session's keys and its bucket's index share one
hash slot, so every script touches one slot. Sweeping visits the buckets one by one and costs
about the number of due sessions. The scripts keep the census as they change states, so counting
the sessions in a state reads one small hash per bucket (one round trip), whatever their number.
Every record has a TTL, so Redis drops dead sessions by itself even if nobody sweeps (a record
dropped so leaves the census when the sweep next visits its id).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import select
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from inspect import signature
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from sessionmw._errors import (
    ConfigurationError,
    CorruptRecordError,
    SessionExistsError,
    SessionLimitError,
    StoreUnavailableError,
)
from sessionmw._errors import IllegalTransitionError as _Refused
from sessionmw._forks import reset_after_fork
from sessionmw._session import RECORD_VERSION, Policy, SessionRecord
from sessionmw._states import Event, SessionState
from sessionmw._transitions import ACTIVITY_KEEPS as _ACTIVITY_KEEPS
from sessionmw._transitions import IDLING as _IDLES
from sessionmw._transitions import TRANSITIONS, Change
from sessionmw.stores._base import Outcome, new_incarnation, policy_from_json, policy_to_json
from sessionmw.stores._urls import mask_url
from sessionmw.stores.cache import RecordCache
from sessionmw.stores.options import REDIS_OPTIONS, flag
from sessionmw.stores.records import MAX_RECORD_CHARS, decode_record
from sessionmw.stores.redis_errors import unreachable_errors

if TYPE_CHECKING:
    import redis

    from sessionmw.stores.breakers import RedisBreakers
    from sessionmw.stores.counters import RedisCounters
    from sessionmw.stores.redis_async import AsyncRedisOperations

__all__ = ["DRAIN_BOUND", "SUBSCRIBE_PAUSE", "RedisStore", "lua_source"]

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _lua_string(text: str) -> str:
    if not re.fullmatch(r"[a-z_]+", text):
        raise ValueError(f"unexpected name {text!r} in the transition table")
    return f'"{text}"'


def _lua_table() -> str:
    """The transition table as Lua source: ``T[state][event] = next state``."""
    rows: dict[str, list[str]] = {}
    for (state, event), new in TRANSITIONS.items():
        rows.setdefault(state.value, []).append(f"[{_lua_string(event.value)}]={_lua_string(new.value)}")
    body = ",\n  ".join(f"[{_lua_string(state)}]={{{', '.join(cells)}}}" for state, cells in rows.items())
    return "local T = {\n  " + body + "\n}"


def _lua_names() -> str:
    events = ", ".join(f"{event.name}={_lua_string(event.value)}" for event in Event)
    states = ", ".join(f"[{_lua_string(state.value)}]=true" for state in SessionState)
    terminal = ", ".join(f"[{_lua_string(state.value)}]=true" for state in SessionState if state.is_terminal)
    return f"local EV = {{{events}}}\nlocal STATES = {{{states}}}\nlocal TERMINAL = {{{terminal}}}"


def _lua_fast_sets() -> str:
    """The sets the fast path needs, as :func:`sessionmw._transitions.is_routine_activity` reads
    them off the table (the states where activity changes nothing but the clock, those where
    idleness is a transition), and the live and terminal states."""
    same = [s for s in SessionState if s in _ACTIVITY_KEEPS]
    idles = [s for s in SessionState if s in _IDLES]
    live = [s for s in SessionState if not s.is_terminal]
    terminal = [s for s in SessionState if s.is_terminal]

    def lua_set(states: list[SessionState]) -> str:
        return "{" + ", ".join(f"[{_lua_string(s.value)}]=true" for s in states) + "}"

    return (
        f"local ACTIVITY_KEEPS = {lua_set(same)}\nlocal IDLES = {lua_set(idles)}\n"
        f"local LIVE = {lua_set(live)}\nlocal ENDED = {lua_set(terminal)}\n"
        f"local ACTIVITY = {_lua_string(Event.ACTIVITY.value)}"
    )


# Every call starts here. ARGV[1]: the operation; ARGV[2]: now (Python's repr of the float);
# ARGV[3]: the event of an update ('' for none), the limit of a sweep; ARGV[4]: the record
# version, the policy and the invalidation channel ('' for none),
# 'version,idle_after,timeout,absolute,threshold,retention,resolution,channel'; ARGV[5]:
# the error, or the new record; ARGV[6]: for a create, the most live sessions ('' for no limit).
# KEYS: the record ('{tag}:s:<id>'; the sweep's: '{tag}:s:'), the bucket's expiry and purge
# sets, its states and census hashes, then (a capped create on one server) every bucket's
# expiry set.
_LUA_PROLOGUE = r"""
local op, now_text, extra = ARGV[1], ARGV[2], ARGV[3]
local now = tonumber(now_text)
local VERSION, idle_after, timeout, absolute, threshold, retention, resolution, CHANNEL =
  string.match(ARGV[4], '^(%d+),([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([^,]*)$')
idle_after, timeout, absolute = tonumber(idle_after), tonumber(timeout), tonumber(absolute)
threshold, retention, resolution = tonumber(threshold), tonumber(retention), tonumber(resolution)
local key, index, purge, states, census = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ID = string.sub(key, string.find(key, '}', 1, true) + 4)  -- the id after '{tag}:s:'
local function num(x) return string.format('%.17g', x) end
"""

# The fast path: a look, or an activity, that decides no transition (no time-derived change is
# due, and activity keeps the state: sessionmw._transitions.is_routine_activity). It reads the few
# fields it needs straight from the JSON the store wrote and only rewrites last_activity (within
# the renewal window, nothing), instead of decoding and re-encoding the record. It publishes no
# invalidation: a copy whose last_activity is older only sends its reader to the store sooner.
# A record in any other shape takes the full path below, which validates it.
_LUA_FAST_PATH = r"""
if op == 'update' and (extra == '' or extra == ACTIVITY) then
  local raw = redis.pcall('GET', key)
  if type(raw) == 'string' then
    local head = '{"v":' .. VERSION .. ',"id":"' .. ID .. '","state":"'
    local at = #head + 1
    if string.sub(raw, 1, at - 1) == head then
      local state, created, from, last, upto = string.match(raw,
        '^(%l+)","created_at":([%d.eE+-]+),"last_activity":()([%d.eE+-]+)(),"error_count":', at)
      created, last = tonumber(created), tonumber(last)
      if created and last then
        local idle = now - last
        local due = now - created >= absolute or idle >= timeout or (idle >= idle_after and IDLES[state])
        if extra == '' and (ENDED[state] or (LIVE[state] and not due)) then
          return raw  -- a look that changes nothing: no write
        end
        if extra == ACTIVITY and ACTIVITY_KEEPS[state] and not due then
          if resolution > 0 and now - last < resolution then
            return raw  -- within the renewal window: no write (sessionmw._transitions.writes_nothing)
          end
          local record = string.sub(raw, 1, from - 1) .. now_text .. string.sub(raw, upto)
          local expiry = math.min(now + timeout, created + absolute)
          redis.call('ZADD', index, num(expiry), ID)
          redis.call('SET', key, record, 'PX', math.max(1, math.ceil((expiry + retention - now) * 1000)))
          return record
        end
      end
    end
  end
end
"""

# The rules of sessionmw._transitions.elapse/apply, over the generated table. Numbers go in as
# Python's round-trip repr and come back formatted with %.17g, so Lua's doubles and Python's
# floats agree bit for bit (the differential test in tests/test_stores.py checks it).
_LUA_RULES = r"""
local function enc(r)
  local function s(x) if x == nil then return 'null' end return cjson.encode(x) end
  return '{"v":' .. VERSION .. ',"id":' .. s(r.id) .. ',"state":' .. s(r.state)
    .. ',"created_at":' .. num(r.created_at) .. ',"last_activity":' .. num(r.last_activity)
    .. ',"error_count":' .. string.format('%d', r.error_count) .. ',"last_error":' .. s(r.last_error)
    .. ',"state_changed_at":' .. num(r.state_changed_at) .. ',"reason":' .. s(r.reason)
    .. ',"reconnected_at":' .. (r.reconnected_at == nil and 'null' or num(r.reconnected_at)) .. '}'
end
local function opt_string(x)
  if x == nil or x == cjson.null then return true, nil end
  if type(x) == 'string' then return true, x end
  return false, nil
end
local function dec(raw, id)
  local ok, r = pcall(cjson.decode, raw)
  if not ok or type(r) ~= 'table' or r.v ~= tonumber(VERSION) then return nil end
  if r.id ~= id or not STATES[r.state] then return nil end
  if type(r.created_at) ~= 'number' or type(r.last_activity) ~= 'number' then return nil end
  if type(r.error_count) ~= 'number' or r.error_count < 0 or r.error_count % 1 ~= 0 then return nil end
  if r.state_changed_at == nil then r.state_changed_at = r.created_at end
  if type(r.state_changed_at) ~= 'number' then return nil end
  local ok1, last_error = opt_string(r.last_error)
  local ok2, reason = opt_string(r.reason)
  if not (ok1 and ok2) then return nil end
  r.last_error, r.reason = last_error, reason
  if r.reconnected_at == cjson.null then r.reconnected_at = nil end
  if r.reconnected_at ~= nil and type(r.reconnected_at) ~= 'number' then return nil end
  return r
end
local function enter(r, new, ev, now, changes)
  changes[#changes + 1] = r.state
  changes[#changes + 1] = new
  changes[#changes + 1] = ev
  r.state, r.state_changed_at, r.reason = new, now, ev
end
-- sessionmw._transitions.elapse
local function elapse(r, now, p, changes)
  local s = r.state
  if TERMINAL[s] then return end
  local idle = now - r.last_activity
  local ev
  if now - r.created_at >= p.absolute then ev = EV.LIFETIME_EXCEEDED
  elseif idle >= p.timeout then ev = EV.TIMEOUT
  elseif idle >= p.idle_after and T[s][EV.IDLE_TIMEOUT] then ev = EV.IDLE_TIMEOUT
  else return end
  enter(r, T[s][ev], ev, now, changes)
end
-- sessionmw._transitions.apply; returns the refused event, if any
local function apply(r, ev, now, p, err, changes)
  if ev == EV.ERROR and r.error_count + 1 >= p.threshold then ev = EV.ERROR_THRESHOLD end
  local s = r.state
  local new = T[s] and T[s][ev]
  if not new then return ev end
  if ev == EV.ACTIVITY then r.last_activity = now
  elseif ev == EV.ERROR or ev == EV.ERROR_THRESHOLD then
    r.last_activity = now
    r.error_count = r.error_count + 1
    r.last_error = err
  elseif ev == EV.SUCCESS or ev == EV.RECONNECT then
    r.last_activity = now
    r.error_count = 0
    r.last_error = nil
    if ev == EV.RECONNECT then r.reconnected_at = now else r.reconnected_at = nil end
  end
  if new ~= s then enter(r, new, ev, now, changes) end
  return nil
end
-- every change but a renewal of last_activity is announced to the stores' read caches (pcall:
-- a user the ACL forbids the channel keeps working, and cannot subscribe to a cache either). On
-- a cluster ('{}') each bucket has a shard channel, '{tag}:changes', in the slot of its keys.
local function changed(id)
  if CHANNEL == '{}' then
    redis.pcall('SPUBLISH', string.sub(key, 1, string.find(key, '}', 1, true)) .. ':changes', id)
  elseif CHANNEL ~= '' then
    redis.pcall('PUBLISH', CHANNEL, id)
  end
end
-- the census: the bucket's count of sessions per state, kept by every write and removal
local function tally(id, new)
  local old = redis.call('HGET', states, id)
  if old and old == new then return end
  if old then redis.call('HINCRBY', census, old, -1) end
  if new then
    redis.call('HINCRBY', census, new, 1)
    redis.call('HSET', states, id, new)
  elseif old then
    redis.call('HDEL', states, id)
  end
end
local function expires_at(r, p)
  return math.min(r.last_activity + p.timeout, r.created_at + p.absolute)
end
-- write the record with its TTL and keep the bucket's indexes in step
local function store(key, index, purge, r, now, p)
  local ttl
  if TERMINAL[r.state] then
    local gone = r.state_changed_at + p.retention
    redis.call('ZREM', index, r.id)
    redis.call('ZADD', purge, num(gone), r.id)
    ttl = gone - now
  else
    local due = expires_at(r, p)
    redis.call('ZADD', index, num(due), r.id)
    ttl = due + p.retention - now
  end
  local json = enc(r)
  redis.call('SET', key, json, 'PX', math.max(1, math.ceil(ttl * 1000)))
  tally(r.id, r.state)
  changed(r.id)
  return json
end
local p = {idle_after=idle_after, timeout=timeout, absolute=absolute, threshold=threshold,
  retention=retention}
local function read(k, id)
  local got = redis.pcall('GET', k)
  if got == false then return false end
  if type(got) ~= 'string' then return nil end
  return dec(got, id)
end
if op == 'update' then
  local id, ev = ID, extra ~= '' and extra or nil
  local r = read(key, id)
  if r == false then return {'missing'} end
  if r == nil then return {'corrupt'} end
  local idle = now - r.last_activity
  if ev == EV.ACTIVITY and resolution > 0 and idle < resolution and ACTIVITY_KEEPS[r.state]
      and now - r.created_at < absolute and idle < timeout and (idle < idle_after or not IDLES[r.state]) then
    return enc(r)  -- routine activity within the renewal window: no write
  end
  local changes = {}
  elapse(r, now, p, changes)
  local refused = nil
  if ev then
    local before = r.state
    refused = apply(r, ev, now, p, ARGV[5], changes)
    if refused then refused = {before, refused} end
  end
  local json = store(key, index, purge, r, now, p)
  if #changes == 0 and not refused then return json end  -- the common case: just the record
  local out = {'ok', json, changes}
  if refused then out[4] = refused end
  return out
elseif op == 'create' then
  local id = ID
  local old = read(key, id)
  if old then
    elapse(old, now, p, {})
    if not TERMINAL[old.state] then return {'exists'} end
  end
  local r = dec(ARGV[5], id)
  if r == nil then return {'corrupt'} end
  if ARGV[6] ~= '' then  -- the cap, counted and enforced in the same atomic step as the create
    local live, upto = 0, '(' .. now_text
    for i = 6, #KEYS do live = live + redis.call('ZCOUNT', KEYS[i], upto, '+inf') end
    if live >= tonumber(ARGV[6]) then return {'full'} end
  end
  redis.call('ZREM', purge, id)
  store(key, index, purge, r, now, p)
  return {'ok'}
elseif op == 'delete' then
  redis.call('ZREM', index, ID)
  redis.call('ZREM', purge, ID)
  tally(ID, nil)
  changed(ID)
  return {'ok', redis.call('DEL', key)}
elseif op == 'sweep' then
  local prefix, limit, upto = key, tonumber(extra), num(now)
  -- terminal records past their retention go (their TTL would drop them too, in server time)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', purge, '-inf', upto, 'LIMIT', 0, limit)) do
    redis.call('DEL', prefix .. id)
    redis.call('ZREM', purge, id)
    tally(id, nil)
    changed(id)
  end
  local ids = redis.call('ZRANGEBYSCORE', index, '-inf', upto, 'LIMIT', 0, limit)
  local changes = {}
  for _, id in ipairs(ids) do
    local k = prefix .. id
    local r = read(k, id)
    if not r then
      redis.call('ZREM', index, id)  -- gone (TTL) or unreadable: nothing left to expire
      tally(id, nil)
      changed(id)
    else
      local mine = {}
      elapse(r, now, p, mine)
      store(k, index, purge, r, now, p)
      if TERMINAL[r.state] then
        changes[#changes + 1] = id
        for _, field in ipairs(mine) do changes[#changes + 1] = field end
      end
    end
  end
  return {'ok', changes}
end
return redis.error_reply('unknown operation ' .. tostring(op))
"""


def lua_source() -> str:
    """The store's Lua script: the arguments, the fast path, then the generated table and the rules.

    The table is built only when a call gets past the fast path (Lua runs a script top to bottom).
    """
    return "\n".join(
        [_LUA_PROLOGUE, _lua_fast_sets(), _LUA_FAST_PATH, _lua_table(), _lua_names(), _LUA_RULES]
    )


_STATE = {state.value: state for state in SessionState}
_DECODER = json.JSONDecoder()
_NUMBER = (int, float)
_EVENT = {event.value: event for event in Event}
_ACTIVITY = Event.ACTIVITY
#: Seconds between a failed subscription and the next attempt (counted from the failure).
SUBSCRIBE_PAUSE = 1.0
#: The most seconds reading one invalidation that has begun to arrive may take (under the lock).
DRAIN_BOUND = 0.05
#: The kinds of pub/sub message that carry an invalidation (RESP2).
_MESSAGES = (b"message", b"smessage")


#: The incarnation: the one stored, else the argument, stored now (one round trip, any version).
_INCARNATION_SCRIPT = (
    "local current = redis.call('GET', KEYS[1]) "
    "if current then return current end "
    "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]"
)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore:
    """Keeps sessions in Redis; safe for many threads, processes and hosts.

    :param client: a :class:`redis.Redis` or :class:`redis.RedisCluster` (its connection pools and
        timeouts are used as they are); usually built by :meth:`from_url`. Give it no retries:
        a script may have run on the server before its connection broke.
    :param prefix: the start of every key, so several apps can share one Redis (letters, digits
        and ``_.:-``).
    :param buckets: how many expiry-index buckets the sessions are spread over (the unit a
        Redis Cluster can place on different nodes). Every process on a store must agree.
    :param max_sessions: the most live sessions the store accepts; None for no limit.
    :param url: the URL the client came from, for error messages (a password is masked).
    :param cache: keep a local read cache of records (a yes/no option, see
        :func:`~sessionmw.stores.options.flag`): a look, or activity within the renewal window,
        on a copy read less than the window ago makes no round trip. Whatever ``cache`` says,
        the scripts publish every change but a renewal of ``last_activity`` on an invalidation
        channel (on a cluster, a shard channel per bucket, ``SPUBLISH``), so the caches of other
        processes see this store's changes. A store with a cache subscribes to it with one
        connection (on a cluster, one per node), in a thread of its own, never on a request's
        way: until it is subscribed every call goes to Redis. The messages that have arrived
        are read before each answer from the cache, and a lost subscription (dropped
        connection, Redis restart, a slot moved) empties the cache until it is subscribed
        again; after a failed attempt the next waits :data:`SUBSCRIBE_PAUSE` seconds from the
        failure.
    """

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        prefix: str = "sessionmw",
        buckets: int = 16,
        max_sessions: int | None = None,
        url: str | None = None,
        cache: bool | str = True,
    ) -> None:
        cache = flag("cache", cache)
        if not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(f"prefix={prefix!r} is not valid: use 1 to 64 letters, digits or '_.:-'")
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= 16384:
            raise ConfigurationError(f"buckets={buckets!r} is not valid: must be a whole number 1..16384")
        import redis as redis_module

        self._errors: tuple[type[BaseException], ...] = unreachable_errors()
        self._response_error = redis_module.ResponseError
        self._failures: tuple[type[BaseException], ...] = (*self._errors, self._response_error)
        self.max_sessions = max_sessions
        #: The key prefix.
        self.prefix = prefix
        #: The number of expiry-index buckets.
        self.buckets = buckets
        self._client = client
        # A plain client's one pool; a cluster client routes each command to its slot's node.
        self._pool: redis.ConnectionPool | None = getattr(client, "connection_pool", None)
        self._name = f"Redis store {mask_url(url)!r}" if url else f"Redis store (prefix {prefix!r})"
        source = self._source = lua_source()  # the one script, for the sync and async paths
        self._script = client.register_script(source)
        self._sha = hashlib.sha1(source.encode()).hexdigest()
        self._no_script = redis_module.exceptions.NoScriptError
        self._packed: dict[Policy, str] = {}
        # The invalidation channel the scripts publish on, with a cache or without (others may
        # cache what this store changes): on a cluster ('{}') a shard channel per bucket.
        if self._pool is not None:
            self._channel = f"{prefix}:changes:{self._pool.connection_kwargs.get('db', 0)}"
        else:
            self._channel = "{}"
        # The read cache (None without one), the connections subscribed to the invalidation
        # channels, and a count of the invalidations read: a copy fetched while it moved may be
        # old already, so it is not kept.
        self._cache: RecordCache | None = RecordCache() if cache else None
        # The subscribed connections (one; on a cluster, one per node holding buckets), or None.
        self._listeners: list[redis.connection.AbstractConnection] | None = None
        self._poll: Any = None  # select.poll() on the listeners' sockets: one syscall a request
        self._invalidations = 0
        # The thread subscribing now (None: none), and when the next may start after a failure,
        # by time.monotonic() (not the sessions' clock: it only paces the attempts).
        self._subscriber: threading.Thread | None = None
        self._listen_after = float("-inf")
        self._epoch = 0  # bumped by close() and in a forked child: an older subscriber's work is void
        timed_reads = "timeout" in signature(redis_module.Connection.read_response).parameters
        self._drain_read: dict[str, Any] = {"timeout": DRAIN_BOUND} if timed_reads else {}
        self._cache_lock = threading.Lock()
        # How an async client is made (from_url's URL and options; else read off ``client``),
        # and the async operations, made on first use (see sessionmw.stores.aio).
        self._async_source: tuple[str, dict[str, Any], bool] | None = None
        self._async: AsyncRedisOperations | None = None
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock, no subscription (the parent's socket stays the
        parent's), an empty cache."""
        self._cache_lock = threading.Lock()
        self._listeners = self._poll = None
        self._subscriber = None  # the parent's thread is not in the child
        self._async = None  # the parent's loops and their connections are not the child's
        self._epoch += 1
        self._listen_after = float("-inf")
        if self._cache is not None:
            self._cache.clear()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "sessionmw",
        buckets: int = 16,
        max_sessions: int | None = None,
        timeout: float = 1.0,
        connect_timeout: float = 1.0,
        max_connections: int = 50,
        cluster: bool | str = False,
        cache: bool | str = True,
    ) -> RedisStore:
        """A store on the Redis that ``url`` names (``redis://``, ``rediss://`` for TLS, ``unix://``).

        :param timeout: seconds every command may take before the store reports itself unavailable.
        :param connect_timeout: seconds to wait for a connection.
        :param max_connections: the size of the connection pool (of each node's, on a cluster).
        :param cluster: ``url`` names a node of a Redis Cluster: talk to the whole cluster
            (:class:`redis.RedisCluster`), each session's script on the node of its slot.
        :param cache: keep a local read cache (see the class).
        :raises ConfigurationError: if the URL carries an option of sessionmw's (``?prefix=``:
            those are arguments here; :func:`~sessionmw.stores.store_from_url` reads them from a
            URL) or one the Redis connection does not take.
        :raises StoreUnavailableError: with ``cluster``, if no node answers or the server is not
            a cluster (redis-py reads the slot map when the store is built).
        """
        import redis as redis_module
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        ours = [name for name, _ in parse_qsl(urlsplit(url).query) if name in REDIS_OPTIONS]
        if ours:
            raise ConfigurationError(
                f"{ours[0]}= in the URL {mask_url(url)!r} is not an option of the Redis connection: "
                f"give it to RedisStore.from_url({ours[0]}=...), or build the store with "
                "store_from_url(), which reads it from the URL"
            )
        cluster = flag("cluster", cluster)
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not value > 0:
                raise ConfigurationError(
                    f"{name}={value!r} is not valid: must be a positive number of seconds"
                )
        connection: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "max_connections": max_connections,
            "retry": Retry(NoBackoff(), 0),  # a script is not retried: it may have run already
        }
        client: redis_module.Redis | redis_module.RedisCluster
        if cluster:
            try:  # redis-py reads the cluster's slot map now: this connects
                client = redis_module.RedisCluster.from_url(url, **connection)
            except redis_module.exceptions.RedisClusterException as exc:
                raise StoreUnavailableError(f"Redis Cluster {mask_url(url)!r} is unavailable: {exc}") from exc
        else:
            pool = redis_module.ConnectionPool.from_url(url, **connection)
            try:  # a connection object, not connected: redis-py checks its options only so
                pool.connection_class(**pool.connection_kwargs)
            except TypeError as exc:
                raise ConfigurationError(
                    f"the URL {mask_url(url)!r} has an option redis-py does not take: {exc}"
                ) from None
            client = redis_module.Redis(connection_pool=pool)
        store = cls(client, prefix=prefix, buckets=buckets, max_sessions=max_sessions, url=url, cache=cache)
        store._async_source = (url, connection, cluster)
        return store

    # -- keys ------------------------------------------------------------------------------------

    def bucket_of(self, session_id: str) -> int:
        """The bucket a session belongs to (the same in every process: CRC-32 of its id)."""
        return zlib.crc32(session_id.encode()) % self.buckets

    def _tag(self, bucket: int) -> str:
        return f"{{{self.prefix}:b{bucket}}}"

    def _keys(self, session_id: str) -> list[str]:
        tag = self._tag(self.bucket_of(session_id))
        return [f"{tag}:s:{session_id}", f"{tag}:expiry", f"{tag}:purge"]

    def _script_keys(self, session_id: str) -> list[str]:
        """The keys a script on one session touches: its record, its bucket's indexes and census."""
        tag = self._tag(self.bucket_of(session_id))
        return [f"{tag}:s:{session_id}", f"{tag}:expiry", f"{tag}:purge", f"{tag}:states", f"{tag}:census"]

    # -- calls -----------------------------------------------------------------------------------

    def _call(self, keys: list[str], args: list[Any]) -> Any:
        try:
            try:  # EVALSHA straight away: one round trip
                result = self._evalsha(keys, args)
            except self._no_script:  # the server forgot the script (restart, SCRIPT FLUSH)
                result = self._script(keys=keys, args=args)
        except self._failures as exc:
            raise self._failure(exc) from exc
        return self._checked(result)

    def _failure(self, exc: BaseException) -> StoreUnavailableError:
        """The store's error for a redis-py one (unreachable, or refused)."""
        if isinstance(exc, self._response_error):
            return StoreUnavailableError(f"{self._name} refused the operation: {exc}")
        return StoreUnavailableError(f"{self._name} is unavailable: {type(exc).__name__}: {exc}")

    def _checked(self, result: Any) -> Any:
        """A script's reply, if it is one (a record, or a non-empty list)."""
        if not (isinstance(result, bytes) or (isinstance(result, list) and result)):
            raise StoreUnavailableError(f"{self._name} gave an unexpected answer")
        return result

    def _evalsha(self, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA on a connection of the client's pool, without the client's per-command layers.

        ``Redis.execute_command`` adds retries (the store allows none: a script may have run
        before a connection broke), event hooks and response callbacks (EVALSHA has none): about
        10 µs a call. A connection that fails mid-command disconnects itself (redis-py does that
        in ``send_command`` and ``read_response``), so it is never reused half-read.
        """
        pool = self._pool
        if pool is None:  # a cluster client: it finds the node that holds the keys' slot
            return self._client.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self._sha, len(keys), *keys, *args
            )
        connection = pool.get_connection()
        try:
            connection.send_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self._sha, len(keys), *keys, *args
            )
            return connection.read_response()
        finally:
            pool.release(connection)

    def _command(self, name: str, *args: Any) -> Any:
        try:
            return self._client.execute_command(name, *args)  # type: ignore[no-untyped-call]
        except self._errors as exc:
            raise StoreUnavailableError(f"{self._name} is unavailable: {type(exc).__name__}: {exc}") from exc

    def _args(self, op: str, now: float, policy: Policy, extra: str = "") -> list[str]:
        """The script's arguments: operation, time, event or limit, version and policy."""
        packed = self._packed.get(policy)
        if packed is None:
            fields = [
                str(RECORD_VERSION),
                repr(float(policy.idle_after)),
                repr(float(policy.timeout)),
                repr(float(policy.absolute_timeout)),
                str(policy.error_threshold),
                repr(float(policy.retention)),
                repr(float(policy.activity_resolution)),
                self._channel,
            ]
            packed = ",".join(fields)
            self._packed = {**self._packed, policy: packed}
        return [op, repr(float(now)), extra, packed]

    # -- the protocol ----------------------------------------------------------------------------

    def create(self, record: SessionRecord, now: float, policy: Policy) -> None:
        """Store a new session; the cap is checked by the creating script itself on one server
        (exact), and just before it on a cluster (whose buckets live on several nodes)."""
        if self._counts_before_create():
            self._check_room(record, self._pipeline(self._live_commands(now)))
        keys, args = self._create_call(record, now, policy)
        self._forget(record.session_id)
        self._created(record, self._call(keys, args))

    def _counts_before_create(self) -> bool:
        """True on a capped cluster: one script cannot read every node's buckets."""
        return self.max_sessions is not None and self._pool is None

    def _check_room(self, record: SessionRecord, live_counts: list[Any]) -> None:
        if self.max_sessions is not None and sum(live_counts) >= self.max_sessions:
            raise SessionLimitError("the session store is full", session_id=record.session_id)

    def _create_call(self, record: SessionRecord, now: float, policy: Policy) -> tuple[list[str], list[str]]:
        """The create script's keys and arguments (on one server, with the cap and every bucket)."""
        keys = self._script_keys(record.session_id)
        cap = ""
        if self.max_sessions is not None and self._pool is not None:
            cap = str(self.max_sessions)
            keys += [f"{self._tag(bucket)}:expiry" for bucket in range(self.buckets)]
        data = json.dumps(record.to_dict(), separators=(",", ":"))
        return keys, [*self._args("create", now, policy), data, cap]

    def _created(self, record: SessionRecord, result: Any) -> None:
        """Raise what the create script's reply says went wrong."""
        status = _text(result[0])
        if status == "exists":
            raise SessionExistsError("a live session with this id exists", session_id=record.session_id)
        if status == "full":
            raise SessionLimitError("the session store is full", session_id=record.session_id)
        if status == "corrupt":
            raise CorruptRecordError("the new session record could not be written")

    def update(
        self,
        session_id: str,
        event: Event | None,
        now: float,
        policy: Policy,
        error: str | None = None,
    ) -> Outcome | None:
        seen = -1
        if self._cache is not None:
            with self._cache_lock:
                if self._current():
                    if event is None or event is _ACTIVITY:
                        answer = self._cache.answer(session_id, event, now, policy)
                        if answer is not None:
                            return answer  # no round trip
                    seen = self._invalidations
        outcome = self._update(session_id, event, now, policy, error)
        if self._cache is not None:
            self._keep(session_id, None if outcome is None else outcome.record, seen, now)
        return outcome

    def _cached(
        self, session_id: str, event: Event | None, now: float, policy: Policy
    ) -> tuple[Outcome | None, int]:
        """The read cache's answer (None: ask Redis) and the invalidations seen before asking:
        :meth:`update`'s first part, for the async path (the invalidations that have arrived are
        read after a poll that does not wait)."""
        if self._cache is None:
            return None, -1
        with self._cache_lock:
            if not self._current():
                return None, -1
            if event is None or event is _ACTIVITY:
                answer = self._cache.answer(session_id, event, now, policy)
                if answer is not None:
                    return answer, -1
            return None, self._invalidations

    def _update(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None
    ) -> Outcome | None:
        """The update script: one round trip."""
        keys, args = self._update_call(session_id, event, now, policy, error)
        return self._outcome(session_id, now, self._call(keys, args))

    def _update_call(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None
    ) -> tuple[list[str], list[str]]:
        args = self._args("update", now, policy, "" if event is None else event.value)
        if error is not None:
            args.append(error)
        return self._script_keys(session_id), args

    def _outcome(self, session_id: str, now: float, result: Any) -> Outcome | None:
        """The update script's reply, read."""
        if isinstance(result, bytes):  # no change, nothing refused: the record as the script wrote it
            return Outcome(_written(result, self._name), ())
        status = _text(result[0])
        if status == "missing":
            return None
        if status != "ok":
            raise CorruptRecordError(f"session record in {self._name} is unreadable")
        record = _written(result[1], self._name)
        fields = [_text(field) for field in result[2]]
        changes = tuple(
            Change(session_id, _STATE[fields[i]], _STATE[fields[i + 1]], _EVENT[fields[i + 2]], now)
            for i in range(0, len(fields), 3)
        )
        refused = None
        if len(result) > 3:
            state, refused_event = (_text(field) for field in result[3])
            refused = _Refused(state, refused_event, session_id=session_id)
        return Outcome(record, changes, refused)

    # -- the read cache --------------------------------------------------------------------------

    def _current(self) -> bool:
        """Read the invalidations that have arrived; False while there is no subscription (then
        the cache is empty, and a thread is started to subscribe). Caller holds the cache lock."""
        if self._listeners is None:
            self._subscribe_soon()
            return False
        poll = self._poll
        if poll is not None and not poll.poll(0):  # nothing arrived (a drain empties the buffer)
            return True
        return self._drain()

    def _drain(self) -> bool:
        """Apply every invalidation received, from redis-py's buffers and the sockets; False if
        a subscription is lost (then the cache is empty).

        Only what has arrived is read: a message cut in two that does not complete within
        :data:`DRAIN_BOUND` seconds ends the subscription rather than hold the lock (with
        redis-py 6, whose reads take no timeout, within the store's ``timeout``).
        """
        assert self._listeners is not None and self._cache is not None
        cache = self._cache
        try:
            for listener in self._listeners:
                while listener.can_read(timeout=0):
                    message = listener.read_response(**self._drain_read)
                    self._invalidations += 1
                    if isinstance(message, list) and len(message) == 3 and message[0] in _MESSAGES:
                        cache.drop(_text(message[2]))
                    else:  # not an invalidation (e.g. a slot moved away: sunsubscribe)
                        raise ValueError(f"unexpected message on the invalidation channel: {message!r}")
        except Exception:  # a subscription lost, whatever broke it, may have lost changes
            self._lose()
            return False
        return True

    def _subscribe_soon(self) -> None:
        """Start a thread that subscribes, unless one is at work or the pause after a failed
        attempt has not passed. Caller holds the cache lock; nobody waits for the thread."""
        if self._subscriber is not None or time.monotonic() < self._listen_after:
            return
        thread = threading.Thread(
            target=self._subscribe, args=(self._epoch,), name="sessionmw-redis-subscriber", daemon=True
        )
        self._subscriber = thread
        thread.start()

    def _subscribe(self, epoch: int) -> None:
        """The subscriber thread: subscribe without the cache lock, then install the connections
        (unless the store was closed or forked meanwhile). A failure pauses the next attempt
        for :data:`SUBSCRIBE_PAUSE` seconds from the moment it failed."""
        listeners: list[redis.connection.AbstractConnection] = []
        try:
            self._listen(listeners)
        except Exception:  # no subscription: no cache, the store answers every call
            _disconnect(listeners)
            listeners = []
        with self._cache_lock:
            if self._epoch != epoch:
                stale, listeners = listeners, []
            else:
                stale = []
                self._subscriber = None
                if listeners:
                    self._install(listeners)
                else:
                    self._listen_after = time.monotonic() + SUBSCRIBE_PAUSE
        _disconnect(stale)

    def _listen(self, listeners: list[redis.connection.AbstractConnection]) -> None:
        """Subscribe to the invalidation channels, appending each connection to ``listeners``
        as it is made (network I/O: never under the cache lock)."""
        for pool, command, channels in self._subscriptions():
            # RESP2: a message is a plain three-element reply (RESP3 pushes go to redis-py)
            listener = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
            listeners.append(listener)
            listener.connect()
            for channel in channels:  # one at a time: a cluster refuses channels of two slots
                listener.send_command(command, channel)
                reply = listener.read_response()
                if not (isinstance(reply, list) and reply and reply[0] == command.lower().encode()):
                    raise ValueError(f"unexpected answer to {command}: {reply!r}")

    def _install(self, listeners: list[redis.connection.AbstractConnection]) -> None:
        """Use the subscribed connections from now on (caller holds the cache lock)."""
        poll: Any = None
        socks: list[Any] = [listener._sock for listener in listeners if listener._sock is not None]
        # Not on Windows (no poll), nor over TLS (decrypted bytes may wait inside the SSL object,
        # where poll cannot see them): there every check asks redis-py.
        if hasattr(select, "poll") and not any(hasattr(sock, "pending") for sock in socks):
            poll = select.poll()
            for sock in socks:
                poll.register(sock.fileno(), select.POLLIN)
        self._listeners, self._poll = listeners, poll
        self._invalidations += 1

    def _subscriptions(self) -> list[tuple[Any, str, list[str]]]:
        """What to subscribe to: (a connection pool of the node, the command, the channels)."""
        if self._pool is not None:
            return [(self._pool, "SUBSCRIBE", [self._channel])]
        from redis.crc import key_slot

        by_node: dict[str, tuple[Any, list[str]]] = {}
        client: Any = self._client
        for bucket in range(self.buckets):
            channel = f"{self._tag(bucket)}:changes"
            node = client.nodes_manager.get_node_from_slot(key_slot(channel.encode()))
            if node.redis_connection is None:
                raise ValueError(f"no connection to the node of {channel}")
            entry = by_node.setdefault(node.name, (node.redis_connection.connection_pool, []))
            entry[1].append(channel)
        return [(pool, "SSUBSCRIBE", channels) for pool, channels in by_node.values()]

    def _lose(self) -> None:
        """A subscription is gone: changes may have been missed, so the cache empties."""
        listeners, self._listeners, self._poll = self._listeners or [], None, None
        self._invalidations += 1
        if self._cache is not None:
            self._cache.clear()
        _disconnect(listeners)

    def _keep(self, session_id: str, record: SessionRecord | None, seen: int, now: float) -> None:
        """After a script at ``now``: keep its record, unless an invalidation arrived since it
        was sent."""
        cache = self._cache
        assert cache is not None
        with self._cache_lock:
            fresh = seen >= 0 and self._listeners is not None and self._current()
            if record is not None and fresh and seen == self._invalidations:
                cache.put(record, now)
            else:
                cache.drop(session_id)

    def _forget(self, session_id: str | None) -> None:
        """This store changed a session (None: any number of them): forget the copies."""
        if self._cache is None:
            return
        with self._cache_lock:
            self._invalidations += 1
            if session_id is None:
                self._cache.clear()
            else:
                self._cache.drop(session_id)

    def get(self, session_id: str) -> SessionRecord | None:
        raw = self._command("GET", self._keys(session_id)[0])
        return None if raw is None else _decode(raw, session_id, self._name)

    def delete(self, session_id: str) -> bool:
        args = self._args("delete", 0.0, Policy())
        self._forget(session_id)
        try:
            return bool(self._call(self._script_keys(session_id), args)[1])
        finally:
            self._forget(session_id)

    def sweep(self, now: float, policy: Policy, limit: int = 1000) -> list[Change]:
        """Expire due sessions bucket by bucket (one script per bucket; cost ~ due sessions)."""
        self._forget(None)
        expired: list[Change] = []
        for bucket in range(self.buckets):
            if len(expired) >= limit:
                break
            tag = self._tag(bucket)
            args = self._args("sweep", now, policy, str(limit - len(expired)))
            keys = [f"{tag}:s:", f"{tag}:expiry", f"{tag}:purge", f"{tag}:states", f"{tag}:census"]
            result = self._call(keys, args)
            fields = [_text(field) for field in result[1]]
            for i in range(0, len(fields), 4):
                session_id, old, new, event = fields[i : i + 4]
                expired.append(Change(session_id, _STATE[old], _STATE[new], _EVENT[event], now))
        return expired

    def count(self, state: SessionState | None = None) -> int:
        """Live sessions from the buckets' indexes; a given state from their census (one round
        trip of one command per bucket, whatever the number of sessions)."""
        if state is None:
            return sum(self._pipeline([("ZCARD", f"{self._tag(b)}:expiry") for b in range(self.buckets)]))
        commands = [("HGET", f"{self._tag(b)}:census", state.value) for b in range(self.buckets)]
        return sum(int(reply) for reply in self._pipeline(commands) if reply is not None)

    def count_by_state(self) -> dict[SessionState, int]:
        """How many records are in each state, from the buckets' census (one round trip)."""
        totals = dict.fromkeys(SessionState, 0)
        for reply in self._pipeline([("HGETALL", f"{self._tag(b)}:census") for b in range(self.buckets)]):
            for name, value in reply.items():
                state = _STATE.get(_text(name))
                if state is not None:
                    totals[state] += int(value)
        return totals

    def records(self, state: SessionState | None = None) -> Iterator[SessionRecord]:
        """Copies of the readable records, found with SCAN (admin use only, never on a request)."""
        found: list[SessionRecord] = []
        try:
            for bucket in range(self.buckets):
                prefix = f"{self._tag(bucket)}:s:"
                keys = [_text(key) for key in self._client.scan_iter(match=prefix + "*", count=1000)]
                for key, raw in zip(keys, self._pipeline([("GET", key) for key in keys]), strict=True):
                    if raw is None:
                        continue
                    try:
                        record = _decode(raw, key[len(prefix) :], self._name)
                    except CorruptRecordError:
                        continue
                    if state is None or record.state is state:
                        found.append(record)
        except self._errors as exc:
            raise StoreUnavailableError(f"{self._name} is unavailable: {type(exc).__name__}: {exc}") from exc
        return iter(found)

    def close(self) -> None:
        """Close the connection pool's connections (they reopen if the store is used again)."""
        with self._cache_lock:
            self._epoch += 1  # a subscriber at work now closes what it made
            self._subscriber = None
            self._lose()
        self._client.close()
        if self._pool is not None:
            self._pool.disconnect()

    def counters(self) -> RedisCounters:
        """The analytics counter backend in the same Redis (see :mod:`sessionmw.analytics`)."""
        from sessionmw.stores.counters import RedisCounters

        return RedisCounters(self._client, self.prefix)

    def _live_commands(self, now: float) -> list[tuple[Any, ...]]:
        return [("ZCOUNT", f"{self._tag(b)}:expiry", f"({now!r}", "+inf") for b in range(self.buckets)]

    def _pipeline(self, commands: Iterable[tuple[Any, ...]]) -> list[Any]:
        try:
            pipe = self._client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute())
        except self._errors as exc:
            raise StoreUnavailableError(f"{self._name} is unavailable: {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"RedisStore({self._name!r}, prefix={self.prefix!r}, max_sessions={self.max_sessions!r})"

    @property
    def namespace(self) -> str:
        """The database number and key prefix (not the host: workers may name it differently);
        a cluster has database 0 only."""
        database = 0 if self._pool is None else int(self._pool.connection_kwargs.get("db") or 0)
        return f"redis:{database}:{self.prefix}"

    def incarnation(self) -> str:
        """The token under the prefix (one key, ``{prefix:incarnation}``), made by the first
        reader that finds none: after a restart that lost the data, a new one (one round trip)."""
        key = f"{{{self.prefix}:incarnation}}"
        try:
            value = self._command("EVAL", _INCARNATION_SCRIPT, 1, key, new_incarnation())
        except self._response_error as exc:
            raise StoreUnavailableError(f"{self._name} refused the operation: {exc}") from exc
        return _text(value)

    def save_policy(self, policy: Policy) -> None:
        """Keep ``policy`` under the prefix (one key, ``{prefix:policy}``), for the operator's commands."""
        self._command("SET", f"{{{self.prefix}:policy}}", policy_to_json(policy))

    def saved_policy(self) -> Policy | None:
        """The policy last saved under the prefix, or None (one round trip)."""
        raw = self._command("GET", f"{{{self.prefix}:policy}}")
        return None if raw is None else policy_from_json(_text(raw))

    def async_operations(self) -> AsyncRedisOperations:
        """The store's operations through ``redis.asyncio`` (the same scripts and read cache),
        for asyncio's loop (see :mod:`sessionmw.stores.aio`)."""
        ops = self._async
        if ops is None:
            from sessionmw.stores.redis_async import AsyncRedisOperations

            ops = self._async = AsyncRedisOperations(self)
        return ops

    def breakers(self) -> RedisBreakers:
        """The circuit breaker backend in the same Redis (see :class:`sessionmw.Breaker`)."""
        from sessionmw.stores.breakers import RedisBreakers

        return RedisBreakers(self._client, self.prefix)


def _disconnect(listeners: list[redis.connection.AbstractConnection]) -> None:
    """Close subscribed connections (closing sockets: no wait for the network)."""
    for listener in listeners:
        with contextlib.suppress(Exception):
            listener.disconnect()  # type: ignore[no-untyped-call]


def _decode(raw: object, session_id: str, name: str) -> SessionRecord:
    return decode_record(raw, session_id, name)


def _written(raw: object, name: str) -> SessionRecord:
    """The record the script just wrote or, on its fast path, passed on with a new last_activity.

    The fast path reads only the fields it needs, so the others are checked here: a record that is
    not exactly one JSON object of the right field types is corrupt.
    """
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        if len(text) > MAX_RECORD_CHARS:  # type: ignore[arg-type]
            raise ValueError("too long")
        data, end = _DECODER.raw_decode(text)  # type: ignore[arg-type]
        count, error, reason = data["error_count"], data["last_error"], data["reason"]
        again = data.get("reconnected_at")  # absent from records written before it existed
        created, last, changed = data["created_at"], data["last_activity"], data["state_changed_at"]
        if (
            end != len(text)  # type: ignore[arg-type]
            or type(count) is not int
            or count < 0
            or (error is not None and type(error) is not str)
            or (reason is not None and type(reason) is not str)
            or type(created) not in _NUMBER
            or type(last) not in _NUMBER
            or type(changed) not in _NUMBER
            or (again is not None and type(again) not in _NUMBER)
        ):
            raise ValueError("not one record with the right field types")
        return SessionRecord(
            data["id"],
            _STATE[data["state"]],
            float(created),
            float(last),
            count,
            error,
            float(changed),
            reason,
            None if again is None else float(again),
        )
    except (TypeError, ValueError, KeyError, ArithmeticError, RecursionError) as exc:
        raise CorruptRecordError(f"session record from {name} is unreadable: {exc!r}") from None
