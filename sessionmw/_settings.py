"""Settings: built from keyword arguments or from the environment.

The seed's variable names (``SESSION_TIMEOUT_MINUTES``, ``MAX_ERROR_THRESHOLD``,
``HEALTH_CHECK_INTERVAL_SECONDS``) are read, and the same names prefixed ``SESSIONMW_`` win over
them. A value sessionmw cannot use raises :class:`~sessionmw._errors.ConfigurationError` naming the
variable and the value.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from sessionmw._errors import ConfigurationError
from sessionmw._session import Policy
from sessionmw.stores._urls import mask_url

__all__ = ["ENVIRONMENT_VARIABLES", "RESOLUTION_SHARE", "Settings"]

#: The default renewal window as a share of the shorter of the idle and inactivity timeouts
#: (15 s of the default 300 s idle time).
RESOLUTION_SHARE = 0.05

StoreErrorMode = Literal["fail_open", "fail_closed"]


def _positive_number(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")


def _positive_int(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive whole number")


def _optional_positive_int(value: object) -> None:
    if value is not None:
        _positive_int(value)


def _optional_resolution(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number of seconds (or None for the default)")
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be 0 or a positive number of seconds")


def _parse_optional_number(text: str) -> float | None:
    return None if text.strip().lower() in {"", "none", "auto"} else _parse_number(text)


def _bool(value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")


def _store_error_mode(value: object) -> None:
    if value not in ("fail_open", "fail_closed"):
        raise ValueError("must be 'fail_open' or 'fail_closed'")


def _text(value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")


def _parse_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("must be a number") from None


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None


def _parse_optional_int(text: str) -> int | None:
    return None if text.strip().lower() in {"", "none"} else _parse_int(text)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false (1/0, yes/no, on/off)")


def _parse_text(text: str) -> str:
    return text.strip()


class _Field(NamedTuple):
    env_names: tuple[str, ...]  # most specific first
    parse: Callable[[str], Any]
    check: Callable[[object], None]


_FIELDS: dict[str, _Field] = {
    "session_timeout_minutes": _Field(
        ("SESSIONMW_SESSION_TIMEOUT_MINUTES", "SESSION_TIMEOUT_MINUTES"),
        _parse_number,
        _positive_number,
    ),
    "idle_after_seconds": _Field(("SESSIONMW_IDLE_AFTER_SECONDS",), _parse_number, _positive_number),
    "absolute_timeout_hours": _Field(
        ("SESSIONMW_SESSION_ABSOLUTE_TIMEOUT_HOURS", "SESSION_ABSOLUTE_TIMEOUT_HOURS"),
        _parse_number,
        _positive_number,
    ),
    "max_error_threshold": _Field(
        ("SESSIONMW_MAX_ERROR_THRESHOLD", "MAX_ERROR_THRESHOLD"), _parse_int, _positive_int
    ),
    "health_check_interval_seconds": _Field(
        ("SESSIONMW_HEALTH_CHECK_INTERVAL_SECONDS", "HEALTH_CHECK_INTERVAL_SECONDS"),
        _parse_number,
        _positive_number,
    ),
    "activity_resolution_seconds": _Field(
        ("SESSIONMW_ACTIVITY_RESOLUTION_SECONDS",), _parse_optional_number, _optional_resolution
    ),
    "store_url": _Field(("SESSIONMW_STORE_URL",), _parse_text, _text),
    "max_sessions": _Field(("SESSIONMW_MAX_SESSIONS",), _parse_optional_int, _optional_positive_int),
    "on_store_error": _Field(("SESSIONMW_ON_STORE_ERROR",), _parse_text, _store_error_mode),
    "debug": _Field(("SESSIONMW_DEBUG",), _parse_bool, _bool),
}

#: Every environment variable sessionmw reads, in the order it looks at them.
ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(name for field in _FIELDS.values() for name in field.env_names)


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of a :class:`~sessionmw.SessionManager`, validated.

    Build one with keyword arguments (``Settings(session_timeout_minutes=60)``) or from the
    environment with :meth:`from_env`. :attr:`sources` says where each value came from.
    """

    #: Minutes without activity before a session expires (``SESSION_TIMEOUT_MINUTES``).
    session_timeout_minutes: float = 30.0
    #: Seconds without activity before an active session is reported idle.
    idle_after_seconds: float = 300.0
    #: Hours after creation at which a session expires however active it is.
    absolute_timeout_hours: float = 12.0
    #: Errors at which a session is disconnected (``MAX_ERROR_THRESHOLD``).
    max_error_threshold: int = 5
    #: How often a UI should poll session health (``HEALTH_CHECK_INTERVAL_SECONDS``).
    health_check_interval_seconds: float = 30.0
    #: Seconds within which a request's activity is not written to the store again (the renewal
    #: window; None: :data:`RESOLUTION_SHARE` of the shorter of the idle and inactivity
    #: timeouts; 0: write on every request). Idleness and expiry may come up to this much early,
    #: never late. At most half the shorter timeout.
    activity_resolution_seconds: float | None = None
    #: Where sessions are kept: ``memory://``, ``sqlite:///path``, ``redis://host:port/db``.
    store_url: str = "memory://"
    #: The most live sessions the store accepts; None for no limit.
    max_sessions: int | None = None
    #: What to do when the store fails: serve on (``fail_open``) or refuse (``fail_closed``).
    on_store_error: StoreErrorMode = "fail_open"
    #: Show technical details (exception type and text) in user-facing messages.
    debug: bool = False
    #: Where each value came from: ``"default"``, ``"argument"`` or the environment variable.
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, field in _FIELDS.items():
            value = getattr(self, name)
            try:
                field.check(value)
            except ValueError as exc:
                raise ConfigurationError(f"{name}={value!r} is not valid: {exc}") from None
        resolution = self.activity_resolution_seconds
        if resolution is not None and resolution > self._shorter_timeout() / 2:
            source = self.sources.get("activity_resolution_seconds", "argument")
            named = "activity_resolution_seconds" if source in ("argument", "default") else source
            raise ConfigurationError(
                f"{named}={resolution!r} is not valid: must be at most half the shorter of "
                f"idle_after_seconds and the session timeout ({self._shorter_timeout() / 2:g} s)"
            )
        if not self.sources:
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            sources = {
                name: "default" if getattr(self, name) == defaults[name] else "argument" for name in _FIELDS
            }
            object.__setattr__(self, "sources", sources)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings read from ``environ`` (default :data:`os.environ`), then ``overrides``.

        :raises ConfigurationError: naming the variable and its value, if a value is unusable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = dict.fromkeys(_FIELDS, "default")
        for name, field in _FIELDS.items():
            for env_name in field.env_names:
                raw = environ.get(env_name)
                if raw is None:
                    continue
                try:
                    value = field.parse(raw)
                    field.check(value)
                except ValueError as exc:
                    raise ConfigurationError(f"{env_name}={raw!r} is not valid: {exc}") from None
                values[name] = value
                sources[name] = env_name
                break
        for name, value in overrides.items():
            if name not in _FIELDS:
                raise ConfigurationError(f"unknown setting {name!r}; known settings: {', '.join(_FIELDS)}")
            values[name] = value
            sources[name] = "argument"
        return cls(**values, sources=sources)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated; their source becomes ``"argument"``)."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ConfigurationError(
                f"unknown setting {sorted(unknown)[0]!r}; known settings: {', '.join(_FIELDS)}"
            )
        sources = {**self.sources, **dict.fromkeys(changes, "argument")}
        return dataclasses.replace(self, **changes, sources=sources)

    def __repr__(self) -> str:
        """The settings, with a password in ``store_url`` shown as ``***``."""
        shown = {name: getattr(self, name) for name in _FIELDS}
        shown["store_url"] = mask_url(self.store_url)
        return "Settings(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"

    def _shorter_timeout(self) -> float:
        return min(float(self.idle_after_seconds), self.session_timeout_minutes * 60.0)

    @property
    def activity_resolution(self) -> float:
        """The renewal window in force, in seconds (the setting, or its derived default)."""
        resolution = self.activity_resolution_seconds
        if resolution is None:
            return self._shorter_timeout() * RESOLUTION_SHARE
        return float(resolution)

    @property
    def policy(self) -> Policy:
        """The timing limits the stores judge sessions by."""
        return Policy(
            idle_after=self.idle_after_seconds,
            timeout=self.session_timeout_minutes * 60.0,
            absolute_timeout=self.absolute_timeout_hours * 3600.0,
            error_threshold=self.max_error_threshold,
            activity_resolution=self.activity_resolution,
        )
