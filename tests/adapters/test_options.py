"""The adapters' settings, checked in one place: a bad value is named when the adapter is built
(the WSGI middleware's arguments and the Flask extension's ``SESSIONMW_*`` keys alike), the secret
key comes from the argument, else the environment, and excluded paths are prefixes."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from sessionmw import ConfigurationError, SessionManager
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.options import Options, check_propagate_exceptions
from sessionmw.integrations.wsgi import SessionMiddleware

BAD = [
    pytest.param({"cookie_name": "bad name"}, "cookie_name", id="cookie-name"),
    pytest.param({"header_name": "X Bad"}, "header_name", id="header-name"),
    pytest.param({"prefix": "_sessionmw"}, "prefix", id="prefix-without-slashes"),
    pytest.param({"prefix": "/"}, "prefix", id="prefix-root"),
    pytest.param({"exclude": ["static"]}, "exclude", id="exclude-relative"),
    pytest.param({"cookie_domain": "a;b"}, "cookie_domain", id="cookie-domain"),
    pytest.param({"cookie_max_age": 0}, "cookie_max_age", id="max-age-zero"),
    pytest.param({"cookie_max_age": True}, "cookie_max_age", id="max-age-bool"),
    pytest.param({"metrics_path": "metrics"}, "metrics_path", id="metrics-path-relative"),
]
#: The Flask extension's config key of each option above.
FLASK_KEYS = {
    "cookie_name": "SESSIONMW_COOKIE_NAME",
    "header_name": "SESSIONMW_HEADER_NAME",
    "prefix": "SESSIONMW_PREFIX",
    "exclude": "SESSIONMW_EXCLUDE",
    "cookie_domain": "SESSIONMW_COOKIE_DOMAIN",
    "cookie_max_age": "SESSIONMW_COOKIE_MAX_AGE",
    "metrics_path": "SESSIONMW_METRICS_PATH",
}


def _build(adapter: str, manager: SessionManager, options: dict[str, Any]) -> None:
    """Build ``adapter`` with ``options`` (as its users give them)."""
    if adapter == "wsgi":
        SessionMiddleware(lambda environ, start: [], manager=manager, secret_key="k", **options)
    else:
        app = Flask("options")
        app.config.update({FLASK_KEYS[name]: value for name, value in options.items()}, SECRET_KEY="k")
        SessionMW(app, manager=manager)


@pytest.mark.parametrize(("options", "named"), BAD)
def test_a_bad_value_is_named(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Options.build(secret_key="k", **options)


@pytest.mark.parametrize("adapter", ["wsgi", "flask"])
@pytest.mark.parametrize(("options", "named"), BAD)
def test_each_adapter_refuses_a_bad_value_when_built(
    adapter: str, manager: SessionManager, options: dict[str, Any], named: str
) -> None:
    """The middleware's argument and the extension's config key are refused alike, before any request."""
    with pytest.raises(ConfigurationError, match=named):
        _build(adapter, manager, options)


@pytest.mark.parametrize(
    ("options", "named"),
    [({"secret_key": ""}, "secret_key"), ({"cookie_nmae": "x"}, "cookie_nmae")],
)
def test_the_middleware_names_an_empty_secret_and_an_unknown_option(
    manager: SessionManager, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        SessionMiddleware(lambda environ, start: [], manager=manager, **options)


def test_an_unknown_option_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Options.build(secret_key="k", cookie_nmae="x")
    assert "'cookie_nmae'" in str(caught.value) and "cookie_name" in str(caught.value)


def test_the_secret_key_comes_from_the_argument_else_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text and bytes are the same key; without one, ``SESSIONMW_SECRET_KEY`` is read; an empty
    key is refused; without any, each build gets its own random key."""
    assert Options.build(secret_key="shared").secret_key == Options.build(secret_key=b"shared").secret_key
    monkeypatch.setenv("SESSIONMW_SECRET_KEY", "from-env")
    assert Options.build().secret_key == b"from-env"
    assert Options.build(secret_key="given").secret_key == b"given"
    with pytest.raises(ConfigurationError, match="secret_key"):
        Options.build(secret_key="")
    monkeypatch.delenv("SESSIONMW_SECRET_KEY")
    one, two = Options.build(), Options.build()
    assert len(one.secret_key) == 32 and one.secret_key != two.secret_key


def test_excluded_paths_are_prefixes() -> None:
    """A path under an excluded prefix is excluded; one string is one prefix (not its letters)."""
    options = Options.build(secret_key="k", exclude="/static/")
    assert options.exclude == ("/static/",)
    assert options.excluded("/static/app.css") and not options.excluded("/s")
    assert not Options.build(secret_key="k").excluded("/static/app.css")


@pytest.mark.parametrize("value", [True, False, None])
def test_propagate_exceptions_is_a_bool_or_none(value: bool | None) -> None:
    assert check_propagate_exceptions(value) is value


@pytest.mark.parametrize("value", ["yes", 1, 0])
def test_propagate_exceptions_refuses_anything_else(value: object) -> None:
    with pytest.raises(ConfigurationError, match=f"propagate_exceptions={value!r}"):
        check_propagate_exceptions(value)
