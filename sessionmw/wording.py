"""Numbers and durations in words, for what the user reads: "1 minute", "less than a minute".

.. code-block:: python

    assert plural(1, "error") == "1 error"
    assert plural(3, "error") == "3 errors"
    assert duration(45) == "less than a minute"
    assert duration(90 * 60) == "1 hour 30 minutes"
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["PAUSED", "duration", "paused_message", "plural"]


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``count`` and ``noun``, the noun made plural unless ``count`` is 1 ("1 minute", "2 minutes").

    :param plural_noun: the plural when it is not ``noun + "s"``.
    """
    if count == 1:
        return f"1 {noun}"
    return f"{count} {plural_noun if plural_noun is not None else noun + 's'}"


def duration(seconds: float) -> str:
    """A duration as a person says it: "less than a minute", "1 minute", "2 hours 5 minutes".

    Minutes are rounded down (a session idle for 119 s has been idle "1 minute"); never "0 minutes".

    :raises ValueError: for a negative or non-finite number of seconds.
    """
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be a finite number of seconds >= 0, not {seconds!r}")
    minutes = int(seconds // 60)
    if minutes == 0:
        return "less than a minute"
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return plural(minutes, "minute")
    if minutes == 0:
        return plural(hours, "hour")
    return f"{plural(hours, 'hour')} {plural(minutes, 'minute')}"


#: What a paused dependency's countdown says, by the seconds left (``{service}``: the service's
#: name as users see it, ``{n}``: the seconds): ``many``, ``one``, ``now`` (the pause is over: a
#: probe is due). The Dash banner ticks the countdown with these in the browser.
PAUSED: Final[dict[str, str]] = {
    "many": "The {service} service is paused; we will try again in {n} seconds",
    "one": "The {service} service is paused; we will try again in 1 second",
    "now": "The {service} service is paused; trying again now",
}


def paused_message(service: str, seconds_left: float) -> str:
    """What a paused dependency's countdown says with ``seconds_left`` (rounded up) to go.

    The same sentence as a :class:`~sessionmw.BreakerOpenError`'s message while time is left.
    """
    seconds = math.ceil(seconds_left)
    if seconds <= 0:
        return PAUSED["now"].format(service=service)
    return PAUSED["one" if seconds == 1 else "many"].format(service=service, n=seconds)
