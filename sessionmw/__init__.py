"""sessionmw: session tracking, retries and friendly error messages for Python web apps.

Everything public is importable from here.
"""

from __future__ import annotations

from typing import Any

from sessionmw.context import current_manager, current_session_id, session_scope
from sessionmw.errors import (
    BackendProcessError,
    ConfigurationError,
    CorruptRecordError,
    DataLoadError,
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
    TransientError,
)
from sessionmw.health import MESSAGES, CheckResult, HealthCheck, HealthReport
from sessionmw.manager import (
    SessionManager,
    get_session_manager,
    new_session_id,
    set_session_manager,
)
from sessionmw.session import Policy, SessionRecord
from sessionmw.settings import Settings
from sessionmw.states import Event, HealthStatus, SessionState
from sessionmw.stores import SessionStore, store_from_url
from sessionmw.transitions import TRANSITIONS, Change

__all__ = [
    "MESSAGES",
    "TRANSITIONS",
    "BackendProcessError",
    "Change",
    "CheckResult",
    "ConfigurationError",
    "CorruptRecordError",
    "DataLoadError",
    "Event",
    "HealthCheck",
    "HealthReport",
    "HealthStatus",
    "IllegalTransitionError",
    "Policy",
    "SessionDisconnectedError",
    "SessionError",
    "SessionExistsError",
    "SessionExpiredError",
    "SessionLimitError",
    "SessionMWError",
    "SessionManager",
    "SessionNotFoundError",
    "SessionRecord",
    "SessionState",
    "SessionStore",
    "Settings",
    "StoreError",
    "StoreUnavailableError",
    "TransientError",
    "current_manager",
    "current_session_id",
    "get_session_manager",
    "new_session_id",
    "session_scope",
    "set_session_manager",
    "store_from_url",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("sessionmw")
    raise AttributeError(f"module 'sessionmw' has no attribute {name!r}")
