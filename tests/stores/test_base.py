"""The store protocol's shared pieces: one step (time, then the event) that every store's update
is built on, the policy's JSON form kept in shared stores, the store incarnation, and the
protocols each store kind meets."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from support.stores import shared_store_url

from sessionmw import SessionManager, SessionState
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event
from sessionmw.stores._base import (
    NamespacedStore,
    PolicyStore,
    SessionStore,
    new_incarnation,
    policy_from_json,
    policy_to_json,
    step,
)

POLICY = Policy(idle_after=60.0, timeout=600.0, error_threshold=3)


def test_step_applies_time_before_the_event() -> None:
    """An error reported on a session idle for a while: first it goes idle, then into error."""
    record = SessionRecord.new("s", 0.0)
    changes, refused = step(record, Event.ERROR, 100.0, POLICY, "DataLoadError: gaps")
    assert refused is None
    assert [(change.old, change.new) for change in changes] == [
        (SessionState.ACTIVE, SessionState.IDLE),
        (SessionState.IDLE, SessionState.ERROR),
    ]
    assert record.state is SessionState.ERROR and record.last_error == "DataLoadError: gaps"


def test_a_refused_event_keeps_the_time_changes() -> None:
    """Activity on a session past its timeout: it expires, and the activity is refused."""
    record = SessionRecord.new("s", 0.0)
    changes, refused = step(record, Event.ACTIVITY, 1_000.0, POLICY)
    assert [change.new for change in changes] == [SessionState.EXPIRED]
    assert refused is not None and record.state is SessionState.EXPIRED


def test_without_an_event_only_time_passes() -> None:
    record = SessionRecord.new("s", 0.0)
    assert step(record, None, 30.0, POLICY) == ((), None)
    changes, _ = step(record, None, 61.0, POLICY)
    assert [change.event for change in changes] == [Event.IDLE_TIMEOUT]


def test_the_policy_round_trips_through_json() -> None:
    text = policy_to_json(POLICY)
    assert json.loads(text)["error_threshold"] == 3
    assert policy_from_json(text) == POLICY
    assert policy_from_json(text.encode()) == POLICY


@pytest.mark.parametrize(
    "text",
    [None, "", "not json", "[1, 2]", "{}", '{"timeout": "long"}', '{"timeout": true}', '{"timeout": 1e999}'],
)
def test_what_is_not_a_policy_reads_as_none(text: object) -> None:
    """A missing, malformed or foreign value is no policy (the store's own settings then hold)."""
    assert policy_from_json(text) is None


def test_a_policy_written_by_another_version_keeps_what_it_knows() -> None:
    """Unknown fields are left out, a non-finite value falls back to its default, the error
    threshold stays a whole number."""
    policy = policy_from_json('{"timeout": 900, "error_threshold": 4.0, "idle_after": NaN, "future": 1}')
    assert policy == Policy(timeout=900.0, error_threshold=4)
    assert policy is not None and isinstance(policy.error_threshold, int)


def test_incarnations_are_random_and_url_safe() -> None:
    seen = {new_incarnation() for _ in range(100)}
    assert len(seen) == 100
    assert all(
        len(value) == 8 and set(value) <= set(string.ascii_letters + string.digits + "-_") for value in seen
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_each_store_meets_every_protocol(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Every built-in store keeps sessions, names its namespace and incarnation (the same until it
    loses its sessions; a memory store's is its own), and keeps the policy for other processes."""
    manager = SessionManager(store=shared_store_url(kind, request, tmp_path))
    other = SessionManager(store=shared_store_url(kind, request, tmp_path))
    store = manager.store
    assert isinstance(store, SessionStore) and isinstance(store, PolicyStore)
    assert isinstance(store, NamespacedStore) and isinstance(other.store, NamespacedStore)
    assert store.incarnation() == store.incarnation()
    assert (store.incarnation() == other.store.incarnation()) is (kind != "memory")
    store.save_policy(POLICY)
    assert store.saved_policy() == POLICY
    manager.close()
    other.close()
