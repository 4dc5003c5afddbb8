"""The store conformance suite (memory, SQLite, Redis), corrupt records, store URLs, Redis Cluster, and
Redis against the model."""

from __future__ import annotations

import dataclasses
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.stores import POLICY, T0, assert_same_outcome, created, new_record, shared_store_url, walk

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
from sessionmw.analytics import TOTAL
from sessionmw.stores import SUPPORTED_SCHEMES, MemoryStore, SessionStore, store_from_url
from sessionmw.stores._redis import RedisStore
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.testing import FakeClock, capture_signals

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


# -- conformance ------------------------------------------------------------------------------


def test_created_session_reads_back_equal(store: SessionStore) -> None:
    """A created session reads back exactly as it was written."""
    record = new_record(store, "s1", T0 + 0.123456789)
    assert store.get("s1") == record
    assert store.get("unknown") is None


def test_live_duplicate_is_refused_and_terminal_one_replaced(store: SessionStore) -> None:
    """Creating over a live session fails; over an ended one it starts afresh."""
    new_record(store, "s1")
    with pytest.raises(SessionExistsError):
        new_record(store, "s1", T0 + 1)
    store.update("s1", Event.END, T0 + 2, POLICY)
    fresh = new_record(store, "s1", T0 + 3)
    assert store.get("s1") == fresh
    assert store.count() == 1


def test_duplicate_of_an_expired_but_unswept_session_is_replaced(store: SessionStore) -> None:
    """A session past its timeout counts as gone when its id is created again."""
    new_record(store, "s1")
    new_record(store, "s2", T0 + POLICY.timeout)
    fresh = new_record(store, "s1", T0 + POLICY.timeout + 1)
    assert store.get("s1") == fresh
    assert store.count() == 2


def test_refused_create_changes_nothing(store: SessionStore) -> None:
    """A create refused because the session is live leaves the stored record as it was."""
    record = new_record(store, "s1")
    with pytest.raises(SessionExistsError):
        new_record(store, "s1", T0 + POLICY.idle_after + 1)
    assert store.get("s1") == record


def test_update_of_unknown_session_is_none(store: SessionStore) -> None:
    """Updating a session that does not exist returns None and creates nothing."""
    assert store.update("nope", Event.ACTIVITY, T0, POLICY) is None
    assert store.get("nope") is None


def test_activity_moves_the_inactivity_clock(store: SessionStore) -> None:
    """Activity records its time; nothing changes state."""
    new_record(store, "s1")
    outcome = store.update("s1", Event.ACTIVITY, T0 + 5.5, POLICY)
    assert outcome is not None
    assert outcome.changes == ()
    assert outcome.record.last_activity == T0 + 5.5
    stored = store.get("s1")
    assert stored is not None and stored.last_activity == T0 + 5.5


def test_time_makes_a_session_idle_then_expired_once(store: SessionStore) -> None:
    """Idle after idle_after, expired after the timeout, each change reported once."""
    new_record(store, "s1")
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
    new_record(store, "s1")
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
    new_record(store, "s1")
    outcome = store.update("s1", Event.ACTIVITY, T0 + 40, POLICY)
    assert outcome is not None
    assert isinstance(outcome.refused, IllegalTransitionError)
    assert (outcome.refused.state, outcome.refused.event) == ("expired", "activity")
    assert [c.new for c in outcome.changes] == [SessionState.EXPIRED]
    stored = store.get("s1")
    assert stored is not None and stored.state is SessionState.EXPIRED


def test_delete_removes_a_session(store: SessionStore) -> None:
    """Deleting a session removes it and frees its place; a second delete finds nothing."""
    new_record(store, "s1")
    assert store.delete("s1") is True
    assert store.get("s1") is None
    assert store.delete("s1") is False
    assert store.count() == 0


def test_sweep_expires_only_due_sessions_once(store: SessionStore) -> None:
    """Sweep expires the due sessions, reports each once and leaves the others alone."""
    for i in range(5):
        new_record(store, f"old{i}")
    new_record(store, "fresh", T0 + 25)
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
        new_record(store, f"s{i}")
    first = store.sweep(T0 + 31, POLICY, limit=3)
    second = store.sweep(T0 + 31, POLICY, limit=100)
    assert len(first) == 3
    assert sorted(c.session_id for c in first + second) == [f"s{i}" for i in range(7)]


def test_sweep_skips_sessions_with_recent_activity(store: SessionStore) -> None:
    """A session active since its first deadline is not expired by the sweep."""
    new_record(store, "s1")
    store.update("s1", Event.ACTIVITY, T0 + 20, POLICY)
    assert store.sweep(T0 + 31, POLICY) == []
    assert [c.session_id for c in store.sweep(T0 + 51, POLICY)] == ["s1"]


def test_sweep_drops_terminal_records_after_retention(store: SessionStore) -> None:
    """An ended session is kept for the retention (to say "expired"), then dropped."""
    new_record(store, "s1")
    store.update("s1", Event.END, T0 + 1, POLICY)
    store.sweep(T0 + 10, POLICY)
    assert store.get("s1") is not None
    store.sweep(T0 + POLICY.timeout + POLICY.retention + 1, POLICY)
    assert store.get("s1") is None


def test_count_and_records_by_state(store: SessionStore) -> None:
    """Counts and listings agree with the states of the sessions."""
    new_record(store, "a")
    new_record(store, "b")
    new_record(store, "c")
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
    new_record(store, "a")
    new_record(store, "b")
    with pytest.raises(SessionLimitError, match="full"):
        new_record(store, "c")
    assert store.get("a") is not None and store.get("b") is not None
    store.update("a", Event.END, T0 + 1, POLICY)
    new_record(store, "c", T0 + 2)
    assert store.count() == 2


def test_a_second_store_object_sees_the_same_sessions(make_store: StoreFactory) -> None:
    """Sessions written through one store object are read, same state, through another."""
    first, second = make_store(), make_store()
    new_record(first, "s1")
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
    new_record(store, "s1", clock())
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
        new_record(store, session_id)
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
        new_record(store, "s1")
        counters = store.counters()  # type: ignore[attr-defined]
        counters.add([1], {"requests": 1.0})
    finally:
        cluster.stop()
    calls: dict[str, Callable[[], object]] = {
        "update": lambda: store.update("s1", Event.ACTIVITY, T0 + 1, POLICY),
        "get": lambda: store.get("s1"),
        "count": lambda: store.count(),
        "create": lambda: new_record(store, "s2"),
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
