"""The translation registry: turn any exception into a friendly :class:`UserFacingError`.

:func:`translate` looks the exception up in a registry (predicates first, newest first; then the
exception's MRO) and builds a :class:`UserFacingError`. No exception text, type name or traceback
reaches the user unless ``debug=True``. :func:`format_error` renders the error for a UI.

.. code-block:: python

    try:
        load_prices("ACME")
    except Exception as exc:
        err = translate(exc)
        show(format_error(err, "html"))

The error type lives in :mod:`sessionmw.user_errors`, Retry-After in
:mod:`sessionmw.retry_after`, rendering in :mod:`sessionmw.rendering`; their public names are
importable from here too.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Final

from sessionmw._forks import ForkSafeLock
from sessionmw.errors import (
    BackendProcessError,
    DataLoadError,
    IllegalTransitionError,
    SessionDisconnectedError,
    SessionExpiredError,
    SessionLimitError,
    SessionNotFoundError,
    StoreUnavailableError,
    TransientError,
)
from sessionmw.health import MESSAGES, Message
from sessionmw.rendering import format_error
from sessionmw.retry_after import DEFAULT_RETRY_AFTER, parse_retry_after, retry_after_of
from sessionmw.user_errors import Severity, UserFacingError, checked_severity, recovery_steps

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "Severity",
    "Translation",
    "UserFacingError",
    "format_error",
    "is_transient",
    "parse_retry_after",
    "register_translation",
    "retry_after_of",
    "translate",
    "translation_for",
    "translations",
    "unregister_translation",
]

#: What a translation matches: an exception class (and its subclasses) or a predicate.
Matcher = type[BaseException] | Callable[[BaseException], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class Translation:
    """The user-facing text of one kind of exception, as registered."""

    #: A short heading, e.g. ``"Connection problem"``.
    title: str
    #: What happened, in one friendly sentence.
    message: str
    #: What the user can do, as ordered steps.
    recovery: tuple[str, ...] = ()
    #: ``"error"``, ``"warning"`` or ``"info"``.
    severity: Severity = "error"
    #: True when trying again may well succeed (retry strategies repeat these by default).
    transient: bool = False
    #: A session health code (``"expired"``, ``"disconnected"``, ``"not_found"``) where one applies.
    status: str | None = None
    #: Extra context for the user (may be empty).
    context: str = ""
    #: Seconds a client should wait before trying again (transient errors only).
    retry_after: float | None = None


# -- the registry ---------------------------------------------------------------------------------

_lock = ForkSafeLock()
_by_type: dict[type[BaseException], Translation] = {}
_predicates: list[tuple[Callable[[BaseException], bool], Translation]] = []  # newest first
_cache: dict[type[BaseException], Translation] = {}


def register_translation(
    match: Matcher,
    *,
    title: str,
    message: str,
    recovery: Iterable[str] = (),
    severity: Severity = "error",
    transient: bool = False,
    status: str | None = None,
    context: str = "",
    retry_after: float | None = None,
) -> Translation:
    """Show ``title``/``message``/``recovery`` for exceptions that ``match``; returns the entry.

    :param match: an exception class (its subclasses match too, the closest class in the MRO
        wins) or a predicate ``(exc) -> bool``. Predicates are tried before classes, newest first;
        registering a class again replaces its entry.
    :param transient: True if trying again may succeed: :class:`~sessionmw.RetryStrategy`
        retries these by default and ``retry_after`` (default :data:`DEFAULT_RETRY_AFTER`) is
        what an HTTP client is told to wait.
    :param status: a session health code, when the exception means the session is in that state.
    """
    if not isinstance(title, str) or not title.strip():
        raise ValueError("a translation needs a non-empty title")
    if not isinstance(message, str) or not message.strip():
        raise ValueError("a translation needs a non-empty message")
    checked_severity(severity)
    if retry_after is not None and not (math.isfinite(retry_after) and retry_after >= 0):
        raise ValueError(f"retry_after must be a number of seconds >= 0, not {retry_after!r}")
    if transient and retry_after is None:
        retry_after = DEFAULT_RETRY_AFTER
    entry = Translation(
        title,
        message,
        tuple(recovery_steps(recovery)),
        severity,
        bool(transient),
        status,
        context,
        None if retry_after is None else float(retry_after),
    )
    _install(match, entry)
    return entry


def _install(match: Matcher, entry: Translation) -> None:
    with _lock:
        if isinstance(match, type):
            if not issubclass(match, BaseException):
                raise TypeError(f"can only translate exception classes, not {match.__name__}")
            _by_type[match] = entry
        elif callable(match):
            _predicates.insert(0, (match, entry))
        else:
            raise TypeError(f"match must be an exception class or a predicate, not {type(match).__name__}")
        _cache.clear()


def unregister_translation(match: Matcher) -> bool:
    """Remove the entry registered for ``match`` (a class or predicate); False if there was none."""
    with _lock:
        _cache.clear()
        if isinstance(match, type):
            return _by_type.pop(match, None) is not None
        for index, (predicate, _entry) in enumerate(_predicates):
            if predicate is match:
                del _predicates[index]
                return True
        return False


def translations() -> list[tuple[Matcher, Translation]]:
    """Every registered entry: predicates (newest first), then classes in registration order."""
    _register_redis()
    with _lock:
        return [*_predicates, *_by_type.items()]


def translation_for(exc: BaseException) -> Translation:
    """The entry that applies to ``exc`` (the fallback when nothing matches)."""
    for predicate, entry in _predicates:
        try:
            if predicate(exc):
                return entry
        except Exception:  # a broken predicate must not hide the real error
            continue
    exc_type = type(exc)
    cached = _cache.get(exc_type)
    if cached is not None:
        return cached
    _register_redis()
    found = FALLBACK
    for klass in exc_type.__mro__:
        candidate = _by_type.get(klass)
        if candidate is not None:
            found = candidate
            break
    _cache[exc_type] = found
    return found


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` translates to a transient error (the retry strategies' default test)."""
    if isinstance(exc, UserFacingError):
        return exc.transient
    return translation_for(exc).transient


def translate(exc: BaseException, *, debug: bool = False) -> UserFacingError:
    """The :class:`UserFacingError` for ``exc``; a UserFacingError is returned unchanged.

    With ``debug=True`` the error's :attr:`~UserFacingError.detail` (and ``str()``) include the
    exception's type, text and traceback.
    """
    if isinstance(exc, UserFacingError):
        return exc
    entry = translation_for(exc)
    retry_after = None
    if entry.transient:
        retry_after = retry_after_of(exc)
        if retry_after is None:
            retry_after = entry.retry_after
    detail = "".join(traceback.format_exception(exc)).rstrip() if debug else None
    return UserFacingError(
        entry.message,
        title=entry.title,
        recovery=entry.recovery,
        severity=entry.severity,
        transient=entry.transient,
        status=entry.status,
        context=entry.context,
        original=exc,
        retry_after=retry_after,
        detail=detail,
    )


# -- built-in entries ----------------------------------------------------------------------------

_TRY_AGAIN = (
    "Wait a moment and try again.",
    "If it fails again, refresh the page.",
    "If the problem continues, contact support.",
)

#: What every exception without an entry becomes.
FALLBACK: Final = Translation(
    "Something went wrong",
    "⚠️ An unexpected error occurred while processing your request",
    (
        "Try the action again.",
        "If it fails again, refresh the page.",
        "If the problem continues, contact support.",
    ),
)
_CONNECTION: Final = Translation(
    "Connection problem",
    "🔌 We could not reach a service this page depends on",
    ("Check your network connection.", *_TRY_AGAIN),
    transient=True,
    context="Connection problems are usually over within a few seconds.",
    retry_after=DEFAULT_RETRY_AFTER,
)
_TIMEOUT: Final = Translation(
    "Request timed out",
    "⏳ The request took too long to complete",
    _TRY_AGAIN,
    transient=True,
    context="The service may be busy right now.",
    retry_after=DEFAULT_RETRY_AFTER,
)
_DATA_LOAD: Final = Translation(
    "Data not available",
    "📂 The data you asked for could not be loaded",
    (
        "Check that what you asked for exists (a name, a date, a symbol).",
        "Try again later: the data may not be published yet.",
        "If the problem continues, contact support.",
    ),
)


def _from_message(key: str, status: str, severity: Severity) -> Translation:
    message: Message = MESSAGES[key]
    return Translation(message.title, message.message, message.recovery, severity, status=status)


_EXPIRED: Final = _from_message("expired", "expired", "warning")
_DISCONNECTED: Final = _from_message("disconnected", "disconnected", "error")


def _session_not_running(exc: BaseException) -> bool:
    """The seed's original symptom: ``RuntimeError("This session is not running")``."""
    return isinstance(exc, RuntimeError) and str(exc).strip().rstrip(".").lower() == (
        "this session is not running"
    )


def _illegal_on_expired(exc: BaseException) -> bool:
    """Activity refused because the session is expired or ended."""
    return isinstance(exc, IllegalTransitionError) and exc.state in ("expired", "ended")


def _illegal_on_disconnected(exc: BaseException) -> bool:
    """An operation refused because the session is disconnected."""
    return isinstance(exc, IllegalTransitionError) and exc.state == "disconnected"


def _transient(title: str, message: str, **extra: Any) -> Translation:
    return Translation(title, message, _TRY_AGAIN, transient=True, retry_after=DEFAULT_RETRY_AFTER, **extra)


_BUILTINS: Final[tuple[tuple[Matcher, Translation], ...]] = (
    (ConnectionError, _CONNECTION),
    (TimeoutError, _TIMEOUT),  # socket.timeout is TimeoutError
    (BrokenPipeError, _transient("Connection interrupted", "🔌 The connection to a service was interrupted")),
    (
        PermissionError,
        Translation(
            "Access denied",
            "🔒 The server is not allowed to access something this request needs",
            ("If you think this is a mistake, contact support.",),
        ),
    ),
    (FileNotFoundError, _DATA_LOAD),
    (DataLoadError, _DATA_LOAD),
    (
        MemoryError,
        Translation(
            "Request too large",
            "🧮 The server ran out of memory working on your request",
            (
                "Try a smaller request (fewer items or a shorter period).",
                "If it keeps failing, contact support.",
            ),
        ),
    ),
    (
        BackendProcessError,
        _transient(
            "Background service failed", "⚙️ A background service stopped while working on your request"
        ),
    ),
    (TransientError, _transient("Temporary problem", "⚠️ A temporary problem stopped your request")),
    (
        StoreUnavailableError,
        _transient("Service unavailable", "⚠️ Session storage is not available right now"),
    ),
    (
        SessionLimitError,
        Translation(
            "Too many users",
            "🚦 The service is at capacity and cannot start a new session now",
            ("Wait a few minutes and try again.",),
            "warning",
            transient=True,
            retry_after=60.0,
        ),
    ),
    (SessionExpiredError, _EXPIRED),
    (SessionDisconnectedError, _DISCONNECTED),
    (SessionNotFoundError, _from_message("not_found", "not_found", "warning")),
    (_illegal_on_expired, _EXPIRED),
    (_illegal_on_disconnected, _DISCONNECTED),
    (
        _session_not_running,
        Translation(
            "Session not running",
            "⚙️ The background process serving your session is not running",
            (
                "Try the action again: it restarts the process.",
                "If it fails again, refresh the page to reconnect your session.",
                "If the problem continues, contact support.",
            ),
            transient=True,
            retry_after=DEFAULT_RETRY_AFTER,
        ),
    ),
)
for _match, _entry in _BUILTINS:
    _install(_match, _entry)

_redis_done = False


def _register_redis() -> None:
    """Add redis-py's connection and timeout errors once redis has been imported by someone.

    An exception of redis-py cannot exist before ``redis.exceptions`` is imported, so sessionmw
    never imports redis itself just for this.
    """
    global _redis_done
    if _redis_done:
        return
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is None:
        return
    _redis_done = True
    with _lock:
        _by_type.setdefault(redis_errors.ConnectionError, _CONNECTION)
        _by_type.setdefault(redis_errors.TimeoutError, _TIMEOUT)
        _cache.clear()
