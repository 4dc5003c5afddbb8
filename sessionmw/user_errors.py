"""The error users see: :class:`UserFacingError`, a friendly title, message and recovery steps.

It keeps the technical exception for logs (:attr:`~UserFacingError.original`) and shows its
text only when built in debug mode. :mod:`sessionmw.translation` builds one for any exception;
:meth:`UserFacingError.from_health` builds one for a session that may not work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from sessionmw.errors import (
    SessionDisconnectedError,
    SessionError,
    SessionExpiredError,
    SessionNotFoundError,
)
from sessionmw.retry_after import DEFAULT_RETRY_AFTER

if TYPE_CHECKING:
    from sessionmw.health import HealthReport

__all__ = ["SEVERITIES", "Severity", "UserFacingError", "checked_severity", "recovery_steps"]

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
