"""The words: every sentence a user reads about a session, an error or a paused dependency.

This module is the catalogue, and the only place in sessionmw that holds user text (a test scans
the others). Three modules share the work, one step each:

- :mod:`sessionmw.translation` decides the *situation*: which entry applies to an exception, to a
  health report, to a page's statement;
- this module gives the situation its *words*: a :class:`Message` (icon, title, message, recovery
  steps, context) per situation, and the sentences that go around numbers (a countdown, a
  duration);
- :mod:`sessionmw.rendering` lays the words out as plain text (the CLI's guidance), Markdown, HTML
  or a JSON-ready dict; the HTTP banner and pages, the Dash banner and alert show the same words.

It is one flat module rather than a subpackage: a translator (and a message extractor) reads the
whole catalogue top to bottom in one file. Every entry is a whole sentence with named
``{placeholders}``, never assembled from fragments; a sentence whose words depend on a number is a
:class:`Plural` (gettext's ``ngettext``: a singular and a plural template, the number in a named
placeholder); every sentence with placeholders is filled by :func:`fill`; :func:`catalogue` lists
them all. :data:`MESSAGES` is the view the health reports read (the seed's ``health['message']``
strings, unchanged); the other entries are named constants.

The words are English; :func:`local` gives an entry in the language of the current request
(:mod:`sessionmw.languages` holds the translations and chooses the language). Outside a request
it returns the entry itself, at the cost of two context-variable reads.

.. code-block:: python

    from sessionmw.texts import MESSAGES, PAUSED_COUNTDOWN

    assert MESSAGES["expired"].message == "⏱️ Your session has expired due to inactivity"
    assert PAUSED_COUNTDOWN.format(n=1, service="prices") == (
        "The prices service is paused; we will try again in 1 second"
    )
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final, NamedTuple, Protocol, TypeVar

__all__ = [
    "ASKED",
    "BACK",
    "CHECK_COULD_NOT_RUN",
    "DEPENDENCY_AVAILABLE",
    "DEPENDENCY_PROBING",
    "DISMISS",
    "ENDPOINTS",
    "EXCEPTIONS",
    "HOW_TO_FIX",
    "MESSAGES",
    "PAUSED_COUNTDOWN",
    "PAUSED_FORCED",
    "PAUSED_NOW",
    "RECONNECT",
    "REQUEST_HEADERS_TOO_LARGE",
    "REQUEST_UNREADABLE",
    "STATEMENTS",
    "STEPS_AFTER_FAILURE",
    "WHAT_HAPPENED",
    "WITHOUT_INPUTS",
    "Message",
    "Plural",
    "Template",
    "asked",
    "catalogue",
    "duration",
    "fill",
    "follow_scopes",
    "local",
    "paused_countdown",
    "paused_message",
    "span",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Plural:
    """A sentence whose words depend on a number (gettext's ``ngettext``).

    :param one: the template for exactly one (``"{n} second"``; it names the number too, since
        other languages use the singular for more numbers than 1).
    :param other: the template for any other number.
    :param count: the placeholder that holds the number.
    """

    one: str
    other: str
    count: str = "n"

    def choose(self, number: float | str) -> str:
        """The template for ``number`` (a number, or a number already written out: ``"30"``)."""
        return self.one if float(number) == 1 else self.other

    def format(self, **values: Any) -> str:
        """The sentence for ``values`` (which hold :attr:`count`)."""
        return self.choose(values[self.count]).format(**values)


#: A catalogue sentence: a template with named placeholders, or a :class:`Plural`.
Template = str | Plural

E = TypeVar("E")


class Words(Protocol):
    """One language's words (:class:`sessionmw.languages.Language`)."""

    def local(self, entry: E) -> E: ...


class Chooser(Protocol):
    """What picks a request's language (:class:`sessionmw.languages.Negotiator`)."""

    def speaker(self, request: Any) -> Words | None: ...


#: The language asked for explicitly in this context: ``[what chooses it, the request]``
#: (:func:`sessionmw.languages.ask`, :func:`sessionmw.languages.speaking`; an adapter's answers
#: made before or after the session's scope: a refusal, an endpoint, a failed admission); the
#: request is None once it is over (:func:`sessionmw.languages.forget`: a list, so that ending it
#: sets no context variable). Otherwise the session scope says (:func:`asked`).
ASKED: ContextVar[list[Any] | None] = ContextVar("sessionmw_language_asked", default=None)
_asked = ASKED.get


def _no_scope() -> None:
    return None


#: The current session scope's getter (``sessionmw._context`` registers its context variable's
#: ``get`` through :func:`follow_scopes`): a scope is a tuple whose items 3 and 4 are what chooses
#: the request's language and the request (None, None for a scope opened without a request).
_scope: Callable[[], Any] = _no_scope


def follow_scopes(getter: Callable[[], Any]) -> None:
    """Read the request's language from the session scope ``getter`` returns (called once, by
    ``sessionmw._context``: the words sit below the scope, so the scope registers itself)."""
    global _scope
    _scope = getter


def asked() -> tuple[Chooser, Any] | None:
    """What chooses the current request's language and the request: the explicit choice
    (:data:`ASKED`) first, else the session scope's (the adapters open it with the request: no
    context variable set for the language on a request's way); None: the catalogue's English."""
    explicit = _asked()
    if explicit is not None and explicit[1] is not None:
        return explicit[0], explicit[1]
    scope = _scope()
    if scope is None or scope[4] is None:
        return None
    return scope[3], scope[4]


def local(entry: E) -> E:
    """``entry`` (a sentence, a :class:`Plural`, a :class:`Message`, a tuple of sentences) in the
    current request's language; the entry itself in English or outside a request."""
    explicit = _asked()
    if explicit is not None and explicit[1] is not None:
        chooser: Chooser = explicit[0]
        request = explicit[1]
    else:
        scope = _scope()
        if scope is None or scope[4] is None:
            return entry
        chooser, request = scope[3], scope[4]
    words = chooser.speaker(request)
    return entry if words is None else words.local(entry)


def fill(template: Template, values: Mapping[str, Any]) -> str:
    """``template`` with its placeholders filled from ``values``.

    Every catalogue sentence that has placeholders is filled here (the ones without are shown as
    written), so this is the one place where a sentence meets its values.
    """
    if isinstance(template, Plural):
        return template.format(**values)
    return template.format_map(values)


class Message(NamedTuple):
    """The words of one situation: the model every user-facing text is made from.

    ``{placeholders}`` are filled from the situation (a health report fills them from the session);
    the emoji :attr:`icon` also opens :attr:`message`, as in the seed's messages.
    """

    #: An emoji for the situation.
    icon: str
    #: A short heading.
    title: str
    #: What happened, in one friendly sentence.
    message: str
    #: What the user can do, as ordered steps.
    recovery: tuple[str, ...]
    #: Extra context (may be empty).
    context: Template = ""


# -- sessions: the health reports' words (the seed's ``health['message']``) ------------------------

_REFRESH = "Refresh the page to start a new session."

#: Situation -> words, as health reports show them. Keys are health status values, plus
#: ``expired:<reason>`` variants and ``check_failed``. An app may replace an entry.
MESSAGES: dict[str, Message] = {
    "healthy": Message("✅", "Session active", "✅ Your session is active", ()),
    "idle": Message(
        "💤",
        "Session idle",
        "💤 Your session is idle: no activity for {idle_for}",
        (
            "Continue working to keep your session active.",
            "Without activity it expires in {expires_in}.",
        ),
        "Nothing is lost while your session is idle.",
    ),
    "error": Message(
        "⚠️",
        "Something went wrong",
        "⚠️ An error occurred while processing your request",
        (
            "Try the action again: most errors are temporary.",
            "If it fails again, refresh the page.",
            "If the problem continues, contact support.",
        ),
        Plural(
            "After {errors_left} more error in a row your session is disconnected to protect your work.",
            "After {errors_left} more errors in a row your session is disconnected to protect your work.",
            "errors_left",
        ),
    ),
    "disconnected": Message(
        "🔌",
        "Session disconnected",
        "🔌 Your session was disconnected after repeated errors",
        (
            "Click Reconnect to reconnect your session (a page refresh does not).",
            "If it keeps disconnecting, contact support.",
        ),
        "The errors may come from a backend service that is down for a moment.",
    ),
    "expired": Message(
        "⏱️",
        "Session expired",
        "⏱️ Your session has expired due to inactivity",
        (_REFRESH, "Your inputs are kept in your browser and come back after the refresh."),
        "Sessions expire after {timeout} without activity.",
    ),
    "expired:lifetime_exceeded": Message(
        "⏱️",
        "Session expired",
        "⏱️ Your session has reached its maximum length",
        (_REFRESH, "Your inputs are kept in your browser and come back after the refresh."),
        "For your security, sessions end after {lifetime}.",
    ),
    "expired:end": Message("🚪", "Session ended", "🚪 This session has ended", (_REFRESH,)),
    "not_found": Message(
        "❓",
        "Session not found",
        "❓ We could not find your session",
        (_REFRESH, "If you were in the middle of something, your inputs are kept in your browser."),
        "Sessions can disappear after a server restart or a long time away.",
    ),
    "degraded": Message(
        "⏸️",
        "Service paused",
        "⏸️ {paused_message}",
        ("Wait for the countdown to end: the service is tried again by itself.",),
        "Your session is fine: there is nothing to reconnect. A service this page depends on failed "
        "repeatedly, so calls to it are paused for everyone.",
    ),
    "check_failed": Message(
        "⚠️",
        "Service unavailable",
        "⚠️ {check} is not available right now",
        ("Wait a moment and try again.", "If the problem continues, contact support."),
    ),
}

#: A custom health check that raised (``{check}``: its name).
CHECK_COULD_NOT_RUN: Final = "⚠️ The {check} check could not run"

# -- what a page says beyond the report ---------------------------------------------------------

#: Situation -> words of what a page says beyond the health report (see
#: :func:`sessionmw.translation.statement`): a disconnect whose cause is known (the steps fit the
#: cause), the confirmation after a reconnect, and a server the page cannot reach.
STATEMENTS: Final[Mapping[str, Message]] = {
    "disconnected:network": Message(
        "🔌",
        "Session disconnected",
        "Your session was disconnected after repeated connection errors.",
        (
            "Wait a moment for the connection to the service to come back.",
            "Then click Reconnect: your inputs are kept.",
        ),
        "Until you reconnect, actions are paused to protect your work.",
    ),
    "disconnected:backend": Message(
        "🔌",
        "Session disconnected",
        "Your session was disconnected after repeated errors from the data service.",
        ("Wait a moment for the service to recover.", "Then click Reconnect: your inputs are kept."),
        "Until you reconnect, actions are paused to protect your work.",
    ),
    "reconnected": Message("✅", "Reconnected", "Your session is active again.", ()),
    "unreachable": Message(
        "🔌",
        "Connection problem",
        "The server cannot be reached right now.",
        ("Check your network connection.", "Wait a moment: this page checks again by itself."),
    ),
    "unreachable:local": Message(
        "🔌",
        "Server not running",
        "The server of this page, on this computer, is not answering: it was stopped or is restarting.",
        ("Start the server again if it was stopped.", "Wait a moment: this page checks again by itself."),
    ),
}
#: A step that promises the user's inputs, as a page that does not keep them says it ('': dropped);
#: see :func:`sessionmw.translation.statement` (``inputs_kept=False``).
WITHOUT_INPUTS: Final[Mapping[str, str]] = {
    "Then click Reconnect: your inputs are kept.": "Then click Reconnect.",
    "Click Reconnect: your inputs are kept.": "Click Reconnect.",
    "Your inputs come back after the refresh.": "",
    "Your inputs are kept in your browser and come back after the refresh.": "",
    "If you were in the middle of something, your inputs are kept in your browser.": "",
}
#: The steps after a failed action, by its cause (``network`` or ``backend``).
STEPS_AFTER_FAILURE: Final[Mapping[str, tuple[str, ...]]] = {
    "network": ("Try the action again in a moment: the connection may come back by itself.",),
    "backend": (
        "Try the action again: most errors are temporary.",
        "If it keeps failing, wait a minute: the data service may be down.",
    ),
}

# -- paused dependencies (circuit breakers) -------------------------------------------------------

#: An open breaker's countdown (``{service}``: the service's name as users see it, ``{n}``: the
#: seconds left). The Dash banner ticks it in the browser.
PAUSED_COUNTDOWN: Final = Plural(
    "The {service} service is paused; we will try again in {n} second",
    "The {service} service is paused; we will try again in {n} seconds",
)
#: An open breaker whose pause is over: the next call is its probe.
PAUSED_NOW: Final = "The {service} service is paused; trying again now"
#: A breaker forced open by an operator: no end is known.
PAUSED_FORCED: Final = "The {service} service is paused for maintenance; please try again later"
#: A closed (or disabled) breaker, as a health check lists it.
DEPENDENCY_AVAILABLE: Final = "The {service} service is available"
#: A half-open breaker: its probe is under way.
DEPENDENCY_PROBING: Final = "We are checking whether the {service} service is back"

# -- exceptions: what :func:`sessionmw.translate` makes of them ------------------------------------

_TRY_AGAIN = (
    "Wait a moment and try again.",
    "If it fails again, refresh the page.",
    "If the problem continues, contact support.",
)
_CONTACT = "If the problem continues, contact support."

#: Situation -> words of the built-in translations (see :mod:`sessionmw.translation`); the
#: session situations (``expired``, ``disconnected``, ``not_found``) use :data:`MESSAGES`.
EXCEPTIONS: Final[Mapping[str, Message]] = {
    "unexpected": Message(
        "⚠️",
        "Something went wrong",
        "⚠️ An unexpected error occurred while processing your request",
        ("Try the action again.", "If it fails again, refresh the page.", _CONTACT),
    ),
    "connection": Message(
        "🔌",
        "Connection problem",
        "🔌 We could not reach a service this page depends on",
        ("Check your network connection.", *_TRY_AGAIN),
        "Connection problems are usually over within a few seconds.",
    ),
    "timeout": Message(
        "⏳",
        "Request timed out",
        "⏳ The request took too long to complete",
        _TRY_AGAIN,
        "The service may be busy right now.",
    ),
    "connection_interrupted": Message(
        "🔌", "Connection interrupted", "🔌 The connection to a service was interrupted", _TRY_AGAIN
    ),
    "access_denied": Message(
        "🔒",
        "Access denied",
        "🔒 The server is not allowed to access something this request needs",
        ("If you think this is a mistake, contact support.",),
    ),
    "data_not_available": Message(
        "📂",
        "Data not available",
        "📂 The data you asked for could not be loaded",
        (
            "Check that what you asked for exists (a name, a date, a symbol).",
            "Try again later: the data may not be published yet.",
            _CONTACT,
        ),
    ),
    "out_of_memory": Message(
        "🧮",
        "Request too large",
        "🧮 The server ran out of memory working on your request",
        ("Try a smaller request (fewer items or a shorter period).", "If it keeps failing, contact support."),
    ),
    "backend_failed": Message(
        "⚙️",
        "Background service failed",
        "⚙️ A background service stopped while working on your request",
        _TRY_AGAIN,
    ),
    "temporary": Message("⚠️", "Temporary problem", "⚠️ A temporary problem stopped your request", _TRY_AGAIN),
    "store_unavailable": Message(
        "⚠️", "Service unavailable", "⚠️ Session storage is not available right now", _TRY_AGAIN
    ),
    "too_many_users": Message(
        "🚦",
        "Too many users",
        "🚦 The service is at capacity and cannot start a new session now",
        ("Wait a few minutes and try again.",),
    ),
    "not_running": Message(
        "⚙️",
        "Session not running",
        "⚙️ The background process serving your session is not running",
        (
            "Try the action again: it restarts the process.",
            "If it fails again, refresh the page to reconnect your session.",
            _CONTACT,
        ),
    ),
}

#: Situation -> words of an API client's request to the endpoints that cannot be served: a path
#: under the endpoints' prefix that none serves, a method it does not answer (``{allow}``: the
#: methods it does answer).
ENDPOINTS: Final[Mapping[str, Message]] = {
    "endpoint-not-found": Message(
        "❓",
        "Endpoint not found",
        "❓ There is no sessionmw endpoint at this path",
        ("Use the health endpoint (GET) or the reconnect endpoint (POST).",),
    ),
    "method-not-allowed": Message(
        "🚫",
        "Method not allowed",
        "🚫 This endpoint does not answer this method",
        ("Use {allow}.",),
    ),
}

# -- around the words: the seed's three-part guidance, the buttons ----------------------------------

#: The seed's guidance, first part (``{message}``: what happened).
WHAT_HAPPENED: Final = "🎯 What happened: {message}"
#: The seed's guidance, second part: the numbered steps follow.
HOW_TO_FIX: Final = "🔧 How to fix it:"
#: The button that reconnects a disconnected session.
RECONNECT: Final = "Reconnect"
#: The tooltip of the alert's close button.
DISMISS: Final = "Dismiss"
#: The link from an error page back to the page the request came from.
BACK: Final = "Back to the page"

#: The answer to a request whose headers an adapter cannot read (an ASGI scope without headers,
#: or with headers that are not pairs of bytes): 400.
REQUEST_UNREADABLE: Final = "This request could not be read: its headers are missing or malformed"
#: The answer to a request whose headers are larger than an adapter reads: 431.
REQUEST_HEADERS_TOO_LARGE: Final = (
    "This request's headers are too large; clear this site's cookies and try again"
)

# -- numbers in words -----------------------------------------------------------------------------

_LESS_THAN_A_MINUTE: Final = "less than a minute"
_SECONDS: Final = Plural("{n} second", "{n} seconds")
_MINUTES: Final = Plural("{n} minute", "{n} minutes")
_HOURS: Final = Plural("{n} hour", "{n} hours")
#: Hours and minutes together (``{hours}``, ``{minutes}``: each already in words).
_HOURS_AND_MINUTES: Final = "{hours} {minutes}"


def duration(seconds: float) -> str:
    """A duration as a person says it: "less than a minute", "1 minute", "2 hours 5 minutes".

    Minutes are rounded down (a session idle for 119 s has been idle "1 minute"); never "0 minutes".

    :raises ValueError: for a negative or non-finite number of seconds.
    """
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be a finite number of seconds >= 0, not {seconds!r}")
    minutes = int(seconds // 60)
    if minutes == 0:
        return local(_LESS_THAN_A_MINUTE)
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return fill(local(_MINUTES), {"n": minutes})
    if minutes == 0:
        return fill(local(_HOURS), {"n": hours})
    words = {"hours": fill(local(_HOURS), {"n": hours}), "minutes": fill(local(_MINUTES), {"n": minutes})}
    return fill(local(_HOURS_AND_MINUTES), words)


def span(seconds: float) -> str:
    """A policy's length as a person says it: "45 seconds", "1 minute", "12 hours" (unlike
    :func:`duration`, a length under a minute is said in seconds: it is a setting, not a wait)."""
    if 0 <= seconds < 60:
        return fill(local(_SECONDS), {"n": max(1, round(seconds))})
    return duration(seconds)


def paused_message(service: str, seconds_left: float) -> str:
    """What a paused dependency's countdown says with ``seconds_left`` (rounded up) to go:
    :data:`PAUSED_COUNTDOWN`, or :data:`PAUSED_NOW` once no time is left."""
    seconds = math.ceil(seconds_left)
    if seconds <= 0:
        return fill(local(PAUSED_NOW), {"service": service})
    return fill(local(PAUSED_COUNTDOWN), {"service": service, "n": seconds})


def paused_countdown() -> dict[str, str]:
    """The countdown's templates for the Dash banner's browser code, in the current language:
    ``one``, ``many``, ``now`` (it fills ``{service}`` and ``{n}`` itself, ``one`` for 1)."""
    countdown = local(PAUSED_COUNTDOWN)
    return {"one": countdown.one, "many": countdown.other, "now": local(PAUSED_NOW)}


def catalogue() -> list[Template]:
    """Every sentence of the catalogue (the entries of :data:`MESSAGES` as they are now), for
    tests and for the translation tools: templates and :class:`Plural` sentences."""
    found: list[Template] = []
    messages = [
        *MESSAGES.values(),
        *STATEMENTS.values(),
        *EXCEPTIONS.values(),
        *ENDPOINTS.values(),
    ]
    for entry in messages:
        found += [entry.title, entry.message, *entry.recovery]
        if entry.context:
            found.append(entry.context)
    for steps in STEPS_AFTER_FAILURE.values():
        found += steps
    found += [step for step in WITHOUT_INPUTS.values() if step]
    found += [
        CHECK_COULD_NOT_RUN,
        PAUSED_COUNTDOWN,
        PAUSED_NOW,
        PAUSED_FORCED,
        DEPENDENCY_AVAILABLE,
        DEPENDENCY_PROBING,
        WHAT_HAPPENED,
        HOW_TO_FIX,
        RECONNECT,
        DISMISS,
        BACK,
        REQUEST_UNREADABLE,
        REQUEST_HEADERS_TOO_LARGE,
        _LESS_THAN_A_MINUTE,
        _SECONDS,
        _MINUTES,
        _HOURS,
        _HOURS_AND_MINUTES,
    ]
    return list(dict.fromkeys(found))
