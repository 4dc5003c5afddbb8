"""The store conformance suite (memory, SQLite, Redis), store URLs, and Redis against the model."""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot
from support.stores import assert_same_outcome, created, shared_store_url, walk

from sessionmw import (
    ConfigurationError,
    CorruptRecordError,
    IllegalTransitionError,
    SessionExistsError,
    SessionLimitError,
    SessionManager,
    SessionState,
    StoreUnavailableError,
)
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event, HealthStatus
from sessionmw._transitions import TRANSITIONS
from sessionmw.analytics import TOTAL
from sessionmw.stores import SUPPORTED_SCHEMES, MemoryStore, SessionStore, store_from_url
from sessionmw.stores._redis import RedisStore, lua_source
from sessionmw.stores._sqlite import DUE_QUERY, SQLiteStore
from sessionmw.testing import FakeClock, capture_signals

POLICY = Policy(idle_after=10.0, timeout=30.0, absolute_timeout=100.0, error_threshold=3, retention=20.0)
T0 = 1_700_000_000.0

StoreFactory = Callable[..., SessionStore]


#: The stores that keep serialised records (the Redis store on one server and on a cluster).
PERSISTENT = ["sqlite", "redis", "redis-cluster"]


@pytest.fixture(name="kind", params=["memory", *PERSISTENT])
def _kind(request: pytest.FixtureRequest) -> str:
    """Which store the conformance test runs against."""
    return str(request.param)


@pytest.fixture(name="make_store")
def _make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Builds stores of ``kind``; stores built by one test share their sessions (except memory)."""
    made: list[SessionStore] = []
    url = shared_store_url(kind, request, tmp_path)
    shared: SessionStore | None = None

    def make(max_sessions: int | None = None) -> SessionStore:
        nonlocal shared
        if kind == "memory":  # one process: the same object is the "other" store
            if shared is None or max_sessions is not None:
                shared = MemoryStore(max_sessions=max_sessions)
            return shared
        store = store_from_url(url, max_sessions=max_sessions)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture(name="store")
def _store(make_store: StoreFactory) -> SessionStore:
    """One store of the kind under test."""
    return make_store()


def _new(store: SessionStore, session_id: str, now: float = T0) -> SessionRecord:
    record = SessionRecord.new(session_id, now)
    store.create(record, now, POLICY)
    return record


# -- conformance ------------------------------------------------------------------------------


def test_created_session_reads_back_equal(store: SessionStore) -> None:
    """A created session reads back exactly as it was written."""
    record = _new(store, "s1", T0 + 0.123456789)
    assert store.get("s1") == record
    assert store.get("unknown") is None


def test_live_duplicate_is_refused_and_terminal_one_replaced(store: SessionStore) -> None:
    """Creating over a live session fails; over an ended one it starts afresh."""
    _new(store, "s1")
    with pytest.raises(SessionExistsError):
        _new(store, "s1", T0 + 1)
    store.update("s1", Event.END, T0 + 2, POLICY)
    fresh = _new(store, "s1", T0 + 3)
    assert store.get("s1") == fresh
    assert store.count() == 1


def test_duplicate_of_an_expired_but_unswept_session_is_replaced(store: SessionStore) -> None:
    """A session past its timeout counts as gone when its id is created again."""
    _new(store, "s1")
    _new(store, "s2", T0 + POLICY.timeout)
    fresh = _new(store, "s1", T0 + POLICY.timeout + 1)
    assert store.get("s1") == fresh
    assert store.count() == 2


def test_refused_create_changes_nothing(store: SessionStore) -> None:
    """A create refused because the session is live leaves the stored record as it was."""
    record = _new(store, "s1")
    with pytest.raises(SessionExistsError):
        _new(store, "s1", T0 + POLICY.idle_after + 1)
    assert store.get("s1") == record


def test_update_of_unknown_session_is_none(store: SessionStore) -> None:
    """Updating a session that does not exist returns None and creates nothing."""
    assert store.update("nope", Event.ACTIVITY, T0, POLICY) is None
    assert store.get("nope") is None


def test_activity_moves_the_inactivity_clock(store: SessionStore) -> None:
    """Activity records its time; nothing changes state."""
    _new(store, "s1")
    outcome = store.update("s1", Event.ACTIVITY, T0 + 5.5, POLICY)
    assert outcome is not None
    assert outcome.changes == ()
    assert outcome.record.last_activity == T0 + 5.5
    stored = store.get("s1")
    assert stored is not None and stored.last_activity == T0 + 5.5


def test_time_makes_a_session_idle_then_expired_once(store: SessionStore) -> None:
    """Idle after idle_after, expired after the timeout, each change reported once."""
    _new(store, "s1")
    idle = store.update("s1", None, T0 + 11, POLICY)
    assert idle is not None and [(c.old, c.new) for c in idle.changes] == [
        (SessionState.ACTIVE, SessionState.IDLE)
    ]
    expired = store.update("s1", None, T0 + 31, POLICY)
    assert expired is not None
    assert [(c.new, c.event) for c in expired.changes] == [(SessionState.EXPIRED, Event.TIMEOUT)]
    again = store.update("s1", None, T0 + 32, POLICY)
    assert again is not None and again.changes == ()
    assert store.count() == 0


def test_errors_count_and_disconnect_at_the_threshold(store: SessionStore) -> None:
    """Errors are counted; the threshold-th error disconnects; success would clear them."""
    _new(store, "s1")
    states = []
    for i in range(4):
        outcome = store.update("s1", Event.ERROR, T0 + i, POLICY, f"boom {i}")
        assert outcome is not None
        states.append(outcome.record.state)
    assert states == [
        SessionState.ERROR,
        SessionState.ERROR,
        SessionState.DISCONNECTED,
        SessionState.DISCONNECTED,
    ]
    record = store.get("s1")
    assert record is not None and record.error_count == 4 and record.last_error == "boom 3"
    store.update("s1", Event.RECONNECT, T0 + 5, POLICY)
    record = store.get("s1")
    assert record is not None and (record.state, record.error_count, record.last_error) == (
        SessionState.ACTIVE,
        0,
        None,
    )


def test_refused_event_keeps_the_time_changes(store: SessionStore) -> None:
    """Activity on a timed-out session is refused, and the expiry itself still holds."""
    _new(store, "s1")
    outcome = store.update("s1", Event.ACTIVITY, T0 + 40, POLICY)
    assert outcome is not None
    assert isinstance(outcome.refused, IllegalTransitionError)
    assert (outcome.refused.state, outcome.refused.event) == ("expired", "activity")
    assert [c.new for c in outcome.changes] == [SessionState.EXPIRED]
    stored = store.get("s1")
    assert stored is not None and stored.state is SessionState.EXPIRED


def test_delete_removes_a_session(store: SessionStore) -> None:
    """Deleting a session removes it and frees its place; a second delete finds nothing."""
    _new(store, "s1")
    assert store.delete("s1") is True
    assert store.get("s1") is None
    assert store.delete("s1") is False
    assert store.count() == 0


def test_sweep_expires_only_due_sessions_once(store: SessionStore) -> None:
    """Sweep expires the due sessions, reports each once and leaves the others alone."""
    for i in range(5):
        _new(store, f"old{i}")
    _new(store, "fresh", T0 + 25)
    changes = store.sweep(T0 + 31, POLICY)
    assert sorted(c.session_id for c in changes) == [f"old{i}" for i in range(5)]
    assert {(c.new, c.event) for c in changes} == {(SessionState.EXPIRED, Event.TIMEOUT)}
    assert store.sweep(T0 + 32, POLICY) == []
    fresh = store.get("fresh")
    assert fresh is not None and fresh.state is SessionState.ACTIVE
    assert store.count() == 1
    assert store.count(SessionState.EXPIRED) == 5


def test_sweep_respects_its_limit(store: SessionStore) -> None:
    """A sweep expires at most ``limit`` sessions; the next one takes the rest."""
    for i in range(7):
        _new(store, f"s{i}")
    first = store.sweep(T0 + 31, POLICY, limit=3)
    second = store.sweep(T0 + 31, POLICY, limit=100)
    assert len(first) == 3
    assert sorted(c.session_id for c in first + second) == [f"s{i}" for i in range(7)]


def test_sweep_skips_sessions_with_recent_activity(store: SessionStore) -> None:
    """A session active since its first deadline is not expired by the sweep."""
    _new(store, "s1")
    store.update("s1", Event.ACTIVITY, T0 + 20, POLICY)
    assert store.sweep(T0 + 31, POLICY) == []
    assert [c.session_id for c in store.sweep(T0 + 51, POLICY)] == ["s1"]


def test_sweep_drops_terminal_records_after_retention(store: SessionStore) -> None:
    """An ended session is kept for the retention (to say "expired"), then dropped."""
    _new(store, "s1")
    store.update("s1", Event.END, T0 + 1, POLICY)
    store.sweep(T0 + 10, POLICY)
    assert store.get("s1") is not None
    store.sweep(T0 + POLICY.timeout + POLICY.retention + 1, POLICY)
    assert store.get("s1") is None


def test_count_and_records_by_state(store: SessionStore) -> None:
    """Counts and listings agree with the states of the sessions."""
    _new(store, "a")
    _new(store, "b")
    _new(store, "c")
    store.update("b", Event.ERROR, T0 + 1, POLICY, "x")
    store.update("c", Event.END, T0 + 1, POLICY)
    assert store.count() == 2
    assert store.count(SessionState.ERROR) == 1
    assert store.count(SessionState.ENDED) == 1
    assert sorted(r.session_id for r in store.records()) == ["a", "b", "c"]
    assert [r.session_id for r in store.records(SessionState.ERROR)] == ["b"]


def test_max_sessions_refuses_new_and_never_evicts(make_store: StoreFactory) -> None:
    """At the cap a new session is refused, live ones stay; an ended one frees a place."""
    store = make_store(max_sessions=2)
    _new(store, "a")
    _new(store, "b")
    with pytest.raises(SessionLimitError, match="full"):
        _new(store, "c")
    assert store.get("a") is not None and store.get("b") is not None
    store.update("a", Event.END, T0 + 1, POLICY)
    _new(store, "c", T0 + 2)
    assert store.count() == 2


def test_a_second_store_object_sees_the_same_sessions(make_store: StoreFactory) -> None:
    """Sessions written through one store object are read, same state, through another."""
    first, second = make_store(), make_store()
    _new(first, "s1")
    first.update("s1", Event.ERROR, T0 + 1, POLICY, "x")
    record = second.get("s1")
    assert record is not None and (record.state, record.error_count) == (SessionState.ERROR, 1)
    outcome = second.update("s1", Event.SUCCESS, T0 + 2, POLICY)
    assert outcome is not None and [c.new for c in outcome.changes] == [SessionState.ACTIVE]


def test_the_incarnation_is_shared_and_stable_until_the_sessions_are_lost(
    kind: str, make_store: StoreFactory, tmp_path: Path
) -> None:
    """Every store object on the same sessions reads one incarnation, in the id alphabet, the
    same on every read; a store that lost its sessions (a new memory store, a new file, a
    Redis whose data went) reads another."""
    first, second = make_store(), make_store()
    incarnation = first.incarnation()  # type: ignore[attr-defined]
    assert re.fullmatch(r"[A-Za-z0-9_-]{8}", incarnation)
    assert second.incarnation() == first.incarnation() == incarnation  # type: ignore[attr-defined]
    if kind == "memory":
        lost: Any = MemoryStore()
    elif kind == "sqlite":
        lost = SQLiteStore(tmp_path / "other.db")
    else:  # what a restart without persistence leaves: no key under the prefix
        first._client.delete(f"{{{first.prefix}:incarnation}}")  # type: ignore[attr-defined]
        lost = second
    try:
        assert lost.incarnation() != incarnation
        assert lost.incarnation() == lost.incarnation()
    finally:
        if kind == "sqlite":
            lost.close()


def test_manager_on_the_store_signals_each_transition(make_store: StoreFactory, clock: FakeClock) -> None:
    """The manager's flow on this store: create, errors, disconnect, reconnect, expiry by sweep."""
    manager = SessionManager(store=make_store(), clock=clock, max_error_threshold=2)
    session = manager.create_session()
    with capture_signals() as sent:
        manager.record_error(session.session_id, ValueError("bad"))
        manager.record_error(session.session_id, ValueError("bad"))
        manager.reconnect(session.session_id)
        clock.advance(31 * 60)
        assert [c.session_id for c in manager.sweep()] == [session.session_id]
    names = [s.name for s in sent if s.name not in ("error-recorded", "state-changed")]
    assert names == ["session-disconnected", "session-recovered", "session-expired"]
    assert manager.check_health(session.session_id).status == HealthStatus.EXPIRED
    assert manager.check_health("never-created").status == HealthStatus.NOT_FOUND


@pytest.mark.parametrize("kind", PERSISTENT)  # the memory store's counters are analytics' own
def test_counters_live_beside_the_store(make_store: StoreFactory) -> None:
    """Analytics counters added through one store object are read through another."""
    first, second = make_store(), make_store()
    assert isinstance(first, SQLiteStore | RedisStore) and isinstance(second, SQLiteStore | RedisStore)
    first.counters().add([TOTAL, 7], {"errors.total": 2.0})
    first.counters().add([TOTAL], {"errors.total": 1.5})
    assert second.counters().read([TOTAL, 7, 8]) == {
        TOTAL: {"errors.total": 3.5},
        7: {"errors.total": 2.0},
    }


# -- corrupt records ----------------------------------------------------------------------------


def _corrupt(store: SessionStore, session_id: str, raw: str) -> None:
    """Write ``raw`` where the store keeps ``session_id``'s record."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE sessionmw_sessions SET data = ? WHERE id = ?", (raw, session_id))
        conn.close()
    else:
        assert isinstance(store, RedisStore)
        store._client.set(store._keys(session_id)[0], raw)


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"v": 1, "id": "s1", "state": "active"}',
        '{"v": 1, "id": "other", "state": "active", "created_at": 1, "last_activity": 1, "error_count": 0}',
        '{"v": 1, "id": "s1", "state": "unknown", "created_at": 1, "last_activity": 1, "error_count": 0}',
        "[1, 2, 3]",
    ],
    ids=["text", "fields-missing", "other-id", "bad-state", "list"],
)
@pytest.mark.parametrize("kind", PERSISTENT)  # the memory store keeps objects, not serialised records
def test_corrupt_record_is_reported_and_treated_as_unknown(
    store: SessionStore, raw: str, clock: FakeClock
) -> None:
    """A corrupt record raises CorruptRecordError; the manager reports it and answers not_found."""
    _new(store, "s1", clock())
    _corrupt(store, "s1", raw)
    with pytest.raises(CorruptRecordError):
        store.get("s1")
    with pytest.raises(CorruptRecordError):
        store.update("s1", Event.ACTIVITY, clock(), POLICY)
    manager = SessionManager(store=store, clock=clock)
    with capture_signals() as sent:
        report = manager.check_health("s1")
    assert report.status == HealthStatus.NOT_FOUND
    assert [s.name for s in sent] == ["store-error"]
    assert "s1" not in [r.session_id for r in store.records()]
    fresh = manager.create_session("s1")  # an unreadable record is replaced
    assert store.get("s1") == fresh


def test_redis_foreign_value_type_is_corrupt(redis_url: str, redis_prefix: str) -> None:
    """A Redis key of the wrong type at a session's place is corrupt, not a crash."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    store._client.rpush(store._keys("s1")[0], "x")
    with pytest.raises(CorruptRecordError):
        store.update("s1", Event.ACTIVITY, T0, POLICY)
    store.close()


# -- SQLite specifics ---------------------------------------------------------------------------


def test_sqlite_schema_is_versioned_and_uses_wal(tmp_path: Path) -> None:
    """The file carries its schema version, runs in WAL mode, and a foreign version is refused."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    _new(store, "s1")
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (
            conn.execute("SELECT value FROM sessionmw_meta WHERE key = 'schema_version'").fetchone()[0] == 1
        )
        conn.execute("UPDATE sessionmw_meta SET value = 99 WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(StoreUnavailableError, match="schema version 99"):
        SQLiteStore(path).get("s1")


def test_sqlite_lock_beyond_the_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    """A write held up past the busy timeout raises StoreUnavailableError naming the file."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path, busy_timeout=0.05)
    _new(store, "s1")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailableError, match=r"s\.db.*locked"):
            store.update("s1", Event.ACTIVITY, T0 + 1, POLICY)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    outcome = store.update("s1", Event.ACTIVITY, T0 + 2, POLICY)  # recovers by itself
    assert outcome is not None and outcome.record.last_activity == T0 + 2
    store.close()


def test_sqlite_sweep_reads_through_the_due_index(tmp_path: Path) -> None:
    """The sweep's query is answered by the index on the due time, not by scanning every row."""
    store = SQLiteStore(tmp_path / "s.db")
    _new(store, "s1")
    store.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {DUE_QUERY}", (T0, 10)).fetchall()
    conn.close()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX sessionmw_sessions_due" in details
    assert "SCAN sessionmw_sessions" not in details.replace("USING INDEX", "")


def test_sqlite_sessions_survive_closing_the_store(tmp_path: Path) -> None:
    """Sessions are still there when the file is opened again."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    record = _new(store, "s1")
    store.close()
    assert SQLiteStore(path).get("s1") == record


# -- Redis specifics ----------------------------------------------------------------------------


def test_redis_keys_of_a_session_share_one_cluster_slot(redis_url: str, redis_prefix: str) -> None:
    """A session's record and its bucket's indexes hash to one slot; sessions spread over the
    buckets, and (with the default prefix) the buckets over 16 slots.

    Which slots a prefix's 16 bucket tags land on is CRC16's doing: two of them shared a slot for
    2 of 3,000 random prefixes (one failed CI-like run), so the spread over slots is checked on
    the default prefix.
    """
    store = RedisStore.from_url(redis_url, prefix=redis_prefix, buckets=16)
    for session_id in ("a", "b", "some-longer-id"):
        assert len({key_slot(key.encode()) for key in store._keys(session_id)}) == 1
    assert len({store._keys(f"s{i}")[1] for i in range(200)}) == 16  # every bucket used
    store.close()
    default = RedisStore.from_url(redis_url, buckets=16)  # no key is written
    assert len({key_slot(default._keys(f"s{i}")[1].encode()) for i in range(200)}) == 16
    default.close()


def test_redis_records_have_ttls(redis_url: str, redis_prefix: str) -> None:
    """Live records expire in Redis after timeout + retention, ended ones after the retention."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    _new(store, "live")
    _new(store, "done")
    store.update("done", Event.END, T0, POLICY)
    client: Any = store._client
    live_ttl = client.pttl(store._keys("live")[0])
    done_ttl = client.pttl(store._keys("done")[0])
    assert (
        (POLICY.timeout + POLICY.retention - 1) * 1000
        < live_ttl
        <= (POLICY.timeout + POLICY.retention) * 1000
    )
    assert (POLICY.retention - 1) * 1000 < done_ttl <= POLICY.retention * 1000
    store.close()


def test_redis_record_is_json_with_exact_numbers(redis_url: str, redis_prefix: str) -> None:
    """The stored record is the JSON of SessionRecord.to_dict, timestamps to the last bit."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    now = T0 + 0.1 + 1e-6
    _new(store, "s1", now)
    store.update("s1", Event.ERROR, now + 1 / 3, POLICY, 'quote " and \u00e9')
    raw = store._client.get(store._keys("s1")[0])
    assert raw is not None
    data = json.loads(raw)
    assert data["last_activity"] == now + 1 / 3
    assert data["last_error"] == 'quote " and \u00e9'
    assert SessionRecord.from_dict(data) == store.get("s1")
    store.close()


def _redis_state(store: RedisStore, session_id: str) -> tuple[dict[str, object], float | None, int]:
    """The stored record (parsed), its expiry-index score and its TTL in milliseconds."""
    key, index, _ = store._keys(session_id)
    raw = store._client.get(key)
    assert raw is not None
    return json.loads(raw), store._client.zscore(index, session_id), int(store._client.pttl(key))


@pytest.mark.parametrize(
    ("event", "advance", "age"),
    [
        (Event.ACTIVITY, 1.5, 0),  # the fast path: only last_activity changes
        (Event.ACTIVITY, 1.5, 80),  # the fast path near the lifetime's end: expiry by lifetime
        (None, 1.5, 0),  # a look: nothing to write
        (Event.ACTIVITY, 12.0, 0),  # idle first, then active again: the full path
        (Event.ACTIVITY, 45.0, 0),  # expired: refused, by the full path
        (Event.ACTIVITY, 6.0, 95),  # past the lifetime, not idle: expired by the full path
        (Event.ERROR, 1.5, 0),  # any other event: the full path
    ],
    ids=["activity", "activity-near-lifetime", "look", "idle-then-activity", "expired", "lifetime", "error"],
)
def test_redis_fast_path_agrees_with_the_full_path(
    redis_url: str, redis_prefix: str, event: Event | None, advance: float, age: int
) -> None:
    """A record in the store's own JSON layout and the same record laid out otherwise (which only
    the full, validating path reads) give the same outcome, record, index score and TTL."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    now = T0 + 1 / 3
    for session_id in ("fast", "full"):
        _new(store, session_id, now)
    for second in range(5, age + 1, 5):  # regular activity: the session lives to ``age``
        for session_id in ("fast", "full"):
            store.update(session_id, Event.ACTIVITY, now + second, POLICY)
    record = store.get("full")
    assert record is not None
    reordered = dict(reversed(list(record.to_dict().items())))  # valid, but not the store's layout
    store._client.set(store._keys("full")[0], json.dumps(reordered, indent=1), px=60_000)
    # A time whose shortest repr (what the fast path splices in) and %.17g (what the full path
    # writes) differ as text, so the stored bytes tell which path wrote them.
    later = float(int(now + age + advance)) + 0.1
    assert repr(later) != format(later, ".17g")
    outcomes = {sid: store.update(sid, event, later, POLICY, "boom") for sid in ("fast", "full")}
    fast, full = outcomes["fast"], outcomes["full"]
    assert fast is not None and full is not None
    assert dataclasses.replace(fast.record, session_id="full") == full.record
    assert [c._replace(session_id="full") for c in fast.changes] == list(full.changes)
    assert repr(fast.refused) == repr(full.refused).replace("'full'", "'fast'")
    fast_data, fast_score, fast_ttl = _redis_state(store, "fast")
    full_data, full_score, full_ttl = _redis_state(store, "full")
    assert {**fast_data, "id": "full"} == full_data
    assert fast_score == full_score
    if event is not None:  # both rewrote the record: the same TTL, give or take the test's run time
        assert abs(fast_ttl - full_ttl) < 1_000
    if event is Event.ACTIVITY and fast.refused is None:
        assert fast.record.last_activity == later
    raw_fast, raw_full = (store._client.get(store._keys(sid)[0]) for sid in ("fast", "full"))
    assert isinstance(raw_fast, bytes) and isinstance(raw_full, bytes)
    took_fast_path = event is Event.ACTIVITY and not fast.changes and fast.refused is None
    if took_fast_path:  # only last_activity was spliced in, as Python wrote it
        assert f'"last_activity":{later!r},'.encode() in raw_fast
    if event is not None:  # the full path re-encoded the reordered record with %.17g
        assert f'"last_activity":{format(full.record.last_activity, ".17g")},'.encode() in raw_full
    store.close()


@pytest.mark.parametrize(
    ("find", "put"),
    [
        (b'{"v":1,', b'{"v":99,'),
        (b',"created_at":', b',"created_at":"soon","was":'),
        (b'"error_count":0,', b'"error_count":-3,'),
        (b'"last_error":null,', b'"last_error":5,'),
        (b'"state_changed_at":', b'"state_changed_at":"then","was":'),
        (b'"reconnected_at":null}', b'"reconnected_at":null}garbage'),
    ],
    ids=["other-version", "created-at-text", "negative-errors", "error-not-text", "time-text", "trailing"],
)
def test_redis_fast_path_leaves_odd_records_to_the_full_path(
    redis_url: str, redis_prefix: str, find: bytes, put: bytes
) -> None:
    """A record that looks like the store's layout but is not a valid record is reported as corrupt."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    _new(store, "s1")
    key = store._keys("s1")[0]
    raw = store._client.get(key)
    assert isinstance(raw, bytes) and find in raw
    store._client.set(key, raw.replace(find, put, 1))
    with pytest.raises(CorruptRecordError):
        store.update("s1", Event.ACTIVITY, T0 + 1, POLICY)
    store.close()


def test_lua_script_carries_every_transition() -> None:
    """The Lua table is generated from TRANSITIONS: every row appears, under its state."""
    source = lua_source()
    for (state, event), new in TRANSITIONS.items():
        assert f'["{event.value}"]="{new.value}"' in source
        assert f'["{state.value}"]=' in source


# -- URLs ---------------------------------------------------------------------------------------


def test_store_urls_build_the_named_stores(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    """sqlite:// and redis:// URLs build their stores with the URL's options."""
    sqlite_store = store_from_url(f"sqlite:///{tmp_path}/a.db?busy_timeout=2", max_sessions=5)
    assert isinstance(sqlite_store, SQLiteStore)
    assert (sqlite_store.path, sqlite_store.busy_timeout, sqlite_store.max_sessions) == (
        tmp_path / "a.db",
        2.0,
        5,
    )
    redis_store = store_from_url(f"{redis_url}?prefix={redis_prefix}&buckets=4&timeout=0.5")
    assert isinstance(redis_store, RedisStore)
    assert (redis_store.prefix, redis_store.buckets) == (redis_prefix, 4)
    assert redis_store._pool is not None
    pool_kwargs = redis_store._pool.connection_kwargs
    assert pool_kwargs["socket_timeout"] == 0.5
    assert "redis" in SUPPORTED_SCHEMES and "sqlite" in SUPPORTED_SCHEMES
    sqlite_store.close()
    redis_store.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgres://localhost/db", "unknown scheme 'postgres'"),
        ("sessions.db", "no scheme"),
        ("sqlite://", "names no database file"),
        ("sqlite://host/file.db", "no host"),
        ("sqlite:///f.db?colour=red", "unknown option 'colour'"),
        ("sqlite:///f.db?busy_timeout=soon", "busy_timeout='soon'"),
        ("redis://:hunter2@127.0.0.1:6379/zero", "database 'zero'"),
        ("redis://127.0.0.1:6379/0?prefix=a{b}", "prefix='a{b}'"),
        ("redis://127.0.0.1:notaport/0", "port"),
        ("redis://127.0.0.1:6379/3?cluster=true", "only database 0"),
        ("redis://127.0.0.1:6379?cluster=true&db=3", "only database 0"),
        ("redis://127.0.0.1:6379/0?cluster=maybe", "cluster='maybe' is not a valid yes/no value"),
    ],
)
def test_bad_store_url_is_named_with_the_schemes(url: str, named: str) -> None:
    """A bad URL raises ConfigurationError naming it, what is wrong, and the schemes; no password."""
    with pytest.raises(ConfigurationError) as caught:
        store_from_url(url)
    message = str(caught.value)
    assert named in message
    assert "sqlite://, redis://, rediss://" in message
    assert "hunter2" not in message


def test_store_errors_never_show_the_password() -> None:
    """An unreachable Redis is StoreUnavailableError, its message names the store but masks the password."""
    store = store_from_url("redis://user:hunter2@127.0.0.1:1/0?timeout=0.2&connect_timeout=0.2")
    with pytest.raises(StoreUnavailableError) as caught:
        store.get("s1")
    assert "user:***@127.0.0.1:1" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    store.close()


def test_redis_cluster_spreads_buckets_over_nodes_and_keeps_each_session_on_one(
    redis_cluster_url: str,
) -> None:
    """On a three-node cluster the buckets land on every node, and each session's record and its
    bucket's indexes live on one node, so its script runs there."""
    from redis.cluster import RedisCluster

    prefix = f"spread{secrets.token_hex(4)}"
    store = store_from_url(f"{redis_cluster_url}?prefix={prefix}&cluster=true&buckets=16")
    assert isinstance(store, RedisStore)
    ids = [f"s{i}" for i in range(64)]
    for session_id in ids:
        _new(store, session_id)
        store.update(session_id, Event.ACTIVITY, T0 + 1, POLICY)
    cluster: Any = RedisCluster.from_url(redis_cluster_url)
    try:
        holders = {}
        for node in cluster.get_primaries():
            client = cluster.get_redis_connection(node)
            for key in client.scan_iter(match=f"{{{prefix}:*", count=1000):
                holders[key.decode()] = node.name
        assert len(set(holders.values())) == 3  # every node holds some sessions
        for session_id in ids:
            record_key, index_key, _ = store._keys(session_id)
            assert holders[record_key] == holders[index_key]
        assert store.count() == len(ids)
        assert sorted(r.session_id for r in store.records()) == sorted(ids)
    finally:
        cluster.close()
        store.close()


@pytest.mark.parametrize(
    ("where", "named"),
    [("plain", "Cluster mode is not enabled"), ("nobody", "Connection refused")],
)
def test_redis_cluster_url_that_reaches_no_cluster_says_why(redis_url: str, where: str, named: str) -> None:
    """cluster=true on a plain Redis, or on a port where nothing listens, is a clear error at once."""
    from support.servers import free_port

    url = redis_url.rsplit("/", 1)[0] + "/0" if where == "plain" else f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailableError, match=named) as info:
        store_from_url(f"{url}?cluster=true&connect_timeout=1")
    assert "Redis Cluster 'redis://127.0.0.1:" in str(info.value)


def test_a_cluster_whose_nodes_all_stopped_is_unavailable(tmp_path: Path) -> None:
    """With every node of a cluster gone, each store call raises StoreUnavailableError (so the
    manager fails open or closed as configured), and so do the counters."""
    from support.redis_servers import LocalRedisCluster

    cluster = LocalRedisCluster(str(tmp_path))
    try:  # stop() kills whatever start() got running, even if it failed half-way
        cluster.start()
        store = store_from_url(f"{cluster.url}?prefix=gone&cluster=true&timeout=0.5&connect_timeout=0.5")
        _new(store, "s1")
        counters = store.counters()  # type: ignore[attr-defined]
        counters.add([1], {"requests": 1.0})
    finally:
        cluster.stop()
    calls: dict[str, Callable[[], object]] = {
        "update": lambda: store.update("s1", Event.ACTIVITY, T0 + 1, POLICY),
        "get": lambda: store.get("s1"),
        "count": lambda: store.count(),
        "create": lambda: _new(store, "s2"),
        "sweep": lambda: store.sweep(T0 + 1, POLICY),
        "counters": lambda: counters.read([1]),
    }
    for name, call in calls.items():
        with pytest.raises(StoreUnavailableError):
            call()
            pytest.fail(f"{name} did not raise")
    manager = SessionManager(store=store, on_store_error="fail_open")
    with capture_signals() as sent:
        record = manager.touch("s1")
    assert record is not None and record.reason == "store_unavailable"
    assert sent and sent[0].name == "store-error"
    store.close()


# -- Redis against the model (the memory store) ------------------------------------------------

_EVENTS = [None, *Event]
_operation = st.one_of(
    st.tuples(st.just("advance"), st.floats(0, 45, allow_nan=False)),
    st.tuples(st.just("event"), st.sampled_from(["a", "b"]), st.sampled_from(_EVENTS)),
    st.tuples(st.just("create"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("sweep"), st.just(0)),
)
_MODEL_POLICY = Policy(
    idle_after=10.0, timeout=30.0, absolute_timeout=100.0, error_threshold=3, retention=1e6
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(_operation, max_size=40))
def test_redis_store_matches_the_memory_store(
    operations: list[tuple[object, ...]], redis_url: str, redis_prefix: str
) -> None:
    """Random events and clock jumps give the same records and changes in Redis as in memory."""
    import secrets

    model = MemoryStore()
    real = RedisStore.from_url(redis_url, prefix=redis_prefix, buckets=4)
    run = secrets.token_hex(4)  # examples share the prefix, not their ids
    try:
        for kind, session_id, event, now in walk(operations, run, T0 + 0.25):
            if kind == "create":
                results = [created(store, session_id, now, _MODEL_POLICY) for store in (model, real)]
                assert results[0] == results[1]
            elif kind == "event":
                expected = model.update(session_id, event, now, _MODEL_POLICY, "boom")
                assert_same_outcome(real.update(session_id, event, now, _MODEL_POLICY, "boom"), expected)
            else:
                expected_changes = sorted(model.sweep(now, _MODEL_POLICY))
                assert sorted(real.sweep(now, _MODEL_POLICY)) == expected_changes
            for name in ("a", "b"):
                assert real.get(f"{run}-{name}") == model.get(f"{run}-{name}")
        assert real.count() == model.count()
    finally:
        for name in ("a", "b"):
            real.delete(f"{run}-{name}")
        real.close()


def test_a_record_the_memory_store_handed_out_never_changes() -> None:
    """Copy-on-write: the memory store hands out the record it keeps (no copy on a look or within
    the renewal window), and later changes, writes and the sweep store changed copies."""
    policy = dataclasses.replace(POLICY, activity_resolution=5.0)
    store = MemoryStore()
    store.create(SessionRecord.new("s", T0), T0, policy)
    outcome = store.update("s", Event.ACTIVITY, T0 + 1, policy)  # within the window: writes nothing
    assert outcome is not None and outcome.changes == ()
    held = outcome.record
    store.update("s", Event.ERROR, T0 + 2, policy, "boom")
    store.update("s", Event.ACTIVITY, T0 + 9, policy)  # past the window: written
    store.sweep(T0 + 100, policy)  # expired by the sweep
    assert (held.state, held.error_count, held.last_activity) == (SessionState.ACTIVE, 0, T0)
    record = store.get("s")
    assert record is not None and record.state is SessionState.EXPIRED and record.error_count == 1
    assert record.last_activity == T0 + 9
