"""Steps written once for sync and async callers: the sync driver runs steps that never yield, the
async driver awaits what they yield and sends results (or throws exceptions) back in."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest

from sessionmw._steps import Steps, drive, run


def doubled(value: int, *, awaiting: bool) -> Steps[int]:
    """Steps that wait on one call: async they yield it, sync they make it themselves."""
    result = (yield _value(value)) if awaiting else value
    return 2 * result


async def _value(value: int) -> int:
    return value


class Ready:
    """An awaitable that is ready at once (not a coroutine: dropping it unawaited warns of nothing)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, int]:
        return self.value
        yield  # a generator: awaiting it returns at once


async def _fail(message: str) -> int:
    raise ValueError(message)


def recovering(*, log: list[str]) -> Steps[str]:
    """Steps that handle the failure of what they awaited at the point where the await stands."""
    try:
        yield _fail("first")
    except ValueError as exc:
        log.append(f"handled {exc}")
    second = yield _value(7)
    return f"then {second}"


def test_run_returns_what_steps_that_never_yield_return() -> None:
    assert run(doubled(21, awaiting=False)) == 42


def test_run_refuses_steps_that_yield_and_closes_them() -> None:
    closed: list[bool] = []

    def yielding() -> Steps[int]:
        try:
            yield Ready(1)
        finally:
            closed.append(True)
        return 0

    steps = yielding()
    with pytest.raises(RuntimeError, match="sync steps yielded an awaitable"):
        run(steps)
    assert closed == [True]


def test_drive_awaits_each_yielded_awaitable_and_sends_its_result_back() -> None:
    assert asyncio.run(drive(doubled(21, awaiting=True))) == 42


def test_drive_throws_a_failure_in_where_the_steps_handle_it() -> None:
    log: list[str] = []
    assert asyncio.run(drive(recovering(log=log))) == "then 7"
    assert log == ["handled first"]


def test_a_failure_the_steps_do_not_handle_leaves_drive() -> None:
    def unhandled() -> Steps[int]:
        value = yield _fail("boom")
        return int(value)

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(drive(unhandled()))
