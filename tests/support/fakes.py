"""Fakes the tests share: a recording sleep, a store that counts its operations
(``CountedStore``), sessions in each state, a fresh breaker registry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionmw import SessionManager
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event, SessionState
from sessionmw._transitions import Change
from sessionmw.stores._base import Outcome, SessionStore
from sessionmw.testing import FakeClock


class Sleeps:
    """A fake sleep that records each wait and moves a FakeClock forward by it (if given one)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self(seconds)


class CountedStore:
    """A store that counts every operation made on the store it wraps: its sessions (``create``,
    ``update:<event>``, ``get``, ...), its ``incarnation`` reads, and the operations of the breaker
    (``breaker:<op>``) and counter (``counters:<method>``) backends kept beside them.

    Not to be confused with :class:`sessionmw.stores.counters.CountingStore`, the protocol of a
    store that keeps analytics counters.
    """

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.max_sessions = inner.max_sessions
        self.calls: Counter[str] = Counter()

    def create(self, record: SessionRecord, now: float, policy: Policy) -> None:
        self.calls["create"] += 1
        self.inner.create(record, now, policy)

    def update(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
    ) -> Outcome | None:
        self.calls[f"update:{event}"] += 1
        return self.inner.update(session_id, event, now, policy, error)

    def get(self, session_id: str) -> SessionRecord | None:
        self.calls["get"] += 1
        return self.inner.get(session_id)

    def delete(self, session_id: str) -> bool:
        self.calls["delete"] += 1
        return self.inner.delete(session_id)

    def sweep(self, now: float, policy: Policy, limit: int = 1000) -> list[Change]:
        self.calls["sweep"] += 1
        return self.inner.sweep(now, policy, limit)

    def count(self, state: SessionState | None = None) -> int:
        self.calls["count"] += 1
        return self.inner.count(state)

    def records(self, state: SessionState | None = None) -> Iterator[SessionRecord]:
        self.calls["records"] += 1
        return self.inner.records(state)

    @property
    def namespace(self) -> str:
        """The wrapped store's namespace (no operation: a name)."""
        namespace = getattr(self.inner, "namespace", None)
        if not isinstance(namespace, str):
            raise AttributeError("namespace")
        return namespace

    @property
    def incarnation(self) -> Callable[[], str]:
        """The wrapped store's ``incarnation``, counted (missing if the wrapped store has none)."""
        read = getattr(self.inner, "incarnation", None)
        if read is None:
            raise AttributeError("incarnation")

        def incarnation() -> str:
            self.calls["incarnation"] += 1
            return str(read())

        return incarnation

    def breakers(self) -> Any:
        """The wrapped store's breaker backend (a memory one if it keeps none), counted."""
        from sessionmw.stores.breakers import MemoryBreakers

        make = getattr(self.inner, "breakers", None)
        return _CountedBackend(make() if make is not None else MemoryBreakers(), self.calls, "breaker")

    def counters(self) -> Any:
        """The wrapped store's counter backend (a memory one if it keeps none), counted."""
        from sessionmw.stores.counters import MemoryCounters

        make = getattr(self.inner, "counters", None)
        return _CountedBackend(make() if make is not None else MemoryCounters(), self.calls, "counters")

    def close(self) -> None:
        self.inner.close()


class _CountedBackend:
    """A breaker or counter backend whose operations are counted as ``<kind>:<what>`` (a breaker's
    ``apply`` by its operation, e.g. ``breaker:read``)."""

    def __init__(self, inner: Any, calls: Counter[str], kind: str) -> None:
        self._inner = inner
        self._calls = calls
        self._kind = kind

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            what = name
            if name == "apply" and len(args) > 1:  # apply(name, op, ...): by the operation
                what = getattr(args[1], "value", name)
            self._calls[f"{self._kind}:{what}"] += 1
            return method(*args, **kwargs)

        return counted


def healthy_session(manager: SessionManager, clock: FakeClock) -> str:
    """A new, active session."""
    return manager.create_session().session_id


def idle_session(manager: SessionManager, clock: FakeClock) -> str:
    """A session left alone past ``idle_after``."""
    session_id = manager.create_session().session_id
    clock.advance(manager.policy.idle_after + 1)
    return session_id


def error_session(manager: SessionManager, clock: FakeClock) -> str:
    """A session with one error recorded (under the threshold)."""
    session_id = manager.create_session().session_id
    manager.record_error(session_id, ConnectionError("flaky"))
    return session_id


def disconnected_session(manager: SessionManager, clock: FakeClock) -> str:
    """A session that reached the error threshold."""
    session_id = manager.create_session().session_id
    for _ in range(manager.policy.error_threshold):
        manager.record_error(session_id, ConnectionError("down"))
    return session_id


def expired_session(manager: SessionManager, clock: FakeClock) -> str:
    """A session left alone past the inactivity timeout (expired on its next read)."""
    session_id = manager.create_session().session_id
    clock.advance(manager.policy.timeout + 1)
    return session_id


def unknown_session(manager: SessionManager, clock: FakeClock) -> str:
    """An id the store has never seen (well-formed)."""
    return "no-such-session"


#: Each kind of session a request can come with, by name: ``make(manager, clock) -> session id``.
SESSION_KINDS: dict[str, Callable[[SessionManager, FakeClock], str]] = {
    "healthy": healthy_session,
    "idle": idle_session,
    "error": error_session,
    "disconnected": disconnected_session,
    "expired": expired_session,
    "unknown": unknown_session,
}


@pytest.fixture(autouse=True)
def fresh_breaker_registry() -> Iterator[None]:
    """The process's registry of breakers emptied around each test of a module that imports this
    (a session's health lists the process's breakers: only that test's)."""
    from sessionmw import _breaker as breaker_module

    breaker_module._REGISTRY.clear()
    yield
    breaker_module._REGISTRY.clear()
