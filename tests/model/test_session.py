"""The session record and the timing policy it is judged by: when a session expires, copies that
are independent, and the JSON form every persistent store writes (round trip, and what is refused)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sessionmw import CorruptRecordError
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import SessionState

POLICY = Policy(timeout=600.0, absolute_timeout=3_600.0)


def test_a_new_session_is_active_and_created_now() -> None:
    record = SessionRecord.new("s", 100.0)
    assert (record.state, record.created_at, record.last_activity, record.state_changed_at) == (
        SessionState.ACTIVE,
        100.0,
        100.0,
        100.0,
    )
    assert (record.error_count, record.last_error, record.reason) == (0, None, "created")


def test_a_session_expires_at_its_inactivity_timeout_or_its_lifetime_whichever_is_first() -> None:
    record = SessionRecord.new("s", 0.0)
    assert record.expires_at(POLICY) == 600.0
    record.last_activity = 3_300.0  # active until late: the lifetime ends it first
    assert record.expires_at(POLICY) == 3_600.0


def test_a_copy_is_independent() -> None:
    record = SessionRecord.new("s", 0.0)
    copy = record.copy()
    assert copy == record and copy is not record
    copy.error_count, copy.state = 2, SessionState.ERROR
    assert (record.error_count, record.state) == (0, SessionState.ACTIVE)


def test_the_json_form_round_trips_every_field() -> None:
    record = SessionRecord(
        "s", SessionState.DISCONNECTED, 1.5, 2.25, 5, "ConnectionError: down", 3.0, "x", 2.5
    )
    data = json.loads(json.dumps(record.to_dict()))
    assert data["v"] == 1 and data["state"] == "disconnected"
    assert SessionRecord.from_dict(data) == record


def test_an_older_record_without_its_later_fields_is_read() -> None:
    """``state_changed_at`` defaults to the creation time; the optional fields to None."""
    data = {"id": "s", "state": "active", "created_at": 7, "last_activity": 8, "error_count": 0}
    record = SessionRecord.from_dict(data)
    assert (record.state_changed_at, record.last_error, record.reason, record.reconnected_at) == (
        7.0,
        None,
        None,
        None,
    )
    assert isinstance(record.created_at, float)


GOOD: dict[str, Any] = SessionRecord.new("s", 1.0).to_dict()


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        pytest.param(None, "not an object", id="not-a-dict"),
        pytest.param({"id": ""}, "no valid id", id="empty-id"),
        pytest.param({"id": 7}, "no valid id", id="numeric-id"),
        pytest.param({"state": "bogus"}, "malformed", id="unknown-state"),
        pytest.param({"created_at": "yesterday"}, "malformed", id="text-time"),
        pytest.param({"last_activity": True}, "malformed", id="bool-time"),
        pytest.param({"created_at": float("inf")}, "malformed", id="infinite-time"),
        pytest.param({"reconnected_at": float("nan")}, "malformed", id="nan-time"),
        pytest.param({"error_count": -1}, "error count", id="negative-count"),
        pytest.param({"error_count": True}, "error count", id="bool-count"),
        pytest.param({"error_count": 1.0}, "error count", id="float-count"),
        pytest.param({"last_error": ["x"]}, "last error", id="list-error"),
        pytest.param({"reason": 3}, "reason", id="numeric-reason"),
        pytest.param({"last_activity": None}, "malformed", id="missing-time"),
    ],
)
def test_a_record_this_version_cannot_read_is_corrupt(changes: dict[str, Any] | None, said: str) -> None:
    """Whatever is wrong is named; never a KeyError or TypeError out of the store."""
    data: object = [GOOD] if changes is None else {**GOOD, **changes}
    with pytest.raises(CorruptRecordError, match=said):
        SessionRecord.from_dict(data)


def test_a_missing_field_is_corrupt() -> None:
    data = {key: value for key, value in GOOD.items() if key != "error_count"}
    with pytest.raises(CorruptRecordError, match="malformed"):
        SessionRecord.from_dict(data)
