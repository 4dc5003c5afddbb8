"""The circuit breaker's vocabulary and transition table: the one place where its next state is decided.

:data:`BREAKER_TRANSITIONS` maps ``(state, event)`` to the next state; a pair that is not in the
table leaves the state as it is (the outcome is only counted). :func:`step` decides which event an
operation is, applies it to a :class:`BreakerRecord` in place and is called by the breaker
backends inside one atomic store operation (a lock, a ``BEGIN IMMEDIATE`` transaction); the Redis
backend's Lua script carries the same table, generated from this one by :func:`lua_table`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

__all__ = [
    "BREAKER_TRANSITIONS",
    "MAX_OPEN_FOR",
    "MAX_TIME_WINDOW",
    "MAX_WINDOW",
    "OPERATOR_OPS",
    "BreakerConfig",
    "BreakerEvent",
    "BreakerOp",
    "BreakerRecord",
    "BreakerState",
    "StepResult",
    "WindowType",
    "add_successes",
    "is_dependency_failure",
    "lua_table",
    "mermaid",
    "step",
]


class BreakerState(enum.StrEnum):
    """Where a circuit breaker is. FORCED_OPEN and DISABLED are set only by an operator."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


class BreakerEvent(enum.StrEnum):
    """What happened to a breaker; the table maps (state, event) to the next state."""

    #: A call succeeded.
    SUCCESS = "success"
    #: A call failed and the trip policy is not met.
    FAILURE = "failure"
    #: A call failed (or was slow) and the trip policy is met (consecutive failures, failure rate
    #: or slow-call rate).
    TRIP = "trip"
    #: A call was asked for after ``open_for`` passed: it is admitted as a probe.
    PROBE = "probe"
    #: A probe succeeded.
    PROBE_SUCCESS = "probe_success"
    #: A probe failed.
    PROBE_FAILURE = "probe_failure"
    #: An operator forced the breaker open.
    FORCE_OPEN = "force_open"
    #: An operator closed the breaker (its counts start again).
    FORCE_CLOSE = "force_close"
    #: An operator disabled the breaker: every call goes through, nothing trips it.
    DISABLE = "disable"


class BreakerOp(enum.StrEnum):
    """An operation a backend applies atomically (:func:`step` turns it into an event)."""

    READ = "read"
    ADMIT = "admit"
    SUCCESS = "success"
    FAILURE = "failure"
    #: A success or a counted failure that took ``slow_call_duration`` or longer.
    SLOW_SUCCESS = "slow_success"
    SLOW_FAILURE = "slow_failure"
    PROBE_SUCCESS = "probe_success"
    PROBE_FAILURE = "probe_failure"
    FORCE_OPEN = "force_open"
    FORCE_CLOSE = "force_close"
    DISABLE = "disable"
    #: A probe ended without an outcome (cancelled): its slot is given back at once.
    RELEASE = "release"


#: The operations of an operator: they replace a corrupt record instead of failing on it.
OPERATOR_OPS: Final = frozenset({BreakerOp.FORCE_OPEN, BreakerOp.FORCE_CLOSE, BreakerOp.DISABLE})

#: The longest ``open_for`` a breaker accepts (a day): no ``Retry-After`` is ever longer.
MAX_OPEN_FOR: Final = 86_400.0
#: The longest outcome window a breaker accepts (and a stored record may carry).
MAX_WINDOW: Final = 10_000
#: The longest time-based window a breaker accepts, in seconds (an hour: at most 3,600 buckets).
MAX_TIME_WINDOW: Final = 3_600

#: What a breaker's ``window`` counts: its last calls (``"count"``) or its last seconds (``"time"``).
WindowType = Literal["count", "time"]


_C, _O, _H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
_F, _D = BreakerState.FORCED_OPEN, BreakerState.DISABLED
_E = BreakerEvent

_TABLE: Final[dict[tuple[BreakerState, BreakerEvent], BreakerState]] = {
    (_C, _E.SUCCESS): _C,
    (_C, _E.FAILURE): _C,
    (_C, _E.TRIP): _O,
    (_O, _E.PROBE): _H,
    (_H, _E.PROBE): _H,
    (_H, _E.PROBE_SUCCESS): _C,
    (_H, _E.PROBE_FAILURE): _O,
    **{(state, _E.FORCE_OPEN): _F for state in BreakerState},
    **{(state, _E.FORCE_CLOSE): _C for state in BreakerState},
    **{(state, _E.DISABLE): _D for state in BreakerState},
}

#: ``(state, event) -> next state``. A pair not in the table changes nothing but the counts (a
#: late outcome of a call admitted before the breaker opened, a failure while disabled, ...).
BREAKER_TRANSITIONS: Final[Mapping[tuple[BreakerState, BreakerEvent], BreakerState]] = MappingProxyType(
    _TABLE
)


@dataclasses.dataclass(frozen=True, slots=True)
class BreakerConfig:
    """A breaker's trip policy, as the backends need it (every process on a store must agree)."""

    failure_threshold: int = 5
    failure_rate: float | None = None
    window: int = 20
    min_calls: int = 10
    open_for: float = 30.0
    half_open_calls: int = 1
    #: Also open when this fraction of the last ``window`` calls were slow (None: slowness ignored).
    slow_call_rate: float | None = None
    #: After each failed probe the next open period is this many times longer ...
    open_for_multiplier: float = 2.0
    #: ... up to this many seconds (None: every open period is ``open_for``).
    max_open_for: float | None = None
    #: Probe successes that close a half-open breaker (each success frees its probe's slot).
    success_threshold: int = 1
    #: ``"count"``: the window is the last ``window`` calls; ``"time"``: the calls of the last
    #: ``window`` seconds, in per-second buckets (Resilience4j's ``TIME_BASED`` sliding window).
    window_type: WindowType = "count"

    def open_period(self, reopens: int) -> float:
        """Seconds an OPEN breaker refuses calls after ``reopens`` failed probes in a row."""
        longest = self.max_open_for
        period = self.open_for
        if longest is None:
            return period
        for _ in range(min(reopens, 64)):
            period = min(period * self.open_for_multiplier, longest)
        return period

    @property
    def keeps_window(self) -> bool:
        """True if the last ``window`` outcomes are kept (a failure rate or a slow-call rate)."""
        return self.failure_rate is not None or self.slow_call_rate is not None


@dataclasses.dataclass(slots=True)
class BreakerRecord:
    """A breaker's shared state and counts, as a store keeps them."""

    name: str
    state: BreakerState = _C
    #: Consecutive failures while closed.
    failures: int = 0
    #: The outcomes of the last calls while closed, oldest first: ``"0"`` a success, ``"1"`` a
    #: failure, ``"2"`` a slow success, ``"3"`` a slow failure.
    window: str = ""
    #: When an OPEN breaker admits its first probe (store clock, seconds).
    open_until: float = 0.0
    #: Probes admitted in the current HALF_OPEN period.
    probes: int = 0
    #: When the last probe was admitted (a probe that never reports is replaced after ``open_for``).
    probe_at: float = 0.0
    #: How often the breaker entered OPEN or FORCED_OPEN, ever.
    opens: int = 0
    #: Calls by outcome, ever (successful, failed, rejected).
    successful: int = 0
    failed: int = 0
    rejected: int = 0
    #: When the state last changed.
    changed_at: float = 0.0
    #: Calls that took ``slow_call_duration`` or longer, ever (also counted in successful or failed).
    slow: int = 0
    #: Failed probes in a row since the breaker last closed (each lengthens the next open period).
    reopens: int = 0
    #: Probe successes in the current HALF_OPEN period.
    probe_successes: int = 0
    #: A time-based window's calls while closed, oldest first: ``second:calls:failed:slow`` per
    #: second that had calls (whole seconds of the store clock), comma-separated.
    buckets: str = ""

    def copy(self) -> BreakerRecord:
        """A copy that can be changed without touching this record."""
        return dataclasses.replace(self)

    def window_rates(self) -> tuple[float | None, float | None]:
        """The failure rate and the slow-call rate over the window's calls (None: it holds none;
        the window is kept with ``failure_rate`` or ``slow_call_rate``; a time-based window as of
        its last recorded call)."""
        calls, failed, slow = self.window_counts()
        if not calls:
            return None, None
        return failed / calls, slow / calls

    def window_counts(self) -> tuple[int, int, int]:
        """The calls in the window, and how many of them failed and were slow."""
        if self.buckets:
            calls = failed = slow = 0
            for _second, bucket_calls, bucket_failed, bucket_slow in parse_buckets(self.buckets):
                calls += bucket_calls
                failed += bucket_failed
                slow += bucket_slow
            return calls, failed, slow
        window = self.window
        return len(window), window.count("1") + window.count("3"), window.count("2") + window.count("3")

    def seconds_left(self, now: float) -> float:
        """Seconds until an OPEN breaker admits a probe (0 in any other state, or when due)."""
        if self.state is not _O:
            return 0.0
        return max(0.0, self.open_until - now)


class Change(NamedTuple):
    """One state change a breaker operation made."""

    old: BreakerState
    new: BreakerState
    event: BreakerEvent


class StepResult(NamedTuple):
    """What :func:`step` did."""

    #: The state change, or None.
    change: Change | None
    #: For :attr:`BreakerOp.ADMIT`: True if the call may go ahead (then it is a probe when the
    #: breaker is HALF_OPEN afterwards).
    admitted: bool


def _tripped(record: BreakerRecord, config: BreakerConfig) -> bool:
    if record.failures >= config.failure_threshold:
        return True
    calls, failed, slow = record.window_counts()
    if calls < config.min_calls:
        return False
    rate, slow_rate = config.failure_rate, config.slow_call_rate
    if rate is not None and failed >= rate * calls - 1e-9:
        return True
    return slow_rate is not None and slow >= slow_rate * calls - 1e-9


def parse_buckets(text: str) -> list[list[int]]:
    """A time-based window's buckets, ``[second, calls, failed, slow]`` each, from their text."""
    return [[int(number) for number in bucket.split(":")] for bucket in text.split(",")] if text else []


def _add_to_buckets(
    record: BreakerRecord, now: float, config: BreakerConfig, calls: int, failed: int, slow: int
) -> None:
    """Add calls to the bucket of ``now``'s second and drop the buckets older than the window.

    A ``now`` before the newest bucket (another process's clock a little behind) counts in the
    newest bucket: the buckets stay in order, at most ``window`` of them.
    """
    buckets = parse_buckets(record.buckets)
    second = max(0, math.floor(now), buckets[-1][0] if buckets else 0)
    oldest = second - config.window + 1
    kept = [bucket for bucket in buckets if bucket[0] >= oldest]
    if kept and kept[-1][0] == second:
        kept[-1][1] += calls
        kept[-1][2] += failed
        kept[-1][3] += slow
    else:
        kept.append([second, calls, failed, slow])
    record.buckets = ",".join(f"{s}:{c}:{f}:{w}" for s, c, f, w in kept)
    record.window = ""


def _push(record: BreakerRecord, outcome: str, now: float, config: BreakerConfig) -> None:
    if not config.keeps_window:
        return
    if config.window_type == "time":
        _add_to_buckets(record, now, config, 1, int(outcome in "13"), int(outcome in "23"))
    else:
        record.window = (record.window + outcome)[-config.window :]
        record.buckets = ""


def add_successes(record: BreakerRecord, successes: int, now: float, config: BreakerConfig) -> None:
    """Put ``successes`` plain successes a process saw without a round trip in a closed breaker's
    window, at ``now`` (the round trip that brings them)."""
    if not successes or record.state is not _C or not config.keeps_window:
        return
    if config.window_type == "time":
        _add_to_buckets(record, now, config, successes, 0, 0)
    else:
        _push(record, "0" * min(successes, config.window), now, config)


def _event_of(record: BreakerRecord, op: BreakerOp, now: float, config: BreakerConfig) -> BreakerEvent | None:
    """The event ``op`` is in the record's state (None: nothing but counting); counts it."""
    state = record.state
    if op is BreakerOp.ADMIT:
        if state is _O and now >= record.open_until:
            return _E.PROBE
        if state is _H and (
            record.probes < config.half_open_calls or now >= record.probe_at + config.open_for
        ):
            return _E.PROBE
        if state is _O or state is _F or state is _H:
            record.rejected += 1
        return None
    if op is BreakerOp.SUCCESS or op is BreakerOp.PROBE_SUCCESS or op is BreakerOp.SLOW_SUCCESS:
        record.successful += 1
        if op is BreakerOp.PROBE_SUCCESS and state is _H:
            record.probe_successes += 1
            if record.probe_successes >= config.success_threshold:
                return _E.PROBE_SUCCESS
            record.probes = max(0, record.probes - 1)  # its slot goes to the next probe
            return None
        slow = op is BreakerOp.SLOW_SUCCESS
        record.slow += slow
        if state is _C:
            record.failures = 0
            _push(record, "2" if slow else "0", now, config)
            return _E.TRIP if slow and _tripped(record, config) else _E.SUCCESS
        return None
    if op is BreakerOp.FAILURE or op is BreakerOp.PROBE_FAILURE or op is BreakerOp.SLOW_FAILURE:
        record.failed += 1
        if op is BreakerOp.PROBE_FAILURE and state is _H:
            return _E.PROBE_FAILURE
        slow = op is BreakerOp.SLOW_FAILURE
        record.slow += slow
        if state is _C:
            record.failures += 1
            _push(record, "3" if slow else "1", now, config)
            return _E.TRIP if _tripped(record, config) else _E.FAILURE
        return None
    if op is BreakerOp.RELEASE:
        if state is _H and record.probes > 0:
            record.probes -= 1
        return None
    if op is BreakerOp.FORCE_OPEN:
        return _E.FORCE_OPEN
    if op is BreakerOp.FORCE_CLOSE:
        return _E.FORCE_CLOSE
    if op is BreakerOp.DISABLE:
        return _E.DISABLE
    return None  # READ


def step(record: BreakerRecord, op: BreakerOp, now: float, config: BreakerConfig) -> StepResult:
    """Apply ``op`` at ``now`` to ``record`` in place, by the table; return what it did."""
    event = _event_of(record, op, now, config)
    admitted = op is BreakerOp.ADMIT and (record.state is _C or record.state is _D)
    if event is None:
        return StepResult(None, admitted)
    old = record.state
    new = _TABLE.get((old, event), old)
    if event is _E.PROBE:
        if old is _O or now >= record.probe_at + config.open_for:
            record.probes = 0  # a new half-open period, or a probe that never reported
        record.probes += 1
        record.probe_at = now
        admitted = True
    if new is not old or event in (_E.FORCE_CLOSE, _E.FORCE_OPEN):
        _enter(record, new, now, config)
    if new is old:
        return StepResult(None, admitted)
    return StepResult(Change(old, new, event), admitted)


def _enter(record: BreakerRecord, new: BreakerState, now: float, config: BreakerConfig) -> None:
    if new is not record.state:
        record.changed_at = now
        record.probe_successes = 0
    if new is _O or (new is _F and record.state is not _F):
        record.opens += 1
    if new is _O and record.state is _H:
        record.reopens += 1
    elif new is _C:
        record.reopens = 0
    record.state = new
    record.failures = 0
    record.window = ""
    record.buckets = ""
    if new is _O:
        record.open_until = now + config.open_period(record.reopens)
    if new is not _H:
        record.probes = 0


#: The attribute a breaker sets on the exceptions it counted, and on its refusals: the breaker's name.
DEPENDENCY_MARK: Final = "_sessionmw_dependency"


def is_dependency_failure(error: object) -> bool:
    """True for an exception a breaker counted as its dependency's failure (or the error translated
    from one: its ``__cause__``), or a breaker's refusal:
    :meth:`SessionManager.record_error <sessionmw.SessionManager.record_error>` never counts those
    against a session, whichever adapter reports them."""
    if getattr(error, DEPENDENCY_MARK, None) is not None:
        return True
    cause = getattr(error, "__cause__", None)  # a UserFacingError translated from it
    return cause is not None and getattr(cause, DEPENDENCY_MARK, None) is not None


def mermaid() -> str:
    """The breaker's state diagram as Mermaid source, generated from :data:`BREAKER_TRANSITIONS`."""
    edges: dict[tuple[BreakerState, BreakerState], list[str]] = {}
    for (old, event), new in _TABLE.items():
        if old is not new and event not in (_E.FORCE_OPEN, _E.FORCE_CLOSE, _E.DISABLE):
            edges.setdefault((old, new), []).append(event.value)
    lines = ["stateDiagram-v2", "    [*] --> closed"]
    for (old, new), events in edges.items():
        lines.append(f"    {old.value} --> {new.value}: {', '.join(events)}")
    lines.append("    note right of closed: any state --> forced_open, closed, disabled by an operator")
    return "\n".join(lines) + "\n"


def lua_table() -> str:
    """The table as a Lua table literal, ``{["closed|trip"]="open", ...}``, for the Redis script."""
    rows = [f'["{old.value}|{event.value}"]="{new.value}"' for (old, event), new in _TABLE.items()]
    return "{" + ",".join(rows) + "}"


def check_config(config: BreakerConfig) -> BreakerConfig:
    """Return ``config`` if every setting is usable, else raise :class:`ValueError` naming it."""
    for name in ("failure_threshold", "window", "min_calls", "half_open_calls", "success_threshold"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
    if config.window_type not in ("count", "time"):
        raise ValueError(f"window_type must be 'count' or 'time', not {config.window_type!r}")
    timed = config.window_type == "time"
    if timed and config.window > MAX_TIME_WINDOW:
        raise ValueError(
            f"window must be at most {MAX_TIME_WINDOW} seconds with window_type='time', not {config.window!r}"
        )
    if config.window > MAX_WINDOW:
        raise ValueError(f"window must be at most {MAX_WINDOW} calls, not {config.window!r}")
    open_for = config.open_for
    if isinstance(open_for, bool) or not isinstance(open_for, int | float) or not math.isfinite(open_for):
        raise ValueError(f"open_for must be a finite number of seconds, not {open_for!r}")
    if not 0 < open_for <= MAX_OPEN_FOR:
        raise ValueError(f"open_for must be > 0 and at most {MAX_OPEN_FOR:g} seconds, not {open_for!r}")
    longest = config.max_open_for
    if longest is not None and (
        isinstance(longest, bool)
        or not isinstance(longest, int | float)
        or not open_for <= longest <= MAX_OPEN_FOR
    ):
        raise ValueError(
            f"max_open_for must be seconds in [open_for, {MAX_OPEN_FOR:g}] or None, not {longest!r}"
        )
    growth = config.open_for_multiplier
    if isinstance(growth, bool) or not isinstance(growth, int | float) or not 1 <= growth <= 10:
        raise ValueError(f"open_for_multiplier must be a number in [1, 10], not {growth!r}")
    for name in ("failure_rate", "slow_call_rate"):
        rate = getattr(config, name)
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1
        ):
            raise ValueError(f"{name} must be a fraction in (0, 1] or None, not {rate!r}")
    if not timed and config.min_calls > config.window:
        raise ValueError(f"min_calls ({config.min_calls}) must not exceed window ({config.window})")
    return config
