"""sessionmw: session tracking, retries and friendly error messages for Python web apps.

The names the guide teaches are importable from here, and from nowhere else: the modules that
define them are private. With them come the modules :mod:`sessionmw.signals` and
:mod:`sessionmw.testing`. Stores live in :mod:`sessionmw.stores`, the adapters in
:mod:`sessionmw.integrations`; docs/reference.md lists every public module.
"""

from __future__ import annotations

from sessionmw import signals, testing
from sessionmw._breaker import Breaker, BreakerOpenError, BreakerState
from sessionmw._context import current_manager, current_session_id, session_scope
from sessionmw._errors import (
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
from sessionmw._guard import guarded
from sessionmw._manager import (
    SessionManager,
    get_session_manager,
    new_session_id,
    set_session_manager,
)
from sessionmw._retry import RetryDetails, RetryStrategy, safe_execute
from sessionmw._session import SessionRecord
from sessionmw._settings import Settings
from sessionmw._states import SessionState
from sessionmw.health import CheckResult, HealthReport
from sessionmw.rendering import format_error
from sessionmw.translation import (
    Translation,
    UserFacingError,
    is_transient,
    register_translation,
    translate,
    unregister_translation,
)

__all__ = [
    "BackendProcessError",
    "Breaker",
    "BreakerOpenError",
    "BreakerState",
    "CheckResult",
    "ConfigurationError",
    "CorruptRecordError",
    "DataLoadError",
    "HealthReport",
    "IllegalTransitionError",
    "RetryDetails",
    "RetryStrategy",
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
    "signals",
    "testing",
    "translate",
    "unregister_translation",
]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed distribution on first use."""
    if name == "__version__":
        from importlib.metadata import version

        return version("sessionmw")
    raise AttributeError(f"module 'sessionmw' has no attribute {name!r}")
