"""User-facing errors: turn any exception into a friendly title, message and recovery steps.

:func:`translate` looks the exception up in a registry (predicates first, newest first; then the
exception's MRO) and builds a :class:`UserFacingError`. No exception text, type name or traceback
reaches the user unless ``debug=True``. :func:`format_error` renders the error for a UI.

.. code-block:: python

    try:
        load_prices("ACME")
    except Exception as exc:
        err = translate(exc)
        show(format_error(err, "html"))
"""

from __future__ import annotations

import dataclasses
import email.utils
import html
import math
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Literal, overload

from sessionmw.errors import (
    BackendProcessError,
    DataLoadError,
    IllegalTransitionError,
    SessionDisconnectedError,
    SessionError,
    SessionExpiredError,
    SessionLimitError,
    SessionNotFoundError,
    StoreUnavailableError,
    TransientError,
)
from sessionmw.health import MESSAGES, Message

if TYPE_CHECKING:
    from sessionmw.health import HealthReport

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

#: How bad an error is, for a UI's colour and icon.
Severity = Literal["error", "warning", "info"]
_SEVERITIES: Final = ("error", "warning", "info")

#: Seconds a client is told to wait (HTTP ``Retry-After``) after a transient error that did not
#: say how long itself.
DEFAULT_RETRY_AFTER: Final = 5.0

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


class UserFacingError(Exception):
    """An error as the user sees it: ``str(err)`` is the friendly message.

    Build one with :func:`translate` or :meth:`from_health`, or directly. The technical exception
    is kept in :attr:`original` (also ``__cause__``) for logs; it is never part of the text unless
    the error was built with ``debug=True`` (then :attr:`detail` holds the type, text and
    traceback).
    """

    def __init__(
        self,
        message: str,
        *,
        title: str = "Something went wrong",
        recovery: Iterable[str] = (),
        severity: Severity = "error",
        transient: bool = False,
        status: str | None = None,
        context: str = "",
        original: BaseException | None = None,
        retry_after: float | None = None,
        attempts: Iterable[BaseException] = (),
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        if severity not in _SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(_SEVERITIES)}, not {severity!r}")
        #: What happened, in one friendly sentence.
        self.message = message
        #: A short heading for the situation.
        self.title = title
        #: What the user can do, as ordered steps.
        self.recovery: list[str] = _steps(recovery)
        #: ``"error"``, ``"warning"`` or ``"info"``.
        self.severity: Severity = severity
        #: True when trying again may well succeed.
        self.transient = transient
        #: A session health code where one applies (``"expired"``, ``"disconnected"``, ...).
        self.status = status
        #: Extra context for the user (may be empty).
        self.context = context
        #: The technical exception behind this error (the last attempt's, after retries).
        self.original = original
        #: Seconds a client should wait before trying again (HTTP 503 ``Retry-After``).
        self.retry_after = retry_after
        #: Every attempt's exception, oldest first (one element without retries).
        self.attempts: tuple[BaseException, ...] = tuple(attempts)
        if not self.attempts and original is not None:
            self.attempts = (original,)
        #: Type, text and traceback of :attr:`original`; only set in debug mode.
        self.detail = detail
        if original is not None:
            self.__cause__ = original

    def __str__(self) -> str:
        if self.detail:
            return f"{self.message}\n\n{self.detail}"
        return self.message

    def __repr__(self) -> str:
        return f"UserFacingError({self.message!r}, title={self.title!r}, status={self.status!r})"

    @classmethod
    def from_health(cls, report: HealthReport, *, original: BaseException | None = None) -> UserFacingError:
        """The error for a session that is not healthy, in the report's own words.

        ``original`` defaults to the matching :class:`~sessionmw.SessionExpiredError`,
        :class:`~sessionmw.SessionDisconnectedError` or :class:`~sessionmw.SessionNotFoundError`.

        :raises ValueError: if the report is healthy.
        """
        status = report.status
        if status == "healthy":
            raise ValueError("a healthy session report is not an error")
        if original is None:
            exc_type = _SESSION_ERROR_OF_STATUS.get(status, SessionError)
            original = exc_type(f"session is {status}", session_id=report.session_id)
        transient = status == "error"
        return cls(
            report.message,
            title=report.title,
            recovery=report.recovery,
            severity=_SEVERITY_OF_STATUS.get(status, "error"),
            transient=transient,
            status=status,
            context=report.context,
            original=original,
            retry_after=DEFAULT_RETRY_AFTER if transient else None,
        )

    def replace(self, **changes: Any) -> UserFacingError:
        """A copy of this error with some attributes changed (``message=``, ``title=``, ...)."""
        values: dict[str, Any] = {
            "message": self.message,
            "title": self.title,
            "recovery": self.recovery,
            "severity": self.severity,
            "transient": self.transient,
            "status": self.status,
            "context": self.context,
            "original": self.original,
            "retry_after": self.retry_after,
            "attempts": self.attempts,
            "detail": self.detail,
        }
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"UserFacingError has no attribute(s) {', '.join(sorted(unknown))} to replace")
        values.update(changes)
        message = values.pop("message")
        return UserFacingError(message, **values)

    def with_attempts(self, attempts: Iterable[BaseException]) -> UserFacingError:
        """This error with ``attempts`` recorded (returns ``self``)."""
        self.attempts = tuple(attempts)
        return self


_SESSION_ERROR_OF_STATUS: dict[str, type[SessionError]] = {
    "expired": SessionExpiredError,
    "disconnected": SessionDisconnectedError,
    "not_found": SessionNotFoundError,
}
_SEVERITY_OF_STATUS: dict[str, Severity] = {
    "idle": "info",
    "expired": "warning",
    "not_found": "warning",
    "disconnected": "error",
    "error": "error",
}


def _steps(recovery: Iterable[str]) -> list[str]:
    if isinstance(recovery, str):
        raise TypeError("recovery must be a list of steps, not one string")
    steps = list(recovery)
    for step in steps:
        if not isinstance(step, str):
            raise TypeError(f"each recovery step must be a string, not {type(step).__name__}")
    return steps


# -- the registry ---------------------------------------------------------------------------------

_lock = threading.Lock()
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
    if severity not in _SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(_SEVERITIES)}, not {severity!r}")
    if retry_after is not None and not (math.isfinite(retry_after) and retry_after >= 0):
        raise ValueError(f"retry_after must be a number of seconds >= 0, not {retry_after!r}")
    if transient and retry_after is None:
        retry_after = DEFAULT_RETRY_AFTER
    entry = Translation(
        title,
        message,
        tuple(_steps(recovery)),
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


# -- Retry-After ---------------------------------------------------------------------------------

_SECONDS = re.compile(r"\s*\d+(\.\d+)?\s*")


def parse_retry_after(value: object, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: a number of seconds or an HTTP date.

    Returns None for a value that is neither (or negative, or not finite); a date in the past
    gives 0. ``now`` (default: ``time.time()``) is the time a date is measured from.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    if now is None:
        now = time.time()
    return max(0.0, when.timestamp() - now)


def retry_after_of(exc: BaseException, *, now: float | None = None) -> float | None:
    """The wait a server asked for: ``exc.retry_after``, or a ``Retry-After`` response header.

    Looks at a ``retry_after`` attribute (seconds or an HTTP date), then at
    ``exc.response.headers["Retry-After"]`` (requests, httpx). None when neither is usable.
    """
    value = getattr(exc, "retry_after", None)
    if value is not None:
        return parse_retry_after(value, now=now)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        header = headers.get("Retry-After")
    except Exception:
        return None
    return None if header is None else parse_retry_after(header, now=now)


# -- rendering -----------------------------------------------------------------------------------


@overload
def format_error(err: UserFacingError, fmt: Literal["text", "markdown", "html"] = "text") -> str: ...
@overload
def format_error(err: UserFacingError, fmt: Literal["dict"]) -> dict[str, Any]: ...
def format_error(
    err: UserFacingError, fmt: Literal["text", "markdown", "html", "dict"] = "text"
) -> str | dict[str, Any]:
    """Render ``err`` for display: ``"text"``, ``"markdown"``, ``"html"`` (escaped) or ``"dict"``.

    The dict is JSON-serialisable, with keys ``title message recovery severity transient status
    context retry_after`` (and ``detail`` in debug mode).
    """
    if not isinstance(err, UserFacingError):
        raise TypeError(f"format_error needs a UserFacingError (see translate()), not {type(err).__name__}")
    if fmt == "text":
        return _text(err)
    if fmt == "markdown":
        return _markdown(err)
    if fmt == "html":
        return _html(err)
    if fmt == "dict":
        data: dict[str, Any] = {
            "title": err.title,
            "message": err.message,
            "recovery": list(err.recovery),
            "severity": err.severity,
            "transient": err.transient,
            "status": err.status,
            "context": err.context,
            "retry_after": err.retry_after,
        }
        if err.detail:
            data["detail"] = err.detail
        return data
    raise ValueError(f"unknown format {fmt!r}: use 'text', 'markdown', 'html' or 'dict'")


def _text(err: UserFacingError) -> str:
    lines = [err.title, f"🎯 What happened: {err.message}"]
    if err.recovery:
        lines.append("🔧 How to fix it:")
        lines += [f"  {number}. {step}" for number, step in enumerate(err.recovery, 1)]
    if err.context:
        lines.append(f"📝 {err.context}")
    if err.detail:
        lines += ["", err.detail]
    return "\n".join(lines)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
_MARKDOWN_LINE_START = re.compile(r"^(\s*(?:\d+)?)([-+.)])", re.MULTILINE)


def _md(text: str) -> str:
    """``text`` with Markdown's special characters escaped, so it renders literally."""
    return _MARKDOWN_LINE_START.sub(r"\1\\\2", _MARKDOWN_SPECIAL.sub(r"\\\1", text))


def _markdown(err: UserFacingError) -> str:
    parts = [f"**{_md(err.title)}**", _md(err.message)]
    if err.recovery:
        parts.append("\n".join(f"{number}. {_md(step)}" for number, step in enumerate(err.recovery, 1)))
    if err.context:
        parts.append(f"*{_md(err.context)}*")
    if err.detail:
        longest = max((len(run) for run in re.findall(r"`+", err.detail)), default=0)
        fence = "`" * max(3, longest + 1)
        parts.append(f"{fence}text\n{err.detail}\n{fence}")
    return "\n\n".join(parts)


def _html(err: UserFacingError) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    parts = [
        f'<div class="sessionmw-error sessionmw-{esc(err.severity)}" role="alert">',
        f'<p class="sessionmw-error-title"><strong>{esc(err.title)}</strong></p>',
        f'<p class="sessionmw-error-message">{esc(err.message)}</p>',
    ]
    if err.recovery:
        steps = "".join(f"<li>{esc(step)}</li>" for step in err.recovery)
        parts.append(f'<ol class="sessionmw-error-recovery">{steps}</ol>')
    if err.context:
        parts.append(f'<p class="sessionmw-error-context">{esc(err.context)}</p>')
    if err.detail:
        parts.append(f'<pre class="sessionmw-error-detail">{esc(err.detail)}</pre>')
    parts.append("</div>")
    return "".join(parts)


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
