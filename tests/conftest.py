"""Shared fixtures: a fake clock, a manager on the memory store, and global state reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionmw import SessionManager, set_session_manager
from sessionmw.testing import FakeClock


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    """A clock that only moves when the test advances it."""
    return FakeClock()


@pytest.fixture(name="manager")
def _manager(clock: FakeClock) -> Iterator[SessionManager]:
    """A manager on a fresh memory store with default settings and the fake clock."""
    manager = SessionManager(store="memory://", clock=clock)
    yield manager
    manager.close()


@pytest.fixture(autouse=True)
def _reset_default_manager() -> Iterator[None]:
    """No test sees another test's process-default manager."""
    set_session_manager(None)
    yield
    set_session_manager(None)
