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
from sessionmw.guard import guarded
from sessionmw.health import MESSAGES, CheckResult, HealthCheck, HealthReport
from sessionmw.manager import (
    SessionManager,
    get_session_manager,
    new_session_id,
    set_session_manager,
)
from sessionmw.retry import RetryDetails, RetryStrategy, safe_execute
from sessionmw.session import Policy, SessionRecord
from sessionmw.settings import Settings
from sessionmw.states import Event, HealthStatus, SessionState
from sessionmw.stores import SessionStore, store_from_url
from sessionmw.stores.redis import RedisStore
from sessionmw.stores.sqlite import SQLiteStore
from sessionmw.transitions import TRANSITIONS, Change
from sessionmw.translation import (
    Translation,
    UserFacingError,
    format_error,
    is_transient,
    register_translation,
    translate,
    unregister_translation,
)

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
    "RedisStore",
    "RetryDetails",
    "RetryStrategy",
    "SQLiteStore",
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
    "Translation",
    "UserFacingError",
    "current_manager",
    "current_session_id",
    "format_error",
    "get_session_manager",
    "guarded",
    "is_transient",
    "new_session_id",
    "register_translation",
    "safe_execute",
    "session_scope",
    "set_session_manager",
    "store_from_url",
    "translate",
    "unregister_translation",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("sessionmw")
    raise AttributeError(f"module 'sessionmw' has no attribute {name!r}")
