"""sessionmw: session tracking, retries and friendly error messages for Python web apps.

Everything public is importable from here.
"""

from __future__ import annotations

from typing import Any

from sessionmw.context import current_manager
from sessionmw.context import current_session_id
from sessionmw.context import session_scope
from sessionmw.errors import BackendProcessError
from sessionmw.errors import ConfigurationError
from sessionmw.errors import CorruptRecordError
from sessionmw.errors import DataLoadError
from sessionmw.errors import IllegalTransitionError
from sessionmw.errors import SessionDisconnectedError
from sessionmw.errors import SessionError
from sessionmw.errors import SessionExistsError
from sessionmw.errors import SessionExpiredError
from sessionmw.errors import SessionLimitError
from sessionmw.errors import SessionMWError
from sessionmw.errors import SessionNotFoundError
from sessionmw.errors import StoreError
from sessionmw.errors import StoreUnavailableError
from sessionmw.errors import TransientError
from sessionmw.health import MESSAGES
from sessionmw.health import CheckResult
from sessionmw.health import HealthCheck
from sessionmw.health import HealthReport
from sessionmw.manager import SessionManager
from sessionmw.manager import get_session_manager
from sessionmw.manager import new_session_id
from sessionmw.manager import set_session_manager
from sessionmw.session import Policy
from sessionmw.session import SessionRecord
from sessionmw.settings import Settings
from sessionmw.states import Event
from sessionmw.states import HealthStatus
from sessionmw.states import SessionState
from sessionmw.stores import SessionStore
from sessionmw.stores import store_from_url
from sessionmw.transitions import TRANSITIONS
from sessionmw.transitions import Change

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
