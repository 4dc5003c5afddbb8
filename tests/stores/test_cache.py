"""The shared stores' local read caches: no round trip for a cached session, and never a stale answer.

Two store objects with their own connections stand for two processes (a worker each). On Redis a
change reaches the other store object as a pub/sub message, which Redis may write to its socket
a few microseconds after the reply to the change: where one test thread plays both workers, it
waits for that message (the event, not a time) before the other worker's next request.
(``bench/bench_staleness.py`` measures the delay; in ``tests/system/test_gunicorn_read_cache.py``
two real workers need no wait.)
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.redis_servers import PrivateRedis
from support.servers import free_port
from support.stores import assert_same_outcome, created, walk

from sessionmw import SessionManager, SessionState, StoreUnavailableError
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event
from sessionmw.stores import MemoryStore, SessionStore, store_from_url
from sessionmw.stores._redis import RedisStore
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.testing import FakeClock, capture_signals

T0 = 1_700_000_000.0
WINDOW = 20.0
POLICY = Policy(
    idle_after=60.0, timeout=600.0, absolute_timeout=3600.0, error_threshold=3, activity_resolution=WINDOW
)
SETTINGS: dict[str, Any] = {
    "idle_after_seconds": 60.0,
    "session_timeout_minutes": 10.0,
    "max_error_threshold": 3,
    "activity_resolution_seconds": WINDOW,
}


def _subscribed(store: RedisStore) -> None:
    """Wait until a Redis store's subscriber thread (started on its first use) has finished."""
    with store._cache_lock:
        store._current()
        subscriber = store._subscriber
    if subscriber is not None:
        subscriber.join(10)
        assert not subscriber.is_alive(), "the subscriber thread hangs"


def _mark(manager_or_store: SessionManager | SessionStore) -> int:
    """Read what has arrived on a Redis store's invalidation channel (subscribing first, if it
    has not yet); the count so far."""
    store = getattr(manager_or_store, "store", manager_or_store)
    if not isinstance(store, RedisStore) or store._cache is None:
        return 0
    _subscribed(store)
    with store._cache_lock:
        store._current()
        return store._invalidations


def _delivered(manager_or_store: SessionManager | SessionStore, mark: int, count: int = 1) -> None:
    """Wait until ``count`` invalidations after ``mark`` reached a Redis store (at most 5 s)."""
    store = getattr(manager_or_store, "store", manager_or_store)
    if not isinstance(store, RedisStore) or store._cache is None:
        return
    deadline = time.monotonic() + 5.0
    while _mark(store) < mark + count:
        listeners = store._listeners
        remaining = deadline - time.monotonic()
        assert listeners is not None, "the subscription is gone"
        assert remaining > 0, "no invalidation arrived"
        socks: list[Any] = [listener._sock for listener in listeners if listener._sock is not None]
        select.select(socks, [], [], remaining)  # the message, not a pause


def _copied(manager: SessionManager, session_id: str) -> bool:
    """Whether the manager's store keeps a copy of the session."""
    cache = getattr(manager.store, "_cache", None)
    return cache is not None and session_id in cache


def _made_elsewhere(store: RedisStore, url: str, changes: Callable[[RedisStore], None], count: int) -> None:
    """Make ``count`` changes through another store object on ``url`` and wait for their
    invalidations, so that none is still on its way when ``store`` fills its cache."""
    maker = RedisStore.from_url(url, prefix=store.prefix)
    try:
        mark = _mark(store)
        changes(maker)
        _delivered(store, mark, count)
    finally:
        maker.close()


def _creating(*sids: str) -> Callable[[RedisStore], None]:
    def create(maker: RedisStore) -> None:
        for sid in sids:
            maker.create(SessionRecord.new(sid, T0), T0, POLICY)

    return create


@pytest.fixture(name="kind", params=["sqlite", "redis"])
def _kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="pair")
def _pair(url: str) -> Iterator[tuple[SessionManager, SessionManager]]:
    """Two managers on the same store through separate store objects (separate connections)."""
    clock = FakeClock(T0)
    first = SessionManager(store=url, clock=clock, **SETTINGS)
    second = SessionManager(store=url, clock=clock, **SETTINGS)
    yield first, second
    first.close()
    second.close()


def test_a_disconnect_in_one_worker_is_refused_by_the_other_on_its_next_request(
    pair: tuple[SessionManager, SessionManager],
) -> None:
    here, there = pair
    sid = here.create_session().session_id
    assert here.touch_or_report(sid)[1] is None  # cached by "here" now
    assert here.touch_or_report(sid)[1] is None  # and answered from the copy
    mark = _mark(here)
    for _ in range(3):
        there.record_error(sid, "backend down")
    _delivered(here, mark)
    record, refusal = here.touch_or_report(sid)
    assert refusal is not None and refusal.state == SessionState.DISCONNECTED.value
    assert record is not None and record.state is SessionState.DISCONNECTED
    mark = _mark(here)
    there.reconnect(sid)
    _delivered(here, mark)
    assert here.touch_or_report(sid)[1] is None


def test_an_end_elsewhere_is_seen_at_once(pair: tuple[SessionManager, SessionManager]) -> None:
    here, there = pair
    sid = here.create_session().session_id
    here.check_health(sid)
    mark = _mark(here)
    there.end_session(sid)
    _delivered(here, mark)
    assert here.check_health(sid).state == SessionState.ENDED.value


def test_a_time_derived_transition_is_decided_once_by_the_store(
    pair: tuple[SessionManager, SessionManager],
) -> None:
    here, there = pair
    clock = here.clock
    assert isinstance(clock, FakeClock)
    sid = here.create_session().session_id
    here.touch(sid)
    there.touch(sid)  # both hold a copy of the active session
    clock.advance(POLICY.idle_after)
    with capture_signals() as sent:
        mark = _mark(there)
        assert here.check_health(sid).state == SessionState.IDLE.value
        _delivered(there, mark)
        assert there.check_health(sid).state == SessionState.IDLE.value
        mark = _mark(here)
        assert there.touch_or_report(sid)[0].state is SessionState.ACTIVE  # type: ignore[union-attr]
        _delivered(here, mark)
        assert here.check_health(sid).state == SessionState.ACTIVE.value
    changes = [(s.kwargs["old"], s.kwargs["new"]) for s in sent if s.name == "state-changed"]
    assert changes == [
        (SessionState.ACTIVE, SessionState.IDLE),
        (SessionState.IDLE, SessionState.ACTIVE),
    ]


def test_sweep_elsewhere_expires_once_and_is_seen(pair: tuple[SessionManager, SessionManager]) -> None:
    here, there = pair
    clock = here.clock
    assert isinstance(clock, FakeClock)
    sid = here.create_session().session_id
    here.touch(sid)
    clock.advance(600)
    with capture_signals() as sent:
        mark = _mark(here)
        assert [c.session_id for c in there.sweep()] == [sid]
        _delivered(here, mark)
        assert here.check_health(sid).state == SessionState.EXPIRED.value
    assert [s.name for s in sent].count("session-expired") == 1


# -- SQLite: PRAGMA data_version --------------------------------------------------------------


def _commits(path: Path) -> Callable[[], int]:
    """A reader of how many commits other connections made to ``path`` (its data_version)."""
    watcher = sqlite3.connect(path)
    return lambda: int(watcher.execute("PRAGMA data_version").fetchone()[0])


def test_sqlite_activity_within_the_window_commits_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    commits = _commits(tmp_path / "s.db")
    before = commits()
    for step in range(1, 50):
        outcome = store.update("s1", Event.ACTIVITY, T0 + step * 0.1, POLICY)
        assert outcome is not None and outcome.record.last_activity == T0
    assert commits() == before
    store.update("s1", Event.ACTIVITY, T0 + WINDOW, POLICY)
    assert commits() == before + 1
    store.close()


def test_sqlite_cached_answers_do_not_read_the_row(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    store.update("s1", Event.ACTIVITY, T0 + 1, POLICY)
    statements: list[str] = []
    conn = store._conn
    assert conn is not None
    conn.set_trace_callback(statements.append)
    for step in range(2, 10):
        store.update("s1", Event.ACTIVITY, T0 + step, POLICY)
        store.update("s1", None, T0 + step, POLICY)
    assert set(statements) == {"PRAGMA data_version"}
    store.close()


def test_sqlite_store_without_cache_reads_every_time(tmp_path: Path) -> None:
    store = store_from_url(f"sqlite:///{tmp_path / 's.db'}", cache=False)
    assert isinstance(store, SQLiteStore)
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    other = SQLiteStore(tmp_path / "s.db", cache=False)
    store.update("s1", None, T0 + 1, POLICY)
    other.update("s1", Event.END, T0 + 1, POLICY)
    outcome = store.update("s1", None, T0 + 2, POLICY)
    assert outcome is not None and outcome.record.state is SessionState.ENDED
    store.close()
    other.close()


# -- Redis: invalidations published by the scripts -------------------------------------------


class _RoundTrips:
    """Counts the commands a Redis store sends (scripts and plain commands)."""

    def __init__(self, store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        evalsha, command = store._evalsha, store._command

        def counted_evalsha(*args: Any) -> Any:
            self.count += 1
            return evalsha(*args)

        def counted_command(*args: Any) -> Any:
            self.count += 1
            return command(*args)

        monkeypatch.setattr(store, "_evalsha", counted_evalsha)
        monkeypatch.setattr(store, "_command", counted_command)


def test_redis_requests_on_a_cached_session_make_no_round_trip(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    manager = SessionManager(store=store, clock=FakeClock(T0), **SETTINGS)
    sid = "s1"
    _made_elsewhere(store, redis_url, _creating(sid), 1)
    trips = _RoundTrips(store, monkeypatch)
    manager.touch_or_report(sid)  # the first read fills the cache
    assert trips.count == 1
    for _ in range(100):
        assert manager.touch_or_report(sid)[1] is None
        assert manager.check_health(sid).healthy
    assert trips.count == 1
    manager.record_error(sid, "boom")  # not answered from the cache: a store operation
    assert trips.count == 2
    manager.close()


def test_redis_cluster_stores_cache_and_see_each_others_changes(
    redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster: shard channels per bucket (SPUBLISH), one subscription per node."""
    url = f"{redis_cluster_url}?prefix=c{free_port()}&cluster=true"
    here, there = store_from_url(url), store_from_url(url)
    assert isinstance(here, RedisStore) and isinstance(there, RedisStore)
    sids = [f"s{n}" for n in range(8)]  # spread over buckets on every node
    mark = _mark(here)
    for sid in sids:
        there.create(SessionRecord.new(sid, T0), T0, POLICY)
    _delivered(here, mark, len(sids))
    assert here._listeners is not None and len(here._listeners) > 1  # one per node holding buckets
    for sid in sids:
        outcome = here.update(sid, Event.ACTIVITY, T0 + 1, POLICY)
        assert outcome is not None and outcome.record.last_activity == T0  # within the window
    trips = _RoundTrips(here, monkeypatch)
    for sid in sids:
        assert here.update(sid, Event.ACTIVITY, T0 + 2, POLICY) is not None
    assert trips.count == 0
    mark = _mark(here)
    for sid in sids:
        for step in range(3):
            there.update(sid, Event.ERROR, T0 + 3 + step * 0.01, POLICY, "boom")
    _delivered(here, mark, 3 * len(sids))
    for sid in sids:
        outcome = here.update(sid, Event.ACTIVITY, T0 + 4, POLICY)
        assert outcome is not None and outcome.record.state is SessionState.DISCONNECTED
    here.close()
    there.close()


def test_a_cluster_store_without_a_cache_publishes_its_changes(redis_cluster_url: str) -> None:
    """Issue 22, item 1, on a cluster: a store built with cache=False still announces its changes
    on the buckets' shard channels, so a cached store refuses the sessions it ended at once."""
    url = f"{redis_cluster_url}?prefix=c{free_port()}&cluster=true"
    cached, admin = store_from_url(url), store_from_url(url, cache=False)
    assert isinstance(cached, RedisStore) and isinstance(admin, RedisStore) and admin._cache is None
    sids = [f"s{n}" for n in range(8)]  # spread over buckets on every node
    mark = _mark(cached)
    for sid in sids:
        admin.create(SessionRecord.new(sid, T0), T0, POLICY)
    _delivered(cached, mark, len(sids))
    for sid in sids:
        assert cached.update(sid, None, T0 + 1, POLICY) is not None
    assert cached._cache is not None and len(cached._cache) == len(sids)
    mark = _mark(cached)
    for sid in sids:
        admin.update(sid, Event.END, T0 + 2, POLICY)
    _delivered(cached, mark, len(sids))
    for sid in sids:
        outcome = cached.update(sid, None, T0 + 3, POLICY)  # within the window: no copy left
        assert outcome is not None and outcome.record.state is SessionState.ENDED
    cached.close()
    admin.close()


def _kill_client(store: RedisStore, redis_url: str) -> None:
    """Close the store's subscription from the server's side (CLIENT KILL by its address)."""
    import redis

    listeners = store._listeners
    assert listeners is not None and len(listeners) == 1
    sock: socket.socket | None = listeners[0]._sock
    assert sock is not None
    host, port = sock.getsockname()[:2]
    admin: Any = redis.Redis.from_url(redis_url)
    try:
        assert admin.execute_command("CLIENT KILL", f"{host}:{port}")
    finally:
        admin.close()


def test_redis_dropped_invalidation_channel_empties_the_cache(redis_url: str, redis_prefix: str) -> None:
    here = RedisStore.from_url(redis_url, prefix=redis_prefix)
    there = RedisStore.from_url(redis_url, prefix=redis_prefix)
    sids = ("s1", "s2")
    _made_elsewhere(here, redis_url, _creating(*sids), 2)
    for sid in sids:
        here.update(sid, Event.ACTIVITY, T0 + 1, POLICY)
    assert here._cache is not None and "s1" in here._cache and "s2" in here._cache
    _kill_client(here, redis_url)
    for step in range(3):  # the invalidations of these changes never reach "here"
        there.update("s2", Event.ERROR, T0 + 2 + step * 0.01, POLICY, "boom")
    here.update("s1", Event.ACTIVITY, T0 + 3, POLICY)  # finds the subscription gone
    outcome = here.update("s2", Event.ACTIVITY, T0 + 3, POLICY)  # from Redis: no copy left
    assert outcome is not None and outcome.record.state is SessionState.DISCONNECTED
    here.close()
    there.close()


def test_redis_restart_empties_the_cache(private_redis: PrivateRedis) -> None:
    store = RedisStore.from_url(private_redis.url)
    sids = [f"s{n}" for n in range(3)]
    _made_elsewhere(store, private_redis.url, _creating(*sids), 3)
    for sid in sids:
        assert store.update(sid, Event.ACTIVITY, T0 + 1, POLICY) is not None
    assert store._cache is not None and len(store._cache) == len(sids)
    private_redis.stop()
    private_redis.start()  # the same port, no data: the sessions are gone
    answers: list[object] = []
    for sid in sids:
        try:
            outcome = store.update(sid, Event.ACTIVITY, T0 + 2, POLICY)
            answers.append(None if outcome is None else outcome.record.state)
        except StoreUnavailableError:  # the pool's old connection broke on the way
            answers.append("unavailable")
    assert answers[-1] is None  # unknown now; never the cached "active"
    assert SessionState.ACTIVE not in answers
    store.close()


def test_redis_outage_follows_on_store_error(private_redis: PrivateRedis) -> None:
    store = RedisStore.from_url(private_redis.url)
    manager = SessionManager(store=store, clock=FakeClock(T0), on_store_error="fail_closed", **SETTINGS)
    sid = manager.create_session().session_id
    manager.touch(sid)
    private_redis.stop()
    with pytest.raises(StoreUnavailableError):
        manager.touch(sid)
    manager.close()


# -- the differential test, with the window and the cache ------------------------------------

_operation = st.one_of(
    st.tuples(st.just("advance"), st.floats(0, 45, allow_nan=False)),
    st.tuples(st.just("event"), st.sampled_from(["a", "b"]), st.sampled_from([None, *Event])),
    st.tuples(st.just("other"), st.sampled_from(["a", "b"]), st.sampled_from([Event.ERROR, Event.END])),
    st.tuples(st.just("create"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("sweep"), st.just(0)),
)
_MODEL_POLICY = Policy(
    idle_after=10.0,
    timeout=30.0,
    absolute_timeout=100.0,
    error_threshold=3,
    retention=1e6,
    activity_resolution=4.0,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(_operation, max_size=40))
def test_cached_stores_match_the_memory_store(
    operations: list[tuple[object, ...]], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """With the window and the caches on, SQLite and Redis answer as the memory store does, while a
    second store object (another worker) changes the same sessions."""
    import secrets

    run = secrets.token_hex(4)
    model = MemoryStore()
    redis_pair = [RedisStore.from_url(redis_url, prefix=redis_prefix, buckets=4) for _ in range(2)]
    path = tmp_path / f"{run}.db"
    sqlite_pair = [SQLiteStore(path), SQLiteStore(path)]
    pairs: list[list[Any]] = [redis_pair, sqlite_pair]
    try:
        for kind, session_id, event, now in walk(operations, run, T0 + 0.25):
            if kind == "create":
                stores = [model] + [p[0] for p in pairs]
                results = [created(store, session_id, now, _MODEL_POLICY) for store in stores]
                assert len(set(results)) == 1
            elif kind in ("event", "other"):
                which = 1 if kind == "other" else 0
                expected = model.update(session_id, event, now, _MODEL_POLICY, "boom")
                for pair in pairs:
                    mark = _mark(pair[0])
                    got = pair[which].update(session_id, event, now, _MODEL_POLICY, "boom")
                    if which == 1 and got is not None:  # the script rewrote the record: published
                        _delivered(pair[0], mark)
                    assert_same_outcome(got, expected)
            else:
                expected_changes = sorted(model.sweep(now, _MODEL_POLICY))
                for pair in pairs:
                    mark = _mark(pair[0])
                    assert sorted(pair[1].sweep(now, _MODEL_POLICY)) == expected_changes
                    if expected_changes:
                        _delivered(pair[0], mark)
    finally:
        for pair in pairs:
            for name in ("a", "b"):
                pair[0].delete(f"{run}-{name}")
            for store in pair:
                store.close()


def test_redis_copy_of_an_ended_session_is_not_trusted_past_its_retention(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis drops a record at the end of its retention (a TTL) without telling anyone."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)

    def create_and_end(maker: RedisStore) -> None:
        maker.create(SessionRecord.new("s1", T0), T0, POLICY)
        maker.update("s1", Event.END, T0 + 1, POLICY)

    _made_elsewhere(store, redis_url, create_and_end, 2)
    ended = store.update("s1", None, T0 + 2, POLICY)  # cached now
    assert ended is not None and ended.record.state is SessionState.ENDED
    store._client.delete(store._keys("s1")[0])  # what the TTL does, silently
    trips = _RoundTrips(store, monkeypatch)
    short = dataclasses.replace(POLICY, retention=WINDOW / 2)  # ends within the copy's window
    assert store.update("s1", None, T0 + 1 + short.retention - 0.001, short) is not None
    assert trips.count == 0
    assert store.update("s1", None, T0 + 1 + short.retention, short) is None
    assert trips.count == 1
    store.close()


def test_redis_user_without_channels_works_without_a_cache(private_redis: PrivateRedis) -> None:
    """Redis 7's ACL gives new users no pub/sub channels: the scripts still work, with no cache."""
    import redis

    admin: Any = redis.Redis.from_url(private_redis.url)
    admin.execute_command("ACL", "SETUSER", "worker", "on", ">secret", "~*", "+@all", "resetchannels")
    admin.close()
    store = RedisStore.from_url(f"redis://worker:secret@127.0.0.1:{private_redis.port}/0")
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    outcome = store.update("s1", Event.ERROR, T0 + 1, POLICY, "boom")  # a change: its PUBLISH is refused
    assert outcome is not None and outcome.record.error_count == 1
    assert store.update("s1", None, T0 + 2, POLICY) is not None
    assert store._listeners is None and store._cache is not None and len(store._cache) == 0
    store.close()


# -- issue 22: what the cache promises under faults -------------------------------------------


def test_a_change_through_a_store_without_a_cache_reaches_the_cached_ones(
    redis_url: str, redis_prefix: str
) -> None:
    """A store built with cache=False (an admin tool, a job) still announces its changes: a
    worker holding a copy refuses the ended session on its next request."""
    clock = FakeClock(T0)
    url = f"{redis_url}?prefix={redis_prefix}"
    cached = SessionManager(store=url, clock=clock, **SETTINGS)
    admin = SessionManager(store=store_from_url(url, cache=False), clock=clock, **SETTINGS)
    mark = _mark(cached)
    sid = cached.create_session().session_id
    _delivered(cached, mark)
    assert cached.touch_or_report(sid)[1] is None
    assert _copied(cached, sid)
    mark = _mark(cached)
    assert admin.end_session(sid)
    _delivered(cached, mark)
    record, refusal = cached.touch_or_report(sid)
    assert refusal is not None and refusal.state == SessionState.ENDED.value
    assert record is not None and record.state is SessionState.ENDED
    cached.close()
    admin.close()


@pytest.mark.parametrize("state", [SessionState.ACTIVE, SessionState.DISCONNECTED, SessionState.ENDED])
def test_a_copy_answers_for_one_window_at_most_whatever_its_state(state: SessionState) -> None:
    """A copy read at t answers a look (and activity) only until t + the window: never later,
    even for a session whose state no time changes (disconnected, ended)."""
    from sessionmw.stores.cache import RecordCache

    cache = RecordCache()
    record = SessionRecord.new("s1", T0)
    record.state = state
    cache.put(record, T0 + 1)
    assert cache.answer("s1", None, T0 + 1 + WINDOW - 0.001, POLICY) is not None
    assert cache.answer("s1", None, T0 + 1 + WINDOW, POLICY) is None
    assert cache.answer("s1", None, T0, POLICY) is None  # a clock behind the read: not trusted
    assert cache.answer("s1", None, T0 + 2, dataclasses.replace(POLICY, activity_resolution=0.0)) is None


@pytest.mark.parametrize("state", [SessionState.ACTIVE, SessionState.DISCONNECTED, SessionState.ENDED])
def test_a_redis_copy_is_not_used_past_the_window_whatever_its_state(
    state: SessionState, redis_url: str, redis_prefix: str
) -> None:
    """A record deleted behind the store's back (a FLUSHDB, an eviction: no message) is answered
    from the copy until one window after it was read, then by Redis, in every state (before: an
    active copy until idle_after, a disconnected one until the timeout, an ended one until the
    retention)."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    errors = POLICY.error_threshold if state is SessionState.DISCONNECTED else 0

    def made_in_state(maker: RedisStore) -> None:
        maker.create(SessionRecord.new("s1", T0), T0, POLICY)
        for step in range(errors):
            maker.update("s1", Event.ERROR, T0 + step * 0.01, POLICY, "boom")
        if state is SessionState.ENDED:
            maker.update("s1", Event.END, T0 + 0.5, POLICY)

    _made_elsewhere(store, redis_url, made_in_state, 1 + errors + (1 if state is SessionState.ENDED else 0))
    read = store.update("s1", None, T0 + 1, POLICY)  # read from Redis at T0 + 1: a copy
    assert read is not None and read.record.state is state
    assert store._cache is not None and "s1" in store._cache
    store._client.delete(store._keys("s1")[0])  # gone, and nobody told
    last_look = store.update("s1", None, T0 + 1 + WINDOW - 0.001, POLICY)
    assert last_look is not None and last_look.record.state is state  # the copy, within the window
    assert store.update("s1", None, T0 + 1 + WINDOW, POLICY) is None  # Redis: no such session
    store.close()


def test_after_a_flushdb_looks_are_answered_from_the_copy_for_one_window_at_most(
    private_redis: PrivateRedis,
) -> None:
    """Window 5 s, idle after 60 s: 30 s after a FLUSHDB (which tells nobody) the worker with a
    copy says not_found, as the store does, not healthy."""
    import redis

    clock = FakeClock(T0)
    settings = {**SETTINGS, "activity_resolution_seconds": 5.0}
    here = SessionManager(store=private_redis.url, clock=clock, **settings)
    there = SessionManager(store=private_redis.url, clock=clock, **settings)
    mark = _mark(there)
    sid = here.create_session().session_id
    _delivered(there, mark)  # the create's announcement, before "there" reads the record
    assert there.check_health(sid).healthy
    assert _copied(there, sid)
    admin: Any = redis.Redis.from_url(private_redis.url)
    admin.flushdb()
    admin.close()
    clock.advance(4.9)
    assert there.check_health(sid).healthy  # within the window: the copy (the documented bound)
    clock.advance(0.1)
    assert there.check_health(sid).status == "not_found"
    clock.advance(25)
    assert there.check_health(sid).status == here.check_health(sid).status == "not_found"
    here.close()
    there.close()


def test_rolling_upgrade_cached_uncached_and_older_processes_side_by_side(
    redis_url: str, redis_prefix: str
) -> None:
    """docs/stores.md, the rolling upgrade: a cached worker sees at once what an uncached one of
    this version changes (it publishes), and what a process of an older version changes (it
    publishes nothing) one window after it last read the record from Redis, at the latest."""
    clock = FakeClock(T0)
    url = f"{redis_url}?prefix={redis_prefix}"
    cached = SessionManager(store=url, clock=clock, **SETTINGS)
    uncached = SessionManager(store=store_from_url(url, cache=False), clock=clock, **SETTINGS)
    older_store = store_from_url(url, cache=False)
    assert isinstance(older_store, RedisStore)
    older_store._channel = ""  # as a sessionmw from before the read cache: its script publishes nothing
    older = SessionManager(store=older_store, clock=clock, **SETTINGS)
    mark = _mark(cached)
    by_uncached, by_older = cached.create_session().session_id, cached.create_session().session_id
    _delivered(cached, mark, 2)
    for sid in (by_uncached, by_older):
        assert cached.check_health(sid).healthy
        assert _copied(cached, sid)  # read at T0
    mark = _mark(cached)
    clock.advance(1)
    uncached.end_session(by_uncached)
    older.end_session(by_older)
    _delivered(cached, mark)  # the uncached worker's announcement (the older one sends none)
    assert cached.check_health(by_uncached).state == SessionState.ENDED.value  # at once
    clock.advance(WINDOW - 1 - 0.001)
    assert cached.check_health(by_older).healthy  # the bound: up to one window after the read
    assert cached.touch_or_report(by_older)[1] is None
    clock.advance(0.001)
    assert cached.check_health(by_older).state == SessionState.ENDED.value
    assert cached.touch_or_report(by_older)[1] is not None
    for manager in (cached, uncached, older):
        manager.close()


class _Silent:
    """A loopback listener that accepts connections and never answers (a paused Redis, a
    network that drops everything): every command waits for its timeout."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.accepted: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"

    def close(self) -> None:
        self.server.close()


@pytest.fixture(name="silent")
def _silent() -> Iterator[_Silent]:
    listener = _Silent()
    yield listener
    listener.close()


@pytest.mark.parametrize("threads", [1, 8])
def test_a_silent_redis_costs_one_timeout_with_the_cache_on(silent: _Silent, threads: int) -> None:
    """Fail-closed touch() against a Redis that never answers, default 1 s timeouts: each
    operation takes its own timeout, with the cache on as off (before: 2 s for one thread, up to
    15 s with 8, queued behind another's subscription). A fault-injection test of wall time: the
    bound is generous (1.6 x the timeout) for a loaded machine."""
    from concurrent.futures import ThreadPoolExecutor

    timeout = 1.0
    store = RedisStore.from_url(silent.url, timeout=timeout, connect_timeout=timeout)
    manager = SessionManager(store=store, clock=FakeClock(T0), on_store_error="fail_closed", **SETTINGS)

    def touch(_: int) -> float:
        started = time.perf_counter()
        with pytest.raises(StoreUnavailableError):
            manager.touch("s1")
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=threads) as pool:
        waits = sorted(pool.map(touch, range(threads)))
    print(f"waits with the cache on, {threads} thread(s): {[round(w, 2) for w in waits]}")
    assert waits[-1] < 1.6 * timeout
    manager.close()


class _TimedLock:
    """The cache lock, timed: the longest any thread waited for it and the longest it was held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.longest_wait = self.longest_hold = 0.0
        self._taken = 0.0

    def __enter__(self) -> _TimedLock:
        asked = time.perf_counter()
        self._lock.acquire()
        self._taken = time.perf_counter()
        self.longest_wait = max(self.longest_wait, self._taken - asked)
        return self

    def __exit__(self, *_: object) -> None:
        self.longest_hold = max(self.longest_hold, time.perf_counter() - self._taken)
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


@pytest.mark.parametrize("worker", ["new", "cut_off", "subscribed"])
def test_a_sigstopped_redis_costs_each_operation_one_timeout_with_the_cache_on(
    private_redis: PrivateRedis, worker: str
) -> None:
    """Issue 22, item 6, by fault injection: our own redis-server SIGSTOPped (connections are still
    accepted by the kernel, nothing is answered), fail-closed touch() with the default 1 s
    timeouts, the cache on, 8 threads at once. Each call fails after its own timeout: no second
    timeout for a (re)subscription, no queue on the cache lock, at most one subscription attempt.
    A worker that is ``new`` (never subscribed), ``cut_off`` (its subscription killed just before
    the pause) or ``subscribed`` (its subscription alive, its copies past the window).

    Real time cannot be avoided (socket timeouts), so the bounds are generous for a loaded 2-core
    machine: a call under 1.75 x the timeout (a second timeout would make it 2 x), the lock never
    held or waited for half a timeout (work under it takes microseconds; a network wait under it,
    a whole timeout). Before the fix: 2.0 s for one thread, up to 9 s with 8, 13 s of a 15 s wait
    spent on the lock."""
    from concurrent.futures import ThreadPoolExecutor

    timeout, threads = 1.0, 8
    clock = FakeClock(T0)
    store = RedisStore.from_url(private_redis.url, timeout=timeout, connect_timeout=timeout)
    manager = SessionManager(store=store, clock=clock, on_store_error="fail_closed", **SETTINGS)
    sids = [f"s{n}" for n in range(threads)]
    if worker == "new":  # made by another process: this store has not been used yet
        maker = RedisStore.from_url(private_redis.url)
        _creating(*sids)(maker)
        maker.close()
    else:
        _made_elsewhere(store, private_redis.url, _creating(*sids), threads)
        for sid in sids:
            manager.touch(sid)  # copies, read at T0
        assert store._cache is not None and len(store._cache) == threads
        clock.advance(WINDOW + 1)  # past the window: every touch goes to Redis
    if worker == "cut_off":
        _kill_client(store, private_redis.url)
    lock = _TimedLock()
    store._cache_lock = lock  # type: ignore[assignment]
    attempts: list[float] = []
    subscriptions = store._subscriptions

    def counted_subscriptions() -> list[tuple[Any, str, list[str]]]:
        attempts.append(time.monotonic())
        return subscriptions()

    store._subscriptions = counted_subscriptions  # type: ignore[method-assign]

    def touch(sid: str) -> float:
        started = time.perf_counter()
        with pytest.raises(StoreUnavailableError):
            manager.touch(sid)
        return time.perf_counter() - started

    assert private_redis.process is not None
    os.kill(private_redis.process.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            waits = sorted(pool.map(touch, sids))
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    print(
        f"{worker}: waits {[round(w, 2) for w in waits]}, lock held <= {lock.longest_hold:.4f} s, "
        f"waited for <= {lock.longest_wait:.4f} s, {len(attempts)} subscription attempt(s)"
    )
    assert waits[-1] < 1.75 * timeout
    assert lock.longest_hold < timeout / 2 and lock.longest_wait < timeout / 2
    assert len(attempts) <= 1  # a Redis that does not answer is not asked by every caller at once
    manager.close()


def test_no_request_waits_for_a_subscription(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a subscription is being made (held here until the requests are done), requests
    are answered by Redis, and nobody holds the cache lock."""
    import threading

    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    release, held = threading.Event(), threading.Event()
    lock_held_meanwhile: list[bool] = []
    subscriptions = store._subscriptions

    def slow_subscriptions() -> list[tuple[Any, str, list[str]]]:
        held.set()
        if not release.wait(10):
            lock_held_meanwhile.append(True)  # nobody released it: a request waited for us
        return subscriptions()

    monkeypatch.setattr(store, "_subscriptions", slow_subscriptions)
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    for step in range(3):
        outcome = store.update("s1", Event.ACTIVITY, T0 + WINDOW * (step + 1), POLICY)
        assert outcome is not None and outcome.record.last_activity == T0 + WINDOW * (step + 1)
    assert held.wait(10)
    lock_held_meanwhile.append(store._cache_lock.locked())
    release.set()
    _subscribed(store)
    assert lock_held_meanwhile == [False]
    assert store._listeners is not None  # subscribed after all
    store.close()


class _MonotonicClock(FakeClock):
    """A FakeClock standing in for ``time.monotonic`` in the Redis store's module."""

    def monotonic(self) -> float:
        return self.now


def test_a_failed_subscription_pauses_the_next_from_the_failure(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt that fails after 0.9 s: the next comes 1 s after the failure, not 0.1 s after
    it (1 s after the attempt's start), whatever the number of requests meanwhile."""
    import sessionmw.stores._redis as redis_module

    monotonic = _MonotonicClock(0.0)
    monkeypatch.setattr(redis_module, "time", monotonic)
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    attempts: list[float] = []

    def failing_subscriptions() -> list[tuple[Any, str, list[str]]]:
        attempts.append(monotonic.now)
        monotonic.advance(0.9)  # the attempt takes 0.9 s to fail
        raise ConnectionError("no answer")

    monkeypatch.setattr(store, "_subscriptions", failing_subscriptions)
    store.create(SessionRecord.new("s1", T0), T0, POLICY)

    def requests(count: int) -> None:
        for _ in range(count):
            assert store.update("s1", None, T0 + 1, POLICY) is not None
            subscriber = getattr(store, "_subscriber", None)
            if subscriber is not None:
                subscriber.join(10)

    requests(5)
    assert attempts == [0.0]
    monotonic.advance(0.1)  # 1 s after the start of the attempt, 0.1 s after its failure
    requests(5)
    assert attempts == [0.0]
    monotonic.advance(0.9 - 0.001)
    requests(5)
    assert attempts == [0.0]
    monotonic.advance(0.001)  # 1 s after the failure
    requests(5)
    assert attempts == [0.0, 1.9]
    store.close()
