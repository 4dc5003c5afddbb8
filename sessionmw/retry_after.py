"""Retry-After: how long a client is told to wait, and how long a server asked us to wait.

:func:`parse_retry_after` reads an HTTP ``Retry-After`` value (seconds or an HTTP date);
:func:`retry_after_of` finds the wait an exception carries (an attribute or a response header).
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from typing import Final

__all__ = ["DEFAULT_RETRY_AFTER", "parse_retry_after", "retry_after_of"]

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
