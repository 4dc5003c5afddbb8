"""The tour: one session's life narrated step by step (created, active, idle, errors,
disconnected, reconnected, expired) on a fake clock, in words or as one JSON report a step."""

from __future__ import annotations

import json

from support.processes import sessionmw_command

from sessionmw._states import SessionState
from sessionmw.tour import run_tour


def test_tour_json_is_one_report_per_step() -> None:
    """`tour --json` prints one parseable health report per step."""
    result = sessionmw_command("tour", "--json")
    steps = [json.loads(line) for line in result.stdout.splitlines()]
    assert [step["health"]["status"] for step in steps][-2:] == ["healthy", "expired"]


def test_the_tour_narrates_each_state_change_with_its_reason() -> None:
    """Each step shows its status and the state changes since the last one, with their reasons;
    a reconnected session is healthy again; the session ends expired."""
    lines: list[str] = []
    manager = run_tour(lines.append)
    text = "\n".join(lines)
    headings = [line.strip() for line in lines if line.startswith("\n== ")]
    assert [heading.rsplit("[", 1)[1].rstrip("]") for heading in headings] == [
        "healthy",
        "healthy",
        "idle",
        "error",
        "disconnected",
        "healthy",
        "expired",
    ]
    assert "(state active -> idle, because: idle_timeout)" in text
    assert "(state error -> disconnected, because: error_threshold)" in text
    assert "(state disconnected -> active, because: reconnect)" in text
    record = manager.get_session("tour")
    assert record is not None and record.state is SessionState.EXPIRED


def test_the_json_tour_is_one_report_a_step_in_order() -> None:
    """Seven steps, numbered in order, each with a whole health report of the one session."""
    lines: list[str] = []
    run_tour(lines.append, as_json=True)
    steps = [json.loads(line) for line in lines]
    assert [step["step"].split(".")[0] for step in steps] == [str(number) for number in range(1, 8)]
    assert {step["health"]["session_id"] for step in steps} == {"tour"}
    assert steps[4]["health"]["status"] == "disconnected" and steps[4]["health"]["recovery"]
