"""The circuit breaker's transition table: row by row, its diagram and Lua copy generated from it,
and the failure-rate window it trips on."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionmw import BreakerState
from sessionmw._breaker_table import (
    BREAKER_TRANSITIONS,
    BreakerConfig,
    BreakerEvent,
    BreakerOp,
    BreakerRecord,
    mermaid,
    step,
)
from sessionmw.stores.breakers import lua_source

S, E = BreakerState, BreakerEvent
EXPECTED = {
    (S.CLOSED, E.SUCCESS): S.CLOSED,
    (S.CLOSED, E.FAILURE): S.CLOSED,
    (S.CLOSED, E.TRIP): S.OPEN,
    (S.OPEN, E.PROBE): S.HALF_OPEN,
    (S.HALF_OPEN, E.PROBE): S.HALF_OPEN,
    (S.HALF_OPEN, E.PROBE_SUCCESS): S.CLOSED,
    (S.HALF_OPEN, E.PROBE_FAILURE): S.OPEN,
    **{(state, E.FORCE_OPEN): S.FORCED_OPEN for state in S},
    **{(state, E.FORCE_CLOSE): S.CLOSED for state in S},
    **{(state, E.DISABLE): S.DISABLED for state in S},
}


CONFIG = BreakerConfig(failure_threshold=3, open_for=30.0, half_open_calls=1)
T0 = 1_700_000_000.0


def test_the_table_is_exactly_the_documented_one() -> None:
    """Resilience4j's states, moved only by these rows."""
    assert dict(BREAKER_TRANSITIONS) == EXPECTED


def _record_in(state: BreakerState) -> BreakerRecord:
    """A record in ``state`` as the operations get it there."""
    record = BreakerRecord("b")
    for _ in range(CONFIG.failure_threshold):
        step(record, BreakerOp.FAILURE, T0, CONFIG)
    if state is S.CLOSED:
        step(record, BreakerOp.FORCE_CLOSE, T0, CONFIG)
    elif state is S.HALF_OPEN:
        step(record, BreakerOp.ADMIT, T0 + CONFIG.open_for, CONFIG)
    elif state is S.FORCED_OPEN:
        step(record, BreakerOp.FORCE_OPEN, T0, CONFIG)
    elif state is S.DISABLED:
        step(record, BreakerOp.DISABLE, T0, CONFIG)
    assert record.state is state
    return record


# For each row: the operation that is that event in that state, and the time to apply it at.
_OP_OF_EVENT: dict[BreakerEvent, tuple[BreakerOp, float]] = {
    E.SUCCESS: (BreakerOp.SUCCESS, T0),
    E.FAILURE: (BreakerOp.FAILURE, T0),
    E.PROBE: (BreakerOp.ADMIT, T0 + 2 * CONFIG.open_for),
    E.PROBE_SUCCESS: (BreakerOp.PROBE_SUCCESS, T0 + 1),
    E.PROBE_FAILURE: (BreakerOp.PROBE_FAILURE, T0 + 1),
    E.FORCE_OPEN: (BreakerOp.FORCE_OPEN, T0),
    E.FORCE_CLOSE: (BreakerOp.FORCE_CLOSE, T0),
    E.DISABLE: (BreakerOp.DISABLE, T0),
}


@pytest.mark.parametrize(("row", "new"), list(EXPECTED.items()), ids=lambda v: str(v))
def test_each_row_of_the_table(row: tuple[BreakerState, BreakerEvent], new: BreakerState) -> None:
    """The operation that is the row's event in the row's state leads to the row's next state."""
    state, event = row
    record = _record_in(state)
    if event is E.TRIP:
        record.failures = CONFIG.failure_threshold - 1
        result = step(record, BreakerOp.FAILURE, T0, CONFIG)
    else:
        op, now = _OP_OF_EVENT[event]
        result = step(record, op, now, CONFIG)
    assert record.state is new
    if new is not state:
        assert result.change is not None and result.change.event is event


@pytest.mark.parametrize("state", [S.OPEN, S.FORCED_OPEN, S.DISABLED])
@pytest.mark.parametrize("op", [BreakerOp.SUCCESS, BreakerOp.FAILURE])
def test_an_outcome_outside_the_table_only_counts(state: BreakerState, op: BreakerOp) -> None:
    """The late outcome of a call admitted before the breaker opened changes no state."""
    record = _record_in(state)
    before = (record.successful, record.failed)
    assert step(record, op, T0 + 1, CONFIG).change is None
    assert record.state is state
    assert (record.successful, record.failed) != before


def test_the_guide_carries_the_diagram_generated_from_the_table() -> None:
    """docs/guide.md's breaker diagram is the generated one (it cannot drift)."""
    guide = (Path(__file__).parents[2] / "docs" / "guide.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{mermaid()}```" in guide


def test_the_redis_script_carries_every_row() -> None:
    """The Lua table is generated from BREAKER_TRANSITIONS."""
    source = lua_source()
    for (state, event), new in BREAKER_TRANSITIONS.items():
        assert f'["{state.value}|{event.value}"]="{new.value}"' in source


def test_failure_rate_opens_over_the_window() -> None:
    """With failure_rate, half of the last calls failing opens it once min_calls were made."""
    config = BreakerConfig(failure_threshold=100, failure_rate=0.5, window=4, min_calls=4)
    record = BreakerRecord("b")
    for op in (BreakerOp.FAILURE, BreakerOp.SUCCESS, BreakerOp.FAILURE):
        step(record, op, T0, config)
    assert record.state is S.CLOSED  # 3 calls: under min_calls
    step(record, BreakerOp.SUCCESS, T0, config)
    assert record.state is S.CLOSED  # 2 of 4 failed, but a success never trips
    result = step(record, BreakerOp.FAILURE, T0, config)  # the last 4 calls: 2 failures, at the rate
    assert record.state.value == "open" and result.change is not None and result.change.event is E.TRIP


def test_the_config_defaults_to_a_count_window() -> None:
    assert BreakerConfig().window_type == "count"
