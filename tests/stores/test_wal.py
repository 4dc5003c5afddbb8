"""Switching a SQLite file to WAL while another process holds the lock the switch needs."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from sessionmw.stores._wal import use_wal


class Connection:
    """A connection whose WAL switch answers "database is locked" ``locked`` times first."""

    def __init__(self, locked: int, error: str = "database is locked") -> None:
        self.locked = locked
        self.error = error
        self.tries = 0

    def execute(self, sql: str) -> Any:
        assert sql == "PRAGMA journal_mode = WAL"
        self.tries += 1
        if self.tries <= self.locked:
            raise sqlite3.OperationalError(self.error)
        return None


class Clock:
    """A clock that the injected sleep moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_a_locked_switch_is_tried_again_with_growing_waits() -> None:
    connection, clock = Connection(locked=3), Clock()
    use_wal(connection, 5.0, sleep=clock.sleep, clock=lambda: clock.now)  # type: ignore[arg-type]
    assert connection.tries == 4
    assert clock.waits == [0.001, 0.002, 0.004]


def test_a_lock_held_past_the_timeout_raises() -> None:
    connection, clock = Connection(locked=10_000), Clock()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(connection, 1.0, sleep=clock.sleep, clock=lambda: clock.now)  # type: ignore[arg-type]
    assert clock.now <= 1.0 and sum(clock.waits) == clock.now
    assert connection.tries > 10  # it kept trying until the timeout, waits capped at 50 ms


def test_other_errors_are_not_tried_again() -> None:
    connection, clock = Connection(locked=1, error="disk I/O error"), Clock()
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        use_wal(connection, 5.0, sleep=clock.sleep, clock=lambda: clock.now)  # type: ignore[arg-type]
    assert connection.tries == 1 and clock.waits == []


def test_a_real_file_ends_in_wal_mode(tmp_path: Any) -> None:
    connection = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    use_wal(connection, 1.0)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()
