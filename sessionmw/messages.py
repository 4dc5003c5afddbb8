"""One statement for the page: what is wrong, why, and the recovery steps that fit the cause.

A session banner and a callback's alert must not speak with two voices. :func:`statement` takes
the session's health report and the last failure (if any) and returns the one
:class:`Statement` a page shows: a title, one sentence, the cause, the steps and the buttons
that make sense. Steps never suggest an action the server will refuse: a disconnected session
is never told to "try again", an expired one never told to reconnect.

.. code-block:: python

    from sessionmw.messages import statement

    said = statement(manager.check_health(session_id), failure=exc)
    if said is not None:
        show(said.title, said.message, said.steps)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final, Literal

from sessionmw.health import NETWORK_ERRORS
from sessionmw.translation import UserFacingError, translate
from sessionmw.wording import PAUSED, duration, paused_message

__all__ = [
    "CAUSES",
    "PAUSED",
    "RECONNECTED",
    "UNREACHABLE",
    "UNREACHABLE_LOCAL",
    "Cause",
    "Statement",
    "cause_of",
    "paused_message",
    "plain",
    "statement",
]

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

    def as_dict(self) -> dict[str, Any]:
        """The statement as a JSON-ready dict (the steps as a list)."""
        values = dataclasses.asdict(self)
        values["steps"] = list(self.steps)
        values["actions"] = list(self.actions)
        return values


#: The brief confirmation after a successful reconnect.
RECONNECTED: Final = Statement(
    "reconnected", "unknown", "success", "Reconnected", "Your session is active again."
)
#: What a page says when it cannot reach the server at all (its health poll failed).
UNREACHABLE: Final = Statement(
    "error",
    "network",
    "warning",
    "Connection problem",
    "The server cannot be reached right now.",
    ("Check your network connection.", "Wait a moment: this page checks again by itself."),
)
#: The same, for a page served from this computer (``localhost``): no network is involved, the
#: server stopped (or is restarting).
UNREACHABLE_LOCAL: Final = Statement(
    "error",
    "backend",
    "warning",
    "Server not running",
    "The server of this page, on this computer, is not answering: it was stopped or is restarting.",
    ("Start the server again if it was stopped.", "Wait a moment: this page checks again by itself."),
)


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

    :param report: a :class:`~sessionmw.health.HealthReport` (or its JSON form).
    :param failure: the last failure of the user's action, if any (an exception or the
        :class:`~sessionmw.translation.UserFacingError` built from it); it names the cause.
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
    steps = tuple(_WITHOUT_INPUTS.get(step, step) for step in said.steps)
    return dataclasses.replace(said, steps=tuple(step for step in steps if step))


#: A step that promises the user's inputs, as a page that does not keep them says it ('': dropped).
_WITHOUT_INPUTS: Final[dict[str, str]] = {
    "Then click Reconnect: your inputs are kept.": "Then click Reconnect.",
    "Click Reconnect: your inputs are kept.": "Click Reconnect.",
    "Your inputs come back after the refresh.": "",
}


def _statement(
    report: Mapping[str, Any], failure: BaseException | None, reconnected: bool
) -> Statement | None:
    status = report.get("status")
    if status == "healthy":
        if failure is not None:  # a failure the session is not blamed for (a breaker counted it)
            return _error(report, failure)
        return RECONNECTED if reconnected else None
    if status == "idle":
        return _idle(report)
    if status == "error":
        return _error(report, failure)
    if status == "disconnected":
        return _disconnected(cause_of(failure) if failure is not None else _reported_cause(report))
    if status == "expired":
        return Statement(
            "expired",
            "expired",
            "warning",
            str(report.get("title") or "Session expired"),
            plain(str(report.get("message") or "Your session has expired")),
            ("Refresh the page to start a new session.", "Your inputs come back after the refresh."),
            str(report.get("context") or ""),
            ("refresh",),
        )
    if status == "not_found":
        return Statement(
            "not_found",
            "restarted",
            "warning",
            "Session not found",
            "The server no longer knows your session: it was restarted, or you were away a long time.",
            ("Refresh the page to start a new session.", "Your inputs come back after the refresh."),
            "Nothing you did caused this.",
            ("refresh",),
        )
    if status == "degraded":  # a paused dependency (a circuit breaker): the session itself is fine
        return Statement(
            "degraded",
            "backend",
            "warning",
            str(report.get("title") or "Service paused"),
            _paused_now(report)
            or plain(str(report.get("message") or "A service this page depends on is paused")),
            tuple(str(step) for step in report.get("recovery") or ()),
            str(report.get("context") or ""),
        )
    raise ValueError(
        "report status must be healthy, idle, error, disconnected, expired, not_found or degraded, "
        f"not {status!r}"
    )


def _paused_now(report: Mapping[str, Any]) -> str | None:
    """ "... trying again now" when the report's first paused dependency is open with no time left
    (a probe is due: the next call makes it); else None (the report's own message stands)."""
    dependencies = report.get("dependencies") or ()
    first = dependencies[0] if dependencies else None
    if not isinstance(first, Mapping) or first.get("state") != "open" or first.get("retry_in") != 0:
        return None
    return paused_message(str(first.get("service") or first.get("name") or "data"), 0)


def _reported_cause(report: Mapping[str, Any]) -> Cause:
    """The cause the report names (from the session's last error), else ``"unknown"``."""
    cause = report.get("cause")
    return "network" if cause == "network" else "backend" if cause == "backend" else "unknown"


def _idle(report: Mapping[str, Any]) -> Statement:
    idle = report.get("seconds_idle")
    left = report.get("seconds_until_expiry")
    message = "Your session is idle"
    if isinstance(idle, (int, float)):
        message += f": no activity for {duration(idle)}"
    context = "Nothing is lost while your session is idle."
    if isinstance(left, (int, float)):
        context = f"Without activity it expires in {duration(left)}. " + context
    return Statement(
        "idle",
        "unknown",
        "info",
        "Session idle",
        message,
        ("Continue working to keep your session active.",),
        context,
    )


def _error(report: Mapping[str, Any], failure: BaseException | None) -> Statement:
    if failure is None:  # e.g. a failing custom health check: the report's own words
        own_steps = tuple(str(step) for step in report.get("recovery") or ())
        return Statement(
            "error",
            "unknown",
            "warning",
            str(report.get("title") or "Something went wrong"),
            plain(str(report.get("message") or "An error occurred while processing your request")),
            own_steps,
            str(report.get("context") or ""),
        )
    err = failure if isinstance(failure, UserFacingError) else translate(failure)
    cause = cause_of(failure)
    if err.original is None and err.recovery:  # raised by the app with its own steps: its words
        steps: tuple[str, ...] = tuple(err.recovery)
    elif cause == "network":  # the server's connection to a service: the user's network reached us
        steps = (
            "Try the action again in a moment: the connection may come back by itself.",
        )
    else:
        steps = (
            "Try the action again: most errors are temporary.",
            "If it keeps failing, wait a minute: the data service may be down.",
        )
    return Statement(
        "error", cause, "warning", err.title, plain(err.message), steps, str(report.get("context") or "")
    )


def _disconnected(cause: Cause) -> Statement:
    if cause == "network":
        message = "Your session was disconnected after repeated connection errors."
        steps: tuple[str, ...] = (
            "Wait a moment for the connection to the service to come back.",
            "Then click Reconnect: your inputs are kept.",
        )
    elif cause == "backend":
        message = "Your session was disconnected after repeated errors from the data service."
        steps = ("Wait a moment for the service to recover.", "Then click Reconnect: your inputs are kept.")
    else:
        message = "Your session was disconnected after repeated errors."
        steps = ("Click Reconnect: your inputs are kept.",)
    return Statement(
        "disconnected",
        cause,
        "error",
        "Session disconnected",
        message,
        steps,
        "Until you reconnect, actions are paused to protect your work.",
        ("reconnect",),
    )
