"""The blinker signals sessionmw sends. They are its only observer API.

Every signal is sent by the :class:`~sessionmw.SessionManager` (the sender) with keyword arguments
listed in its comment. Connect with ``signal.connect(receiver)`` or, in tests,
``signal.connected_to(receiver)`` / :func:`sessionmw.testing.capture_signals`.

A receiver that raises never breaks the code that caused the signal: the exception is logged
under the ``sessionmw.signals`` logger and the remaining receivers still run. (blinker's own
``send()`` lets the exception propagate, so sessionmw dispatches with :func:`send`.)
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

__all__ = [
    "activity",
    "breaker_call_failed",
    "breaker_call_ignored",
    "breaker_call_slow",
    "breaker_call_succeeded",
    "breaker_closed",
    "breaker_half_opened",
    "breaker_opened",
    "breaker_rejected",
    "error_recorded",
    "request_finished",
    "retry_attempt",
    "retry_exhausted",
    "retry_succeeded",
    "send",
    "session_created",
    "session_disconnected",
    "session_ended",
    "session_expired",
    "session_recovered",
    "state_changed",
    "store_error",
]

_log = logging.getLogger("sessionmw.signals")
_signals = Namespace()

#: Every state change. Kwargs: ``session_id``, ``session`` (a :class:`~sessionmw.SessionRecord`
#: copy), ``old`` and ``new`` (:class:`~sessionmw.SessionState`), ``reason`` (the event's value).
state_changed: NamedSignal = _signals.signal("state-changed")
#: A session was created. Kwargs: ``session_id``, ``session``.
session_created: NamedSignal = _signals.signal("session-created")
#: A session saw activity (sent on every touch). Kwargs: ``session_id``.
activity: NamedSignal = _signals.signal("activity")
#: An error was recorded on a session. Kwargs: ``session_id``, ``session``, ``error`` (the
#: exception or message given to ``record_error``).
error_recorded: NamedSignal = _signals.signal("error-recorded")
#: A session expired (inactivity or lifetime). Kwargs: ``session_id``, ``session``, ``reason``.
session_expired: NamedSignal = _signals.signal("session-expired")
#: A session was disconnected after too many errors. Kwargs: ``session_id``, ``session``, ``reason``.
session_disconnected: NamedSignal = _signals.signal("session-disconnected")
#: A session in error or disconnected became active again. Kwargs: ``session_id``, ``session``,
#: ``reason``.
session_recovered: NamedSignal = _signals.signal("session-recovered")
#: A session was ended on purpose. Kwargs: ``session_id``, ``session``, ``reason``.
session_ended: NamedSignal = _signals.signal("session-ended")
#: A retry strategy is about to wait and try again. Kwargs: ``details`` (a frozen record).
retry_attempt: NamedSignal = _signals.signal("retry-attempt")
#: A call succeeded after at least one failed attempt. Kwargs: ``details``.
retry_succeeded: NamedSignal = _signals.signal("retry-succeeded")
#: A call failed on its last attempt. Kwargs: ``details``.
retry_exhausted: NamedSignal = _signals.signal("retry-exhausted")
#: An adapter finished a request. Kwargs: ``session_id``, ``status`` (the HTTP status code),
#: ``seconds`` (from the session lookup to the end of the response).
request_finished: NamedSignal = _signals.signal("request-finished")
#: The session store failed and the manager carried on (fail-open) or refused (fail-closed).
#: Kwargs: ``error`` (the :class:`~sessionmw.StoreUnavailableError`), ``operation``. A
#: :class:`~sessionmw.Breaker` whose store fails sends it too (``operation`` ``"breaker <op>"``).
store_error: NamedSignal = _signals.signal("store-error")

#: A circuit breaker entered OPEN or FORCED_OPEN (sent once, by the process whose store operation
#: opened it). Sender: the :class:`~sessionmw.Breaker`. Kwargs: ``name``, ``old``, ``new`` (a
#: :class:`~sessionmw.BreakerState`), ``reason`` (the event's value).
breaker_opened: NamedSignal = _signals.signal("breaker-opened")
#: A circuit breaker admitted its first probe (OPEN -> HALF_OPEN). Kwargs as ``breaker_opened``.
breaker_half_opened: NamedSignal = _signals.signal("breaker-half-opened")
#: A circuit breaker closed (a probe succeeded, or an operator closed it). Kwargs as ``breaker_opened``.
breaker_closed: NamedSignal = _signals.signal("breaker-closed")
#: A call was refused by an open breaker (sent in the refusing process). Kwargs: ``name``, ``state``.
breaker_rejected: NamedSignal = _signals.signal("breaker-rejected")

# A call through a breaker sends exactly one of breaker_call_succeeded, breaker_call_failed,
# breaker_call_ignored and breaker_rejected, in the calling process (each attempt of a retry is a
# call); breaker_call_slow comes besides. ``seconds`` is the call's duration on the breaker's
# monotonic clock (None if the call started before anyone subscribed and the breaker does not read
# durations). A signal nobody subscribes to costs one attribute check.

#: A call through a breaker returned. Sender: the :class:`~sessionmw.Breaker`. Kwargs: ``name``,
#: ``seconds``.
breaker_call_succeeded: NamedSignal = _signals.signal("breaker-call-succeeded")
#: A call through a breaker raised a failure it counts (its ``counts``; a cancellation with
#: ``count_cancelled``). Kwargs: ``name``, ``error`` (the exception), ``seconds``.
breaker_call_failed: NamedSignal = _signals.signal("breaker-call-failed")
#: A call through a breaker raised an exception it does not count (``counts`` says no, a
#: :class:`~sessionmw.BreakerOpenError` of another breaker, a cancellation without
#: ``count_cancelled``). Kwargs: ``name``, ``error``, ``seconds``.
breaker_call_ignored: NamedSignal = _signals.signal("breaker-call-ignored")
#: A call the breaker counted as slow (``slow_call_duration``), sent after its
#: ``breaker_call_succeeded`` or ``breaker_call_failed`` (or ``breaker_call_ignored``: a half-open
#: probe is judged slow whatever it raised). Kwargs: ``name``, ``seconds``, ``error`` (None for a
#: call that returned).
breaker_call_slow: NamedSignal = _signals.signal("breaker-call-slow")


def send(signal: NamedSignal, sender: Any, /, **kwargs: Any) -> None:
    """Send ``signal`` to every receiver; a receiver that raises is logged and skipped.

    Costs one attribute check when nobody is connected.
    """
    if not signal.receivers or signal.is_muted:
        return
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            _log.exception("receiver %r of signal %r raised", receiver, signal.name)
