"""Retries with exponential backoff, and the seed's ``safe_execute``.

:class:`RetryStrategy` repeats a call that failed with a transient error (see
:func:`~sessionmw.is_transient`), waiting 1, 2, 4, ... seconds (capped), and reports the outcome
as ``(success, result, error)`` where ``error`` is a :class:`~sessionmw.UserFacingError` that keeps
every attempt's exception. Waits go through an injectable ``sleep``; :func:`set_testing` removes
them all for a test suite.

.. code-block:: python

    strategy = RetryStrategy(max_attempts=3, initial_delay=1.0)
    success, result, error = strategy.execute(unstable_function)

How it is built: the first call is plain code in every entry point (``execute``, the decorator,
``@guarded``), so the success path pays for nothing. After a first failure one loop,
``RetryStrategy._recovery``, decides every further attempt, for sync and async callers alike: a
generator of steps (:mod:`sessionmw._steps`) that sleeps and calls itself when sync and yields the
wait's and the call's awaitables when async, driven by ``run`` or ``drive``. We measured it
against stamina's design as we had it (an attempts object that a sync and an async loop drive,
``next_wait``/``failed`` per attempt) with callgrind on ``bench/bench_retry.py``'s retry case
(``execute``: fail, fail, succeed): 51.1k instructions a call with the object, 47.1k with the
generator, whose state lives in locals and whose settings are read once a call; the two copied
loops before either had 47.0k. Running a generator costs about 0.4 µs more than a plain call:
fine after two raised exceptions, not on a success path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import math
import random
import time
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast

import wrapt

from sessionmw import signals
from sessionmw._breaker import BreakerOpenError
from sessionmw._context import current_debug, current_scope
from sessionmw._errors import SessionMWError
from sessionmw._steps import Steps, drive, run
from sessionmw.translation import UserFacingError, is_transient, retry_after_of, translate

if TYPE_CHECKING:
    from sessionmw._manager import SessionManager

__all__ = [
    "RetryDetails",
    "RetryStrategy",
    "is_testing",
    "safe_execute",
    "set_testing",
]

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: What ``retry_on`` accepts: exception classes, or a predicate ``(exc) -> bool``.
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class RetryDetails:
    """One attempt of a retried call, as sent with the ``retry_*`` signals (``details=``)."""

    #: The qualified name of the function.
    name: str
    #: The attempt this record is about, from 1.
    attempt: int
    #: The most attempts the call could make.
    max_attempts: int
    #: Seconds waited before the next attempt (0 when there is none).
    delay: float
    #: Seconds waited in total so far (not counting ``delay``).
    waited: float
    #: The failed attempt's exception (for ``retry_succeeded``: the last failure before success).
    error: BaseException
    #: Why the strategy stopped (``retry_exhausted`` only): ``"attempts"``, ``"deadline"``,
    #: ``"session"`` (the session expired or disconnected), ``"breaker"`` (a circuit breaker is open)
    #: or ``"not_retryable"``.
    reason: str | None = None
    #: The session being served, if any.
    session_id: str | None = None


# -- testing mode --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _TestingMode:
    attempts: int | None
    cap: bool


_testing: _TestingMode | None = None


class _RestoreTesting:
    """Returned by :func:`set_testing`: as a context manager, restores the previous mode on exit."""

    def __init__(self, previous: _TestingMode | None) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        global _testing
        _testing = self._previous


def set_testing(testing: bool = True, *, attempts: int | None = None, cap: bool = False) -> _RestoreTesting:
    """Turn testing mode on (or off): retries wait no real time at all.

    :param attempts: in testing mode, every strategy makes this many attempts (None: its own
        ``max_attempts``).
    :param cap: with ``attempts``, only lower a strategy's ``max_attempts``, never raise it.

    The mode is set at once; use the return value as a context manager to restore the previous
    mode when the block ends.
    """
    global _testing
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1):
        raise ValueError(f"attempts must be a whole number >= 1, not {attempts!r}")
    previous = _testing
    _testing = _TestingMode(attempts, cap) if testing else None
    return _RestoreTesting(previous)


def is_testing() -> bool:
    """True while :func:`set_testing` has testing mode on."""
    return _testing is not None


# -- the strategy ---------------------------------------------------------------------------------


def _positive_number(name: str, value: object, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, not {value!r}")
    return float(value)


def _name_of(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


class RetryStrategy:
    """Call a function again after a transient failure, waiting longer each time.

    :param max_attempts: calls at most (1: no retry).
    :param initial_delay: seconds before the second attempt; each later wait is
        ``backoff_factor`` times the previous one, capped at ``max_delay``.
    :param jitter: up to this many random seconds added to each wait.
    :param retry_on: which failures to retry: exception classes or a predicate. Default: the
        transient ones (:func:`~sessionmw.is_transient`: connection, timeout,
        :class:`~sessionmw.TransientError`, :class:`~sessionmw.BackendProcessError`, ...).
    :param max_elapsed: no wait starts that would end more than this many seconds after the
        first attempt began.
    :param sleep: the wait function (inject a fake one in tests); ``async_sleep`` is awaited for
        ``async def`` functions (default :func:`asyncio.sleep`).
    :param clock: the monotonic clock ``max_elapsed`` is measured with.
    :param debug: put exception details in the error (default: the current session manager's
        ``debug`` setting, else False).

    The settings are fixed at construction (build another strategy to change them). An error
    that carries a server's ``Retry-After`` (a ``retry_after`` attribute in seconds or
    as an HTTP date) sets the next wait, capped at ``max_delay``. Inside a
    :func:`~sessionmw.session_scope`, no retry is attempted once the session is expired, ended or
    disconnected. A zero wait calls no sleep at all.
    """

    def __init__(
        self,
        max_attempts: int = 3,
        initial_delay: float = 1.0,
        backoff_factor: float = 2.0,
        max_delay: float = 30.0,
        jitter: float = 0.0,
        retry_on: RetryOn | None = None,
        max_elapsed: float | None = None,
        sleep: Callable[[float], object] = time.sleep,
        *,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        debug: bool | None = None,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a whole number >= 1, not {max_attempts!r}")
        #: Calls at most.
        self.max_attempts = max_attempts
        #: Seconds before the second attempt.
        self.initial_delay = _positive_number("initial_delay", initial_delay)
        #: Each wait is this many times the previous one.
        self.backoff_factor = _positive_number("backoff_factor", backoff_factor, minimum=1.0)
        #: No computed wait is longer (jitter comes on top).
        self.max_delay = _positive_number("max_delay", max_delay)
        #: Up to this many random seconds added to each wait.
        self.jitter = _positive_number("jitter", jitter)
        #: The overall deadline in seconds, or None.
        self.max_elapsed = None if max_elapsed is None else _positive_number("max_elapsed", max_elapsed)
        if not callable(sleep):
            raise TypeError(f"sleep must be callable, not {type(sleep).__name__}")
        #: Called with the seconds to wait (never with 0).
        self.sleep = sleep
        #: Awaited with the seconds to wait, for ``async def`` functions.
        self.async_sleep = async_sleep
        #: The monotonic clock ``max_elapsed`` is measured with.
        self.clock = clock
        #: Exception details in the error: True, False, or None for the session manager's setting.
        self.debug = debug
        self._should_retry = _retry_predicate(retry_on)
        self._schedule = _schedule(self.initial_delay, self.backoff_factor, self.max_delay, max_attempts - 1)
        self._random = random.Random()

    def __repr__(self) -> str:
        return (
            f"RetryStrategy(max_attempts={self.max_attempts}, initial_delay={self.initial_delay:g}, "
            f"backoff_factor={self.backoff_factor:g}, max_delay={self.max_delay:g})"
        )

    @property
    def delays(self) -> tuple[float, ...]:
        """The waits between attempts (``max_attempts - 1`` of them), before jitter and Retry-After."""
        count = self.max_attempts - 1
        schedule = self._schedule
        if count <= len(schedule):
            return schedule[:count]
        return schedule + (schedule[-1],) * (count - len(schedule))

    def delay_for(self, attempt: int, error: BaseException | None = None) -> float:
        """The wait after failed attempt number ``attempt`` (from 1), with jitter and Retry-After."""
        if error is not None:
            asked = retry_after_of(error)
            if asked is not None:
                return min(asked, self.max_delay)
        schedule = self._schedule
        delay = schedule[min(attempt, len(schedule)) - 1] if schedule else 0.0
        if self.jitter:
            delay += self.jitter * self._random.random()
        return delay

    def should_retry(self, error: BaseException) -> bool:
        """True if ``error`` is one this strategy retries."""
        return self._should_retry(error)

    # -- the seed's API --------------------------------------------------------------------------

    def execute(
        self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> tuple[bool, T | None, UserFacingError | None]:
        """Call ``func(*args, **kwargs)``, retrying; return ``(success, result, error)``.

        ``error`` is None on success, else the :class:`~sessionmw.UserFacingError` of the last
        attempt, with every attempt's exception in ``error.attempts``. ``KeyboardInterrupt``,
        ``SystemExit`` and ``GeneratorExit`` are never caught.
        """
        start = self.clock() if self.max_elapsed is not None else 0.0
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            return run(self._recovery(func, args, kwargs, exc, None, start, False))
        if type(result) is types.CoroutineType:
            cast(Coroutine[Any, Any, Any], result).close()
            raise TypeError(f"{_name_of(func)} is an async function: use `await strategy.execute_async(...)`")
        return True, result, None

    def call(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Like :meth:`execute`, but return the result or raise the :class:`~sessionmw.UserFacingError`."""
        return cast(T, _raised(self.execute(func, *args, **kwargs)))

    async def execute_async(
        self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> tuple[bool, T | None, UserFacingError | None]:
        """:meth:`execute` for an ``async def`` function: awaits it and ``async_sleep``."""
        start = self.clock() if self.max_elapsed is not None else 0.0
        try:
            result = await func(*args, **kwargs)
        except Exception as exc:
            return await drive(self._recovery(func, args, kwargs, exc, None, start, True))
        return True, result, None

    async def call_async(self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`call` for an ``async def`` function."""
        return cast(T, _raised(await self.execute_async(func, *args, **kwargs)))

    def __call__(self, func: F) -> F:
        """Use the strategy as a decorator: the function retries and raises a UserFacingError."""
        target = getattr(func, "__func__", func)
        if inspect.iscoroutinefunction(target):
            return cast(F, wrapt.FunctionWrapper(func, self._async_wrapper))
        return cast(F, wrapt.FunctionWrapper(func, self._wrapper))

    def _wrapper(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        start = self.clock() if self.max_elapsed is not None else 0.0
        try:
            return wrapped(*args, **kwargs)
        except Exception as exc:
            return _raised(run(self._recovery(wrapped, args, kwargs, exc, None, start, False)))

    async def _async_wrapper(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return _raised(await self.execute_async(wrapped, *args, **kwargs))

    # -- after a first failure: one engine (_recovery), driven by sessionmw._steps ----------------

    def recover(
        self,
        func: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: Exception,
        *,
        debug: bool | None = None,
        start: float | None = None,
    ) -> tuple[bool, T | None, UserFacingError | None]:
        """Go on after the first call ``func(*args, **kwargs)`` raised ``error``, as :meth:`execute` would.

        The seam for wrappers that make the first call themselves (``@guarded``): the success
        path then costs nothing here. ``start`` is the :attr:`clock` time the first call began
        (None: now); ``debug`` overrides the strategy's. For an ``async def`` function,
        ``await recover_async(...)`` with the same arguments.
        """
        return run(self._recovery(func, args, kwargs, error, debug, start, False))

    async def recover_async(
        self,
        func: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        error: Exception,
        *,
        debug: bool | None = None,
        start: float | None = None,
    ) -> tuple[bool, T | None, UserFacingError | None]:
        """:meth:`recover` for an ``async def`` function: awaits it and ``async_sleep``."""
        return await drive(self._recovery(func, args, kwargs, error, debug, start, True))

    def _recovery(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        first: Exception,
        debug: bool | None,
        start: float | None,
        awaiting: bool,
    ) -> Steps[tuple[bool, Any, UserFacingError | None]]:
        """The retry loop after a first failure, written once (see :mod:`sessionmw._steps`).

        Each failed attempt: stop (why: :attr:`RetryDetails.reason`) or wait and call again. The
        state lives in locals and the settings are read once: per attempt the loop makes no
        allocation but the error list's, and no call but the rules', the wait and the attempt.
        """
        limit, mode = self.max_attempts, _testing
        if mode is not None and mode.attempts is not None:
            limit = min(mode.attempts, limit) if mode.cap else mode.attempts
        max_elapsed, clock, should_retry = self.max_elapsed, self.clock, self._should_retry
        if start is None:
            start = clock() if max_elapsed is not None else 0.0
        scope = current_scope()  # the caller's: a call does not leave its session
        retry_attempt, retry_succeeded = signals.retry_attempt, signals.retry_succeeded
        errors = [first]
        error: Exception = first
        attempt, waited = 1, 0.0
        while True:
            if isinstance(error, BreakerOpenError):
                reason: str | None = "breaker"
            elif not should_retry(error):
                reason = "not_retryable"
            elif attempt >= limit:
                reason = "attempts"
            elif scope is not None and _session_refused(scope.manager, scope.session_id):
                reason = "session"
            else:
                reason = None
                delay = 0.0 if mode is not None else self.delay_for(attempt, error)
                if max_elapsed is not None and clock() - start + delay > max_elapsed:
                    reason = "deadline"
            if reason is not None:
                return False, None, self._give_up(func, attempt, limit, waited, errors, reason, debug)
            if retry_attempt.receivers:
                self._send(retry_attempt, func, attempt, limit, delay, waited, error)
            waited += delay
            attempt += 1
            if delay > 0:
                if awaiting:
                    yield self.async_sleep(delay)
                else:
                    self.sleep(delay)
            try:
                result = func(*args, **kwargs)
                if awaiting:
                    result = yield result
            except Exception as exc:
                errors.append(exc)
                error = exc
                continue
            if retry_succeeded.receivers:
                self._send(retry_succeeded, func, attempt, limit, 0.0, waited, error)
            return True, result, None

    def _give_up(
        self,
        func: Callable[..., Any],
        attempt: int,
        limit: int,
        waited: float,
        errors: list[Exception],
        reason: str,
        debug: bool | None,
    ) -> UserFacingError:
        last = errors[-1]
        if signals.retry_exhausted.receivers and (attempt > 1 or reason != "not_retryable"):
            self._send(signals.retry_exhausted, func, attempt, limit, 0.0, waited, last, reason)
        if debug is None:
            debug = self.debug if self.debug is not None else current_debug()
        return translate(last, debug=debug).with_attempts(errors)

    def _send(
        self,
        signal: Any,
        func: Callable[..., Any],
        attempt: int,
        limit: int,
        delay: float,
        waited: float,
        error: BaseException,
        reason: str | None = None,
    ) -> None:
        scope = current_scope()
        details = RetryDetails(
            _name_of(func),
            attempt,
            limit,
            delay,
            waited,
            error,
            reason,
            None if scope is None else scope.session_id,
        )
        signals.send(signal, self, details=details)


_MAX_SCHEDULE: Final = 1000


def _schedule(initial: float, factor: float, cap: float, count: int) -> tuple[float, ...]:
    """The waits before jitter, up to and including the first capped one (repeat the last)."""
    delays: list[float] = []
    delay = min(initial, cap)
    while len(delays) < min(count, _MAX_SCHEDULE):
        delays.append(delay)
        if delay >= cap or delay == 0.0 or factor == 1.0:
            break
        delay = min(delay * factor, cap)
    return tuple(delays)


def _retry_predicate(retry_on: RetryOn | None) -> Callable[[BaseException], bool]:
    if retry_on is None:
        return is_transient
    if isinstance(retry_on, type):
        if not issubclass(retry_on, BaseException):
            raise TypeError(f"retry_on must name exception classes, not {retry_on.__name__}")
        classes: tuple[type[BaseException], ...] = (retry_on,)
    elif isinstance(retry_on, tuple):
        for item in retry_on:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(f"retry_on must name exception classes, not {item!r}")
        classes = retry_on
    elif callable(retry_on):
        return retry_on
    else:
        raise TypeError(f"retry_on must be exception classes or a predicate, not {type(retry_on).__name__}")
    return functools.partial(_isinstance_of, classes)


def _isinstance_of(classes: tuple[type[BaseException], ...], error: BaseException) -> bool:
    return isinstance(error, classes)


def _raised(outcome: tuple[bool, T | None, UserFacingError | None]) -> T | None:
    """The result of an ``(ok, result, error)`` outcome, or its error raised."""
    error = outcome[2]
    if error is not None:
        raise error
    return outcome[1]


def _session_refused(manager: SessionManager, session_id: str) -> bool:
    """True if the session may no longer work: gone, expired, ended or disconnected (store trouble:
    False, the call may go on)."""
    try:
        record = manager.get_session(session_id)
    except SessionMWError:
        return False
    return record is None or not record.state.may_work


# -- safe_execute ---------------------------------------------------------------------------------


def safe_execute(
    func: Callable[..., T],
    /,
    *args: Any,
    error_message: str | None = None,
    default_value: T | None = None,
    **kwargs: Any,
) -> tuple[bool, T | None, UserFacingError | None]:
    """Call ``func(*args, **kwargs)`` once; never raise an ``Exception``.

    Returns ``(True, result, None)``, or ``(False, default_value, error)`` where ``error`` is the
    :class:`~sessionmw.UserFacingError` for the exception, with ``error_message`` (when given) as
    its message. ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` are never caught.
    """
    try:
        result = func(*args, **kwargs)
    except Exception as exc:
        error = translate(exc, debug=current_debug())
        if error_message is not None:
            error = error.replace(message=error_message)
        return False, default_value, error
    if type(result) is types.CoroutineType:
        cast(Coroutine[Any, Any, Any], result).close()
        raise TypeError(f"{_name_of(func)} is an async function: safe_execute cannot await it")
    return True, result, None
