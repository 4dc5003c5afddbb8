"""The embedded store: one SQLite file, shared safely by every process on one host.

Each operation is one ``BEGIN IMMEDIATE`` transaction: read the row, apply
:func:`sessionmw.stores._base.step` (the transition table) in Python, write the row. SQLite runs
in WAL mode with a busy timeout, so concurrent writers wait for each other instead of failing;
``database is locked`` beyond the timeout becomes :class:`~sessionmw.StoreUnavailableError`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sessionmw._errors import (
    ConfigurationError,
    CorruptRecordError,
    SessionExistsError,
    SessionLimitError,
    StoreUnavailableError,
)
from sessionmw._forks import reset_after_fork
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event, SessionState
from sessionmw._transitions import Change, writes_nothing
from sessionmw.stores._base import Outcome, policy_from_json, policy_to_json, step
from sessionmw.stores._wal import use_wal
from sessionmw.stores.cache import RecordCache
from sessionmw.stores.options import flag
from sessionmw.stores.records import decode_record

if TYPE_CHECKING:
    from sessionmw.stores.breakers import SQLiteBreakers
    from sessionmw.stores.counters import SQLiteCounters

__all__ = ["CENSUS_QUERY", "DUE_QUERY", "SCHEMA_VERSION", "SQLiteStore"]

#: The version of the tables this module creates (kept in ``sessionmw_meta``).
SCHEMA_VERSION = 1

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessionmw_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessionmw_sessions (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    due REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessionmw_sessions_due ON sessionmw_sessions (due);
CREATE INDEX IF NOT EXISTS sessionmw_sessions_state ON sessionmw_sessions (state);
"""
_SELECT = "SELECT data FROM sessionmw_sessions WHERE id = ?"
#: The sweep's query: answered by the index on ``due``, so it reads only the due rows.
DUE_QUERY = "SELECT id, state, data FROM sessionmw_sessions WHERE due <= ? ORDER BY due LIMIT ?"
_DUE = DUE_QUERY
#: The count of every state in one query, read from the index on ``state`` (never the records).
CENSUS_QUERY = "SELECT state, COUNT(*) FROM sessionmw_sessions GROUP BY state"
_UPDATE = "UPDATE sessionmw_sessions SET state = ?, due = ?, data = ? WHERE id = ?"
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_TERMINAL = frozenset(state.value for state in SessionState if state.is_terminal)
_STATES = {state.value: state for state in SessionState}
_LIVE_DELTA = "UPDATE sessionmw_meta SET value = value + ? WHERE key = 'live'"
_DATA_VERSION = "PRAGMA data_version"
_INCARNATION_BITS = 48
_ADD_INCARNATION = "INSERT OR IGNORE INTO sessionmw_meta (key, value) VALUES ('incarnation', ?)"
_INCARNATION = "SELECT value FROM sessionmw_meta WHERE key = 'incarnation'"
_ACTIVITY = Event.ACTIVITY
_QUIET = (None, _ACTIVITY)  # the events a cached copy may answer
_SAVE_POLICY = "INSERT OR REPLACE INTO sessionmw_meta (key, value) VALUES ('policy', ?)"
_SAVED_POLICY = "SELECT value FROM sessionmw_meta WHERE key = 'policy'"


#: Returned by ``_read_quietly`` when the event needs the write transaction.
_WRITE = object()


def _due(record: SessionRecord, policy: Policy) -> float:
    """When the sweep should next look at the record: its expiry, or the end of its retention."""
    if record.state.is_terminal:
        return record.state_changed_at + policy.retention
    return record.expires_at(policy)


def _encode(record: SessionRecord) -> str:
    return _ENCODER.encode(record.to_dict())


def _decode(data: object, session_id: str) -> SessionRecord:
    """The record in a row; a row that is not a record of ``session_id`` is corrupt."""
    return decode_record(data, session_id, "SQLite")


class SQLiteStore:
    """Keeps sessions in a SQLite file; safe for several threads and processes on one host.

    :param path: the database file (created, with its tables, on first use).
    :param max_sessions: the most live sessions the store accepts; None for no limit.
    :param busy_timeout: seconds a write waits for another process's transaction before the
        store reports itself unavailable.
    :param synchronous: SQLite's ``synchronous`` pragma: ``NORMAL`` (default; in WAL mode a
        crash of the process loses nothing, a power cut may lose the last transactions) or
        ``FULL``.
    :param cache: keep a local read cache of records (see :mod:`sessionmw.stores.cache`; a yes/no
        option, see :func:`~sessionmw.stores.options.flag`): a look, or activity within the
        renewal window, is answered from a copy read less than the window ago while ``PRAGMA
        data_version`` shows no commit by another connection since it was read (any such commit
        empties the cache). False reads the file on every call.

    A look, or activity within the renewal window (:func:`sessionmw._transitions.writes_nothing`),
    takes no write lock: it reads the row (or the cached copy) and writes nothing.

    An async caller asks :meth:`answer_cached` first, on the event loop: a copy the cache may
    answer from is returned without a worker thread; anything else goes to a thread as before.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_sessions: int | None = None,
        busy_timeout: float = 5.0,
        synchronous: str = "NORMAL",
        cache: bool | str = True,
    ) -> None:
        cache = flag("cache", cache)
        if busy_timeout <= 0:
            raise ConfigurationError(f"busy_timeout={busy_timeout!r} is not valid: must be positive")
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigurationError(f"synchronous={synchronous!r} is not valid: use NORMAL or FULL")
        self.max_sessions = max_sessions
        #: The database file.
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._synchronous = synchronous.upper()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # In a forked child: the parent's connection, kept (never used, never closed here).
        self._inherited: sqlite3.Connection | None = None
        # The read cache, and the connection's data_version it is known current at (None: the
        # connection is new, the cache empty). data_version counts other connections' commits.
        self._cache: RecordCache | None = RecordCache() if cache else None
        self._version: int | None = None
        self._pragma: sqlite3.Cursor | None = None
        # The probe: a second connection (never waiting: busy timeout 0) whose data_version
        # changes with any commit of any other connection, this store's own included. ``_mark``
        # is its value when the cache was last known current (None: not known); equal now, no
        # commit since, so a copy the cache holds is still current. Guarded by ``_probe_lock``
        # alone: the loop's :meth:`answer_cached` never takes ``_lock``. The mark is taken only
        # when ``answer_cached`` asked for it (``_remark``): a store used sync alone never probes.
        self._probe_lock = threading.Lock()
        self._probe: sqlite3.Cursor | None = None
        self._mark: int | None = None
        self._remark = False
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread may have held the parent's); the
        inherited connection is left alone and a new one opened on next use."""
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._inherited, self._conn = self._conn, None
        self._probe = None  # the parent's, left alone as its connection is
        self._forget()

    def _forget(self) -> None:
        """Empty the read cache (a new connection's data_version starts a new count)."""
        self._mark = None
        if self._cache is not None:
            self._cache.clear()
        self._version = None
        self._pragma = None

    # -- connection --------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The open connection, (re)opened after a fork or a failure; caller holds the lock."""
        conn = self._conn
        if conn is not None:
            return conn
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            use_wal(conn, self.busy_timeout)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                row = conn.execute("SELECT value FROM sessionmw_meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO sessionmw_meta (key, value) VALUES ('schema_version', ?), ('live', 0)",
                        (SCHEMA_VERSION,),
                    )
                elif row[0] != SCHEMA_VERSION:
                    raise StoreUnavailableError(
                        f"SQLite store {str(self.path)!r} has schema version {row[0]}; "
                        f"this sessionmw reads version {SCHEMA_VERSION}"
                    )
                # Made with the tables (a file from an older sessionmw gets one on first open).
                conn.execute(_ADD_INCARNATION, (secrets.randbits(_INCARNATION_BITS),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        self._forget()
        self._conn = conn
        return conn

    def _run(self, work: Callable[[sqlite3.Connection], _T], *, write: bool = True) -> _T:
        """Run ``work`` in one transaction (``BEGIN IMMEDIATE`` for writes) under the lock."""
        with self._lock:
            try:
                conn = self._connection()
                if not write:
                    return work(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailableError:
        """Drop the connection (the next call opens a new one) and describe the failure."""
        self._drop_connection()
        return StoreUnavailableError(
            f"SQLite store {str(self.path)!r} is unavailable: {type(exc).__name__}: {exc}"
        )

    def _drop_connection(self) -> None:
        self._forget()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- the protocol --------------------------------------------------------------------------

    def create(self, record: SessionRecord, now: float, policy: Policy) -> None:
        record = record.copy()

        def work(conn: sqlite3.Connection) -> None:
            self._drop_cached(record.session_id)
            row = conn.execute(
                "SELECT state, data FROM sessionmw_sessions WHERE id = ?", (record.session_id,)
            ).fetchone()
            if row is not None:
                try:
                    old: SessionRecord | None = _decode(row[1], record.session_id)
                except CorruptRecordError:
                    old = None  # an unreadable record is replaced
                    if row[0] not in _TERMINAL:
                        conn.execute(_LIVE_DELTA, (-1,))
                if old is not None:
                    was_live = not old.state.is_terminal
                    step(old, None, now, policy)  # an old session may have expired by now
                    if not old.state.is_terminal:
                        raise SessionExistsError(
                            "a live session with this id exists", session_id=record.session_id
                        )
                    if was_live:
                        conn.execute(_LIVE_DELTA, (-1,))
            if self.max_sessions is not None and self._live(conn) >= self.max_sessions:
                raise SessionLimitError("the session store is full", session_id=record.session_id)
            conn.execute(
                "INSERT OR REPLACE INTO sessionmw_sessions (id, state, due, data) VALUES (?, ?, ?, ?)",
                (record.session_id, record.state.value, _due(record, policy), _encode(record)),
            )
            conn.execute(_LIVE_DELTA, (1,))

        self._run(work)

    def update(
        self,
        session_id: str,
        event: Event | None,
        now: float,
        policy: Policy,
        error: str | None = None,
    ) -> Outcome | None:
        # The hot path, written out: a look or activity within the renewal window reads (the
        # cache, else the row) and writes nothing; anything else is one BEGIN IMMEDIATE
        # transaction: read, step, write.
        with self._lock:
            try:
                conn = self._conn
                if conn is None:
                    conn = self._connection()
                if event is None or event is _ACTIVITY:
                    quiet = self._read_quietly(conn, session_id, event, now, policy)
                    if quiet is not _WRITE:
                        return quiet  # type: ignore[return-value]
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row = conn.execute(_SELECT, (session_id,)).fetchone()
                    if row is None:
                        outcome = None
                    else:
                        record = _decode(row[0], session_id)
                        was_live = record.state not in _TERMINAL
                        changes, refused = step(record, event, now, policy, error)
                        conn.execute(
                            _UPDATE, (record.state.value, _due(record, policy), _encode(record), session_id)
                        )
                        if was_live and record.state in _TERMINAL:
                            conn.execute(_LIVE_DELTA, (-1,))
                        outcome = Outcome(record, changes, refused)
                    # read inside the transaction: no other connection can commit until ours
                    version = self._data_version(conn) if self._cache is not None else 0
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                if self._cache is not None:
                    self._note(version, session_id, None if outcome is None else outcome.record, now)
                return outcome
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc

    def _read_quietly(
        self, conn: sqlite3.Connection, session_id: str, event: Event | None, now: float, policy: Policy
    ) -> Outcome | object | None:
        """The outcome of a look or an activity that writes nothing, from the cache or the row
        (None: no such session); :data:`_WRITE` when the event needs the write transaction."""
        cache = self._cache
        if cache is not None:
            remark = self._remark
            mark = None
            if remark:  # before the check: a commit in between moves the probe past the mark
                self._remark = False
                mark = self._probe_version()
            version = self._data_version(conn)
            if version != self._version:  # another connection committed: any copy may be old
                cache.clear()
                self._version = version
            if remark:
                self._mark = mark  # the cache is current as of the probe's ``mark``
            answer = cache.answer(session_id, event, now, policy)
            if answer is not None:
                return answer
        row = conn.execute(_SELECT, (session_id,)).fetchone()  # the last commit, no lock held
        if row is None:
            return None
        record = _decode(row[0], session_id)
        if not writes_nothing(record, event, now, policy):
            return _WRITE
        if cache is not None:
            cache.put(record, now)  # a commit between the pragma and the read shows at the next pragma
        return Outcome(record.copy(), ())

    def answer_cached(
        self, session_id: str, event: Event | None, now: float, policy: Policy
    ) -> Outcome | None:
        """The outcome :meth:`update` would return from the read cache, or None (a miss, a change
        to write, no cache, or not known current): made without waiting, for the event loop. It
        takes only the probe's lock (never the store's, which a write holds while it waits for
        the file) and reads ``PRAGMA data_version`` on the probe connection, which never waits:
        unchanged since the cache was last known current, no connection has committed since, so
        the copy is what the row holds."""
        cache = self._cache
        mark = self._mark
        if cache is None or event not in _QUIET:
            return None
        if mark is None:
            self._remark = True  # the worker thread's next read takes the mark
            return None
        if not self._probe_lock.acquire(blocking=False):
            return None
        try:
            probe = self._probe
            if probe is None or int(probe.execute(_DATA_VERSION).fetchone()[0]) != mark:
                self._remark = True
                return None
        except sqlite3.Error:
            return None  # the thread's call will say what is wrong
        finally:
            self._probe_lock.release()
        return cache.answer(session_id, event, now, policy)

    def _probe_version(self) -> int | None:
        """The probe's ``PRAGMA data_version`` (opening the probe: in a worker thread, under the
        store's lock), or None if it cannot be read now."""
        with self._probe_lock:
            try:
                probe = self._probe
                if probe is None:
                    probe = self._probe = sqlite3.connect(
                        self.path, timeout=0, isolation_level=None, check_same_thread=False
                    ).cursor()
                return int(probe.execute(_DATA_VERSION).fetchone()[0])
            except sqlite3.Error:
                self._close_probe()
                return None

    def _close_probe(self) -> None:
        """Close the probe (caller holds the probe's lock)."""
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(sqlite3.Error):
                probe.connection.close()

    def _data_version(self, conn: sqlite3.Connection) -> int:
        """The connection's ``PRAGMA data_version``, through a cursor kept for it (about half the
        cost of ``conn.execute``)."""
        cursor = self._pragma
        if cursor is None or cursor.connection is not conn:
            cursor = self._pragma = conn.cursor()
        return int(cursor.execute(_DATA_VERSION).fetchone()[0])

    def _note(self, version: int, session_id: str, record: SessionRecord | None, now: float) -> None:
        """After this connection's write: keep ``record`` (read at ``version``, at ``now``) in the
        cache."""
        cache = self._cache
        assert cache is not None
        if version != self._version:
            cache.clear()
            self._version = version
        if record is None:
            cache.drop(session_id)
        else:
            cache.put(record, now)

    def get(self, session_id: str) -> SessionRecord | None:
        def work(conn: sqlite3.Connection) -> SessionRecord | None:
            row = conn.execute("SELECT data FROM sessionmw_sessions WHERE id = ?", (session_id,)).fetchone()
            return None if row is None else _decode(row[0], session_id)

        return self._run(work, write=False)

    def delete(self, session_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            self._drop_cached(session_id)
            row = conn.execute(
                "DELETE FROM sessionmw_sessions WHERE id = ? RETURNING state", (session_id,)
            ).fetchone()
            if row is None:
                return False
            if row[0] not in _TERMINAL:
                conn.execute(_LIVE_DELTA, (-1,))
            return True

        return self._run(work)

    def sweep(self, now: float, policy: Policy, limit: int = 1000) -> list[Change]:
        def work(conn: sqlite3.Connection) -> list[Change]:
            if self._cache is not None:
                self._cache.clear()  # sweeps are rare; what they change is not worth tracking
            expired: list[Change] = []
            while len(expired) < limit:
                rows = conn.execute(
                    _DUE,
                    (now, limit),
                ).fetchall()
                for session_id, state, data in rows:
                    if len(expired) >= limit:
                        break
                    try:
                        record = _decode(data, session_id)
                    except CorruptRecordError:
                        # An unreadable row: it can never become readable, so it goes.
                        conn.execute("DELETE FROM sessionmw_sessions WHERE id = ?", (session_id,))
                        if state not in _TERMINAL:
                            conn.execute(_LIVE_DELTA, (-1,))
                        continue
                    if record.state.is_terminal:
                        if record.state_changed_at + policy.retention <= now:
                            conn.execute("DELETE FROM sessionmw_sessions WHERE id = ?", (session_id,))
                        else:
                            conn.execute(
                                "UPDATE sessionmw_sessions SET due = ? WHERE id = ?",
                                (_due(record, policy), session_id),
                            )
                        continue
                    changes, _ = step(record, None, now, policy)
                    if record.state.is_terminal:
                        conn.execute(_LIVE_DELTA, (-1,))
                        expired.extend(changes)
                        due = now + policy.retention
                    else:  # saw activity since its due time was written
                        due = _due(record, policy)
                    conn.execute(
                        "UPDATE sessionmw_sessions SET state = ?, due = ?, data = ? WHERE id = ?",
                        (record.state.value, due, _encode(record), session_id),
                    )
                if len(rows) < limit:
                    break
            return expired

        return self._run(work)

    def count(self, state: SessionState | None = None) -> int:
        def work(conn: sqlite3.Connection) -> int:
            if state is None:
                return self._live(conn)
            row = conn.execute("SELECT COUNT(*) FROM sessionmw_sessions WHERE state = ?", (state.value,))
            return int(row.fetchone()[0])

        return self._run(work, write=False)

    def count_by_state(self) -> dict[SessionState, int]:
        """How many records are in each state: one query over the index on ``state``."""

        def work(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            return conn.execute(CENSUS_QUERY).fetchall()

        totals = dict.fromkeys(SessionState, 0)
        for state, count in self._run(work, write=False):
            if state in _STATES:
                totals[_STATES[state]] += int(count)
        return totals

    def records(self, state: SessionState | None = None) -> Iterator[SessionRecord]:
        """Copies of the readable records (unreadable ones are skipped)."""

        def work(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            if state is None:
                return conn.execute("SELECT id, data FROM sessionmw_sessions").fetchall()
            return conn.execute(
                "SELECT id, data FROM sessionmw_sessions WHERE state = ?", (state.value,)
            ).fetchall()

        snapshot: list[SessionRecord] = []
        for session_id, data in self._run(work, write=False):
            try:
                snapshot.append(_decode(data, session_id))
            except CorruptRecordError:
                continue
        return iter(snapshot)

    def close(self) -> None:
        """Close this process's connection (it is reopened if the store is used again)."""
        with self._lock:
            self._drop_connection()
            with self._probe_lock:
                self._close_probe()

    def counters(self) -> SQLiteCounters:
        """The analytics counter backend in the same file (see :mod:`sessionmw.analytics`)."""
        from sessionmw.stores.counters import SQLiteCounters

        return SQLiteCounters(str(self.path), timeout=self.busy_timeout)

    def _drop_cached(self, session_id: str) -> None:
        """This connection is changing a session: forget its copy (under the lock)."""
        if self._cache is not None:
            self._cache.drop(session_id)

    @staticmethod
    def _live(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM sessionmw_meta WHERE key = 'live'").fetchone()
        return 0 if row is None else int(row[0])

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, max_sessions={self.max_sessions!r})"

    @property
    def namespace(self) -> str:
        """The database file's real path."""
        return f"sqlite:{os.path.realpath(self.path)}"

    def incarnation(self) -> str:
        """The file's token, made with its tables: a replaced file has another (one read)."""

        def work(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(_INCARNATION).fetchone()
            return None if row is None else int(row[0])

        value = self._run(work, write=False)
        if value is None:
            raise StoreUnavailableError(f"SQLite store {str(self.path)!r} has no incarnation")
        return base64.urlsafe_b64encode(value.to_bytes(_INCARNATION_BITS // 8, "big")).decode()

    def save_policy(self, policy: Policy) -> None:
        """Keep ``policy`` in the file (``sessionmw_meta``), for the operator's commands."""
        text = policy_to_json(policy)

        def work(conn: sqlite3.Connection) -> None:
            # JSON text in the INTEGER column: SQLite's type affinity keeps text that is no number.
            conn.execute(_SAVE_POLICY, (text,))

        self._run(work)

    def saved_policy(self) -> Policy | None:
        """The policy last saved in the file, or None (one read)."""

        def work(conn: sqlite3.Connection) -> object:
            row = conn.execute(_SAVED_POLICY).fetchone()
            return None if row is None else row[0]

        return policy_from_json(self._run(work, write=False))

    def breakers(self) -> SQLiteBreakers:
        """The circuit breaker backend in the same file (see :class:`sessionmw.Breaker`)."""
        from sessionmw.stores.breakers import SQLiteBreakers

        return SQLiteBreakers(str(self.path), timeout=self.busy_timeout)
