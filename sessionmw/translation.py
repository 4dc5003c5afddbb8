"""Which situation: a technical exception, or a session's health report, becomes what a user is told.

This is the first of three steps (see :mod:`sessionmw.texts` for the words of each situation and
:mod:`sessionmw.rendering` for their layout):

- :func:`translate` looks an exception up in a registry (predicates first, newest first; then the
  exception's MRO) and builds a :class:`UserFacingError` from the entry's words. No exception
  text, type name or traceback reaches the user unless ``debug=True``. Apps add entries with
  :func:`register_translation`.
- :func:`statement` takes a session's health report and the last failure (if any) and returns the
  one :class:`Statement` a page shows: a title, one sentence, the cause, the steps and the buttons
  that make sense. Steps never suggest an action the server will refuse: a disconnected session
  is never told to "try again", an expired one never told to reconnect.
- :func:`retry_after_of` and :func:`parse_retry_after` read how long a server asked us to wait.

.. code-block:: python

    try:
        load_prices("ACME")
    except Exception as exc:
        err = translate(exc)
        show(format_error(err, "html"))

    said = statement(manager.check_health(session_id), failure=exc)
    if said is not None:
        show(said.title, said.message, said.steps)
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from sessionmw import texts
from sessionmw._errors import (
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
from sessionmw._forks import ForkSafeLock
from sessionmw.health import NETWORK_ERRORS
from sessionmw.texts import (
    EXCEPTIONS,
    MESSAGES,
    STATEMENTS,
    STEPS_AFTER_FAILURE,
    WITHOUT_INPUTS,
    Message,
    local,
)

if TYPE_CHECKING:
    from sessionmw.health import HealthReport

# The door's names defined here (Translation, UserFacingError, is_transient, register_translation,
# translate, unregister_translation) are imported from sessionmw.
__all__ = [
    "CAUSES",
    "DEFAULT_RETRY_AFTER",
    "RECONNECTED",
    "SEVERITIES",
    "SITUATIONS",
    "UNREACHABLE",
    "UNREACHABLE_LOCAL",
    "Cause",
    "Severity",
    "Statement",
    "cause_of",
    "checked_severity",
    "parse_retry_after",
    "plain",
    "recovery_steps",
    "retry_after_of",
    "statement",
    "translation_for",
    "translations",
]

# -- Retry-After: how long a client is told to wait, and how long a server asked us to wait --------

#: Seconds a client is told to wait (HTTP ``Retry-After``) after a transient error that did not
#: say how long itself.
DEFAULT_RETRY_AFTER: Final = 5.0

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


# -- the error users see ---------------------------------------------------------------------------

#: How bad an error is, for a UI's colour and icon.
Severity = Literal["error", "warning", "info"]
#: Every :data:`Severity`, worst first.
SEVERITIES: Final = ("error", "warning", "info")


def checked_severity(severity: str) -> Severity:
    """``severity`` if it is one of :data:`SEVERITIES`.

    :raises ValueError: naming the allowed values.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    return cast(Severity, severity)


def recovery_steps(recovery: Iterable[str]) -> list[str]:
    """``recovery`` as a list of steps.

    :raises TypeError: for one string instead of a list, or a step that is not a string.
    """
    if isinstance(recovery, str):
        raise TypeError("recovery must be a list of steps, not one string")
    steps = list(recovery)
    for step in steps:
        if not isinstance(step, str):
            raise TypeError(f"each recovery step must be a string, not {type(step).__name__}")
    return steps


#: Every built-in situation an error can be, by its stable name (:attr:`UserFacingError.situation`):
#: the session's own (from its health) and the built-in translations' (see :func:`translate`).
SITUATIONS: Final = (
    "session-expired",
    "session-ended",
    "session-not-found",
    "session-disconnected",
    "session-error",
    "session-idle",
    "service-paused",
    "unexpected",
    "connection",
    "timeout",
    "connection-interrupted",
    "access-denied",
    "data-not-available",
    "out-of-memory",
    "backend-failed",
    "temporary",
    "store-unavailable",
    "too-many-users",
    "not-running",
)


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
        title: str = EXCEPTIONS["unexpected"].title,
        recovery: Iterable[str] = (),
        severity: Severity = "error",
        transient: bool = False,
        status: str | None = None,
        context: str = "",
        original: BaseException | None = None,
        retry_after: float | None = None,
        attempts: Iterable[BaseException] = (),
        detail: str | None = None,
        situation: str | None = None,
    ) -> None:
        super().__init__(message)
        severity = checked_severity(severity)
        #: What happened, in one friendly sentence.
        self.message = message
        #: A short heading for the situation.
        self.title = title
        #: What the user can do, as ordered steps.
        self.recovery: list[str] = recovery_steps(recovery)
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
        #: The built-in situation this error is (one of :data:`SITUATIONS`, e.g. ``"timeout"``),
        #: the stable name API clients get it by; None for an app's own error or translation.
        self.situation = situation
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
        situation = "session-ended" if report.state == "ended" else _SITUATION_OF_STATUS.get(status)
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
            situation=situation,
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
            "situation": self.situation,
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
#: The situation of a session's health status (an ended session's is ``session-ended``).
_SITUATION_OF_STATUS: dict[str, str] = {
    "idle": "session-idle",
    "error": "session-error",
    "disconnected": "session-disconnected",
    "expired": "session-expired",
    "not_found": "session-not-found",
    "degraded": "service-paused",
}
_SEVERITY_OF_STATUS: dict[str, Severity] = {
    "idle": "info",
    "expired": "warning",
    "not_found": "warning",
    "disconnected": "error",
    "error": "error",
}


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
    #: The built-in situation (one of :data:`SITUATIONS`); None for an app's own entry.
    situation: str | None = None


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
    entry = local(translation_for(exc))  # in the request's language (an app's own entry too)
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
        situation=entry.situation,
    )


# -- built-in entries: each situation's words come from the catalogue (sessionmw.texts) -----------


def _as_is(template: texts.Template) -> str:
    """``template`` if it needs nothing filled in, else ``""``."""
    return template if isinstance(template, str) and "{" not in template else ""


def _from_words(
    situation: str,
    words: Message,
    severity: Severity = "error",
    *,
    transient: bool = False,
    status: str | None = None,
    retry_after: float | None = None,
) -> Translation:
    """The translation of ``situation``, whose words are ``words``; the context is kept only when
    it has no placeholders (an exception has no session to fill them from)."""
    context = _as_is(words.context)
    if transient and retry_after is None:
        retry_after = DEFAULT_RETRY_AFTER
    return Translation(
        words.title,
        words.message,
        words.recovery,
        severity,
        transient,
        status,
        context,
        retry_after,
        situation,
    )


#: What every exception without an entry becomes.
FALLBACK: Final = _from_words("unexpected", EXCEPTIONS["unexpected"])
_CONNECTION: Final = _from_words("connection", EXCEPTIONS["connection"], transient=True)
_TIMEOUT: Final = _from_words("timeout", EXCEPTIONS["timeout"], transient=True)
_DATA_LOAD: Final = _from_words("data-not-available", EXCEPTIONS["data_not_available"])
_EXPIRED: Final = _from_words("session-expired", MESSAGES["expired"], "warning", status="expired")
_DISCONNECTED: Final = _from_words("session-disconnected", MESSAGES["disconnected"], status="disconnected")


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


_BUILTINS: Final[tuple[tuple[Matcher, Translation], ...]] = (
    (ConnectionError, _CONNECTION),
    (TimeoutError, _TIMEOUT),  # socket.timeout is TimeoutError
    (
        BrokenPipeError,
        _from_words("connection-interrupted", EXCEPTIONS["connection_interrupted"], transient=True),
    ),
    (PermissionError, _from_words("access-denied", EXCEPTIONS["access_denied"])),
    (FileNotFoundError, _DATA_LOAD),
    (DataLoadError, _DATA_LOAD),
    (MemoryError, _from_words("out-of-memory", EXCEPTIONS["out_of_memory"])),
    (BackendProcessError, _from_words("backend-failed", EXCEPTIONS["backend_failed"], transient=True)),
    (TransientError, _from_words("temporary", EXCEPTIONS["temporary"], transient=True)),
    (
        StoreUnavailableError,
        _from_words("store-unavailable", EXCEPTIONS["store_unavailable"], transient=True),
    ),
    (
        SessionLimitError,
        _from_words(
            "too-many-users", EXCEPTIONS["too_many_users"], "warning", transient=True, retry_after=60.0
        ),
    ),
    (SessionExpiredError, _EXPIRED),
    (SessionDisconnectedError, _DISCONNECTED),
    (
        SessionNotFoundError,
        _from_words("session-not-found", MESSAGES["not_found"], "warning", status="not_found"),
    ),
    (_illegal_on_expired, _EXPIRED),
    (_illegal_on_disconnected, _DISCONNECTED),
    (_session_not_running, _from_words("not-running", EXCEPTIONS["not_running"], transient=True)),
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


# -- what a page says about the session ----------------------------------------------------------

#: Why the session is in trouble: a failing backend service, the network, the session's age
#: (expired or ended), a server that no longer knows the session (restarted), or not known.
Cause = Literal["backend", "network", "expired", "restarted", "unknown"]
#: Every :data:`Cause`, in a stable order.
CAUSES: Final[tuple[Cause, ...]] = ("backend", "network", "expired", "restarted", "unknown")
#: What the page may offer: a Reconnect button, a page refresh.
Action = Literal["reconnect", "refresh"]


@dataclasses.dataclass(frozen=True, slots=True)
class Statement:
    """What the page says about the session right now: one title, one sentence, the steps."""

    #: The session's health status, or ``"reconnected"`` right after a successful reconnect.
    status: str
    #: Why (see :data:`Cause`).
    cause: Cause
    #: ``"info"``, ``"warning"``, ``"error"`` or ``"success"``: the colour of the message.
    tone: str
    #: A short heading.
    title: str
    #: What is wrong, in one sentence (no emoji: the page draws its own icon).
    message: str
    #: What the user can do, in order; none of them is refused by the server.
    steps: tuple[str, ...] = ()
    #: Extra context (may be empty).
    context: str = ""
    #: The buttons that make sense: ``"reconnect"``, ``"refresh"``.
    actions: tuple[Action, ...] = ()

    @property
    def recovery(self) -> tuple[str, ...]:
        """The :attr:`steps` (the name every user-facing text has for them)."""
        return self.steps

    def as_dict(self) -> dict[str, Any]:
        """The statement as a JSON-ready dict (the steps as a list)."""
        values = dataclasses.asdict(self)
        values["steps"] = list(self.steps)
        values["actions"] = list(self.actions)
        return values


def plain(text: str) -> str:
    """``text`` without the emoji (and spaces) it starts with: the seed's messages carry one."""
    start = 0
    # Emoji, their variation selectors and joiners are all above U+2000; ASCII text stays whole.
    while start < len(text) and _decoration(text[start]):
        start += 1
    return text[start:]


def _decoration(char: str) -> bool:
    """A space, or an emoji's part (no letter, no digit, no quotation mark)."""
    return char.isspace() or (ord(char) >= 0x2000 and not char.isalnum() and char not in "\u201c\u2018")


def _words(
    status: str, cause: Cause, tone: str, words: Message, actions: tuple[Action, ...] = ()
) -> Statement:
    """A statement in the catalogue's ``words`` (which have no placeholders)."""
    words = local(words)
    return Statement(
        status, cause, tone, words.title, plain(words.message), words.recovery, _as_is(words.context), actions
    )


#: The brief confirmation after a successful reconnect.
RECONNECTED: Final = _words("reconnected", "unknown", "success", STATEMENTS["reconnected"])
#: What a page says when it cannot reach the server at all (its health poll failed).
UNREACHABLE: Final = _words("error", "network", "warning", STATEMENTS["unreachable"])
#: The same, for a page served from this computer (``localhost``): no network is involved, the
#: server stopped (or is restarting).
UNREACHABLE_LOCAL: Final = _words("error", "backend", "warning", STATEMENTS["unreachable:local"])


def cause_of(failure: BaseException | None) -> Cause:
    """``"network"`` for connection and timeout errors (redis' too), else ``"backend"``.

    A :class:`~sessionmw.translation.UserFacingError` is judged by its original exception.
    None (no failure known) is ``"unknown"``.
    """
    if failure is None:
        return "unknown"
    if isinstance(failure, UserFacingError):
        if failure.original is None:
            return "backend"
        failure = failure.original
    if any(klass.__name__ in NETWORK_ERRORS for klass in type(failure).__mro__):
        return "network"
    return "backend"


def statement(
    report: Mapping[str, Any],
    *,
    failure: BaseException | None = None,
    reconnected: bool = False,
    inputs_kept: bool = True,
) -> Statement | None:
    """The one statement for a page showing a session with health ``report``; None: nothing to say.

    The statement speaks the report's own words (the catalogue's, filled for this session), except
    where it knows more: the cause of a disconnect, or the failure of the user's last action.

    :param report: a :class:`~sessionmw.health.HealthReport` (or its JSON form).
    :param failure: the last failure of the user's action, if any (an exception or the
        :class:`UserFacingError` built from it); it names the cause.
        Without it the report's ``cause`` (from the session's last error) does.
    :param reconnected: True right after a reconnect succeeded: a healthy session then gets a
        short confirmation.
    :param inputs_kept: False for a page that does not keep what the user typed across a reload
        or a reconnect (a server-rendered page; a Dash page keeps them with ``preserve``): no
        step then promises it.
    :raises ValueError: for a report without a known ``status``.
    """
    said = _statement(report, failure, reconnected)
    if said is None or inputs_kept:
        return said
    without = dict(local(tuple(WITHOUT_INPUTS.items())))
    steps = tuple(without.get(step, step) for step in said.steps)
    return dataclasses.replace(said, steps=tuple(step for step in steps if step))


def _statement(
    report: Mapping[str, Any], failure: BaseException | None, reconnected: bool
) -> Statement | None:
    status = report.get("status")
    if status == "healthy":
        if failure is not None:  # a failure the session is not blamed for (a breaker counted it)
            return _error(report, failure)
        return local(RECONNECTED) if reconnected else None
    if status == "idle":
        return _own_words(report, "idle", "unknown", "info")
    if status == "error":
        return _error(report, failure)
    if status == "disconnected":
        cause = cause_of(failure) if failure is not None else _reported_cause(report)
        if cause in ("network", "backend"):
            return _words("disconnected", cause, "error", STATEMENTS[f"disconnected:{cause}"], ("reconnect",))
        return _own_words(report, "disconnected", "unknown", "error", ("reconnect",))
    if status == "expired":
        return _own_words(report, "expired", "expired", "warning", ("refresh",))
    if status == "not_found":
        return _own_words(report, "not_found", "restarted", "warning", ("refresh",))
    if status == "degraded":  # a paused dependency (a circuit breaker): the session itself is fine
        said = _own_words(report, "degraded", "backend", "warning")
        now = _paused_now(report)
        return said if now is None else dataclasses.replace(said, message=now)
    raise ValueError(
        "report status must be healthy, idle, error, disconnected, expired, not_found or degraded, "
        f"not {status!r}"
    )


def _own_words(
    report: Mapping[str, Any], status: str, cause: Cause, tone: str, actions: tuple[Action, ...] = ()
) -> Statement:
    """The statement in the report's own words; what the report lacks comes from the catalogue's
    entry for ``status``, where it needs nothing filled in."""
    words = local(MESSAGES[status])
    recovery = report.get("recovery")
    if recovery is None:
        steps = tuple(step for step in words.recovery if _as_is(step))
    else:
        steps = tuple(str(step) for step in recovery)
    return Statement(
        status,
        cause,
        tone,
        str(report.get("title") or words.title),
        plain(str(report.get("message") or _as_is(words.message))),
        steps,
        str(report.get("context") or _as_is(words.context)),
        actions,
    )


def _paused_now(report: Mapping[str, Any]) -> str | None:
    """ "... trying again now" when the report's first paused dependency is open with no time left
    (a probe is due: the next call makes it); else None (the report's own message stands)."""
    dependencies = report.get("dependencies") or ()
    first = dependencies[0] if dependencies else None
    if not isinstance(first, Mapping) or first.get("state") != "open" or first.get("retry_in") != 0:
        return None
    return texts.paused_message(str(first.get("service") or first.get("name") or "data"), 0)


def _reported_cause(report: Mapping[str, Any]) -> Cause:
    """The cause the report names (from the session's last error), else ``"unknown"``."""
    cause = report.get("cause")
    return "network" if cause == "network" else "backend" if cause == "backend" else "unknown"


def _error(report: Mapping[str, Any], failure: BaseException | None) -> Statement:
    if failure is None:  # e.g. a failing custom health check: the report's own words
        return _own_words(report, "error", "unknown", "warning")
    err = failure if isinstance(failure, UserFacingError) else translate(failure)
    cause = cause_of(failure)
    if err.original is None and err.recovery:  # raised by the app with its own steps: its words
        steps: tuple[str, ...] = tuple(err.recovery)
    else:  # network: the server's connection to a service (the user's own network reached us)
        steps = local(STEPS_AFTER_FAILURE["network" if cause == "network" else "backend"])
    return Statement(
        "error", cause, "warning", err.title, plain(err.message), steps, str(report.get("context") or "")
    )
