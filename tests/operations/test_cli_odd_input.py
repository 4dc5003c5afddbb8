"""The ``sessionmw`` command under odd input and odd plumbing: malformed ids and URLs, a store that
answers badly, output that cannot be written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def sessionmw(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sessionmw ARGS`` in a fresh process (no store URL from the caller's shell)."""
    base = {name: value for name, value in os.environ.items() if name != "SESSIONMW_STORE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "sessionmw", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=30,
    )


def _sqlite_store(tmp_path: Path, *ids: str) -> str:
    from sessionmw import SessionManager

    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    manager = SessionManager(store=url)
    for session_id in ids:
        manager.create_session(session_id)
    manager.close()
    return url


@pytest.mark.parametrize("batch", ["0", "-5"])
def test_sweep_batch_must_be_positive(batch: str, tmp_path: Path) -> None:
    """`sweep --batch 0` (or negative) is a usage error naming the option, not an endless loop."""
    result = sessionmw("sweep", "--batch", batch, "--store", _sqlite_store(tmp_path))
    assert result.returncode == 2
    assert "--batch" in result.stderr and "positive" in result.stderr
    assert "Traceback" not in result.stderr


def test_sessions_list_limit_zero_prints_no_rows(tmp_path: Path) -> None:
    """`--limit 0` lists no session; a negative limit is a usage error."""
    url = _sqlite_store(tmp_path, "alice", "bob")
    none = sessionmw("sessions", "list", "--limit", "0", "--json", "--store", url)
    assert none.returncode == 0, none.stderr
    assert json.loads(none.stdout) == []
    text = sessionmw("sessions", "list", "--limit", "0", "--store", url)
    assert text.stdout.strip().splitlines()[-1] == "0 session(s)"
    one = sessionmw("sessions", "list", "--limit", "1", "--json", "--store", url)
    assert len(json.loads(one.stdout)) == 1
    negative = sessionmw("sessions", "list", "--limit", "-1", "--store", url)
    assert negative.returncode == 2 and "--limit" in negative.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "list"),
        ("sessions", "list", "--json"),
        ("sessions", "show", "ghost"),
        ("sessions", "end", "ghost"),
        ("health", "ghost"),
        ("sweep",),
        ("stats",),
    ],
)
def test_every_command_on_memory_says_it_sees_only_its_own_process(args: tuple[str, ...]) -> None:
    """On memory:// a command sees an empty store of its own: it says so, and names the fix."""
    result = sessionmw(*args)
    assert "memory://" in result.stderr and "only the sessions of the process" in result.stderr
    assert "sqlite:///" in result.stderr and "redis://" in result.stderr
    if "--json" in args:
        assert json.loads(result.stdout) == []  # the note stays out of the JSON


def test_config_on_memory_says_what_is_true_for_it() -> None:
    """`config` shows settings, which memory:// does not hide: its note says that the other
    commands will not see an app's sessions there, not that it sees an empty store (issue 27)."""
    result = sessionmw("config")
    assert result.returncode == 0
    assert "memory://" in result.stderr and "sessionmw sessions" in result.stderr
    assert "sqlite:///" in result.stderr and "redis://" in result.stderr
    assert "this command sees its own empty store" not in result.stderr


def test_stats_says_when_no_process_counts(tmp_path: Path) -> None:
    """`stats` on a store no process ever attached analytics to says so instead of silent zeros."""
    url = _sqlite_store(tmp_path, "alice")  # sessions, but no Analytics connected
    result = sessionmw("stats", "--store", url)
    assert result.returncode == 0
    assert "no process has attached analytics" in result.stdout.lower()
    as_json = json.loads(sessionmw("stats", "--json", "--store", url).stdout)
    assert as_json["counting"] is False


def test_stats_on_a_counted_store_says_nothing_of_the_kind(tmp_path: Path) -> None:
    """Once a process attached the counters (even if nothing happened since), no such note."""
    from sessionmw import SessionManager
    from sessionmw.analytics import Analytics

    url = _sqlite_store(tmp_path)
    manager = SessionManager(store=url)
    Analytics(manager).connect().disconnect()
    manager.close()
    result = sessionmw("stats", "--store", url)
    assert "no process has attached analytics" not in result.stdout.lower()
    assert json.loads(sessionmw("stats", "--json", "--store", url).stdout)["counting"] is True


def test_health_of_an_unknown_id_is_one_operator_line(tmp_path: Path) -> None:
    """`health UNKNOWN` prints one line for the operator (no end-user recovery text) and exits 1."""
    url = _sqlite_store(tmp_path, "alice")
    result = sessionmw("health", "ghost", "--store", url)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == ["sessionmw: no session 'ghost'"]
    known = sessionmw("health", "alice", "--store", url)
    assert known.returncode == 0 and known.stdout.startswith("alice: healthy")


# -- issue 22: ids that begin with '-' ----------------------------------------------------------

DASHED = "-Abc123_xyz-Q"  # URL-safe base64 ids begin with '-' about one time in 64


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "show", DASHED, "--store", "{url}"),
        ("sessions", "show", "--store", "{url}", DASHED),
        ("sessions", "show", "--json", "--store={url}", DASHED),
        ("health", DASHED, "--store", "{url}"),
        ("health", "--store", "{url}", DASHED, "--json"),
    ],
)
def test_an_id_that_begins_with_a_dash_is_named_as_it_is(args: tuple[str, ...], tmp_path: Path) -> None:
    """`sessions show -Abc...` and `health -Abc...` name the session, before or after the options."""
    url = _sqlite_store(tmp_path, DASHED)
    result = sessionmw(*(arg.format(url=url) for arg in args))
    assert result.returncode == 0, result.stderr
    assert DASHED in result.stdout


def test_a_session_whose_id_begins_with_a_dash_can_be_ended(tmp_path: Path) -> None:
    """`sessions end -h...`: even an id that begins like the help option is the id."""
    url = _sqlite_store(tmp_path, "-hello", DASHED)
    for session_id in ("-hello", DASHED):
        ended = sessionmw("sessions", "end", session_id, "--store", url)
        assert ended.returncode == 0, ended.stderr
        assert ended.stdout == f"ended {session_id}\n"
    again = sessionmw("sessions", "show", "--json", "--store", url, DASHED)
    assert json.loads(again.stdout)["session"]["state"] == "ended"


def test_an_id_spelled_like_an_option_goes_after_double_dash(tmp_path: Path) -> None:
    """An id that is exactly an option's name (`--json`) is named after `--`, as the help says."""
    url = _sqlite_store(tmp_path, "--json")
    result = sessionmw("sessions", "show", "--store", url, "--", "--json")
    assert result.returncode == 0, result.stderr
    assert "--json" in result.stdout
    helped = sessionmw("sessions", "show", "--help")
    assert "may begin with '-'" in " ".join(helped.stdout.split())
    assert "after '--'" in " ".join(helped.stdout.split())
