"""The sessionmw command: real processes, real exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.processes import sessionmw_command
from support.stores import shared_store_url


def test_config_shows_values_and_sources() -> None:
    """`config` names where each value came from."""
    result = sessionmw_command("config", "--json", env={"SESSION_TIMEOUT_MINUTES": "45"})
    config = json.loads(result.stdout)
    assert config["session_timeout_minutes"] == {"value": 45.0, "source": "SESSION_TIMEOUT_MINUTES"}
    assert config["max_error_threshold"]["source"] == "default"


def test_config_hides_the_store_password_and_the_secret_key() -> None:
    """`config` masks a password in the store URL and never prints the secret key, only whether
    it is set."""
    env = {"SESSIONMW_STORE_URL": "redis://:hunter2@127.0.0.1:6379/0", "SESSIONMW_SECRET_KEY": "s3cr3t-k3y"}
    for args in (("config",), ("config", "--json")):
        result = sessionmw_command(*args, env=env)
        assert result.returncode == 0
        assert "hunter2" not in result.stdout and "s3cr3t-k3y" not in result.stdout
        assert "redis://:***@127.0.0.1:6379/0" in result.stdout
    config = json.loads(sessionmw_command("config", "--json", env=env).stdout)
    assert config["secret_key"] == {"value": "***", "source": "SESSIONMW_SECRET_KEY"}
    unset = json.loads(sessionmw_command("config", "--json", env={"SESSIONMW_SECRET_KEY": ""}).stdout)
    assert unset["secret_key"]["source"] == "default"


def test_bad_configuration_is_one_line_exit_2() -> None:
    """A bad environment value or store URL: one line on stderr, exit 2, no traceback."""
    bad_env = sessionmw_command("config", env={"MAX_ERROR_THRESHOLD": "abc"})
    bad_url = sessionmw_command("sessions", "list", "--store", "nosuch://x")
    for result in (bad_env, bad_url):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "MAX_ERROR_THRESHOLD='abc'" in bad_env.stderr
    assert "nosuch" in bad_url.stderr


def test_unknown_session_exit_1() -> None:
    """health, show and end of an unknown id exit 1 with a one-line message (health prints the report)."""
    assert sessionmw_command("health", "ghost").returncode == 1
    for action in ("show", "end"):
        result = sessionmw_command("sessions", action, "ghost")
        assert result.returncode == 1
        # the last line: the memory:// note comes first
        assert result.stderr.strip().splitlines()[-1] == "sessionmw: no session 'ghost'"


def test_sessions_list_on_memory_store_is_empty(tmp_path: Path) -> None:
    """A fresh process's memory store holds no sessions: the table says so."""
    result = sessionmw_command("sessions", "list")
    assert result.returncode == 0 and result.stdout.strip().endswith("0 session(s)")


def test_stats_window_parsing() -> None:
    """Windows read as 90s, 30m, 1h, 2d; a bad or zero window is a usage error."""
    from sessionmw.cli import parse_window

    assert [parse_window(t) for t in ("90s", "30m", "1h", "2d", "45")] == [90, 1800, 3600, 172800, 45]
    assert sessionmw_command("stats", "--window", "0h").returncode == 2
    assert sessionmw_command("stats", "--window", "soon").returncode == 2


def test_stats_on_an_empty_store_prints_no_rates() -> None:
    """With nothing counted, rates are n/a rather than a division error."""
    result = sessionmw_command("stats", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["expiration_rate"] is None


@pytest.fixture(name="store_url", params=["sqlite", "redis"])
def _store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A shared store the CLI process and the test both open: a SQLite file or a Redis prefix."""
    return shared_store_url(request.param, request, tmp_path)


def test_commands_against_a_shared_store(store_url: str) -> None:
    """list, show, health, end, sweep and stats see what another process did to the store."""
    from sessionmw import SessionManager
    from sessionmw.analytics import Analytics

    manager = SessionManager(store=store_url)
    analytics = Analytics(manager).connect()
    try:
        manager.create_session("alice")
        manager.create_session("bob")
        for _ in range(5):
            manager.record_error("bob", TimeoutError("slow"))
    finally:
        analytics.disconnect()
        manager.close()

    listing = sessionmw_command("sessions", "list", "--json", "--store", store_url)
    assert listing.returncode == 0, listing.stderr
    assert {(row["id"], row["state"]) for row in json.loads(listing.stdout)} == {
        ("alice", "active"),
        ("bob", "disconnected"),
    }
    only = sessionmw_command("sessions", "list", "--state", "disconnected", "--store", store_url)
    assert "bob" in only.stdout and "alice" not in only.stdout and "1 session(s)" in only.stdout

    show = sessionmw_command("sessions", "show", "bob", "--json", "--store", store_url)
    assert json.loads(show.stdout)["session"]["error_count"] == 5

    assert sessionmw_command("health", "alice", "--store", store_url).returncode == 0
    unhealthy = sessionmw_command("health", "bob", "--store", store_url)
    assert unhealthy.returncode == 1 and "disconnected" in unhealthy.stdout

    assert sessionmw_command("sessions", "end", "alice", "--store", store_url).returncode == 0
    again = sessionmw_command("sessions", "end", "alice", "--store", store_url)
    assert again.returncode == 1 and "already ended" in again.stderr
    assert sessionmw_command("sweep", "--store", store_url).stdout.startswith("expired 0 session(s)")

    stats = json.loads(sessionmw_command("stats", "--json", "--store", store_url).stdout)
    assert stats["counts"]["sessions.created"] == 2
    assert stats["counts"]["sessions.disconnected"] == 1
    assert stats["counts"]["errors.type.TimeoutError"] == 5


def test_unreachable_store_is_one_line_exit_1() -> None:
    """A Redis that does not answer: one line naming the store (no password), exit 1."""
    result = sessionmw_command("sessions", "list", "--store", "redis://:hunter2@127.0.0.1:1/0?socket_timeout=1")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "hunter2" not in result.stderr
