"""The exception hierarchy: one base class to catch everything sessionmw raises, the seed's classes
where callers expect them, and the details an illegal transition carries."""

from __future__ import annotations

import pytest

from sessionmw import _errors
from sessionmw._errors import (
    ConfigurationError,
    CorruptRecordError,
    IllegalTransitionError,
    SessionDisconnectedError,
    SessionError,
    SessionExistsError,
    SessionExpiredError,
    SessionLimitError,
    SessionMWError,
    SessionNotFoundError,
    StoreError,
    StoreUnavailableError,
)


def test_everything_sessionmw_raises_is_caught_by_one_base_class() -> None:
    classes = [getattr(_errors, name) for name in _errors.__all__]
    assert all(issubclass(cls, SessionMWError) for cls in classes)


def test_a_bad_setting_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="idle_after"):
        raise ConfigurationError("idle_after must be positive, got -1")


SESSION_ERRORS = [SessionNotFoundError, SessionExpiredError, SessionDisconnectedError, SessionExistsError]


@pytest.mark.parametrize("cls", [*SESSION_ERRORS, SessionLimitError])
def test_session_errors_are_the_seeds_session_error_and_name_their_session(cls: type[SessionError]) -> None:
    error = cls("gone", session_id="abc")
    assert isinstance(error, SessionError)
    assert (str(error), error.session_id) == ("gone", "abc")
    assert cls("gone").session_id is None


def test_store_errors_share_a_class_apart_from_session_errors() -> None:
    for cls in (StoreUnavailableError, CorruptRecordError):
        assert issubclass(cls, StoreError)
        assert not issubclass(cls, SessionError)


def test_an_illegal_transition_names_the_state_and_the_event() -> None:
    error = IllegalTransitionError("expired", "activity", session_id="abc")
    assert (error.state, error.event, error.session_id) == ("expired", "activity", "abc")
    assert str(error) == "Can't apply event 'activity' to a session in state 'expired'"
    assert isinstance(error, SessionError)
