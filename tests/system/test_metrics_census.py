"""The census behind a metrics scrape (sessions by state): on Redis it costs the same whatever the number
of sessions and equals a full scan; on SQLite it is one query on the state index."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.stores import POLICY, T0, shared_store_url

from sessionmw import SessionExistsError, SessionManager, SessionState
from sessionmw._session import SessionRecord
from sessionmw._states import Event
from sessionmw.stores import store_from_url
from sessionmw.stores._redis import RedisStore
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.testing import FakeClock

# -- the cost of a metrics scrape -------------------------------------------------------------------


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
