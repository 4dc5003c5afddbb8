"""Stored records read back: any bytes are a valid record or corrupt, and a deeply nested record is
corrupt on every store, without costing the client its session or the listing its other sessions."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.stores import POLICY, T0, shared_store_url

from sessionmw import CorruptRecordError, SessionManager
from sessionmw._session import SessionRecord
from sessionmw._states import Event, HealthStatus
from sessionmw.stores import SessionStore, store_from_url
from sessionmw.stores._redis import RedisStore, _written
from sessionmw.stores._sqlite import SQLiteStore
from sessionmw.stores.records import decode_record
from sessionmw.testing import FakeClock

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
