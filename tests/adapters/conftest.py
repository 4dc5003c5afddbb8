"""Fixtures of the adapters' tests: the host app served by each adapter, a manager for the Dash
tests, and Dash's process-wide layout hooks and page registry restored around a test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dash
import pytest
from support.adapters import ADAPTERS, served
from support.dash import THRESHOLD
from werkzeug.test import Client

from sessionmw import SessionManager
from sessionmw.testing import FakeClock


@pytest.fixture(name="sessions")
def _sessions(clock: FakeClock) -> Iterator[SessionManager]:
    """A manager with a small error threshold (``THRESHOLD``) and a 5-second health interval."""
    manager = SessionManager(
        store="memory://", clock=clock, max_error_threshold=THRESHOLD, health_check_interval_seconds=5
    )
    yield manager
    manager.close()


@pytest.fixture(name="layout_hooks")
def _layout_hooks() -> Iterator[list[Any]]:
    """Dash's registered layout hooks, restored after the test (hooks are process-wide)."""
    hooks = dash.hooks._ns["layout"]
    saved = list(hooks)
    yield hooks
    dash.hooks._ns["layout"] = saved


@pytest.fixture(name="pages")
def _pages() -> Iterator[None]:
    """Dash's page registry, emptied before and after (it is process-wide)."""
    dash._pages.PAGE_REGISTRY.clear()
    yield
    dash._pages.PAGE_REGISTRY.clear()


@pytest.fixture(name="served", params=ADAPTERS)
def _served(request: pytest.FixtureRequest, manager: SessionManager) -> Client:
    """A client of the host app served by each adapter in turn (see :mod:`support.adapters`)."""
    return served(str(request.param), manager)
