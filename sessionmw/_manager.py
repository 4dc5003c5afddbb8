"""The session manager: the seed's API over a store, the transition table and the signals.

The manager never decides a transition itself: it asks the store to apply an event atomically
(:meth:`SessionStore.update`) and then sends the signals for the changes the store reports.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from sessionmw import _figures as figures
from sessionmw import signals
from sessionmw._breaker_table import is_dependency_failure
from sessionmw._errors import CorruptRecordError, StoreError, StoreUnavailableError
from sessionmw._forks import ForkSafeLock
from sessionmw._session import SessionRecord
from sessionmw._settings import Settings
from sessionmw._states import WORKING_STATES, Event, SessionState
from sessionmw._transitions import Change
from sessionmw.health import CheckResult, HealthCheck, HealthReport, run_check
from sessionmw.rendering import recovery_text
from sessionmw.stores import SessionStore, store_from_url
from sessionmw.stores._base import Outcome, PolicyStore
from sessionmw.stores.aio import AsyncStore, off_loop

__all__ = [
    "SESSION_ID_BYTES",
    "STORE_UNAVAILABLE",
    "SessionManager",
    "get_session_manager",
    "new_session_id",
    "set_session_manager",
]

_log = logging.getLogger("sessionmw")

#: Random bytes in a generated session id (160 bits, from :mod:`secrets`).
SESSION_ID_BYTES = 20
_VALID_ID = re.compile(r"[A-Za-z0-9._:~-]{1,128}")

_SIGNAL_OF_STATE = {
    SessionState.EXPIRED: signals.session_expired,
    SessionState.DISCONNECTED: signals.session_disconnected,
    SessionState.ENDED: signals.session_ended,
}
_RECOVERING_FROM = frozenset({SessionState.ERROR, SessionState.DISCONNECTED})
# Read on every request: module constants are cheaper than attribute lookups.
_ACTIVITY = Event.ACTIVITY
_ACTIVITY_SIGNAL = signals.activity


def new_session_id() -> str:
    """A fresh, unguessable session id: 160 random bits from :mod:`secrets`, URL-safe."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def describe_error(error: BaseException | str) -> str:
    """A short technical description of an error for the store (never shown outside debug)."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:500]


class SessionManager:
    """Creates sessions, records what happens to them, and reports their health.

    :param settings: validated settings; by default read from the environment.
    :param store: a :class:`~sessionmw.stores.SessionStore` or a store URL; by default the
        settings' ``store_url`` (``memory://`` unless configured).
    :param clock: returns the current time in seconds (injectable, e.g.
        :class:`sessionmw.testing.FakeClock`, so tests never sleep).
    :param overrides: setting values that win over ``settings`` and the environment.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: SessionStore | str | None = None,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = Settings.from_env(**overrides)
        elif overrides:
            settings = settings.replace(**overrides)
        #: The settings in force (read once, at construction).
        self.settings = settings
        #: The limits sessions are judged by.
        self.policy = settings.policy
        if store is None:
            store = settings.store_url
        if isinstance(store, str):
            store = store_from_url(store, max_sessions=settings.max_sessions)
        self.store: SessionStore = store
        self.clock = clock
        self._checks: dict[str, HealthCheck] = {}
        self._policy_saved = False
        self._async_store: AsyncStore | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def create_session(self, session_id: str | None = None) -> SessionRecord:
        """Start a new active session and return it.

        :param session_id: an id chosen by the application (letters, digits and ``._:~-``, at most
            128 characters); by default a fresh random one. A terminal session with the same id is
            replaced; a live one raises :class:`~sessionmw.SessionExistsError`.
        :raises SessionLimitError: when the store is at ``max_sessions``.
        """
        record, now = self._new_record(session_id)
        self._guard("create_session", _RAISE, self.store.create, record, now, self.policy)
        if not self._policy_saved:
            self._save_policy()
        return self._created(record)

    def _new_record(self, session_id: str | None) -> tuple[SessionRecord, float]:
        if session_id is None:
            session_id = new_session_id()
        else:
            check_session_id(session_id)
        now = self.clock()
        return SessionRecord.new(session_id, now), now

    def _created(self, record: SessionRecord) -> SessionRecord:
        session_id = record.session_id
        _log.info("session created", extra={"session": short_id(session_id)})
        signals.send(signals.session_created, self, session_id=session_id, session=record.copy())
        return record

    def get_session(self, session_id: str) -> SessionRecord | None:
        """The session as it is now (time-derived states applied), or None if unknown."""
        outcome = self._update(session_id, None, None, "get_session")
        return None if outcome is None else outcome.record

    def update_session_activity(self, session_id: str) -> bool:
        """Record activity: resets the inactivity clock, wakes an idle session.

        Returns False if the session does not exist.

        :raises IllegalTransitionError: if the session is expired or ended.
        """
        return self.touch(session_id) is not None

    def touch(self, session_id: str) -> SessionRecord | None:
        """Record activity and return the session as it is now, or None if it does not exist.

        The same as :meth:`update_session_activity`, for callers (adapters, ``@guarded``) that
        need the state too: one store operation instead of two.

        :raises IllegalTransitionError: if the session is expired or ended (time changes that
            the call observed are kept and signalled first).
        """
        return self._touched(session_id, self._update(session_id, _ACTIVITY, None, "update_session_activity"))

    def _touched(self, session_id: str, outcome: Outcome | None) -> SessionRecord | None:
        if outcome is None:
            return None
        signals.send(signals.activity, self, session_id=session_id)
        return outcome.record

    def touch_or_report(self, session_id: str) -> tuple[SessionRecord | None, HealthReport | None]:
        """Record activity if the session may work, else say why not: one store operation either way.

        Returns ``(record, refusal)``: the session as it is now (None if unknown) and, when it may
        not work (unknown, expired, ended or disconnected: see
        :data:`~sessionmw._states.WORKING_STATES`), the :class:`~sessionmw.HealthReport` that
        explains the refusal (:meth:`UserFacingError.from_health
        <sessionmw.UserFacingError.from_health>` turns it into the error to show); else None.
        Unlike :meth:`touch` it never raises for an expired or ended session; store failures are
        handled as in :meth:`touch`.
        """
        now = self.clock()
        outcome = self._update(
            session_id, _ACTIVITY, None, "update_session_activity", raise_refused=False, now=now
        )
        if self._admits(session_id, outcome):
            return outcome.record, None  # type: ignore[union-attr]  # (admitted: an outcome)
        record = None if outcome is None else outcome.record
        return record, self._report(session_id, record, now)

    def _admits(self, session_id: str, outcome: Outcome | None) -> bool:
        """True if :meth:`touch_or_report`'s update ``outcome`` lets the session work (its
        activity then signalled); else the caller reports why not."""
        if outcome is None or outcome.refused is not None:
            return False
        if _ACTIVITY_SIGNAL.receivers:  # on every request: no call when nobody listens
            signals.send(_ACTIVITY_SIGNAL, self, session_id=session_id)
        return outcome.record.state in WORKING_STATES

    def record_error(self, session_id: str, error: BaseException | str) -> SessionRecord | None:
        """Record an error (an exception or a message); at the threshold the session disconnects.

        Returns the session as the error left it (one store operation: no need to read it again),
        or None (false, like the False it used to return) if the session does not exist, or if
        ``error`` is a dependency's (a failure a :class:`~sessionmw.Breaker` counted, or its
        refusal): those never count against a session and cost no store operation.
        """
        if is_dependency_failure(error):
            return None
        outcome = self._update(session_id, Event.ERROR, describe_error(error), "record_error")
        return self._error_recorded(session_id, error, outcome)

    def _error_recorded(
        self, session_id: str, error: BaseException | str, outcome: Outcome | None
    ) -> SessionRecord | None:
        if outcome is None:
            return None
        record = outcome.record
        signals.send(signals.error_recorded, self, session_id=session_id, session=record, error=error)
        return record

    def record_success(self, session_id: str) -> bool:
        """Record a successful operation: clears the error count, an error session is active again."""
        return self._update(session_id, Event.SUCCESS, None, "record_success") is not None

    def reconnect(self, session_id: str) -> SessionRecord | None:
        """Take a disconnected (or erroring) session back to active with a clean error count.

        Returns the session as it is now (one store operation: no need to read it again), or None
        (false) if it does not exist.

        :raises IllegalTransitionError: if the session is expired or ended.
        """
        outcome = self._update(session_id, Event.RECONNECT, None, "reconnect")
        return None if outcome is None else outcome.record

    def end_session(self, session_id: str) -> bool:
        """End a session on purpose (logout). Returns False if it does not exist."""
        return self._update(session_id, Event.END, None, "end_session") is not None

    def delete_session(self, session_id: str) -> bool:
        """Remove a session's record entirely (no signal). Returns False if it did not exist."""
        return bool(self._guard("delete_session", False, self.store.delete, session_id))

    def sweep(self, limit: int = 1000) -> list[Change]:
        """Expire up to ``limit`` due sessions (sending their signals) and drop old records."""
        changes: list[Change] = self._guard("sweep", [], self.store.sweep, self.clock(), self.policy, limit)
        for change in changes:
            self._announce(change, None)
        return changes

    def session_count(self, state: SessionState | None = None) -> int:
        """How many sessions are live (or, given ``state``, are in that state)."""
        return int(self._guard("session_count", 0, self.store.count, state))

    def stats(self, window: float = 3600.0) -> figures.Stats:
        """Counters and rates of the last ``window`` seconds, from every process on the store.

        Counting happens where :class:`sessionmw.analytics.Analytics` is connected.
        """
        return figures.stats(figures.counters_for(self.store), self.clock(), window)

    def close(self) -> None:
        """Release the store's connections and files."""
        self.store.close()

    # -- health -------------------------------------------------------------------------------

    def check_health(self, session_id: str) -> HealthReport:
        """The health of a session, with a friendly message and recovery steps.

        Never raises for an unknown id: the report's status is then ``not_found``. Checking health
        does not count as activity.
        """
        now = self.clock()
        outcome = self._update(session_id, None, None, "check_health", raise_refused=False, now=now)
        return self._report(session_id, None if outcome is None else outcome.record, now)

    def health_of(self, session_id: str, record: SessionRecord | None) -> HealthReport:
        """The health of a session the caller already holds (what :meth:`reconnect`,
        :meth:`record_error` or :meth:`touch` returned; None: not found), as :meth:`check_health`
        reports it, custom checks included, without reading the store again."""
        return self._report(session_id, record, self.clock())

    def _report(self, session_id: str, record: SessionRecord | None, now: float) -> HealthReport:
        """The health report of ``record`` as read at ``now``, with the custom checks run."""
        checks: list[CheckResult] | None = None
        if record is not None and self._checks:
            checks = [
                run_check(name, check, session_id, debug=self.settings.debug)
                for name, check in list(self._checks.items())
            ]
        return HealthReport.build(
            session_id, record, now, self.policy, checks, debug=self.settings.debug, store=self.store
        )

    def get_recovery_instructions(self, health: HealthReport) -> str:
        """The report's guidance as text: what happened, numbered steps, context."""
        return recovery_text(health)

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """Run ``check(session_id)`` in every :meth:`check_health`; a failing one makes it unhealthy."""
        if not name:
            raise ValueError("a health check needs a name")
        self._checks[name] = check

    def remove_health_check(self, name: str) -> None:
        """Stop running the health check ``name``; unknown names are ignored."""
        self._checks.pop(name, None)

    # -- the same operations for async callers ----------------------------------------------------
    # Each is its sync namesake with the store call awaited through :attr:`async_store` (inline
    # for the memory store, redis.asyncio for Redis under asyncio, a worker thread for SQLite and
    # anything else that may wait): the logic around the call is the sync method's own helpers.

    @property
    def async_store(self) -> AsyncStore:
        """How this manager's store is called from async code (see :mod:`sessionmw.stores.aio`)."""
        view = self._async_store
        if view is None or view.store is not self.store:
            view = self._async_store = AsyncStore(self.store)
        return view

    async def acreate_session(self, session_id: str | None = None) -> SessionRecord:
        """:meth:`create_session`, without blocking the event loop."""
        record, now = self._new_record(session_id)
        await self._aguard("create_session", _RAISE, self.async_store.create(record, now, self.policy))
        if not self._policy_saved:
            await off_loop(self._save_policy)
        return self._created(record)

    async def aget_session(self, session_id: str) -> SessionRecord | None:
        """:meth:`get_session`, without blocking the event loop."""
        outcome = await self._aupdate(session_id, None, None, "get_session")
        return None if outcome is None else outcome.record

    async def atouch(self, session_id: str) -> SessionRecord | None:
        """:meth:`touch`, without blocking the event loop."""
        outcome = await self._aupdate(session_id, _ACTIVITY, None, "update_session_activity")
        return self._touched(session_id, outcome)

    def touch_now(self, session_id: str) -> SessionRecord | None:
        """:meth:`atouch_or_report` for the common request, answered at once: the session's record
        (its activity signalled) when the store can tell at once that the session may work and
        its activity writes nothing (a known session within its renewal window: the memory
        store's records, a read cache's copy); else None, with nothing done and nothing
        signalled: then ask :meth:`atouch_or_report`. Never waits: an async adapter calls it on
        the loop, before any coroutine of its own."""
        view = self._async_store
        if view is None or view.store is not self.store:
            view = self.async_store  # (made, or made anew for a replaced store)
        answer = view.answer_cached
        if answer is None:
            return None
        try:
            outcome = answer(session_id, _ACTIVITY, self.clock(), self.policy)
        except (CorruptRecordError, StoreUnavailableError):  # atouch_or_report asks again and answers it
            return None
        if outcome is None:
            return None
        record = outcome.record
        if record.state not in WORKING_STATES or record.reason == STORE_UNAVAILABLE:
            return None  # (a cached answer writes nothing, so neither is expected: left to the full path)
        if _ACTIVITY_SIGNAL.receivers:
            signals.send(_ACTIVITY_SIGNAL, self, session_id=session_id)
        return record

    async def atouch_or_report(self, session_id: str) -> tuple[SessionRecord | None, HealthReport | None]:
        """:meth:`touch_or_report`, without blocking the event loop."""
        now = self.clock()
        view = self.async_store
        # Every request's admission: answered at once where the store can (inline, or from its
        # read cache, as in _aupdate), with no coroutine layer; else awaited.
        outcome: Outcome | None = None
        try:
            if view.inline:
                outcome = self.store.update(session_id, _ACTIVITY, now, self.policy)
            elif view.answer_cached is not None:
                outcome = view.answer_cached(session_id, _ACTIVITY, now, self.policy)
        except (CorruptRecordError, StoreUnavailableError) as exc:
            outcome = self._update_failed(session_id, "update_session_activity", exc, now)
        else:
            if outcome is None and not view.inline:
                outcome = await self._aupdate(
                    session_id, _ACTIVITY, None, "update_session_activity", raise_refused=False, now=now
                )
            elif outcome is not None and (outcome.changes or outcome.refused is not None):
                self._updated(outcome, False)
        if self._admits(session_id, outcome):
            return outcome.record, None  # type: ignore[union-attr]  # (admitted: an outcome)
        record = None if outcome is None else outcome.record
        return record, await view.call(self._report, session_id, record, now)

    async def arecord_error(self, session_id: str, error: BaseException | str) -> SessionRecord | None:
        """:meth:`record_error`, without blocking the event loop."""
        if is_dependency_failure(error):
            return None
        outcome = await self._aupdate(session_id, Event.ERROR, describe_error(error), "record_error")
        return self._error_recorded(session_id, error, outcome)

    async def arecord_success(self, session_id: str) -> bool:
        """:meth:`record_success`, without blocking the event loop."""
        return await self._aupdate(session_id, Event.SUCCESS, None, "record_success") is not None

    async def areconnect(self, session_id: str) -> SessionRecord | None:
        """:meth:`reconnect`, without blocking the event loop."""
        outcome = await self._aupdate(session_id, Event.RECONNECT, None, "reconnect")
        return None if outcome is None else outcome.record

    async def aend_session(self, session_id: str) -> bool:
        """:meth:`end_session`, without blocking the event loop."""
        return await self._aupdate(session_id, Event.END, None, "end_session") is not None

    async def adelete_session(self, session_id: str) -> bool:
        """:meth:`delete_session`, without blocking the event loop."""
        return bool(await self._aguard("delete_session", False, self.async_store.delete(session_id)))

    async def acheck_health(self, session_id: str) -> HealthReport:
        """:meth:`check_health`, without blocking the event loop: the report (its custom health
        checks, the breakers it reads from the store) is made as the store is called, in a
        worker thread unless the store never waits."""
        now = self.clock()
        outcome = await self._aupdate(session_id, None, None, "check_health", raise_refused=False, now=now)
        record = None if outcome is None else outcome.record
        return await self.async_store.call(self._report, session_id, record, now)

    async def ahealth_of(self, session_id: str, record: SessionRecord | None) -> HealthReport:
        """:meth:`health_of`, without blocking the event loop (its custom health checks, the breakers
        it reads from the store, in a worker thread unless the store never waits)."""
        return await self.async_store.call(self._report, session_id, record, self.clock())

    async def aclose(self) -> None:
        """Close the async connections of the running loop (Redis: its ``redis.asyncio`` client),
        then the store's own, in a worker thread if closing may wait."""
        view = self.async_store
        await view.aclose()
        await view.call(self.store.close)

    async def _aupdate(
        self,
        session_id: str,
        event: Event | None,
        error: str | None,
        operation: str,
        *,
        raise_refused: bool = True,
        now: float | None = None,
    ) -> Outcome | None:
        """:meth:`_update` with the store call awaited."""
        if now is None:
            now = self.clock()
        view = self.async_store
        try:
            if view.inline:  # the memory store: no coroutine layer
                outcome = self.store.update(session_id, event, now, self.policy, error)
            else:  # (a read cache's answer comes without a thread hop or round trip: AsyncStore.update)
                outcome = await view.update(session_id, event, now, self.policy, error)
        except (CorruptRecordError, StoreUnavailableError) as exc:
            return self._update_failed(session_id, operation, exc, now)
        return self._updated(outcome, raise_refused)

    async def _aguard(self, operation: str, fallback: Any, call: Awaitable[Any]) -> Any:
        """:meth:`_guard` for an awaited store call."""
        try:
            return await call
        except (CorruptRecordError, StoreUnavailableError) as exc:
            return self._guard_failed(operation, fallback, exc)

    # -- internals ------------------------------------------------------------------------------

    def _update(
        self,
        session_id: str,
        event: Event | None,
        error: str | None,
        operation: str,
        *,
        raise_refused: bool = True,
        now: float | None = None,
    ) -> Outcome | None:
        if now is None:
            now = self.clock()
        try:  # the hot path: no extra call layer
            outcome = self.store.update(session_id, event, now, self.policy, error)
        except (CorruptRecordError, StoreUnavailableError) as exc:
            return self._update_failed(session_id, operation, exc, now)
        if outcome is not None and not outcome.changes and outcome.refused is None:
            return outcome  # nothing to announce or raise (most requests): no further call
        return self._updated(outcome, raise_refused)

    def _update_failed(self, session_id: str, operation: str, exc: StoreError, now: float) -> Outcome | None:
        """A failed update: reported, then (failing open) an unknown session for an unreadable
        record, a stand-in for an unreachable store."""
        self._store_failed(operation, exc, can_fail_open=True)
        if isinstance(exc, CorruptRecordError):
            return None  # an unreadable record counts as an unknown session
        return _fail_open_outcome(session_id, now)

    def _updated(self, outcome: Outcome | None, raise_refused: bool) -> Outcome | None:
        """After an update: its changes announced, its refusal raised (if asked)."""
        if outcome is None:
            return None
        for change in outcome.changes:
            self._announce(change, outcome.record)
        if outcome.refused is not None and raise_refused:
            raise outcome.refused
        return outcome

    def _save_policy(self) -> None:
        """Keep the policy in the store, once, with the first session this manager makes: the
        operator's commands (``sessionmw sessions list``, ``health``) judge the sessions by it."""
        if not isinstance(self.store, PolicyStore):
            self._policy_saved = True
            return
        try:
            self.store.save_policy(self.policy)
        except StoreError as exc:  # the session is made: tried again with the next one
            _log.debug("cannot keep the policy in the store: %s", exc)
        else:
            self._policy_saved = True

    def _guard(self, operation: str, fallback: Any, call: Callable[..., Any], *args: Any) -> Any:
        """Call the store; on failure report it, then return ``fallback`` or raise."""
        try:
            return call(*args)
        except (CorruptRecordError, StoreUnavailableError) as exc:
            return self._guard_failed(operation, fallback, exc)

    def _guard_failed(self, operation: str, fallback: Any, exc: StoreError) -> Any:
        self._store_failed(operation, exc, can_fail_open=fallback is not _RAISE)
        return None if isinstance(exc, CorruptRecordError) else fallback

    def _store_failed(self, operation: str, exc: StoreError, *, can_fail_open: bool) -> None:
        """Log and signal a store failure; re-raise it unless the manager fails open."""
        _log.warning(
            "session store failed during %s (%s): %s",
            operation,
            self.settings.on_store_error,
            exc,
            extra={"operation": operation},
        )
        signals.send(signals.store_error, self, error=exc, operation=operation)
        if not can_fail_open or (
            isinstance(exc, StoreUnavailableError) and self.settings.on_store_error == "fail_closed"
        ):
            raise exc

    def _announce(self, change: Change, record: SessionRecord | None) -> None:
        """Log a state change and send its signals (cheap when nobody listens)."""
        old, new, reason = change.old, change.new, change.event.value
        if _log.isEnabledFor(logging.INFO):
            sid = short_id(change.session_id)
            _log.info(
                "session %s: %s -> %s (%s)",
                sid,
                old.value,
                new.value,
                reason,
                extra={"session": sid, "old_state": old.value, "new_state": new.value, "reason": reason},
            )
        state_signal = _SIGNAL_OF_STATE.get(new)
        if state_signal is None and new is SessionState.ACTIVE and old in _RECOVERING_FROM:
            state_signal = signals.session_recovered
        if not signals.state_changed.receivers and (state_signal is None or not state_signal.receivers):
            return
        if record is None:  # sweep reports changes without records
            record = self.store.get(change.session_id)
        kwargs = {"session_id": change.session_id, "session": record, "reason": reason}
        signals.send(signals.state_changed, self, old=old, new=new, **kwargs)
        if state_signal is not None:
            signals.send(state_signal, self, **kwargs)

    def __repr__(self) -> str:
        return f"SessionManager(store={self.store!r})"


_RAISE: Literal["raise"] = "raise"


#: The ``reason`` of the stand-in record a fail-open manager returns while the store is down.
STORE_UNAVAILABLE = "store_unavailable"


def _fail_open_outcome(session_id: str, now: float) -> Outcome:
    """Fail-open: with the store down, the session is treated as a healthy, active one.

    The stand-in record's ``reason`` is :data:`STORE_UNAVAILABLE`, so adapters can tell that the
    id was not verified and must not adopt it.
    """
    record = SessionRecord.new(session_id, now)
    record.reason = STORE_UNAVAILABLE
    return Outcome(record, ())


def check_session_id(session_id: object) -> str:
    """Return ``session_id`` if it is a well-formed id, else raise :class:`ValueError` naming it."""
    if not isinstance(session_id, str) or not _VALID_ID.fullmatch(session_id):
        shown = repr(session_id)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        raise ValueError(f"invalid session id {shown}: use 1 to 128 letters, digits or '._:~-'")
    return session_id


def short_id(session_id: str) -> str:
    """A shortened id for logs (a full session id is a credential)."""
    return session_id[:6] + "…" if len(session_id) > 8 else "…"


_default: SessionManager | None = None
_default_lock = ForkSafeLock()


def get_session_manager() -> SessionManager:
    """The process-wide default manager, configured from the environment on first use."""
    global _default
    manager = _default
    if manager is None:
        with _default_lock:
            if _default is None:
                _default = SessionManager()
            manager = _default
    return manager


def set_session_manager(manager: SessionManager | None) -> None:
    """Make ``manager`` the process default (None: build a new one from the environment next time)."""
    global _default
    with _default_lock:
        _default = manager
