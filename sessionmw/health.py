"""Health reports: what a session's state means to the person using it, and how to recover.

A report carries the words of its situation (:data:`sessionmw.texts.MESSAGES`, filled for the
session), so a UI can show icon, title, message and numbered recovery steps. It is written in the
language of the current request (:func:`sessionmw.texts.local`), English outside one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from sessionmw._session import Policy, SessionRecord
from sessionmw._states import HealthStatus, SessionState
from sessionmw.texts import (
    CHECK_COULD_NOT_RUN,
    MESSAGES,
    Message,
    Plural,
    Template,
    duration,
    fill,
    local,
    span,
)

# The door's names defined here (CheckResult, HealthReport) are imported from sessionmw.
__all__ = [
    "NETWORK_ERRORS",
    "HealthCheck",
    "cause_of_error",
    "register_dependency_source",
    "run_check",
]

_log = logging.getLogger("sessionmw.health")


_STATUS_OF_STATE: dict[SessionState, HealthStatus] = {
    SessionState.ACTIVE: HealthStatus.HEALTHY,
    SessionState.IDLE: HealthStatus.IDLE,
    SessionState.ERROR: HealthStatus.ERROR,
    SessionState.DISCONNECTED: HealthStatus.DISCONNECTED,
    SessionState.EXPIRED: HealthStatus.EXPIRED,
    SessionState.ENDED: HealthStatus.EXPIRED,
}


class CheckResult(NamedTuple):
    """The outcome of one custom health check."""

    name: str
    healthy: bool
    message: str = ""


#: A custom health check: called with the session id, returns True/False, ``(ok, message)``
#: or a :class:`CheckResult`. Raising counts as failing.
HealthCheck = Callable[[str], "bool | tuple[bool, str] | CheckResult"]


class HealthReport(dict[str, Any]):
    """The health of one session: a JSON-ready dict whose keys are also attributes.

    ``health["healthy"]`` and ``health.healthy`` are the same; ``json.dumps(health)`` works.
    """

    __slots__ = ()

    @property
    def healthy(self) -> bool:
        """True when the session can be used normally."""
        return bool(self["healthy"])

    @property
    def status(self) -> str:
        """One of ``healthy idle error disconnected expired not_found``."""
        return str(self["status"])

    @property
    def state(self) -> str | None:
        """The session's state, or None when it was not found."""
        state = self["state"]
        return None if state is None else str(state)

    @property
    def session_id(self) -> str | None:
        """The session the report is about."""
        session_id = self["session_id"]
        return None if session_id is None else str(session_id)

    @property
    def title(self) -> str:
        """A short heading for the situation."""
        return str(self["title"])

    @property
    def icon(self) -> str:
        """An emoji for the situation."""
        return str(self["icon"])

    @property
    def message(self) -> str:
        """What happened, in one friendly sentence."""
        return str(self["message"])

    @property
    def recovery(self) -> list[str]:
        """What the user can do, as ordered steps."""
        return list(self["recovery"])

    @property
    def context(self) -> str:
        """Extra context for the user (may be empty)."""
        return str(self["context"])

    @property
    def error_count(self) -> int:
        """Errors recorded since the last success or reconnect."""
        return int(self["error_count"])

    @property
    def seconds_idle(self) -> float | None:
        """Seconds since the last activity."""
        value = self["seconds_idle"]
        return None if value is None else float(value)

    @property
    def seconds_until_expiry(self) -> float | None:
        """Seconds left before the session expires without activity (0 once expired)."""
        value = self["seconds_until_expiry"]
        return None if value is None else float(value)

    @property
    def checks(self) -> list[dict[str, Any]]:
        """The custom health checks' results: ``{"name", "healthy", "message"}`` each."""
        return list(self["checks"])

    @classmethod
    def build(
        cls,
        session_id: str | None,
        record: SessionRecord | None,
        now: float,
        policy: Policy,
        checks: list[CheckResult] | None = None,
        *,
        debug: bool = False,
        store: object = None,
    ) -> HealthReport:
        """The report for ``record`` (None: not found) at ``now``; with ``store``, the dependencies
        kept there are shown too (see :func:`register_dependency_source`)."""
        if record is None:
            message = local(MESSAGES["not_found"])  # shown as written: nothing to fill in
            text = _text_fields("not_found", None, message, message.message, _as_written(message.context))
            return cls._assemble(text, [*message.recovery], session_id, None, None, None, 0)
        status, state, terminal = _STATE_INFO[record.state]
        key = status
        if status == "expired":
            key = f"expired:{record.reason}"
            if key not in MESSAGES:
                key = "expired"
        message = local(MESSAGES[key])
        seconds_idle = now - record.last_activity
        if not seconds_idle > 0.0:  # max(0.0, ...) without the call (on every request)
            seconds_idle = 0.0
        until_expiry = 0.0 if terminal else record.expires_at(policy) - now
        if not until_expiry > 0.0:
            until_expiry = 0.0
        failed = None
        check_failed = None
        if checks:
            failed = next((check for check in checks if not check.healthy), None)
            if failed is not None and status == "healthy":
                status, message = "error", local(MESSAGES["check_failed"])
                check_failed = message
        fixed = _fixed_fields(status, state, message)
        if fixed is not None:  # no placeholders in the text (a healthy session's): the common case
            recovery = [*message.recovery]
        else:
            values = {
                "minutes_idle": int(seconds_idle // 60),
                "minutes_left": max(1, int(until_expiry // 60 + 0.999)),
                "errors_left": max(1, policy.error_threshold - record.error_count),
                "idle_for": duration(seconds_idle),
                "expires_in": duration(until_expiry),
                "timeout_minutes": _g(policy.timeout / 60),
                "lifetime_hours": _g(policy.absolute_timeout / 3600),
                "timeout": span(policy.timeout),
                "lifetime": span(policy.absolute_timeout),
                "check": failed.name if failed is not None else "",
            }
            fixed = _text_fields(
                status, state, message, fill(message.message, values), fill(message.context, values)
            )
            recovery = [fill(step, values) for step in message.recovery]
        report = cls._assemble(
            fixed, recovery, session_id, record.reason, seconds_idle, until_expiry, record.error_count
        )
        if failed is not None:
            report["healthy"] = False
            if message is check_failed and failed.message:
                report["message"] = failed.message  # the check's own words, used verbatim
        if checks:
            report["checks"] = [check._asdict() for check in checks]
        if status in ("error", "disconnected"):
            report["cause"] = cause_of_error(record.last_error)
        if store is not None and _DEPENDENCY_SOURCES:
            _add_dependencies(report, store)
        if debug:
            report["last_error"] = record.last_error
        return report

    @classmethod
    def _assemble(
        cls,
        fixed: dict[str, Any],
        recovery: list[str],
        session_id: str | None,
        reason: str | None,
        seconds_idle: float | None,
        until_expiry: float | None,
        error_count: int,
    ) -> HealthReport:
        """A report: a copy of ``fixed`` (see :func:`_text_fields`) with the record's keys filled in."""
        report = cls(fixed)
        report["session_id"] = session_id
        report["reason"] = reason
        report["recovery"] = recovery
        report["error_count"] = error_count
        report["seconds_idle"] = seconds_idle
        report["seconds_until_expiry"] = until_expiry
        report["checks"] = []
        return report


# state -> (health status value, state value, terminal?)
_STATE_INFO: dict[SessionState, tuple[str, str, bool]] = {
    state: (status.value, state.value, state.is_terminal) for state, status in _STATUS_OF_STATE.items()
}
_FORMAT_CACHE: dict[Message, bool] = {}
#: (status, state, the message's id: one per language) -> the message and its :func:`_fixed_fields`.
_FIXED: dict[tuple[str, str | None, int], tuple[Message, dict[str, Any] | None]] = {}


def _text_fields(status: str, state: str | None, message: Message, text: str, context: str) -> dict[str, Any]:
    """Every key of a report, in the order reports list them: the situation's text and codes; the
    keys :meth:`HealthReport._assemble` fills in per record are None."""
    return {
        "session_id": None,
        "healthy": status == "healthy",
        "status": status,
        "state": state,
        "reason": None,
        "icon": message.icon,
        "title": message.title,
        "message": text,
        "recovery": None,
        "context": context,
        "error_count": None,
        "seconds_idle": None,
        "seconds_until_expiry": None,
        "checks": None,
    }


def _fixed_fields(status: str, state: str | None, message: Message) -> dict[str, Any] | None:
    """:func:`_text_fields` of a message without placeholders (made once, never changed), or None
    when its text has placeholders to fill from the record."""
    key = (status, state, id(message))
    cached = _FIXED.get(key)
    if cached is None or cached[0] is not message:  # first use, or MESSAGES was changed
        fields = None
        if not _needs_format(message):
            fields = _text_fields(status, state, message, message.message, _as_written(message.context))
        cached = _FIXED[key] = (message, fields)
    return cached[1]


def _needs_format(message: Message) -> bool:
    needed = _FORMAT_CACHE.get(message)
    if needed is None:
        text = "".join((message.message, *message.recovery, _as_written(message.context)))
        needed = _FORMAT_CACHE[message] = "{" in text or isinstance(message.context, Plural)
    return needed


def _as_written(template: Template) -> str:
    """``template`` with nothing filled in (a :class:`~sessionmw.texts.Plural`: its plural form)."""
    return template if isinstance(template, str) else template.other


def _g(number: float) -> str:
    return f"{number:g}"


#: Exception type names that mean the network (or a service out of reach), not a failing backend.
NETWORK_ERRORS = frozenset(
    {
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "TimeoutError",
        "Timeout",
        "ReadTimeout",
        "ConnectTimeout",
    }
)


def cause_of_error(last_error: str | None) -> str | None:
    """``"network"`` or ``"backend"`` from a record's ``last_error`` (``"Type: text"``); None if unknown."""
    if not last_error:
        return None
    name, sep, _text = last_error.partition(":")
    if not sep or not name.isidentifier():
        return None
    return "network" if name in NETWORK_ERRORS else "backend"


#: Functions that list the paused dependencies (see :func:`register_dependency_source`).
_DEPENDENCY_SOURCES: list[Callable[[object], list[dict[str, Any]]]] = []


def register_dependency_source(source: Callable[[object], list[dict[str, Any]]]) -> None:
    """Have every report of a live session show the dependencies ``source(store)`` returns (the
    session manager's store: the breakers kept there).

    :mod:`sessionmw._breaker` registers its breakers here. Each item is a dict with ``name``,
    ``status`` (``pass``, ``warn`` or ``fail``) and ``message`` (a breaker adds ``service``,
    ``state`` and ``retry_in``). Each becomes a check ``breaker:<name>``; those not passing are
    listed under ``dependencies`` and make a healthy or idle session ``degraded``.
    """
    if source not in _DEPENDENCY_SOURCES:
        _DEPENDENCY_SOURCES.append(source)


def _add_dependencies(report: HealthReport, store: object) -> None:
    """Every dependency is a check; a healthy or idle session with a paused one is ``degraded``."""
    if report["state"] is None or report["state"] in ("expired", "ended"):
        return
    items: list[dict[str, Any]] = []
    for source in _DEPENDENCY_SOURCES:
        try:
            items += source(store)
        except Exception:
            _log.warning("dependency source %r raised", source, exc_info=True)
    paused = [item for item in items if item["status"] != "pass"]
    report["dependencies"] = paused
    if not items:
        return
    report["checks"] = [
        *report["checks"],
        *(
            {
                "name": f"breaker:{item['name']}",
                "healthy": item["status"] == "pass",
                "message": item["message"],
                "status": item["status"],
                **{key: item[key] for key in ("failure_rate", "slow_call_rate") if key in item},
            }
            for item in items
        ),
    ]
    if paused and report["status"] in ("healthy", "idle"):
        message = local(MESSAGES["degraded"])
        report.update(
            healthy=False,
            status="degraded",
            icon=message.icon,
            title=message.title,
            message=fill(message.message, {"paused_message": paused[0]["message"]}),
            recovery=list(message.recovery),
            context=_as_written(message.context),
        )


def run_check(name: str, check: HealthCheck, session_id: str, *, debug: bool) -> CheckResult:
    """Run one custom check; a check that raises fails with a message that leaks nothing."""
    try:
        result = check(session_id)
    except Exception as exc:
        _log.warning("health check %r raised", name, exc_info=True)
        detail = f" ({type(exc).__name__}: {exc})" if debug else ""
        return CheckResult(name, False, fill(local(CHECK_COULD_NOT_RUN), {"check": name}) + detail)
    if isinstance(result, CheckResult):
        return result._replace(name=name)
    if isinstance(result, tuple):
        ok, text = result
        return CheckResult(name, bool(ok), str(text))
    return CheckResult(name, bool(result), "")
