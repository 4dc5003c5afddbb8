"""Putting a SQLite file in WAL mode when several processes open it at once.

``PRAGMA journal_mode = WAL`` on a file that another connection is converting (or writing in
rollback mode) answers "database is locked" at once: SQLite does not call its busy handler for
it, so the connection's ``timeout`` does not help. Four processes opening a fresh file together
saw it in about one run in five. :func:`use_wal` waits for it the way the busy handler would.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

__all__ = ["use_wal"]

#: The first wait between two tries (seconds); each wait doubles, up to :data:`_LONGEST_WAIT`.
_FIRST_WAIT = 0.001
_LONGEST_WAIT = 0.05


def use_wal(
    connection: sqlite3.Connection,
    timeout: float,
    *,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Put ``connection``'s database in WAL mode, trying again for up to ``timeout`` seconds
    while another connection holds the lock the change needs.

    :raises sqlite3.OperationalError: the lock was still held after ``timeout`` seconds, or any
        other error of the pragma.
    """
    deadline = clock() + timeout
    wait = _FIRST_WAIT
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or clock() + wait > deadline:
                raise
        sleep(wait)
        wait = min(wait * 2, _LONGEST_WAIT)
