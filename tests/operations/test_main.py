"""The ``sessionmw`` command itself (also ``python -m sessionmw``): with no subcommand it runs the
tour, the registered subcommands are offered, a usage error exits 2, and a reader that goes away
ends it quietly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.processes import sessionmw_command

from sessionmw.__main__ import main


def test_tour_walks_through_every_state() -> None:
    """With no subcommand the tour shows each status in order and exits 0."""
    result = sessionmw_command()
    assert result.returncode == 0, result.stderr
    statuses = [
        line.split("[")[-1].rstrip("]") for line in result.stdout.splitlines() if line.startswith("== ")
    ]
    assert statuses == ["healthy", "healthy", "idle", "error", "disconnected", "healthy", "expired"]
    assert "⏱️ Your session has expired due to inactivity" in result.stdout


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown subcommand is a usage error (argparse's exit 2)."""
    with pytest.raises(SystemExit) as info:
        main(["bogus"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_tour_into_a_closed_pipe_prints_no_traceback() -> None:
    """`sessionmw tour --json | head -c 600`: the reader goes away (here before the first write);
    the command ends with exit 1 and no BrokenPipeError traceback."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sessionmw", "tour", "--json"],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writer)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr
    assert result.returncode == 1


def test_no_subcommand_is_the_tour(capsys: pytest.CaptureFixture[str]) -> None:
    """``main([])`` prints what ``main(["tour"])`` prints, and exits 0."""
    assert main([]) == 0
    default = capsys.readouterr().out
    assert main(["tour"]) == 0
    assert capsys.readouterr().out == default and "== 7." in default


def test_the_registered_subcommands_are_offered(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` lists the tour, the operator commands and the demo (each added from COMMANDS)."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("tour", "sessions", "health", "breakers", "demo"))


def test_a_commands_exit_code_is_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """A command's answer is the exit code: an unknown session's health is 1."""
    assert main(["health", "ghost"]) == 1
