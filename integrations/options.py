"""The adapters' settings, checked in one place: :class:`Options`.

Every option of the WSGI middleware, the Flask extension (its ``SESSIONMW_*`` keys) and the Dash
extension ends up here; a bad value raises :class:`~sessionmw.ConfigurationError` naming it,
when the adapter is built, never on a request.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
import warnings
from collections.abc import Iterable
from typing import Any

from sessionmw._errors import ConfigurationError
from sessionmw.languages import LanguageSelector, Negotiator
from sessionmw.stores.options import flag

__all__ = ["Options", "check_propagate_exceptions"]

_log = logging.getLogger("sessionmw.wsgi")

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")
_SECRET_ENV = "SESSIONMW_SECRET_KEY"
_LANGUAGES_ENV = "SESSIONMW_LANGUAGES"
_PROBLEM_JSON_ENV = "SESSIONMW_PROBLEM_JSON"


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """How the adapters find, issue and expose sessions (validated on construction).

    :param cookie_name: the session cookie's name.
    :param header_name: the request header API clients send the session id in.
    :param prefix: the path under which the ``health`` and ``reconnect`` endpoints live.
    :param exclude: path prefixes that neither create nor touch sessions (static files, metrics).
    :param secure: add ``Secure`` to the cookie: None (default) when the request is HTTPS.
    :param cookie_domain: the cookie's ``Domain``; None (default) sends none (host-only cookie).
    :param cookie_max_age: the cookie's ``Max-Age`` in seconds; None (default): a browser-session cookie.
    :param secret_key: signs the ids of sessions not stored yet; share it between processes.
    :param metrics_path: serve Prometheus metrics (``prometheus_client``'s default registry, where
        :func:`sessionmw.metrics.instrument` registers) at this path; None (default) serves none.
        The path neither creates nor touches sessions.
    :param languages: the languages users read sessionmw in, the default first (see
        ``docs/languages.md``); None (default): ``SESSIONMW_LANGUAGES``, else every available one
        (English first).
    :param language_selector: the app's own choice of a request's language, before
        ``Accept-Language`` (see :data:`sessionmw.languages.LanguageSelector`).
    :param problem_json: API clients get RFC 9457 problem documents (``application/problem+json``,
        see :mod:`sessionmw.integrations.problem`); False (deprecated) gives them the JSON of
        :func:`~sessionmw.format_error` instead, for one release.
    """

    cookie_name: str = "sessionmw"
    header_name: str = "X-Session-ID"
    prefix: str = "/_sessionmw/"
    exclude: tuple[str, ...] = ()
    secure: bool | None = None
    cookie_domain: str | None = None
    cookie_max_age: int | None = None
    secret_key: bytes = dataclasses.field(default=b"", repr=False)
    metrics_path: str | None = None
    languages: tuple[str, ...] | None = None
    language_selector: LanguageSelector | None = None
    problem_json: bool = True

    def __post_init__(self) -> None:
        try:
            negotiator = Negotiator(self.languages, self.language_selector)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if self.languages is not None:
            object.__setattr__(self, "languages", negotiator.languages)
        if not isinstance(self.problem_json, bool):
            raise ConfigurationError(f"problem_json={self.problem_json!r} must be True or False")
        if self.metrics_path is not None and not (
            isinstance(self.metrics_path, str) and self.metrics_path.startswith("/")
        ):
            raise ConfigurationError(f"metrics_path={self.metrics_path!r} must be a path starting with '/'")
        if not _TOKEN.fullmatch(self.cookie_name):
            raise ConfigurationError(f"cookie_name={self.cookie_name!r} is not a valid cookie name")
        if not _TOKEN.fullmatch(self.header_name):
            raise ConfigurationError(f"header_name={self.header_name!r} is not a valid header name")
        if not (self.prefix.startswith("/") and self.prefix.endswith("/") and len(self.prefix) > 1):
            raise ConfigurationError(
                f"prefix={self.prefix!r} must start and end with '/', e.g. '/_sessionmw/'"
            )
        for path in self.exclude:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError(f"exclude entry {path!r} must be a path starting with '/'")
        if self.cookie_domain is not None and not _DOMAIN.fullmatch(self.cookie_domain):
            raise ConfigurationError(f"cookie_domain={self.cookie_domain!r} is not a valid domain")
        if self.cookie_max_age is not None and (
            isinstance(self.cookie_max_age, bool)
            or not isinstance(self.cookie_max_age, int)
            or self.cookie_max_age <= 0
        ):
            raise ConfigurationError(
                f"cookie_max_age={self.cookie_max_age!r} must be a positive whole number"
            )

    @classmethod
    def build(
        cls,
        *,
        secret_key: str | bytes | None = None,
        exclude: Iterable[str] = (),
        problem_json: object = None,
        **options: Any,
    ) -> Options:
        """Options with the secret taken from ``secret_key``, else ``SESSIONMW_SECRET_KEY``, else random.

        A random secret works for one process only: with several worker processes, configure one.
        ``problem_json`` is a yes/no value (``True``, ``"off"``, ...); None reads
        ``SESSIONMW_PROBLEM_JSON`` (default yes). No (the JSON shape before problem documents) is
        deprecated: it warns with a :class:`DeprecationWarning`.

        :raises ConfigurationError: for an unknown option (naming the known ones) or a bad value.
        """
        if problem_json is None:
            problem_json = os.environ.get(_PROBLEM_JSON_ENV) or True
        problem = flag("problem_json", problem_json)
        if not problem:
            warnings.warn(
                "problem_json=False (SESSIONMW_PROBLEM_JSON) is deprecated and will be removed in the "
                "next release: API clients then get RFC 9457 problem documents "
                "(application/problem+json, see docs/api-clients.md)",
                DeprecationWarning,
                stacklevel=3,
            )
        if secret_key is None:
            secret_key = os.environ.get(_SECRET_ENV) or None
        if secret_key is None:
            _log.warning(
                "no secret key configured (%s): pending session ids are only valid in this process",
                _SECRET_ENV,
            )
            secret_key = secrets.token_bytes(32)
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            known = ", ".join(sorted(_OPTION_NAMES | {"secret_key", "exclude", "problem_json"}))
            raise ConfigurationError(f"unknown option {unknown[0]!r}; known options: {known}")
        if isinstance(exclude, str):
            exclude = (exclude,)
        if options.get("languages") is None and os.environ.get(_LANGUAGES_ENV):
            options["languages"] = os.environ[_LANGUAGES_ENV]
        key = secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)
        if not key:
            raise ConfigurationError("secret_key must not be empty")
        return cls(secret_key=key, exclude=tuple(exclude), problem_json=problem, **options)

    def negotiator(self) -> Negotiator:
        """What chooses a request's language among :attr:`languages` (see
        :class:`sessionmw.languages.Negotiator`)."""
        return Negotiator(self.languages, self.language_selector)

    def excluded(self, path: str) -> bool:
        """True for a path that must neither create nor touch a session (under one of :attr:`exclude`)."""
        return any(path.startswith(prefix) for prefix in self.exclude)


_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(Options)) - {
    "secret_key",
    "exclude",
    "problem_json",
}


def check_propagate_exceptions(value: object) -> bool | None:
    """``value`` as the ``propagate_exceptions`` setting: True, False or None.

    :raises ConfigurationError: for anything else.
    """
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError(f"propagate_exceptions={value!r} must be True, False or None")
    return value
