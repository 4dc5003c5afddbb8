"""Failures of a user's actions: each counts once toward disconnect, and logs one line.

A polling callback (a progress bar asking every 400 ms) can fail many times for one click. The
rule: the first failure of a callback within one user action counts; repeats of the same
callback for the same action do not (they are still logged and shown). An adapter asks
:meth:`ActionLedger.counts` before recording an error on the session.

:func:`log_failure` is the one log line of a failure the user already sees as a friendly
message: a WARNING naming the callback, the exception type and the short session id; the
traceback only at DEBUG or in debug mode.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable

from sessionmw._manager import short_id

__all__ = ["ActionLedger", "log_failure", "mark_logged", "was_logged"]


def log_failure(
    logger: logging.Logger,
    exc: BaseException,
    *,
    callback: str,
    session_id: str | None,
    debug: bool = False,
) -> None:
    """Log ``exc`` as one WARNING line: ``<callback> failed: <type> (session <short id>)``.

    The traceback is attached only when ``debug`` is True or ``logger`` is enabled for DEBUG.
    A :class:`~sessionmw.translation.UserFacingError` is named by its original exception's type.
    """
    if not logger.isEnabledFor(logging.WARNING):
        return
    original = getattr(exc, "original", None)
    kind = type(original if isinstance(original, BaseException) else exc).__name__
    session = short_id(session_id) if session_id else "none"
    with_traceback = debug or logger.isEnabledFor(logging.DEBUG)
    logger.warning(
        "%s failed: %s (session %s)",
        callback,
        kind,
        session,
        exc_info=exc if with_traceback else None,
        extra={"callback": callback, "error_type": kind, "session": session},
    )


_LOGGED = "_sessionmw_logged"


def mark_logged(exc: BaseException) -> None:
    """Note on ``exc`` that its failure was logged (e.g. by ``@guarded`` code inside a callback), so
    that the adapter that catches it next does not log it a second time (see :func:`was_logged`)."""
    with contextlib.suppress(AttributeError):  # an exception type with __slots__: not noted
        setattr(exc, _LOGGED, True)


def was_logged(exc: BaseException) -> bool:
    """True when :func:`mark_logged` noted ``exc`` (or the exception it was translated from)."""
    original = getattr(exc, "original", None)
    return bool(getattr(exc, _LOGGED, False) or getattr(original, _LOGGED, False))


class ActionLedger:
    """Remembers which (session, callback, action) failures were already counted.

    :param max_entries: how many to remember (the oldest are forgotten first); at least 1.
    :raises ValueError: for ``max_entries`` below 1.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries!r}")
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str, Hashable], None] = OrderedDict()
        self._lock = threading.Lock()

    def counts(self, session_id: str, callback: str, action: Hashable) -> bool:
        """True the first time ``callback`` fails for ``action`` in ``session_id``; False on repeats."""
        key = (session_id, callback, action)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return True

    def forget(self, session_id: str) -> None:
        """Forget every counted failure of ``session_id`` (e.g. after a reconnect)."""
        with self._lock:
            for key in [key for key in self._seen if key[0] == session_id]:
                del self._seen[key]
