"""Faults against a private redis-server this test starts on a free port: down, restarted, slow."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from support.redis_servers import RedisServer
from support.servers import free_port

from sessionmw import SessionManager, SessionState, StoreUnavailableError, translate
from sessionmw._states import HealthStatus
from sessionmw.testing import FakeClock, capture_signals


@pytest.fixture(name="server")
def _server() -> Iterator[RedisServer]:
    """A private redis-server on a free port, stopped after the test."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required for the fault tests")
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


def _manager(server: RedisServer, clock: FakeClock, mode: str = "fail_open") -> SessionManager:
    store_url = f"{server.url}?timeout=0.3&connect_timeout=0.3"
    return SessionManager(store=store_url, clock=clock, on_store_error=mode)


def test_fail_open_serves_on_and_recovers_after_a_restart(server: RedisServer, clock: FakeClock) -> None:
    """Server down: sessions count as healthy, store_error is signalled; back up: lost ones are not_found."""
    manager = _manager(server, clock)
    session = manager.create_session()
    server.stop()
    with capture_signals() as sent:
        assert manager.update_session_activity(session.session_id) is True
        report = manager.check_health(session.session_id)
    assert report.status == HealthStatus.HEALTHY
    assert [s.name for s in sent if s.name == "store-error"] == ["store-error", "store-error"]
    errors = [s.kwargs["error"] for s in sent if s.name == "store-error"]
    assert all(isinstance(error, StoreUnavailableError) for error in errors)
    assert "127.0.0.1" in str(errors[0])
    with pytest.raises(StoreUnavailableError):  # no session can start while the store is down
        manager.create_session()

    server.start()  # no persistence: every session is gone
    lost = manager.check_health(session.session_id)
    assert lost.status == HealthStatus.NOT_FOUND
    fresh = manager.create_session()  # the same manager works again: no restart
    assert manager.get_session(fresh.session_id) is not None
    manager.close()


def test_fail_open_never_adopts_an_unknown_id(server: RedisServer, clock: FakeClock) -> None:
    """An id the client made up is treated as healthy while the store is down, and never stored."""
    manager = _manager(server, clock)
    server.stop()
    assert manager.update_session_activity("made-up-by-the-client") is True
    server.start()
    assert manager.get_session("made-up-by-the-client") is None
    assert manager.check_health("made-up-by-the-client").status == HealthStatus.NOT_FOUND
    manager.close()


def test_fail_closed_answers_with_the_friendly_error(server: RedisServer, clock: FakeClock) -> None:
    """Fail-closed: the operation raises StoreUnavailableError, which translates to a friendly message."""
    manager = _manager(server, clock, "fail_closed")
    session = manager.create_session()
    server.stop()
    with capture_signals() as sent, pytest.raises(StoreUnavailableError) as caught:
        manager.update_session_activity(session.session_id)
    assert [s.name for s in sent] == ["store-error"]
    friendly = translate(caught.value)
    assert "not available" in friendly.message
    assert "ConnectionError" not in str(friendly)
    server.start()
    assert manager.check_health(session.session_id).status == HealthStatus.NOT_FOUND
    manager.close()


def test_a_session_outlives_a_brief_disconnect(server: RedisServer, clock: FakeClock) -> None:
    """Connections broken by the server are replaced: the next call works and sees the session."""
    manager = _manager(server, clock)
    session = manager.create_session()
    admin = server.admin()
    admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # type: ignore[no-untyped-call]
    record = manager.get_session(session.session_id)
    assert record is not None and record.state is SessionState.ACTIVE
    admin.close()
    manager.close()


def test_a_slow_redis_hits_the_timeout_and_the_store_recovers(server: RedisServer, clock: FakeClock) -> None:
    """CLIENT PAUSE makes the call time out (StoreUnavailableError); after UNPAUSE it works again."""
    manager = _manager(server, clock, "fail_closed")
    session = manager.create_session()
    admin = server.admin()
    # WRITE mode holds scripts too, and leaves this admin connection free to UNPAUSE.
    admin.execute_command("CLIENT", "PAUSE", "10000", "WRITE")  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(StoreUnavailableError, match="Timeout"):
            manager.update_session_activity(session.session_id)
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        admin.close()
    assert manager.update_session_activity(session.session_id) is True
    manager.close()


def test_the_script_is_reloaded_when_the_server_forgot_it(server: RedisServer, clock: FakeClock) -> None:
    """After SCRIPT FLUSH the store loads its script again and the call succeeds."""
    manager = _manager(server, clock, "fail_closed")
    session = manager.create_session()
    admin = server.admin()
    admin.script_flush()
    admin.close()
    assert manager.update_session_activity(session.session_id) is True
    manager.close()
