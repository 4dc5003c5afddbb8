"""Stores under attack and odd conditions: hostile or deeply nested records, forks with locks held, a
session cap under racing creators, the census behind the metrics, and URL options at their edges."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.stores import shared_store_url

from sessionmw import (
    ConfigurationError,
    CorruptRecordError,
    SessionExistsError,
    SessionLimitError,
    SessionManager,
    SessionState,
)
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event, HealthStatus
from sessionmw.stores import SessionStore, store_from_url
from sessionmw.stores._redis import RedisStore, _written
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.stores.records import decode_record
from sessionmw.testing import FakeClock

POLICY = Policy(idle_after=10.0, timeout=30.0, absolute_timeout=100.0, error_threshold=3, retention=20.0)
T0 = 1_700_000_000.0

DEEP = ["[" * 5000, "{" + '"a":{' * 5000, '{"v":1,"id":"s1","state":"active","created_at":' + "[" * 5000]


@pytest.fixture(name="store_url", params=["sqlite", "redis"])
def _store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A persistent store: a SQLite file or a Redis prefix of this test's own."""
    return shared_store_url(request.param, request, tmp_path)


def _overwrite(store: SessionStore, session_id: str, raw: str) -> None:
    """Put ``raw`` where the store keeps ``session_id``'s record, as an attacker with store access would."""
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        with conn:
            conn.execute("UPDATE sessionmw_sessions SET data = ? WHERE id = ?", (raw, session_id))
        conn.close()
    else:
        assert isinstance(store, RedisStore)
        store._client.set(store._keys(session_id)[0], raw)


# -- item 7: a deeply nested record -------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.integers(min_value=1, max_value=20_000).map(lambda n: ("[" * n).encode()),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
        ).map(lambda value: json.dumps(value).encode()),
        st.fixed_dictionaries(
            {
                "v": st.just(1),
                "id": st.sampled_from(["s1", "s2", 1]),
                "state": st.sampled_from(["active", "ended", "bogus", 3]),
                "created_at": st.one_of(st.floats(), st.integers(), st.just(10**400), st.text(max_size=3)),
                "last_activity": st.one_of(st.floats(), st.integers(), st.just([[1]])),
                "error_count": st.one_of(st.integers(), st.booleans(), st.floats()),
                "state_changed_at": st.one_of(st.floats(), st.integers()),
                "reason": st.one_of(st.none(), st.text(max_size=5), st.integers()),
                "last_error": st.one_of(st.none(), st.text(max_size=5), st.lists(st.integers())),
                "reconnected_at": st.one_of(st.none(), st.floats(), st.just(10**400)),
            }
        ).map(lambda value: json.dumps(value, separators=(",", ":")).encode()),
    )
)
def test_any_stored_bytes_are_a_record_or_corrupt(raw: bytes) -> None:
    """Whatever bytes a store hands back, both record decoders (the one the stores read with, and
    the one for what the Redis script returns) give a record of that id or CorruptRecordError."""
    for reader in ("stores", "script"):
        try:
            record = decode_record(raw, "s1", "test") if reader == "stores" else _written(raw, "test")
        except CorruptRecordError:
            continue
        assert isinstance(record, SessionRecord)


@pytest.mark.parametrize("raw", DEEP, ids=["list", "object", "field"])
def test_deeply_nested_record_is_corrupt_everywhere(store_url: str, raw: str, tmp_path: Path) -> None:
    """A record of ``"[" * 5000`` is corrupt (not a RecursionError) for get, update and create;
    the manager answers not_found, the listing skips it, a new session can take its place."""
    store = store_from_url(store_url)
    clock = FakeClock(T0)
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    store.create(SessionRecord.new("s2", T0), T0, POLICY)
    _overwrite(store, "s1", raw)
    with pytest.raises(CorruptRecordError):
        store.get("s1")
    with pytest.raises(CorruptRecordError):
        store.update("s1", Event.ACTIVITY, T0 + 1, POLICY)
    with pytest.raises(CorruptRecordError):
        store.update("s1", None, T0 + 1, POLICY)
    assert [record.session_id for record in store.records()] == ["s2"]
    manager = SessionManager(store=store, clock=clock)
    assert manager.check_health("s1").status == HealthStatus.NOT_FOUND
    fresh = manager.create_session("s1")
    assert store.get("s1") == fresh
    store.close()


def _request(app: Any, cookie: str | None) -> tuple[str, list[tuple[str, str]]]:
    from wsgiref.validate import validator

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO="/", REQUEST_METHOD="GET", QUERY_STRING="")
    environ["wsgi.input"] = io.BytesIO(b"")
    if cookie is not None:
        environ["HTTP_COOKIE"] = f"sessionmw={cookie}"
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    result = validator(app)(environ, start_response)
    try:
        b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return seen["status"], seen["headers"]


def _cookie(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "set-cookie" and value.startswith("sessionmw="):
            return value.partition("=")[2].split(";")[0]
    return None


def test_a_client_whose_record_is_nested_deeply_gets_a_fresh_session(store_url: str) -> None:
    """A request with the cookie of a ``"[" * 5000`` record: 200 and a session with a readable
    record (under a new cookie, or the signed id stored afresh), never a 500 that leaves the
    client stuck."""
    from sessionmw.integrations.wsgi import SessionMiddleware

    def inner(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    manager = SessionManager(store=store_url, clock=FakeClock(T0))
    app = SessionMiddleware(inner, manager=manager, secret_key="test-secret")
    _, headers = _request(app, None)
    issued = _cookie(headers)
    assert issued is not None
    _request(app, issued)  # sent back once: now stored
    stored = [record.session_id for record in manager.store.records()]
    assert len(stored) == 1
    _overwrite(manager.store, stored[0], "[" * 5000)
    status, headers = _request(app, issued)
    assert status.startswith("200")
    current = _cookie(headers) or issued
    status, headers = _request(app, current)
    assert status.startswith("200")
    current = _cookie(headers) or current
    record = manager.store.get(current)
    assert record is not None and record.session_id == current
    manager.close()


def test_sessions_list_skips_a_deeply_nested_record(store_url: str) -> None:
    """`sessionmw sessions list` on a store holding a ``"[" * 5000`` record: no traceback."""
    store = store_from_url(store_url)
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    store.create(SessionRecord.new("s2", T0), T0, POLICY)
    _overwrite(store, "s1", "[" * 5000)
    store.close()
    result = subprocess.run(
        [sys.executable, "-m", "sessionmw", "sessions", "list", "--json", "--store", store_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert [row["id"] for row in json.loads(result.stdout)] == ["s2"]


# -- items 8 and 9: fork safety ----------------------------------------------------------------


def in_child(work: Callable[[], object], *, seconds: int = 5) -> object:
    """Run ``work`` in a real ``os.fork`` child and return what it returned (JSON); a child
    stuck for ``seconds`` (a lock held for ever) is ended by SIGALRM and fails the test."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(reader)
            signal.alarm(seconds)
            payload = json.dumps({"ok": work()})
            code = 0
        except BaseException as exc:  # reported to the parent
            payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        finally:
            with os.fdopen(writer, "w") as out:
                out.write(payload)
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader) as got:
        text = got.read()
    _, status = os.waitpid(pid, 0)
    assert not os.WIFSIGNALED(status), f"the child hung and was killed by signal {os.WTERMSIG(status)}"
    result = json.loads(text)
    assert "error" not in result, result["error"]
    return result["ok"]


def test_sqlite_counters_open_their_own_connection_after_fork(tmp_path: Path) -> None:
    """Analytics connected before a fork (gunicorn --preload): the child counts through a
    connection it opened itself, never the parent's, and the counts of both reach the file."""
    store = SQLiteStore(tmp_path / "s.db")
    counters = store.counters()
    counters.add([0], {"hits": 1.0})  # the parent's connection is open now
    parent_connection = id(counters._connect())

    def child() -> object:
        counters.add([0], {"hits": 1.0})
        return id(counters._connect()) != parent_connection

    assert in_child(child) is True
    counters.add([0], {"hits": 1.0})
    assert counters.read([0]) == {0: {"hits": 3.0}}
    store.close()


def test_sqlite_store_lock_held_at_fork_does_not_hang_the_child(tmp_path: Path) -> None:
    """Another thread inside a SQLite store operation when the process forks: the child can
    still use the store (the lock it inherited, held for ever, is renewed)."""
    store = SQLiteStore(tmp_path / "s.db")
    store.create(SessionRecord.new("s1", T0), T0, POLICY)

    def child() -> object:
        record = store.get("s1")
        return None if record is None else record.session_id

    with store._lock:  # as if another thread were inside at the fork
        assert in_child(child) == "s1"
    store.close()


@pytest.mark.parametrize("target", ["memory store", "memory counters", "analytics"])
def test_locks_held_at_fork_do_not_hang_the_child(target: str) -> None:
    """A lock held by another thread at the fork (the memory store's, the memory counters', the
    analytics registry's) is fresh in the child: no operation there waits for ever."""
    from sessionmw import analytics
    from sessionmw.stores import MemoryStore, _beside
    from sessionmw.stores.counters import MemoryCounters

    store = MemoryStore()
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    counters = analytics.counters_for(store)
    assert isinstance(counters, MemoryCounters)
    lock = {"memory store": store._lock, "memory counters": counters._lock}.get(target, _beside._LOCK)

    def child() -> object:
        outcome = store.update("s1", Event.ACTIVITY, T0 + 1, POLICY)
        analytics.counters_for(store).add([0], {"hits": 1.0})
        return outcome is not None and analytics.counters_for(store).read([0]) == {0: {"hits": 1.0}}

    with lock:  # as if another thread were inside at the fork
        assert in_child(child) is True


def _child_warnings(work: Callable[[], None]) -> list[str]:
    """The WARNING messages logged under ``sessionmw`` while ``work`` runs in a forked child."""

    def child() -> object:
        seen: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.WARNING:
                    seen.append(record.getMessage())

        logging.getLogger("sessionmw").addHandler(Collect())
        work()
        return seen

    result = in_child(child)
    assert isinstance(result, list)
    return [str(message) for message in result]


def test_memory_store_used_after_fork_warns_once_naming_the_fix() -> None:
    """A memory store made before a fork and used in the child (gunicorn --preload with several
    workers): one WARNING saying the workers do not share sessions, naming sqlite:/// and redis://."""
    manager = SessionManager(store="memory://", clock=FakeClock(T0))
    manager.create_session("before-the-fork")

    def work() -> None:
        for number in range(3):
            manager.create_session(f"s{number}")
            manager.update_session_activity(f"s{number}")

    warnings = _child_warnings(work)
    assert len(warnings) == 1, warnings
    assert "memory://" in warnings[0] and "forked" in warnings[0]
    assert "sqlite:///" in warnings[0] and "redis://" in warnings[0]
    manager.close()


def test_memory_store_made_in_the_child_does_not_warn() -> None:
    """A memory store made after the fork, in the process that uses it, is fine: no warning."""

    def work() -> None:
        manager = SessionManager(store="memory://", clock=FakeClock(T0))
        manager.create_session("s1")
        manager.update_session_activity("s1")

    assert _child_warnings(work) == []


def test_redis_store_and_counters_work_on_both_sides_of_a_fork(redis_url: str, redis_prefix: str) -> None:
    """The Redis store and its counters used before a fork work in the child and, after it, in
    the parent (redis-py's pools open new connections in a new process: no shared socket)."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    counters = store.counters()
    store.create(SessionRecord.new("s1", T0), T0, POLICY)
    counters.add([0], {"hits": 1.0})

    def child() -> object:
        for step in range(20):
            store.update("s1", Event.ACTIVITY, T0 + 1 + step, POLICY)
            counters.add([0], {"hits": 1.0})
        record = store.get("s1")
        return None if record is None else record.last_activity

    assert in_child(child) == T0 + 20
    outcome = store.update("s1", Event.ACTIVITY, T0 + 30, POLICY)
    assert outcome is not None and outcome.record.last_activity == T0 + 30
    assert counters.read([0]) == {0: {"hits": 21.0}}
    store.close()


# -- item 5: max_sessions on Redis ---------------------------------------------------------------


class _LookThenWait:
    """A pipeline whose reply is held until every creator has looked (the worst interleaving of
    a count made before the creating script)."""

    def __init__(self, pipe: Any, barrier: threading.Barrier) -> None:
        self._pipe = pipe
        self._barrier = barrier

    def execute_command(self, *args: Any) -> Any:
        return self._pipe.execute_command(*args)

    def execute(self) -> Any:
        replies = self._pipe.execute()
        with contextlib.suppress(threading.BrokenBarrierError):
            self._barrier.wait(timeout=5)
        return replies


def test_redis_cap_holds_when_creators_look_at_the_same_moment(redis_url: str, redis_prefix: str) -> None:
    """Eight threads create a session each into a store capped at 3 while every one of them has
    looked at the count before any creates: exactly 3 sessions are created."""
    import redis

    creators = 8
    barrier = threading.Barrier(creators)

    class Gated(redis.Redis):
        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            return _LookThenWait(super().pipeline(transaction, shard_hint), barrier)

    client = Gated(connection_pool=redis.ConnectionPool.from_url(redis_url, max_connections=creators * 2))
    store = RedisStore(client, prefix=redis_prefix, max_sessions=3)
    created: list[str] = []
    refused: list[str] = []

    def create(number: int) -> None:
        try:
            store.create(SessionRecord.new(f"s{number}", T0), T0, POLICY)
            created.append(f"s{number}")
        except SessionLimitError:
            refused.append(f"s{number}")

    threads = [threading.Thread(target=create, args=(number,)) for number in range(creators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(created), len(refused)) == (3, creators - 3)
    assert store.count() == 3
    store.close()


def test_redis_cap_is_exact_with_processes_racing(redis_url: str, redis_prefix: str) -> None:
    """Four processes create 40 sessions each as fast as they can into a store capped at 50:
    exactly 50 exist afterwards, and exactly 50 creates succeeded."""
    url = f"{redis_url}?prefix={redis_prefix}&max_sessions=50"
    readers: list[tuple[int, int]] = []
    for worker in range(4):
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(reader)
                store = store_from_url(url)
                made = 0
                for number in range(40):
                    with contextlib.suppress(SessionLimitError):
                        store.create(SessionRecord.new(f"w{worker}-{number}", T0), T0, POLICY)
                        made += 1
                os.write(writer, str(made).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(writer)
        readers.append((pid, reader))
    made = 0
    for pid, reader in readers:
        with os.fdopen(reader) as got:
            text = got.read()
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        made += int(text)
    store = store_from_url(url)
    assert made == 50 and store.count() == 50
    store.close()


# -- item 10: the cost of a metrics scrape -------------------------------------------------------


def _counting_store(redis_url: str, prefix: str) -> tuple[RedisStore, dict[str, int]]:
    """A Redis store whose connections count the commands and the round trips they send."""
    import redis

    sent = {"commands": 0, "round_trips": 0}

    class Counting(redis.Connection):
        def pack_command(self, *args: Any) -> Any:
            sent["commands"] += 1
            return super().pack_command(*args)  # type: ignore[no-untyped-call]

        def pack_commands(self, commands: Any) -> Any:
            sent["commands"] += len(commands)
            return super().pack_commands(commands)  # type: ignore[no-untyped-call]

        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent["round_trips"] += 1
            super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    pool = redis.ConnectionPool.from_url(redis_url, connection_class=Counting)
    return RedisStore(redis.Redis(connection_pool=pool), prefix=prefix), sent


def test_a_redis_scrape_costs_the_same_whatever_the_number_of_sessions(
    redis_url: str, redis_prefix: str
) -> None:
    """The Prometheus collector's commands and round trips on Redis do not grow with the
    sessions: the same for 10 sessions as for 400, and at most a few round trips."""
    pytest.importorskip("prometheus_client")
    from sessionmw.metrics import SessionCollector

    store, sent = _counting_store(redis_url, redis_prefix)
    manager = SessionManager(store=store, clock=FakeClock(T0))
    collector = SessionCollector(manager)

    def scrape() -> tuple[int, int, dict[str, float]]:
        before = dict(sent)
        families = list(collector.collect())
        gauge = next(family for family in families if family.name == "sessionmw_sessions")
        values = {sample.labels["state"]: sample.value for sample in gauge.samples}
        return sent["commands"] - before["commands"], sent["round_trips"] - before["round_trips"], values

    def add(count: int, start: int) -> None:
        for number in range(start, start + count):
            manager.create_session(f"s{number}")
            if number % 3 == 0:
                manager.end_session(f"s{number}")
            elif number % 3 == 1:
                for _ in range(manager.settings.max_error_threshold):
                    manager.record_error(f"s{number}", "down")

    add(10, 0)
    scrape()  # connections open
    small = scrape()
    add(390, 10)
    large = scrape()
    assert large[:2] == small[:2]
    assert large[1] <= 3
    assert large[2]["active"] + large[2]["ended"] + large[2]["disconnected"] == 400
    assert large[2]["ended"] == sum(1 for number in range(400) if number % 3 == 0)
    manager.close()


@pytest.fixture(name="census_url", params=["redis", "redis-cluster"])
def _census_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A Redis store URL of this test's own: one server, or a private cluster."""
    return shared_store_url(request.param, request, tmp_path)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_redis_census_equals_a_full_scan_after_random_operations(census_url: str, seed: int) -> None:
    """After random creates, activity, errors, successes, reconnects, ends, deletes, clock jumps
    and sweeps, every state's count (and the counts by state) equal a scan of the records."""
    store = store_from_url(census_url)
    assert isinstance(store, RedisStore)
    chooser = random.Random(seed)
    now = T0
    ids = [f"r{number}" for number in range(25)]
    events = [Event.ACTIVITY, Event.ERROR, Event.SUCCESS, Event.RECONNECT, Event.END, None]

    def check() -> None:
        store.sweep(now, POLICY, limit=10_000)  # drops what Redis's TTLs dropped from the census
        scanned = Counter(record.state for record in store.records())
        assert store.count_by_state() == {state: scanned[state] for state in SessionState}
        assert [store.count(state) for state in SessionState] == [scanned[s] for s in SessionState]

    for step in range(300):
        session_id = chooser.choice(ids)
        roll = chooser.random()
        if roll < 0.25:
            with contextlib.suppress(SessionExistsError):
                store.create(SessionRecord.new(session_id, now), now, POLICY)
        elif roll < 0.3:
            store.delete(session_id)
        elif roll < 0.4:
            now += chooser.randint(1, 15)
        elif roll < 0.45:
            store.sweep(now, POLICY, limit=chooser.randint(1, 5))
        else:
            store.update(session_id, chooser.choice(events), now, POLICY, "boom")
        if step % 60 == 59:
            check()
    check()
    store.close()


def test_sqlite_census_is_one_query_on_the_state_index(tmp_path: Path) -> None:
    """On SQLite the counts by state are one query answered from the index on ``state``, and
    they equal the records' states."""
    from sessionmw.stores._sqlite import CENSUS_QUERY

    store = SQLiteStore(tmp_path / "s.db")
    for number in range(6):
        store.create(SessionRecord.new(f"s{number}", T0), T0, POLICY)
    store.update("s0", Event.END, T0, POLICY)
    assert store.count_by_state() == {
        **dict.fromkeys(SessionState, 0),
        SessionState.ACTIVE: 5,
        SessionState.ENDED: 1,
    }
    store.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {CENSUS_QUERY}"))
    conn.close()
    assert "sessionmw_sessions_state" in plan


def test_redis_census_keys_share_the_sessions_slot(redis_url: str, redis_prefix: str) -> None:
    """Every key a session's script touches, the census included, hashes to one cluster slot,
    and the census spreads over the buckets' slots like the indexes."""
    from redis.crc import key_slot

    store = RedisStore.from_url(redis_url, prefix=redis_prefix, buckets=16)
    for session_id in ("a", "b", "some-longer-id"):
        keys = store._script_keys(session_id)
        assert len(keys) == 5 and len({key_slot(key.encode()) for key in keys}) == 1
    assert len({key_slot(store._script_keys(f"s{i}")[4].encode()) for i in range(200)}) == 16
    store.close()


@pytest.mark.parametrize("where", ["default manager", "translation registry", "breaker backends"])
def test_module_locks_are_fresh_in_a_forked_child(where: str) -> None:
    """A module-level lock another thread held at the fork does not block the child for ever."""
    from sessionmw import _breaker as breaker
    from sessionmw import _manager as manager
    from sessionmw import translation
    from sessionmw.stores import MemoryStore, _beside

    class Flaky(Exception):
        pass

    work: dict[str, Callable[[], object]] = {
        "default manager": lambda: manager.get_session_manager() is not None,
        "translation registry": lambda: bool(translation.register_translation(Flaky, title="t", message="m")),
        "breaker backends": lambda: breaker.breakers_for(MemoryStore()) is not None,
    }
    lock = {
        "default manager": manager._default_lock,
        "translation registry": translation._lock,
        "breaker backends": _beside._LOCK,
    }[where]
    manager.set_session_manager(None)
    with lock:  # as if another thread were inside at the fork
        assert in_child(work[where]) is True


# -- issue 22: yes/no options and the errors at the edges -----------------------------------------

NO_WORDS = ["false", "no", "off", "0", "FALSE", " Off ", False, 0]


@pytest.mark.parametrize("word", NO_WORDS)
def test_a_word_that_means_no_turns_the_cache_off(word: object, tmp_path: Path, redis_url: str) -> None:
    """cache="false" (or no, off, 0, any case) builds no cache, in both constructors."""
    sqlite = SQLiteStore(tmp_path / "s.db", cache=word)  # type: ignore[arg-type]
    redis_store = RedisStore.from_url(redis_url, cache=word)  # type: ignore[arg-type]
    assert sqlite._cache is None and redis_store._cache is None
    sqlite.close()
    redis_store.close()


@pytest.mark.parametrize("word", ["true", "yes", "on", "1", "TRUE", True, 1])
def test_a_word_that_means_yes_keeps_the_cache(word: object, tmp_path: Path, redis_url: str) -> None:
    """cache="true" (or yes, on, 1) keeps it."""
    sqlite = SQLiteStore(tmp_path / "s.db", cache=word)  # type: ignore[arg-type]
    redis_store = RedisStore.from_url(redis_url, cache=word)  # type: ignore[arg-type]
    assert sqlite._cache is not None and redis_store._cache is not None
    sqlite.close()
    redis_store.close()


@pytest.mark.parametrize("value", ["maybe", "", 2, None, "nope"])
def test_a_yes_no_option_refuses_anything_else_by_name(value: object, tmp_path: Path, redis_url: str) -> None:
    """Any other value is a ConfigurationError naming the option, the value and the accepted words."""
    builders: list[Callable[[], object]] = [
        lambda: SQLiteStore(tmp_path / "s.db", cache=value),  # type: ignore[arg-type]
        lambda: RedisStore.from_url(redis_url, cache=value),  # type: ignore[arg-type]
        lambda: RedisStore.from_url(redis_url, cluster=value),  # type: ignore[arg-type]
    ]
    for build in builders:
        with pytest.raises(ConfigurationError) as caught:
            build()
        message = str(caught.value)
        assert f"={value!r} is not a valid yes/no value" in message
        assert "true" in message and "off" in message


@pytest.mark.parametrize("word", ["false", "no", "off", "0"])
def test_cache_as_a_url_option(word: str, tmp_path: Path, redis_url: str) -> None:
    """?cache=false in a sqlite:// or redis:// URL turns the cache off, read by the same rule."""
    sqlite = store_from_url(f"sqlite:///{tmp_path / 's.db'}?cache={word}")
    redis_store = store_from_url(f"{redis_url}?cache={word}")
    assert isinstance(sqlite, SQLiteStore) and isinstance(redis_store, RedisStore)
    assert sqlite._cache is None and redis_store._cache is None
    sqlite.close()
    redis_store.close()
    with pytest.raises(ConfigurationError, match=r"cache='maybe' is not a valid yes/no value"):
        store_from_url(f"{redis_url}?cache=maybe")


def test_memory_url_takes_the_cache_option_and_names_unknown_ones() -> None:
    """store_from_url("memory://", cache=False) is a memory store (it has no cache to turn off);
    an option no store takes is a ConfigurationError naming it, never a raw TypeError."""
    from sessionmw.stores import MemoryStore

    assert isinstance(store_from_url("memory://", cache=False), MemoryStore)
    assert isinstance(store_from_url("memory://", cache="off", max_sessions=3), MemoryStore)
    for url in ("memory://", "sqlite:///s.db", "redis://127.0.0.1:6379/0"):
        with pytest.raises(ConfigurationError, match=r"takes no option 'colour'.*max_sessions"):
            store_from_url(url, colour="red")
    with pytest.raises(ConfigurationError, match=r"cache='maybe'"):
        store_from_url("memory://", cache="maybe")


@pytest.mark.parametrize("option", ["prefix=shop", "buckets=4", "cache=false", "max_sessions=9"])
def test_redis_from_url_refuses_sessionmw_options_in_the_url_when_built(option: str, redis_url: str) -> None:
    """RedisStore.from_url reads no sessionmw option from the URL: ?prefix= fails when the store
    is built, naming the option and where it goes, not at its first operation."""
    name = option.partition("=")[0]
    with pytest.raises(ConfigurationError) as caught:
        RedisStore.from_url(f"{redis_url}?{option}")
    assert f"{name}= in the URL" in str(caught.value)
    assert f"RedisStore.from_url({name}=...)" in str(caught.value) and "store_from_url" in str(caught.value)


def test_redis_url_option_redis_py_does_not_take_fails_when_built(redis_url: str) -> None:
    """A misspelt redis-py option (?socket_timout=) is a ConfigurationError when the store is
    built, through store_from_url and RedisStore.from_url."""
    for build in (store_from_url, RedisStore.from_url):
        with pytest.raises(ConfigurationError, match="socket_timout"):
            build(f"{redis_url}?socket_timout=1")
