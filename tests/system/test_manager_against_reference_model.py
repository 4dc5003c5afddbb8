"""A hypothesis state machine drives the manager and checks it against a small reference model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sessionmw import IllegalTransitionError, SessionManager
from sessionmw.testing import FakeClock

IDLE, TIMEOUT, LIFETIME, THRESHOLD = 300.0, 1800.0, 43200.0, 5


@dataclasses.dataclass
class Model:
    """What the manager should believe about one session, written without the transition table."""

    state: str = "active"
    errors: int = 0
    created: float = 0.0
    last: float = 0.0

    def tick(self, now: float) -> None:
        if self.state in ("expired", "ended"):
            return
        if now - self.created >= LIFETIME or now - self.last >= TIMEOUT:
            self.state = "expired"
        elif self.state == "active" and now - self.last >= IDLE:
            self.state = "idle"

    @property
    def live(self) -> bool:
        return self.state not in ("expired", "ended")


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(0.0)
        self.manager = SessionManager(store="memory://", clock=self.clock)
        self.manager.create_session("s")
        self.model = Model()

    def _do(self, action: str, allowed: bool) -> None:
        self.model.tick(self.clock())
        call: Callable[[], object] = {
            "activity": lambda: self.manager.update_session_activity("s"),
            "error": lambda: self.manager.record_error("s", "boom"),
            "success": lambda: self.manager.record_success("s"),
            "reconnect": lambda: self.manager.reconnect("s"),
            "end": lambda: self.manager.end_session("s"),
        }[action]
        if allowed:
            assert call()  # True, or the record (reconnect, record_error)
        else:
            try:
                call()
            except IllegalTransitionError as refused:
                assert refused.state == self.model.state and refused.event.startswith(action)
            else:
                raise AssertionError(f"{action} should be refused in {self.model.state}")

    @rule(seconds=st.floats(min_value=0, max_value=2500, allow_nan=False))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def activity(self) -> None:
        self.model.tick(self.clock())
        allowed = self.model.live
        self._do("activity", allowed)
        if allowed:
            self.model.last = self.clock()
            if self.model.state == "idle":
                self.model.state = "active"

    @rule()
    def error(self) -> None:
        self.model.tick(self.clock())
        allowed = self.model.live
        self._do("error", allowed)
        if allowed:
            self.model.last = self.clock()
            self.model.errors += 1
            if self.model.errors >= THRESHOLD or self.model.state == "disconnected":
                self.model.state = "disconnected"
            else:
                self.model.state = "error"

    @rule()
    def success(self) -> None:
        self.model.tick(self.clock())
        allowed = self.model.live and self.model.state != "disconnected"
        self._do("success", allowed)
        if allowed:
            self.model.last, self.model.errors, self.model.state = self.clock(), 0, "active"

    @rule()
    def reconnect(self) -> None:
        self.model.tick(self.clock())
        allowed = self.model.live
        self._do("reconnect", allowed)
        if allowed:
            self.model.last, self.model.errors, self.model.state = self.clock(), 0, "active"

    @precondition(lambda self: self.model.live)
    @rule()
    def end(self) -> None:
        self._do("end", True)
        self.model.state = "ended"

    @precondition(lambda self: not self.model.live)
    @rule()
    def start_over(self) -> None:
        self.manager.create_session("s")
        self.model = Model(created=self.clock(), last=self.clock())

    @invariant()
    def agrees_with_model(self) -> None:
        self.model.tick(self.clock())
        health = self.manager.check_health("s")
        assert health.state == self.model.state
        assert health.error_count == self.model.errors
        expected_status = {"active": "healthy", "ended": "expired"}.get(self.model.state, self.model.state)
        assert health.status == expected_status


SessionMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestSessionMachine = SessionMachine.TestCase
