"""sessionmw: session tracking, retries and friendly error messages for Python web apps.

Everything the guide lists is importable from here, with the modules :mod:`sessionmw.signals` and
:mod:`sessionmw.testing`. ``SQLiteStore`` and ``RedisStore`` are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionmw import signals, testing
from sessionmw.analytics import Analytics, Stats
from sessionmw.breaker import BREAKER_TRANSITIONS, Breaker, BreakerOpenError, BreakerRecord, BreakerState
from sessionmw.context import (
    Scope,
    current_debug,
    current_manager,
    current_scope,
    current_session_id,
    enter_scope,
    leave_scope,
    session_scope,
)
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
from sessionmw.guard import DEFAULT_RETRY, guarded
from sessionmw.health import CheckResult, HealthCheck, HealthReport
from sessionmw.manager import (
    SessionManager,
    get_session_manager,
    new_session_id,
    set_session_manager,
)
from sessionmw.rendering import format_error
from sessionmw.retry import RetryDetails, RetryStrategy, safe_execute
from sessionmw.session import Policy, SessionRecord
from sessionmw.settings import Settings
from sessionmw.states import WORKING_STATES, Event, HealthStatus, SessionState
from sessionmw.stores import MemoryStore, SessionStore, store_from_url
from sessionmw.texts import MESSAGES
from sessionmw.transitions import TRANSITIONS, Change
from sessionmw.translation import (
    Translation,
    UserFacingError,
    is_transient,
    register_translation,
    translate,
    unregister_translation,
)

if TYPE_CHECKING:
    from sessionmw.stores.redis import RedisStore
    from sessionmw.stores.sqlite import SQLiteStore

__all__ = [
    "BREAKER_TRANSITIONS",
    "DEFAULT_RETRY",
    "MESSAGES",
    "TRANSITIONS",
    "WORKING_STATES",
    "Analytics",
    "BackendProcessError",
    "Breaker",
    "BreakerOpenError",
    "BreakerRecord",
    "BreakerState",
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
    "MemoryStore",
    "Policy",
    "RedisStore",
    "RetryDetails",
    "RetryStrategy",
    "SQLiteStore",
    "Scope",
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
    "Stats",
    "StoreError",
    "StoreUnavailableError",
    "TransientError",
    "Translation",
    "UserFacingError",
    "current_debug",
    "current_manager",
    "current_scope",
    "current_session_id",
    "enter_scope",
    "format_error",
    "get_session_manager",
    "guarded",
    "is_transient",
    "leave_scope",
    "new_session_id",
    "register_translation",
    "safe_execute",
    "session_scope",
    "set_session_manager",
    "signals",
    "store_from_url",
    "testing",
    "translate",
    "unregister_translation",
]


def __getattr__(name: str) -> Any:
    """``__version__``, and the persistent stores, imported on first use."""
    if name == "SQLiteStore":
        from sessionmw.stores.sqlite import SQLiteStore

        return SQLiteStore
    if name == "RedisStore":
        from sessionmw.stores.redis import RedisStore

        return RedisStore
    if name == "__version__":
        from importlib.metadata import version

        return version("sessionmw")
    raise AttributeError(f"module 'sessionmw' has no attribute {name!r}")
