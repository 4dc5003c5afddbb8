"""A narrated life of one session: what ``python -m sessionmw`` shows.

It runs the real manager on the memory store with a :class:`~sessionmw.testing.FakeClock`, so the
half hour it takes a session to expire passes in an instant.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sessionmw._manager import SessionManager
from sessionmw._states import SessionState
from sessionmw.rendering import recovery_text
from sessionmw.signals import state_changed
from sessionmw.testing import FakeClock

__all__ = ["run_tour"]


def run_tour(echo: Callable[[str], None] = print, *, as_json: bool = False) -> SessionManager:
    """Walk one session through created, active, errors, disconnected, reconnected, expired."""
    clock = FakeClock()
    manager = SessionManager(store="memory://", clock=clock)

    changes: list[str] = []

    def show(step: str) -> None:
        health = manager.check_health("tour")
        if as_json:
            echo(json.dumps({"step": step, "health": health}, ensure_ascii=False))
            return
        echo(f"\n== {step}  [{health.status}]")
        echo("".join(f"   (state {change})\n" for change in changes) + recovery_text(health))
        changes.clear()

    def on_change(_sender: object, *, old: SessionState, new: SessionState, reason: str, **_: object) -> None:
        changes.append(f"{old.value} -> {new.value}, because: {reason}")

    with state_changed.connected_to(on_change):
        manager.create_session("tour")
        show("1. Session created")
        clock.advance(60)
        manager.update_session_activity("tour")
        show("2. The user works (activity one minute later)")
        clock.advance(6 * 60)
        show("3. Six minutes without activity")
        manager.update_session_activity("tour")
        manager.record_error("tour", ConnectionError("backend refused the connection"))
        show("4. A backend call fails")
        for _ in range(manager.settings.max_error_threshold - 1):
            manager.record_error("tour", RuntimeError("This session is not running"))
        show(f"5. {manager.settings.max_error_threshold} errors in a row")
        manager.reconnect("tour")
        show("6. The user clicks Reconnect")
        clock.advance(manager.settings.session_timeout_minutes * 60)
        show(f"7. {manager.settings.session_timeout_minutes:g} minutes later, with no activity")
    return manager
