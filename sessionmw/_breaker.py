"""Circuit breakers shared by every session and every worker: a failing backend pauses for everyone.

.. code-block:: python

    market = Breaker("market-data", failure_threshold=5, open_for=30.0)

    @guarded(breaker=market)
    def fetch_prices(symbol): ...

A breaker's state and counts live in the session manager's store (memory, SQLite, Redis, Redis
Cluster) and change in one atomic store operation per recorded outcome, so every process sees the
same breaker. The decision is the table in :mod:`sessionmw._breaker_table`. Each process keeps a
view of the state for ``state_ttl`` seconds: a closed breaker costs no round trip to check, and
rejecting a call while OPEN costs none either.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast

from blinker import NamedSignal

from sessionmw import signals
from sessionmw._breaker_table import (
    BREAKER_TRANSITIONS,
    DEPENDENCY_MARK,
    MAX_OPEN_FOR,
    OPERATOR_OPS,
    BreakerConfig,
    BreakerOp,
    BreakerRecord,
    BreakerState,
    StepResult,
    WindowType,
    check_config,
)
from sessionmw._errors import ConfigurationError, CorruptRecordError, StoreError, StoreUnavailableError
from sessionmw._manager import SessionManager
from sessionmw._steps import Steps, drive, run
from sessionmw.health import register_dependency_source
from sessionmw.stores._base import SessionStore
from sessionmw.stores._beside import Beside, beside
from sessionmw.stores.aio import blocks, off_loop
from sessionmw.stores.breakers import Applied, BreakerBackend, BreakerStore, MemoryBreakers
from sessionmw.texts import (
    DEPENDENCY_AVAILABLE,
    DEPENDENCY_PROBING,
    MESSAGES,
    PAUSED_FORCED,
    fill,
    local,
    paused_message,
)
from sessionmw.translation import UserFacingError, is_transient

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

# The per-call outcome signals: each is sent only when someone subscribes (one attribute check).
_SUCCEEDED, _FAILED = signals.breaker_call_succeeded, signals.breaker_call_failed
_IGNORED, _SLOW = signals.breaker_call_ignored, signals.breaker_call_slow

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
            message = fill(local(PAUSED_FORCED), {"service": service})
            retry_after = FORCED_RETRY_AFTER
        else:
            seconds = max(1, math.ceil(seconds_left))
            message = paused_message(service, seconds)
            retry_after = float(seconds)
        words = local(MESSAGES["degraded"])  # the same words as the health report of a paused dependency
        super().__init__(
            message,
            title=words.title,
            recovery=words.recovery,
            severity="warning",
            transient=True,
            context=str(words.context),
            original=original,
            retry_after=retry_after,
            situation="service-paused",
        )
        #: The breaker's name.
        self.breaker = breaker
        setattr(self, DEPENDENCY_MARK, breaker)
        #: The service's name as users see it.
        self.service = service
        #: Seconds until the breaker admits a probe (None while forced open).
        self.seconds_left = seconds_left


# -- one backend per store, and the process's breakers ---------------------------------------------


def _breakers_of(store: SessionStore) -> BreakerBackend:
    return store.breakers() if isinstance(store, BreakerStore) else MemoryBreakers()


_BREAKERS: Beside[BreakerBackend] = Beside(_breakers_of)

# The process's breakers, by name (weakly held: a breaker nobody uses any more is not reported).
_REGISTRY: weakref.WeakValueDictionary[str, Breaker] = weakref.WeakValueDictionary()


def breakers_for(store: SessionStore) -> BreakerBackend:
    """The breaker backend that lives beside ``store`` (one per store object)."""
    return beside(store, _BREAKERS)


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


class _Timed(int):
    """A ticket that carries when its call started (monotonic), for a breaker that judges slowness."""

    start: float


#: Seconds a process works on its own view after a store error before one call tries the store
#: again (``store_backoff``'s default), and the most it may be set to.
STORE_BACKOFF: Final = 2.0
MAX_STORE_BACKOFF: Final = 300.0

_log = logging.getLogger("sessionmw._breaker")


def _seconds(name: str, value: object, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` as a number of seconds in [low, high] (or (low, high]), else ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}")
    if value > high or value < low or (low_open and value == low):
        interval = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
        raise ConfigurationError(f"{name} must be a number of seconds in {interval}, not {value!r}")
    return float(value)


class Breaker:
    """A circuit breaker for one dependency, shared through the session store by every process.

    :param name: names the breaker in the store, signals, metrics and the ``sessionmw breakers``
        command (letters, digits and ``._:-``).
    :param failure_threshold: consecutive counted failures that open it.
    :param failure_rate: also open it when this fraction of the last ``window`` calls failed, once
        at least ``min_calls`` were made (None: consecutive failures only).
    :param window_type: ``"count"`` (default): the window is the last ``window`` calls (at most
        10,000); ``"time"``: the calls of the last ``window`` seconds (at most 3,600), counted in
        per-second buckets of the store clock, older seconds dropped as time moves on (Resilience4j's
        ``TIME_BASED`` sliding window); ``min_calls`` may then exceed ``window``.
    :param open_for: seconds an open breaker rejects calls before it admits probes (at most a day).
    :param half_open_calls: probes admitted at once in HALF_OPEN, across all processes.
    :param success_threshold: probe successes that close a half-open breaker (pybreaker's
        ``success_threshold``); each success frees its slot for the next probe, a failure reopens it.
    :param max_open_for: let the open period grow after each failed probe in a row, by
        ``open_for_multiplier`` (default 2, in [1, 10]), up to this many seconds (None: always
        ``open_for``); back to ``open_for`` once the breaker closes. Shared like the state.
    :param slow_call_duration: a call that takes this many seconds or more (monotonic clock) is
        slow, whether it succeeds or fails with a counted failure (None: durations are not read).
    :param slow_call_rate: open the breaker when this fraction of the last ``window`` calls were
        slow, once at least ``min_calls`` were made (default 1.0 with ``slow_call_duration``). A slow
        probe counts as a failed probe.
    :param counts: which failures count: exception classes or a predicate (default: the retry's
        transient rule, :func:`~sessionmw.is_transient`). Other exceptions pass through uncounted.
    :param count_cancelled: count a call that ends by cancellation (an outer ``asyncio.wait_for``
        or ``asyncio.timeout``, a cancelled task) as a failure, as Resilience4j counts a timeout.
        Default False: it counts nothing. Either way a cancelled probe gives its slot back at once.
    :param service: the service's name as users see it (default: ``name`` with ``-`` and ``_`` as
        spaces).
    :param manager: the :class:`~sessionmw.SessionManager` whose store keeps the breaker, whose
        ``on_store_error`` applies and whose clock it reads (default: the process default
        manager, looked up when the state is read).
    :param store: a session store to use instead of a manager's (``on_store_error`` is then
        fail-open); not with ``manager``.
    :param clock: the wall clock the shared times (``open_for``) are read from: the store's
        processes share it (default: the manager's clock, else :func:`time.time`).
    :param monotonic: the clock this process's own intervals (``state_ttl``, ``store_backoff``)
        are measured on (default: :func:`time.monotonic` when ``clock`` is :func:`time.time`;
        otherwise ``clock`` itself, so one FakeClock drives a test).
    :param state_ttl: seconds a process trusts its view of a closed breaker before reading the
        store again: the staleness a closed breaker allows in other processes (at most 60).
    :param store_backoff: after a store error (or an unreadable record), seconds this process
        works on its own view without touching the store; then one call tries the store again
        (at most 300).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        failure_rate: float | None = None,
        window: int = 20,
        min_calls: int = 10,
        window_type: WindowType = "count",
        open_for: float = 30.0,
        half_open_calls: int = 1,
        slow_call_duration: float | None = None,
        slow_call_rate: float | None = None,
        max_open_for: float | None = None,
        open_for_multiplier: float = 2.0,
        success_threshold: int = 1,
        counts: CountsOn | None = None,
        count_cancelled: bool = False,
        service: str | None = None,
        manager: SessionManager | None = None,
        store: SessionStore | None = None,
        clock: Callable[[], float] | None = None,
        monotonic: Callable[[], float] | None = None,
        state_ttl: float = 0.25,
        store_backoff: float = STORE_BACKOFF,
    ) -> None:
        if (
            not isinstance(name, str)
            or not name
            or len(name) > 100
            or not all(ch.isalnum() or ch in "._:-" for ch in name)
        ):
            raise ConfigurationError(f"invalid breaker name {name!r}: use 1 to 100 letters, digits or '._:-'")
        if manager is not None and store is not None:
            raise ConfigurationError(
                f"Breaker {name!r}: give manager= or store=, not both (the manager's store is used)"
            )
        if manager is not None and not isinstance(manager, SessionManager):
            raise ConfigurationError(
                f"Breaker {name!r}: manager must be a SessionManager, not {manager!r:.80}"
            )
        if store is not None and (isinstance(store, str) or not isinstance(store, SessionStore)):
            hint = " (a URL: pass manager=SessionManager(store=URL))" if isinstance(store, str) else ""
            raise ConfigurationError(
                f"Breaker {name!r}: store must be a session store, not {store!r:.80}{hint}"
            )
        if clock is None:
            clock = manager.clock if manager is not None else time.time
        for what, given in (("clock", clock), ("monotonic", monotonic)):
            if given is not None and not callable(given):
                raise ConfigurationError(
                    f"Breaker {name!r}: {what} must be callable, not {type(given).__name__}"
                )
        if slow_call_rate is not None and slow_call_duration is None:
            raise ConfigurationError("slow_call_rate needs slow_call_duration (when a call is slow)")
        if slow_call_duration is not None:
            slow_call_duration = _seconds(
                "slow_call_duration", slow_call_duration, 0.0, MAX_OPEN_FOR, low_open=True
            )
            slow_call_rate = 1.0 if slow_call_rate is None else slow_call_rate
        if not isinstance(count_cancelled, bool):
            raise ConfigurationError(f"count_cancelled must be True or False, not {count_cancelled!r}")
        #: The breaker's name.
        self.name = name
        try:
            #: The trip policy.
            self.config = check_config(
                BreakerConfig(
                    failure_threshold, failure_rate, window, min_calls, open_for, half_open_calls,
                    slow_call_rate, open_for_multiplier, max_open_for, success_threshold, window_type,
                )
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        #: The service's name as users see it.
        self.service = service or name.replace("-", " ").replace("_", " ")
        #: Seconds from which a call is slow (None: durations are not read).
        self.slow_call_duration = slow_call_duration
        if slow_call_duration is not None:
            self._admit = self._timed_admit  # type: ignore[method-assign]
        #: Seconds a process trusts its view of the state.
        self.state_ttl = _seconds("state_ttl", state_ttl, 0.0, 60.0)
        #: Seconds a process keeps off its store after a store error.
        self.store_backoff = _seconds("store_backoff", store_backoff, 0.0, MAX_STORE_BACKOFF, low_open=True)
        #: True if a cancelled call counts as a failure.
        self.count_cancelled = count_cancelled
        #: The wall clock the breaker's shared times are read from.
        self.clock = clock
        #: The clock this process's own intervals are measured on.
        self.monotonic: Callable[[], float] = (
            monotonic if monotonic is not None else (time.monotonic if clock is time.time else clock)
        )
        self._counts = _counts_predicate(counts)
        self._manager = manager
        self._store = store
        self._view = BreakerRecord(name)
        # On the monotonic clock: until when the view is trusted, when it was read, until when a
        # half-open breaker whose probes are taken is not asked again.
        self._fresh_until = -math.inf
        self._read_at = -math.inf
        self._refused_until = -math.inf
        # Store trouble: until when (monotonic) this process keeps off the store, and the error.
        self._down_until = -math.inf
        self._down_error: StoreError | None = None
        self._down_lock = threading.Lock()
        self._successes = 0  # seen here, not yet added to the store's counts
        self._rejections = 0
        self._last_failure: BaseException | None = None
        self._local: MemoryBreakers | None = None  # this process's breaker while the store is not used
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
        younger than ``max_age`` seconds (while the store is kept off after an error: this
        process's own record)."""
        if max_age <= 0 or self.monotonic() - self._read_at >= max_age:
            self._apply(BreakerOp.READ, self.clock())
        return self._view.copy()

    def call(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``func(*args, **kwargs)`` through the breaker: refused at once with
        :class:`BreakerOpenError` while it is open, the outcome recorded otherwise."""
        # The closed breaker's path, inlined (_admit and _succeeded): the overhead every call pays.
        # (With slow_call_duration, the one more clock read is the one after the call.)
        view = self._view
        start = self.monotonic()
        ticket = _CALL if view.state is _CLOSED and start < self._fresh_until else self._admit()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            self._failed(ticket, exc, start)
            raise
        except BaseException as exc:
            self._interrupted(ticket, exc, start)
            raise
        limit = self.slow_call_duration
        if ticket == _CALL and not self._view.failures and (
            limit is None or self.monotonic() - start < limit
        ):
            self._successes += 1
            if _SUCCEEDED.receivers:
                signals.send(_SUCCEEDED, self, name=self.name, seconds=self.monotonic() - start)
        else:
            self._succeeded(ticket, start)
        return result

    async def call_async(self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`call` for an ``async def`` function; the breaker's store calls never block the
        event loop (a worker thread for a store that may wait: :mod:`sessionmw.stores.aio`). A call
        cancelled meanwhile is recorded as ``count_cancelled`` says (a probe gives its slot back at
        once)."""
        ticket = await self._awaited(self._admit)
        try:
            result = await func(*args, **kwargs)
        except Exception as exc:
            await self._awaited(self._failed, ticket, exc)
            raise
        except BaseException as exc:
            # Recorded at once, not awaited: a cancelled task (or trio scope) may not await again.
            self._interrupted(ticket, exc)
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
        else:
            self._interrupted(ticket, exc)
        return False

    async def __aenter__(self) -> Breaker:
        """``async with breaker:`` as ``with breaker:`` (the store operations block, as the session's)."""
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    def force_open(self) -> BreakerRecord:
        """Open the breaker until :meth:`close` (a planned maintenance)."""
        return self._apply(BreakerOp.FORCE_OPEN, self.clock())[0].copy()

    def close(self) -> BreakerRecord:
        """Close the breaker with fresh counts (also ends FORCED_OPEN and DISABLED, and replaces an
        unreadable record)."""
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

    def _timed_admit(self, untimed: bool = False) -> int:
        """:meth:`_admit` for a breaker that judges slowness: the ticket always carries the call's
        start (``untimed``, for :meth:`_admit`'s signature, is ignored)."""
        ticket = _Timed(Breaker._admit(self, True))
        ticket.start = self.monotonic()
        return ticket

    def _admit(self, untimed: bool = False) -> int:
        """Admit a call (a ticket) or raise :class:`BreakerOpenError`. No round trip while the
        view is fresh and the breaker closed or open. While someone subscribes to the outcome
        signals, the ticket carries the call's start (their ``seconds``) unless ``untimed``."""
        if not untimed and (_SUCCEEDED.receivers or _FAILED.receivers or _IGNORED.receivers):
            return self._timed_admit()
        view = self._view
        if self.monotonic() < self._fresh_until:
            state = view.state
            if state is _CLOSED:
                return _CALL
            if state is _DISABLED:
                return _PASS
            now = self.clock()
            if (
                (state is _OPEN and now < view.open_until)
                or state is _FORCED_OPEN
                or (state is _HALF_OPEN and self.monotonic() < self._refused_until)
            ):
                return self._reject(view, now)
        else:
            now = self.clock()
            if not (view.state is _HALF_OPEN or (view.state is _OPEN and now >= view.open_until)):
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
            self._refused_until = self.monotonic() + self.state_ttl
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
        """Until a probe may be admitted: None while forced open; never more than the open period
        (a wall clock stepped back, or a stored time from far ahead, tells nobody to wait longer)."""
        if view.state is _FORCED_OPEN:
            return None
        if view.state is _HALF_OPEN:
            left = view.probe_at + self.config.open_for - now
        else:
            left = view.seconds_left(now)
        return min(self.config.open_period(view.reopens), max(0.0, left))

    def _timing(self, ticket: int, start: float | None) -> tuple[float | None, bool]:
        """The call's duration (None if unknown, or if neither slowness nor a subscriber needs
        it) and whether it was slow; ``start`` unless the ticket carries it."""
        limit = self.slow_call_duration
        if limit is None and not (_FAILED.receivers or _IGNORED.receivers or _SUCCEEDED.receivers):
            return None, False
        if isinstance(ticket, _Timed):
            start = ticket.start
        if start is None:
            return None, False
        seconds = self.monotonic() - start
        return seconds, limit is not None and seconds >= limit

    def _tell(self, signal: NamedSignal, seconds: float | None, **kwargs: Any) -> None:
        """Send a per-call outcome signal (only when someone subscribes)."""
        if signal.receivers:
            signals.send(signal, self, name=self.name, seconds=seconds, **kwargs)

    def _succeeded(self, ticket: int, start: float | None = None) -> None:
        slow = False
        if self.slow_call_duration is not None or _SUCCEEDED.receivers:  # (else nothing to time)
            seconds, slow = self._timing(ticket, start)
            self._tell(_SUCCEEDED, seconds)
            if slow:
                self._tell(_SLOW, seconds, error=None)
        if ticket == _PROBE:  # (a slow probe has not shown the service well)
            self._apply(BreakerOp.PROBE_FAILURE if slow else BreakerOp.PROBE_SUCCESS, self.clock())
        elif not slow and (ticket == _PASS or not self._view.failures):
            self._successes += 1  # nothing to reset: counted (and put in the window) with the next round trip
        else:
            self._apply(BreakerOp.SLOW_SUCCESS if slow else BreakerOp.SUCCESS, self.clock())

    def _failed(
        self, ticket: int, error: BaseException, start: float | None = None
    ) -> BreakerOpenError | None:
        """Record a failed call; if the breaker is open afterwards, the error a further attempt
        would meet (so a retry stops now instead of waiting first)."""
        seconds, slow = self._timing(ticket, start)
        if not self._counts(error) or isinstance(error, BreakerOpenError):
            self._tell(_IGNORED, seconds, error=error)
            if ticket == _PROBE:  # the service answered: the probe succeeded (unless slow)
                if slow:
                    self._tell(_SLOW, seconds, error=error)
                self._apply(BreakerOp.PROBE_FAILURE if slow else BreakerOp.PROBE_SUCCESS, self.clock())
            return None
        self._last_failure = error
        with contextlib.suppress(AttributeError, TypeError):  # an exception class with __slots__
            setattr(error, DEPENDENCY_MARK, self.name)
        return self._record_failure(ticket, error, seconds, slow)

    def _record_failure(
        self, ticket: int, error: BaseException, seconds: float | None, slow: bool
    ) -> BreakerOpenError | None:
        self._tell(_FAILED, seconds, error=error)
        if slow:
            self._tell(_SLOW, seconds, error=error)
        now = self.clock()
        if ticket == _PROBE:
            op = BreakerOp.PROBE_FAILURE
        else:
            op = BreakerOp.SLOW_FAILURE if slow else BreakerOp.FAILURE
        view = self._apply(op, now)[0]
        if view.state is _OPEN or view.state is _FORCED_OPEN:
            return BreakerOpenError(self.name, self.service, self._seconds_left(view, now), original=error)
        return None

    def _interrupted(self, ticket: int, error: BaseException, start: float | None = None) -> None:
        """A call ended by a BaseException that is not an Exception (a cancellation, ...): a
        cancellation is a failure if ``count_cancelled``; else nothing is counted, and a probe's
        slot is given back at once (the next caller may probe)."""
        seconds, slow = self._timing(ticket, start)
        if self.count_cancelled and isinstance(error, asyncio.CancelledError):
            self._record_failure(ticket, error, seconds, slow)
            return
        self._tell(_IGNORED, seconds, error=error)
        if ticket == _PROBE:
            self._apply(BreakerOp.RELEASE, self.clock())

    def _through(self, func: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        """``func`` with every call made as :meth:`call` makes it, for ``@guarded``'s retries; but a
        failure that leaves the breaker open raises :class:`BreakerOpenError` (``__cause__``: the
        failure), so that the retry stops at once."""
        if is_async:

            async def attempt_async(*args: Any, **kwargs: Any) -> Any:
                steps = self._attempt(func, args, kwargs, True)
                try:
                    return await drive(steps)
                except BaseException as exc:
                    if isinstance(exc, Exception) or inspect.getgeneratorstate(steps) != "GEN_SUSPENDED":
                        raise
                    steps.throw(exc)  # a cancellation while awaiting: the steps' handler records it
                    raise

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
        except BaseException as exc:
            self._interrupted(ticket, exc)  # at once: a cancelled caller may not await again
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
            from sessionmw._manager import get_session_manager

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

    def _keeps_off_store(self, op: BreakerOp) -> bool:
        """True if this operation stays in the process: the store failed less than
        ``store_backoff`` ago. Once that has passed, the first operation (one, across threads)
        tries the store again and the others keep off it for another ``store_backoff``. An
        operator's command always tries the store."""
        if self._down_until == -math.inf or op in OPERATOR_OPS:
            return False
        with self._down_lock:
            now = self.monotonic()
            if now < self._down_until:
                return True
            self._down_until = now + self.store_backoff  # this one tries; the others keep off
            return False

    def _apply(self, op: BreakerOp, now: float) -> tuple[BreakerRecord, StepResult]:
        """One atomic operation at the store (pending counts ride along); signals its change.

        After a store error, this process's own breaker (started from its last view) serves for
        ``store_backoff`` seconds without touching the store; then the store is tried again, and
        the first answer from it replaces this process's record (the store's state wins)."""
        successes, rejections = self._successes, self._rejections
        self._successes -= successes  # (not = 0: another thread may have counted one meanwhile)
        self._rejections -= rejections
        if self._keeps_off_store(op):
            error = self._down_error
            if self._local is None and error is not None:  # fail-closed and the store is down
                self._successes += successes
                self._rejections += rejections
                raise error
            record, result = self._offline(op, now, successes, rejections)
        else:
            record, result = self._at_store(op, now, successes, rejections)
        after = self.monotonic()  # (stamped after the round trip: the view is as old as its answer)
        self._view = record
        self._read_at = after
        self._fresh_until = after + self.state_ttl
        change = result.change
        if change is not None:
            self._announce(change.old, change.new, change.event.value)
        return record, result

    def _at_store(self, op: BreakerOp, now: float, successes: int, rejections: int) -> Applied:
        mode = "fail_open"
        try:
            backend, mode = self._backend()
            applied = backend.apply(self.name, op, now, self.config, successes, rejections)
        except CorruptRecordError as exc:  # whatever on_store_error says: never blame the caller
            self._store_failed(op, exc, "this process's own breaker serves")
            return self._offline(op, now, successes, rejections)
        except StoreUnavailableError as exc:
            if mode == "fail_closed":
                self._store_failed(op, exc, "calls are refused")
                self._successes += successes
                self._rejections += rejections
                self._down_error = exc
                raise
            self._store_failed(op, exc, "this process's own breaker serves")
            return self._offline(op, now, successes, rejections)
        if self._down_until != -math.inf:
            _log.info("breaker %s: its store answers again; the store's state is used", self.name)
        self._local = None
        self._down_until = -math.inf
        self._down_error = None
        return applied

    def _store_failed(self, op: BreakerOp, exc: StoreError, meanwhile: str) -> None:
        """Keep off the store for ``store_backoff``; log one line and send ``store_error``."""
        self._down_until = self.monotonic() + self.store_backoff  # (after the failed round trip)
        _log.warning(
            "breaker %s: %s; %s for %gs",
            self.name,
            exc,
            meanwhile,
            self.store_backoff,
            extra={"breaker": self.name, "operation": f"breaker {op.value}"},
        )
        signals.send(signals.store_error, self, error=exc, operation=f"breaker {op.value}")

    def _offline(self, op: BreakerOp, now: float, successes: int, rejections: int) -> Applied:
        """The operation on this process's own breaker, started from the last view of the store's."""
        local = self._local
        if local is None:
            local = MemoryBreakers()
            local.seed(self._view)
            self._local = local
            self._down_error = None
        return local.apply(self.name, op, now, self.config, successes, rejections)

    def _announce(self, old: BreakerState, new: BreakerState, reason: str) -> None:
        signal = _SIGNAL_OF_STATE.get(new)
        if signal is not None and signal.receivers:
            signals.send(signal, self, name=self.name, old=old, new=new, reason=reason)

    # -- health ----------------------------------------------------------------------------------

    def dependency(self, now: float | None = None) -> dict[str, Any]:
        """The breaker as a session's health report shows it: ``name``, ``service``, ``state``,
        ``status`` (``pass`` closed or disabled, ``warn`` half-open, ``fail`` open or forced open),
        ``retry_in`` (whole seconds until a probe; None while forced open), ``message``, and
        ``failure_rate`` and ``slow_call_rate`` over the window (None without one, or before any
        call in it: only a breaker with ``failure_rate`` or ``slow_call_duration`` keeps it). Reads the
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
            status, message = "pass", fill(local(DEPENDENCY_AVAILABLE), {"service": self.service})
        elif state is _HALF_OPEN:
            status, message = "warn", fill(local(DEPENDENCY_PROBING), {"service": self.service})
        else:
            error = BreakerOpenError(self.name, self.service, self._seconds_left(view, now))
            status, message, retry_in = "fail", error.message, error.seconds_left
        failure_rate, slow_call_rate = view.window_rates()
        return {
            "name": self.name,
            "service": self.service,
            "state": state.value,
            "status": status,
            "retry_in": None if retry_in is None else math.ceil(retry_in),
            "message": message,
            "failure_rate": None if failure_rate is None else round(failure_rate, 4),
            "slow_call_rate": None if slow_call_rate is None else round(slow_call_rate, 4),
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
