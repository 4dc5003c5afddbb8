"""The SQLite store: its schema version and WAL mode, locks past the busy timeout, the sweep's index,
sessions that outlive the store object."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support.stores import POLICY, T0, new_record

from sessionmw import StoreUnavailableError
from sessionmw._states import Event
from sessionmw.stores._sqlite import DUE_QUERY, SQLiteStore


def test_sqlite_schema_is_versioned_and_uses_wal(tmp_path: Path) -> None:
    """The file carries its schema version, runs in WAL mode, and a foreign version is refused."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    new_record(store, "s1")
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
    new_record(store, "s1")
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
    new_record(store, "s1")
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
    record = new_record(store, "s1")
    store.close()
    assert SQLiteStore(path).get("s1") == record
