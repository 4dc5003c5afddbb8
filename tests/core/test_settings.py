"""Settings from keyword arguments and the environment, and their errors."""

from __future__ import annotations

import pytest

from sessionmw import ConfigurationError, Settings
from sessionmw._settings import ENVIRONMENT_VARIABLES


def test_defaults_are_the_seeds() -> None:
    """30-minute timeout, 5 errors, 30-second health checks, 12-hour lifetime, memory store."""
    settings = Settings.from_env({})
    assert settings.session_timeout_minutes == 30
    assert settings.max_error_threshold == 5
    assert settings.health_check_interval_seconds == 30
    assert settings.absolute_timeout_hours == 12
    assert settings.idle_after_seconds == 300
    assert settings.store_url == "memory://"
    assert settings.on_store_error == "fail_open"
    assert set(settings.sources.values()) == {"default"}


def test_seed_names_are_read_and_prefixed_names_win() -> None:
    """SESSION_TIMEOUT_MINUTES works; SESSIONMW_SESSION_TIMEOUT_MINUTES wins over it."""
    env = {
        "SESSION_TIMEOUT_MINUTES": "60",
        "MAX_ERROR_THRESHOLD": "7",
        "HEALTH_CHECK_INTERVAL_SECONDS": "15",
        "SESSIONMW_SESSION_TIMEOUT_MINUTES": "45",
        "SESSIONMW_STORE_URL": "memory://",
        "SESSIONMW_DEBUG": "yes",
    }
    settings = Settings.from_env(env)
    assert settings.session_timeout_minutes == 45
    assert settings.max_error_threshold == 7
    assert settings.health_check_interval_seconds == 15
    assert settings.debug is True
    assert settings.sources["session_timeout_minutes"] == "SESSIONMW_SESSION_TIMEOUT_MINUTES"
    assert settings.sources["max_error_threshold"] == "MAX_ERROR_THRESHOLD"
    assert settings.policy.timeout == 45 * 60


def test_arguments_win_over_environment() -> None:
    """Keyword overrides beat the environment and are marked as arguments."""
    settings = Settings.from_env({"MAX_ERROR_THRESHOLD": "7"}, max_error_threshold=3)
    assert settings.max_error_threshold == 3
    assert settings.sources["max_error_threshold"] == "argument"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SESSION_TIMEOUT_MINUTES", "abc"),
        ("SESSION_TIMEOUT_MINUTES", "-3"),
        ("SESSION_TIMEOUT_MINUTES", "0"),
        ("SESSION_TIMEOUT_MINUTES", "nan"),
        ("MAX_ERROR_THRESHOLD", "0"),
        ("MAX_ERROR_THRESHOLD", "2.5"),
        ("HEALTH_CHECK_INTERVAL_SECONDS", "-1"),
        ("SESSIONMW_ON_STORE_ERROR", "sometimes"),
        ("SESSIONMW_DEBUG", "maybe"),
        ("SESSIONMW_STORE_URL", "  "),
        ("SESSIONMW_MAX_SESSIONS", "-5"),
    ],
)
def test_bad_environment_value_names_variable_and_value(variable: str, value: str) -> None:
    """A bad value raises ConfigurationError naming the variable and the value."""
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({variable: value})
    assert variable in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"session_timeout_minutes": 0},
        {"max_error_threshold": True},
        {"max_error_threshold": -1},
        {"on_store_error": "open"},
        {"debug": "yes"},
        {"max_sessions": 0},
    ],
)
def test_bad_argument_names_setting(kwargs: dict[str, object]) -> None:
    """A bad keyword value raises ConfigurationError naming the setting."""
    name = next(iter(kwargs))
    with pytest.raises(ConfigurationError, match=name):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_unknown_setting_is_refused() -> None:
    """A misspelt setting is an error that lists the known ones."""
    with pytest.raises(ConfigurationError, match="session_timeout_minutes"):
        Settings.from_env({}, session_timeout=5)
    with pytest.raises(ConfigurationError, match="unknown setting"):
        Settings().replace(timeout=5)


def test_environment_variables_listed() -> None:
    """Every documented variable is in ENVIRONMENT_VARIABLES, prefixed names first."""
    assert ENVIRONMENT_VARIABLES.index("SESSIONMW_MAX_ERROR_THRESHOLD") < ENVIRONMENT_VARIABLES.index(
        "MAX_ERROR_THRESHOLD"
    )
    assert "SESSIONMW_STORE_URL" in ENVIRONMENT_VARIABLES


def test_repr_hides_a_password_in_the_store_url() -> None:
    """Settings can be logged: the store URL's password is shown as ***."""
    settings = Settings(store_url="redis://user:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in repr(settings)
    assert "store_url='redis://user:***@127.0.0.1:6379/0'" in repr(settings)
    assert "max_error_threshold=5" in repr(settings)
