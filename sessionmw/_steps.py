"""Steps written once for sync and async callers: a generator and its two drivers.

A piece of logic that has to wait on something (a call, a sleep) is written once, as a generator
that takes an ``awaiting`` flag. Sync (``awaiting`` False), it calls and sleeps itself and never
yields: :func:`run` takes its return value. Async, it yields each awaitable at the point where an
``await`` would stand (``result = yield func(*args)``), and :func:`drive` awaits it and sends the
result back in, or throws the exception in at that point, where the generator's own ``try``
handles it. So the only code that differs between the two kinds of caller is these two drivers.

Used on failure paths only (a retry, a call through a breaker): running a generator costs about
0.4 µs more than a plain call, so a success path stays straight-line code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any, TypeVar

__all__ = ["Steps", "drive", "run"]

R = TypeVar("R")

#: Steps that return an ``R``; async, they yield awaitables and are sent their results.
Steps = Generator[Awaitable[Any], Any, R]


def run(steps: Steps[R]) -> R:
    """The sync driver: run steps made with ``awaiting=False`` (they never yield) to their result."""
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    steps.close()
    raise RuntimeError("sync steps yielded an awaitable")


async def drive(steps: Steps[R]) -> R:
    """The async driver: await what the steps yield, send each result back (or throw its exception in)."""
    send, throw = steps.send, steps.throw
    try:
        pending = send(None)
        while True:
            failure: Exception | None = None
            try:
                value = await pending
            except Exception as exc:
                failure = exc
            # Thrown in outside this handler, so that what the steps raise next is not chained to it.
            pending = send(value) if failure is None else throw(failure)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
