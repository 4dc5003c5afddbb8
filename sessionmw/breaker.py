"""Circuit breakers shared by every session and every worker: a failing backend pauses for everyone.

.. code-block:: python

    market = Breaker("market-data", failure_threshold=5, open_for=30.0)

    @guarded(breaker=market)
    def fetch_prices(symbol): ...

A breaker's state and counts live in the session manager's store (memory, SQLite, Redis, Redis
Cluster) and change in one atomic store operation per recorded outcome, so every process sees the
same breaker. The decision is the table in :mod:`sessionmw.breaker_table`. Each process keeps a
view of the state for ``state_ttl`` seconds: a closed breaker costs no round trip to check, and
rejecting a call while OPEN costs none either.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar, cast

from sessionmw import signals
from sessionmw._steps import Steps, drive, run
from sessionmw.breaker_table import (
    BREAKER_TRANSITIONS,
    DEPENDENCY_MARK,
    BreakerConfig,
    BreakerOp,
    BreakerRecord,
    BreakerState,
    StepResult,
    check_config,
)
from sessionmw.errors import StoreUnavailableError
from sessionmw.health import register_dependency_source
from sessionmw.stores.aio import blocks, off_loop
from sessionmw.stores.breakers import BreakerBackend, BreakerStore, MemoryBreakers
from sessionmw.texts import (
    DEPENDENCY_AVAILABLE,
    DEPENDENCY_PROBING,
    MESSAGES,
    PAUSED_FORCED,
    fill,
    paused_message,
)
from sessionmw.translation import UserFacingError, is_transient

if TYPE_CHECKING:
    from sessionmw.manager import SessionManager
    from sessionmw.stores.base import SessionStore

__all__ = [
    "BREAKER_TRANSITIONS",
    "Breaker",
    "BreakerOpenError",
    "BreakerRecord",
    "BreakerState",
    "all_breakers",
    "breakers_for",
    "get_breaker",
]

P = ParamSpec("P")
T = TypeVar("T")

#: What ``counts`` accepts: exception classes, or a predicate ``(exc) -> bool``.
CountsOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]

_CLOSED, _OPEN, _HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
_FORCED_OPEN, _DISABLED = BreakerState.FORCED_OPEN, BreakerState.DISABLED
# What _admit returns: a plain call, a half-open probe, a call through a disabled breaker.
_CALL: Final = 0
_PROBE: Final = 1
_PASS: Final = 2

#: Seconds a client is told to wait while a breaker is forced open (no end is known).
FORCED_RETRY_AFTER: Final = 60.0


class BreakerOpenError(UserFacingError):
    """A call refused at once because its breaker is open: the service is paused for everyone.

    Transient, so HTTP adapters answer 503 with ``Retry-After`` = the seconds left; the message
    names the service and when it will be tried again. ``__cause__`` is the last failure this
    process saw. It never counts against a session.
    """

    def __init__(
        self,
        breaker: str,
        service: str,
        seconds_left: float | None,
        *,
        original: BaseException | None = None,
    ) -> None:
        if seconds_left is None:
            message = fill(PAUSED_FORCED, {"service": service})
            retry_after = FORCED_RETRY_AFTER
        else:
            seconds = max(1, math.ceil(seconds_left))
            message = paused_message(service, seconds)
            retry_after = float(seconds)
        words = MESSAGES["degraded"]  # the same words as the health report of a paused dependency
        super().__init__(
            message,
            title=words.title,
            recovery=words.recovery,
            severity="warning",
            transient=True,
            context=str(words.context),
            original=original,
            retry_after=retry_after,
        )
        #: The breaker's name.
        self.breaker = breaker
        setattr(self, DEPENDENCY_MARK, breaker)
        #: The service's name as users see it.
        self.service = service
        #: Seconds until the breaker admits a probe (None while forced open).
        self.seconds_left = seconds_left


# -- one backend per store, and the process's breakers ---------------------------------------------

_BACKENDS: weakref.WeakKeyDictionary[Any, BreakerBackend] = weakref.WeakKeyDictionary()
_BACKENDS_LOCK = threading.Lock()



def _renew_backends_lock() -> None:
    """In a forked child: a fresh lock (another thread may have held the parent's at the fork)."""
    global _BACKENDS_LOCK
    _BACKENDS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_renew_backends_lock)
# The process's breakers, by name (weakly held: a breaker nobody uses any more is not reported).
_REGISTRY: weakref.WeakValueDictionary[str, Breaker] = weakref.WeakValueDictionary()


def breakers_for(store: SessionStore) -> BreakerBackend:
    """The breaker backend that lives beside ``store`` (one per store object)."""
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(store)
        if backend is None:
            backend = store.breakers() if isinstance(store, BreakerStore) else MemoryBreakers()
            _BACKENDS[store] = backend
        return backend


def all_breakers() -> list[Breaker]:
    """The breakers made in this process and still in use (the newest one of each name), by name."""
    found = dict(_REGISTRY.items())
    return [found[name] for name in sorted(found)]


def get_breaker(name: str) -> Breaker | None:
    """The breaker of that name made in this process, or None."""
    return _REGISTRY.get(name)


def _counts_predicate(counts: CountsOn | None) -> Callable[[BaseException], bool]:
    if counts is None:
        return is_transient
    if isinstance(counts, type) and issubclass(counts, BaseException):
        classes: tuple[type[BaseException], ...] = (counts,)
    elif isinstance(counts, tuple) and all(
        isinstance(c, type) and issubclass(c, BaseException) for c in counts
    ):
        classes = counts
    elif callable(counts) and not isinstance(counts, type):
        return counts
    else:
        raise TypeError(f"counts must be exception classes or a predicate, not {counts!r}")
    return lambda error: isinstance(error, classes)


_Ticket = contextvars.ContextVar[tuple[int, ...]]


class Breaker:
    """A circuit breaker for one dependency, shared through the session store by every process.

    :param name: names the breaker in the store, signals, metrics and the ``sessionmw breakers``
        command (letters, digits and ``._:-``).
    :param failure_threshold: consecutive counted failures that open it.
    :param failure_rate: also open it when this fraction of the last ``window`` calls failed, once
        at least ``min_calls`` were made (None: consecutive failures only).
    :param open_for: seconds an open breaker rejects calls before it admits probes.
    :param half_open_calls: probes admitted at once in HALF_OPEN, across all processes.
    :param counts: which failures count: exception classes or a predicate (default: the retry's
        transient rule, :func:`~sessionmw.is_transient`). Other exceptions pass through uncounted.
    :param service: the service's name as users see it (default: ``name`` with ``-`` and ``_`` as
        spaces).
    :param manager: the manager whose store keeps the breaker, and whose ``on_store_error`` applies
        (default: the process default manager, looked up when the state is read).
    :param store: a store to use instead of a manager's (``on_store_error`` is then fail-open).
    :param clock: the wall clock (the store's processes share it); a FakeClock in tests.
    :param state_ttl: seconds a process trusts its view of a closed breaker before reading the
        store again: the staleness a closed breaker allows in other processes.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        failure_rate: float | None = None,
        window: int = 20,
        min_calls: int = 10,
        open_for: float = 30.0,
        half_open_calls: int = 1,
        counts: CountsOn | None = None,
        service: str | None = None,
        manager: SessionManager | None = None,
        store: SessionStore | None = None,
        clock: Callable[[], float] = time.time,
        state_ttl: float = 0.25,
    ) -> None:
        if (
            not isinstance(name, str)
            or not name
            or len(name) > 100
            or not all(ch.isalnum() or ch in "._:-" for ch in name)
        ):
            raise ValueError(f"invalid breaker name {name!r}: use 1 to 100 letters, digits or '._:-'")
        if isinstance(state_ttl, bool) or not isinstance(state_ttl, int | float) or not 0 <= state_ttl <= 60:
            raise ValueError(f"state_ttl must be a number of seconds in [0, 60], not {state_ttl!r}")
        if not callable(clock):
            raise TypeError(f"clock must be callable, not {type(clock).__name__}")
        #: The breaker's name.
        self.name = name
        #: The trip policy.
        self.config = check_config(
            BreakerConfig(failure_threshold, failure_rate, window, min_calls, open_for, half_open_calls)
        )
        #: The service's name as users see it.
        self.service = service or name.replace("-", " ").replace("_", " ")
        #: Seconds a process trusts its view of the state.
        self.state_ttl = float(state_ttl)
        #: The wall clock the breaker's times are read from (shared by the store's processes).
        self.clock = clock
        self._counts = _counts_predicate(counts)
        self._manager = manager
        self._store = store
        self._view = BreakerRecord(name)
        self._fresh_until = -math.inf
        self._read_at = -math.inf
        self._refused_until = -math.inf  # a half-open breaker whose probes are taken
        self._successes = 0  # seen here, not yet added to the store's counts
        self._rejections = 0
        self._last_failure: BaseException | None = None
        self._local: MemoryBreakers | None = None  # this process's breaker while the store is down
        self._last_store: weakref.ref[Any] | None = None  # the default manager's, when last used
        self._tickets: _Ticket = contextvars.ContextVar(f"sessionmw_breaker_{name}", default=())
        _REGISTRY[name] = self
        # Health reports list breakers only once a process has one: no cost to check_health before.
        register_dependency_source(_dependencies)

    def __repr__(self) -> str:
        return f"Breaker({self.name!r}, state={self._view.state.value!r})"

    # -- the public API ------------------------------------------------------------------------

    def counts(self, error: BaseException) -> bool:
        """True if ``error`` counts as a failure of the dependency (and so never against a session)."""
        return isinstance(error, BreakerOpenError) or self._counts(error)

    @property
    def state(self) -> BreakerState:
        """The state as this process last saw it (read from the store when older than ``state_ttl``)."""
        return self.snapshot(max_age=self.state_ttl).state

    def snapshot(self, *, max_age: float = 0.0) -> BreakerRecord:
        """A copy of the breaker's record, read from the store unless this process's view is
        younger than ``max_age`` seconds."""
        now = self.clock()
        if max_age <= 0 or now - self._read_at >= max_age:
            self._apply(BreakerOp.READ, now)
        return self._view.copy()

    def call(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``func(*args, **kwargs)`` through the breaker: refused at once with
        :class:`BreakerOpenError` while it is open, the outcome recorded otherwise."""
        ticket = self._admit()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            self._failed(ticket, exc)
            raise
        self._succeeded(ticket)
        return result

    async def call_async(self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`call` for an ``async def`` function; the breaker's store calls never block the
        event loop (a worker thread for a store that may wait: :mod:`sessionmw.stores.aio`)."""
        ticket = await self._awaited(self._admit)
        try:
            result = await func(*args, **kwargs)
        except Exception as exc:
            await self._awaited(self._failed, ticket, exc)
            raise
        await self._awaited(self._succeeded, ticket)
        return result

    async def _awaited(self, step: Callable[..., T], *args: Any) -> T:
        """A step that may reach the store, for an async caller: inline on a backend that never
        waits (the memory store's), else in a worker thread."""
        if blocks(self._backend()[0]):
            return await off_loop(step, *args)
        return step(*args)

    def __enter__(self) -> Breaker:
        ticket = self._admit()
        self._tickets.set((*self._tickets.get(), ticket))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        stack = self._tickets.get()
        ticket = stack[-1] if stack else _CALL
        self._tickets.set(stack[:-1])
        if exc is None:
            self._succeeded(ticket)
        elif isinstance(exc, Exception):
            self._failed(ticket, exc)
        return False

    def force_open(self) -> BreakerRecord:
        """Open the breaker until :meth:`close` (a planned maintenance)."""
        return self._apply(BreakerOp.FORCE_OPEN, self.clock())[0].copy()

    def close(self) -> BreakerRecord:
        """Close the breaker with fresh counts (also ends FORCED_OPEN and DISABLED)."""
        return self._apply(BreakerOp.FORCE_CLOSE, self.clock())[0].copy()

    def disable(self) -> BreakerRecord:
        """Let every call through and never trip, until :meth:`close`."""
        return self._apply(BreakerOp.DISABLE, self.clock())[0].copy()

    def decorate(self, func: Callable[P, T]) -> Callable[P, T]:
        """``func`` called through the breaker (sync or ``async def``), without ``@guarded``'s extras."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_through(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.call_async(func, *args, **kwargs)

            return cast(Callable[P, T], async_through)

        @functools.wraps(func)
        def through(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(func, *args, **kwargs)

        return through

    # -- the steps, for @guarded -----------------------------------------------------------------

    def _admit(self) -> int:
        """Admit a call (a ticket) or raise :class:`BreakerOpenError`. No round trip while the
        view is fresh and the breaker closed or open."""
        now = self.clock()
        view = self._view
        if now < self._fresh_until:
            state = view.state
            if state is _CLOSED:
                return _CALL
            if state is _DISABLED:
                return _PASS
            if (
                (state is _OPEN and now < view.open_until)
                or state is _FORCED_OPEN
                or (state is _HALF_OPEN and now < self._refused_until)
            ):
                return self._reject(view, now)
        elif not (view.state is _HALF_OPEN or (view.state is _OPEN and now >= view.open_until)):
            view = self._apply(BreakerOp.READ, now)[0]  # (a probe due: the admit reads it anyway)
            state = view.state
            if state is _CLOSED:
                return _CALL
            if state is _DISABLED:
                return _PASS
            if (state is _OPEN and now < view.open_until) or state is _FORCED_OPEN:
                return self._reject(view, now)
        view, result = self._apply(BreakerOp.ADMIT, now)  # a probe is due: race for it
        if result.admitted:
            return _PROBE if view.state is _HALF_OPEN else (_PASS if view.state is _DISABLED else _CALL)
        if view.state is _HALF_OPEN:
            self._refused_until = now + self.state_ttl
        raise self._open_error(view, now)

    def _reject(self, view: BreakerRecord, now: float) -> int:
        self._rejections += 1
        raise self._open_error(view, now)

    def _open_error(self, view: BreakerRecord, now: float) -> BreakerOpenError:
        if signals.breaker_rejected.receivers:
            signals.send(signals.breaker_rejected, self, name=self.name, state=view.state)
        return BreakerOpenError(
            self.name, self.service, self._seconds_left(view, now), original=self._last_failure
        )

    def _seconds_left(self, view: BreakerRecord, now: float) -> float | None:
        """Until a probe may be admitted: None while forced open."""
        if view.state is _FORCED_OPEN:
            return None
        if view.state is _HALF_OPEN:
            return max(0.0, view.probe_at + self.config.open_for - now)
        return view.seconds_left(now)

    def _succeeded(self, ticket: int) -> None:
        if ticket == _PROBE:
            self._apply(BreakerOp.PROBE_SUCCESS, self.clock())
        elif self.config.failure_rate is None and (ticket == _PASS or not self._view.failures):
            self._successes += 1  # nothing to reset: counted with the next round trip
        else:
            self._apply(BreakerOp.SUCCESS, self.clock())

    def _failed(self, ticket: int, error: BaseException) -> BreakerOpenError | None:
        """Record a failed call; if the breaker is open afterwards, the error a further attempt
        would meet (so a retry stops now instead of waiting first)."""
        if not self._counts(error) or isinstance(error, BreakerOpenError):
            if ticket == _PROBE:  # the service answered: the probe succeeded
                self._apply(BreakerOp.PROBE_SUCCESS, self.clock())
            return None
        self._last_failure = error
        with contextlib.suppress(AttributeError, TypeError):  # an exception class with __slots__
            setattr(error, DEPENDENCY_MARK, self.name)
        now = self.clock()
        view = self._apply(BreakerOp.PROBE_FAILURE if ticket == _PROBE else BreakerOp.FAILURE, now)[0]
        if view.state is _OPEN or view.state is _FORCED_OPEN:
            return BreakerOpenError(self.name, self.service, self._seconds_left(view, now), original=error)
        return None

    def _through(self, func: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        """``func`` with every call made as :meth:`call` makes it, for ``@guarded``'s retries; but a
        failure that leaves the breaker open raises :class:`BreakerOpenError` (``__cause__``: the
        failure), so that the retry stops at once."""
        if is_async:

            async def attempt_async(*args: Any, **kwargs: Any) -> Any:
                return await drive(self._attempt(func, args, kwargs, True))

            return functools.update_wrapper(attempt_async, func)

        def attempt(*args: Any, **kwargs: Any) -> Any:
            return run(self._attempt(func, args, kwargs, False))

        return functools.update_wrapper(attempt, func)

    def _attempt(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], awaiting: bool
    ) -> Steps[Any]:
        """One attempt through the breaker, written once for sync and async (:mod:`sessionmw._steps`)."""
        ticket = (yield self._awaited(self._admit)) if awaiting else self._admit()
        try:
            result = func(*args, **kwargs)
            if awaiting:
                result = yield result
        except Exception as exc:
            if awaiting:
                opened = yield self._awaited(self._failed, ticket, exc)
            else:
                opened = self._failed(ticket, exc)
            if opened is not None:
                raise opened from exc
            raise
        if awaiting:
            yield self._awaited(self._succeeded, ticket)
        else:
            self._succeeded(ticket)
        return result

    def _backend(self) -> tuple[BreakerBackend, str]:
        if self._store is not None:
            return breakers_for(self._store), "fail_open"
        manager = self._manager
        if manager is None:
            from sessionmw.manager import get_session_manager

            manager = get_session_manager()
            self._last_store = weakref.ref(manager.store)
        return breakers_for(manager.store), manager.settings.on_store_error

    def _kept_in(self, store: object) -> bool:
        """True if the breaker lives in ``store`` (a breaker on the default manager: in the store it
        last used)."""
        if self._store is not None:
            return self._store is store
        if self._manager is not None:
            return self._manager.store is store
        return self._last_store is not None and self._last_store() is store

    def _apply(self, op: BreakerOp, now: float) -> tuple[BreakerRecord, StepResult]:
        """One atomic operation at the store (pending counts ride along); signals its change."""
        mode = "fail_open"
        successes, rejections = self._successes, self._rejections
        self._successes -= successes  # (not = 0: another thread may have counted one meanwhile)
        self._rejections -= rejections
        try:
            backend, mode = self._backend()
            record, result = backend.apply(self.name, op, now, self.config, successes, rejections)
            self._local = None
        except StoreUnavailableError as exc:
            signals.send(signals.store_error, self, error=exc, operation=f"breaker {op.value}")
            if mode == "fail_closed":
                self._successes += successes
                self._rejections += rejections
                raise
            if self._local is None:  # fail-open: this process's own breaker meanwhile
                self._local = MemoryBreakers()
            record, result = self._local.apply(self.name, op, now, self.config, successes, rejections)
        self._view = record
        self._read_at = now
        self._fresh_until = now + self.state_ttl
        change = result.change
        if change is not None:
            self._announce(change.old, change.new, change.event.value)
        return record, result

    def _announce(self, old: BreakerState, new: BreakerState, reason: str) -> None:
        signal = _SIGNAL_OF_STATE.get(new)
        if signal is not None and signal.receivers:
            signals.send(signal, self, name=self.name, old=old, new=new, reason=reason)

    # -- health ----------------------------------------------------------------------------------

    def dependency(self, now: float | None = None) -> dict[str, Any]:
        """The breaker as a session's health report shows it: ``name``, ``service``, ``state``,
        ``status`` (``pass`` closed or disabled, ``warn`` half-open, ``fail`` open or forced open),
        ``retry_in`` (whole seconds until a probe; None while forced open) and ``message``. Reads the
        store at most once per ``state_ttl``; while the store is down, this process's last view."""
        if now is None:
            now = self.clock()
        try:
            view = self.snapshot(max_age=self.state_ttl)
        except StoreUnavailableError:
            view = self._view
        state = view.state
        retry_in: float | None = 0.0
        if state is _CLOSED or state is _DISABLED:
            status, message = "pass", fill(DEPENDENCY_AVAILABLE, {"service": self.service})
        elif state is _HALF_OPEN:
            status, message = "warn", fill(DEPENDENCY_PROBING, {"service": self.service})
        else:
            error = BreakerOpenError(self.name, self.service, self._seconds_left(view, now))
            status, message, retry_in = "fail", error.message, error.seconds_left
        return {
            "name": self.name,
            "service": self.service,
            "state": state.value,
            "status": status,
            "retry_in": None if retry_in is None else math.ceil(retry_in),
            "message": message,
        }

    def paused(self, now: float | None = None) -> dict[str, Any] | None:
        """:meth:`dependency` while the breaker pauses calls (open, forced open, half-open), else None."""
        found = self.dependency(now)
        return None if found["status"] == "pass" else found


_SIGNAL_OF_STATE = {
    _OPEN: signals.breaker_opened,
    _FORCED_OPEN: signals.breaker_opened,
    _HALF_OPEN: signals.breaker_half_opened,
    _CLOSED: signals.breaker_closed,
}


def _dependencies(store: object) -> list[dict[str, Any]]:
    """The breakers kept in ``store``, for its sessions' health reports."""
    if not _REGISTRY:
        return []
    return [breaker.dependency() for breaker in all_breakers() if breaker._kept_in(store)]
