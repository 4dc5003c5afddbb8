"""Session tracking for any WSGI application, in one line.

.. code-block:: python

    app.wsgi_app = SessionMiddleware(app.wsgi_app)

Each request is matched to a session (a cookie, or the ``X-Session-ID`` header for API clients),
counts as activity, and runs inside :func:`sessionmw.session_scope`. An exception from the app
becomes a friendly HTML or JSON error page and is recorded on the session. Two endpoints serve
the session's health and reconnect it. See ``docs/wsgi.md`` for every option.

:class:`SessionGate` holds the request logic both adapters share (this middleware and the Flask
extension); it turns requests into core calls and core results into responses.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import html
import json
import logging
import math
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from sessionmw import signals
from sessionmw.context import enter_scope, leave_scope
from sessionmw.errors import ConfigurationError, IllegalTransitionError, SessionExistsError
from sessionmw.health import HealthReport
from sessionmw.manager import STORE_UNAVAILABLE, SessionManager, get_session_manager, new_session_id
from sessionmw.session import Policy, SessionRecord
from sessionmw.states import SessionState
from sessionmw.stores import MemoryStore, SessionStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from sessionmw.translation import UserFacingError

__all__ = [
    "ENVIRON_HEALTH",
    "ENVIRON_MANAGER",
    "ENVIRON_NOTICE",
    "ENVIRON_SESSION",
    "ENVIRON_SESSION_ID",
    "Options",
    "RequestSession",
    "SessionGate",
    "SessionMiddleware",
    "banner_for",
    "banner_html",
    "health_json",
    "install",
    "private_cache_control",
    "uninstall",
    "wants_json",
]

_log = logging.getLogger("sessionmw.wsgi")

#: environ key: the :class:`~sessionmw.SessionManager` serving the request.
ENVIRON_MANAGER = "sessionmw.manager"
#: environ key: the session id of the request (a string).
ENVIRON_SESSION_ID = "sessionmw.session_id"
#: environ key: the :class:`RequestSession` of the request.
ENVIRON_SESSION = "sessionmw.session"
#: environ key: the session's :class:`~sessionmw.HealthReport` at the start of the request.
ENVIRON_HEALTH = "sessionmw.health"
#: environ key: a report to show the user once (the expired session a fresh one replaced), or None.
ENVIRON_NOTICE = "sessionmw.notice"
_APPLIED = "sessionmw.applied"

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ID_SHAPE = re.compile(r"[A-Za-z0-9._:~-]{1,128}")
_MAC_LENGTH = 22  # base64 characters of the pending id's MAC (132 bits)
_SECRET_ENV = "SESSIONMW_SECRET_KEY"
_JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_HEALTH_HEADERS = [("Content-Type", "application/health+json"), ("Cache-Control", "no-store")]


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

    def __post_init__(self) -> None:
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
        if self.cookie_domain is not None and not re.fullmatch(r"[A-Za-z0-9.-]+", self.cookie_domain):
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
        cls, *, secret_key: str | bytes | None = None, exclude: Iterable[str] = (), **options: Any
    ) -> Options:
        """Options with the secret taken from ``secret_key``, else ``SESSIONMW_SECRET_KEY``, else random.

        A random secret works for one process only: with several worker processes, configure one.
        """
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
            known = ", ".join(sorted(_OPTION_NAMES | {"secret_key", "exclude"}))
            raise ConfigurationError(f"unknown option {unknown[0]!r}; known options: {known}")
        if isinstance(exclude, str):
            exclude = (exclude,)
        key = secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)
        if not key:
            raise ConfigurationError("secret_key must not be empty")
        return cls(secret_key=key, exclude=tuple(exclude), **options)

    @property
    def header_key(self) -> str:
        """The WSGI environ key of :attr:`header_name`."""
        return "HTTP_" + self.header_name.upper().replace("-", "_")


_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(Options)) - {"secret_key", "exclude"}


#: Seconds a pending id's issue time may lie in the future (clocks of hosts that disagree a little).
_CLOCK_SLACK = 60.0


def _pending_window(policy: Policy) -> float:
    """Seconds after its issue during which a pending id is stored when the client sends it back.

    The session timeout, but never longer than the store keeps an ended or expired record (its
    ``retention``, less a minute of clock slack): while a pending id is acceptable, a session stored
    under it is still on record, so an id that was ever stored never becomes a session again.
    """
    return max(0.0, min(policy.timeout, policy.retention - _CLOCK_SLACK))


def _store_namespace(store: SessionStore) -> str:
    """What names ``store``'s sessions alike in every process that shares them.

    An SQLite file's real path, a Redis database and key prefix (not the host, which workers may
    name differently); a memory store is its own (one process);
    another store, its class. Pending ids are signed with it, so they are valid only where they
    were issued.
    """
    if isinstance(store, MemoryStore):
        return f"memory:{id(store):x}"
    sqlite_module = sys.modules.get("sessionmw.stores.sqlite")
    if sqlite_module is not None and isinstance(store, sqlite_module.SQLiteStore):
        return f"sqlite:{os.path.realpath(store.path)}"
    redis_module = sys.modules.get("sessionmw.stores.redis")
    if redis_module is not None and isinstance(store, redis_module.RedisStore):
        pool = getattr(store, "_pool", None)  # a cluster has none: database 0
        database = int(getattr(pool, "connection_kwargs", {}).get("db") or 0)
        return f"redis:{database}:{store.prefix}"
    kind = type(store)
    return f"{kind.__module__}.{kind.__qualname__}"


@dataclasses.dataclass(slots=True)
class RequestSession:
    """The session serving one request."""

    #: The session id.
    id: str
    #: The manager that keeps the session.
    manager: SessionManager
    #: The session as of the start of the request (for a pending session, an unsaved fresh record).
    record: SessionRecord
    #: False while the session is pending: issued to the client but not stored until it returns.
    stored: bool
    #: True when the response must (re)set the cookie.
    issue_cookie: bool
    #: True when the client sent its id in the header (an API client).
    via_header: bool
    #: The report of an expired session this one replaced (shown to the user once), or None.
    notice: HealthReport | None = None
    _health: HealthReport | None = None
    #: True once an error was recorded on the session during this request (no success then).
    failed: bool = False
    #: When the request began (:func:`time.perf_counter`), for the ``request_finished`` signal.
    started: float = dataclasses.field(default_factory=time.perf_counter)
    #: Why the session may not work, as the core reports it (the notice of an expired session,
    #: the health of a disconnected one), or None: a JSON client gets it as the response.
    refusal: HealthReport | None = None

    @property
    def health(self) -> HealthReport:
        """The session's health at the start of the request (no store operation)."""
        if self._health is None:
            manager = self.manager
            self._health = HealthReport.build(self.id, self.record, manager.clock(), manager.policy)
        return self._health

    @property
    def state(self) -> SessionState:
        """The session's state at the start of the request."""
        return self.record.state

    def ensure_stored(self) -> None:
        """Store a pending session now (e.g. before recording an error on it)."""
        if self.stored:
            return
        with contextlib.suppress(SessionExistsError):
            self.manager.create_session(self.id)
        self.stored = True


class SessionGate:
    """The request logic the WSGI middleware and the Flask extension share.

    :param manager: the manager that keeps the sessions.
    :param options: cookie, header, endpoint and exclusion settings.
    :param debug: show exception details in error responses; None: the manager's ``debug`` setting.
    """

    def __init__(self, manager: SessionManager, options: Options, *, debug: bool | None = None) -> None:
        self.manager = manager
        self.options = options
        self.debug = manager.settings.debug if debug is None else debug
        self._cookie_prefix = options.cookie_name + "="
        self._header_key = options.header_key

    # -- finding the session ------------------------------------------------------------------

    def excluded(self, path: str) -> bool:
        """True for a path that must neither create nor touch a session."""
        return any(path.startswith(prefix) for prefix in self.options.exclude)

    def client_id(self, environ: WSGIEnvironment) -> tuple[str | None, bool]:
        """The well-formed id the client sent (header first, then cookie), and whether it was the header."""
        header = environ.get(self._header_key)
        if header is not None:
            header = header.strip()
            return (header if _ID_SHAPE.fullmatch(header) else None), True
        cookie = self._cookie(environ.get("HTTP_COOKIE", ""))
        return (cookie if cookie is not None and _ID_SHAPE.fullmatch(cookie) else None), False

    def _cookie(self, header: str) -> str | None:
        prefix = self._cookie_prefix
        if prefix not in header:
            return None
        if ";" not in header and header.startswith(prefix):  # the only cookie: no split needed
            return header[len(prefix) :].strip().strip('"')
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == self.options.cookie_name:
                return value.strip().strip('"')
        return None

    def begin(self, environ: WSGIEnvironment) -> RequestSession:
        """Find the request's session and record the request as activity; fill the environ.

        An unknown, malformed or forged id is never adopted: a new pending id is issued, stored
        only when the client sends it back (so clients that drop cookies store nothing). This is
        also what a client whose session vanished gets (deleted, or lost by the store): an id the
        store does not know is stored only as a pending id within its window (see
        ``_pending_window``), and an ended or expired record outlives that window, so an id that
        was ever stored never becomes a session again.
        """
        manager = self.manager
        sid, via_header = self.client_id(environ)
        session: RequestSession | None = None
        notice: HealthReport | None = None
        if sid is not None:
            # One store operation: the activity, or the report that refuses it (the core's rule).
            record, refusal = manager.touch_or_report(sid)
            if record is None:  # unknown: only a pending id this server issued is stored
                if self._pending_is_valid(sid):
                    pending = RequestSession(
                        sid, manager, SessionRecord.new(sid, manager.clock()), False, False, via_header
                    )
                    pending.ensure_stored()
                    session = pending
            elif refusal is None:  # it may work
                if record.reason == STORE_UNAVAILABLE:
                    # Fail-open with the store down: the id cannot be verified, so it is not adopted.
                    # The request runs under a throwaway id; the client's cookie is left alone.
                    fresh = self._pending_id()
                    unverified = SessionRecord.new(fresh, manager.clock())
                    unverified.reason = STORE_UNAVAILABLE
                    session = RequestSession(fresh, manager, unverified, True, False, via_header)
                else:
                    session = RequestSession(sid, manager, record, True, False, via_header)
            elif record.state.is_terminal:  # expired or ended: replaced, and the user is told once
                notice = refusal
            else:  # disconnected: kept (its page shows the banner), a JSON client is refused
                session = RequestSession(sid, manager, record, True, False, via_header, refusal=refusal)
        if session is None:
            fresh = self._pending_id()
            session = RequestSession(
                fresh,
                manager,
                SessionRecord.new(fresh, manager.clock()),
                False,
                True,
                via_header,
                notice,
                refusal=notice,
            )
        # The report is built now (about 1.5 µs): the environ holds a plain, JSON-ready report.
        health = session._health = HealthReport.build(
            session.id, session.record, manager.clock(), manager.policy
        )
        environ[ENVIRON_MANAGER] = manager
        environ[ENVIRON_SESSION] = session
        environ[ENVIRON_SESSION_ID] = session.id
        environ[ENVIRON_HEALTH] = health
        environ[ENVIRON_NOTICE] = notice
        return session

    def _pending_id(self) -> str:
        """A fresh id (random bits from :mod:`secrets`) signed with the issue time."""
        body = f"{new_session_id()}.{int(self.manager.clock()):x}"
        return f"{body}.{self._mac(body)}"

    @functools.cached_property
    def _pending_key(self) -> bytes:
        """The key pending ids are signed with: the secret bound to what issues them.

        Bound to the cookie name and the store's namespace, so an app with the same secret but
        its own sessions (another store, prefix or cookie) refuses the ids this one issues.
        """
        issuer = f"sessionmw pending id\0{self.options.cookie_name}\0{_store_namespace(self.manager.store)}"
        return hmac.new(self.options.secret_key, issuer.encode(), hashlib.sha256).digest()

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._pending_key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:_MAC_LENGTH]

    def _pending_is_valid(self, sid: str) -> bool:
        """True for an id this server issued (valid signature) within the pending window."""
        if not _ID_SHAPE.fullmatch(sid):
            return False
        body, _, mac = sid.rpartition(".")
        stamp = body.rpartition(".")[2]
        if len(mac) != _MAC_LENGTH or not hmac.compare_digest(mac, self._mac(body)):
            return False
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False
        age = self.manager.clock() - issued
        return -_CLOCK_SLACK <= age <= _pending_window(self.manager.policy)

    def pending_health(self, sid: str) -> HealthReport | None:
        """The report of an issued, not yet stored id (healthy); None if ``sid`` is not one."""
        if not self._pending_is_valid(sid):
            return None
        now = self.manager.clock()
        return HealthReport.build(sid, SessionRecord.new(sid, now), now, self.manager.policy)

    # -- responses ----------------------------------------------------------------------------

    def session_headers(self, session: RequestSession, environ: WSGIEnvironment) -> list[tuple[str, str]]:
        """The headers the response must carry for ``session`` (cookie, id echo)."""
        headers: list[tuple[str, str]] = []
        if session.issue_cookie:
            headers.append(("Set-Cookie", self.cookie_header(session.id, environ)))
        if session.via_header:
            headers.append((self.options.header_name, session.id))
        return headers

    def cookie_header(self, sid: str, environ: WSGIEnvironment) -> str:
        """The ``Set-Cookie`` value for ``sid``: HttpOnly, SameSite=Lax, Path=/, Secure on HTTPS."""
        options = self.options
        parts = [f"{options.cookie_name}={sid}", "Path=/", "HttpOnly", "SameSite=Lax"]
        secure = options.secure
        if secure is None:
            secure = environ.get("wsgi.url_scheme") == "https"
        if secure:
            parts.append("Secure")
        if options.cookie_domain:
            parts.append(f"Domain={options.cookie_domain}")
        if options.cookie_max_age is not None:
            parts.append(f"Max-Age={options.cookie_max_age}")
        return "; ".join(parts)

    def state_response(self, session: RequestSession, environ: WSGIEnvironment) -> _Response | None:
        """For a JSON client whose session may not work (:attr:`RequestSession.refusal`): the
        response that says so.

        Expired: 401; disconnected: 503 with the ``reconnect`` URL. HTML pages get None: they are
        served and can show the banner.
        """
        refusal = session.refusal
        if refusal is None or not wants_json(environ, session.via_header):
            return None
        from sessionmw.translation import UserFacingError

        err = UserFacingError.from_health(refusal)
        if session.notice is not None:  # the session was replaced: nothing to reconnect
            return self.error_response(err, environ, True)
        return self.error_response(err, environ, True, reconnect=self.options.prefix + "reconnect")

    def finish(self, session: RequestSession, status: int) -> None:
        """After a response: a success (below 400) clears the error count of a session in the error state."""
        if signals.request_finished.receivers:
            seconds = time.perf_counter() - session.started
            signals.send(
                signals.request_finished, self.manager, session_id=session.id, status=status, seconds=seconds
            )
        if session.failed or not session.stored:
            return
        if status < 400 and session.record.state is SessionState.ERROR:
            try:
                self.manager.record_success(session.id)
            except Exception:  # e.g. the store went down (fail_closed): the response stands
                _log.warning("could not record the success on the session", exc_info=True)

    def fail(
        self, session: RequestSession | None, exc: BaseException, *, log: bool = True
    ) -> UserFacingError:
        """Log and record ``exc`` on the session, and translate it for the user.

        A request records one error at most (an adapter and a middleware may both see it).

        :param log: log ``exc`` on the ``sessionmw.wsgi`` logger; False when the host logs it.
        """
        from sessionmw.translation import translate

        if log:
            _log.error("request failed", exc_info=exc)
        if session is not None and not session.failed:
            try:
                session.ensure_stored()
                session.manager.record_error(session.id, exc)
                session.failed = True
            except Exception:
                _log.exception("could not record the error on the session")
        return translate(exc, debug=self.debug)

    def error_response(
        self,
        err: UserFacingError,
        environ: WSGIEnvironment,
        via_header: bool,
        *,
        reconnect: str | None = None,
    ) -> _Response:
        """``err`` as JSON or HTML (by ``Accept``).

        The status is 401 for an expired or unknown session, 503 with ``Retry-After`` for a
        disconnected session or a transient error, else 500.
        """
        from sessionmw.translation import DEFAULT_RETRY_AFTER, format_error

        status = _HTTP_STATUS.get(err.status or "", 503 if err.transient else 500)
        headers: list[tuple[str, str]] = [("Cache-Control", "no-store")]
        if err.transient:
            retry_after = err.retry_after if err.retry_after is not None else DEFAULT_RETRY_AFTER
            headers.append(("Retry-After", str(max(1, math.ceil(retry_after)))))
        if wants_json(environ, via_header):
            data = format_error(err, "dict")
            if reconnect is not None:
                data["reconnect"] = reconnect
            headers.append(("Content-Type", "application/json"))
            body = json.dumps(data).encode()
        else:
            headers.append(("Content-Type", "text/html; charset=utf-8"))
            body = _page(html.escape(err.title), format_error(err, "html"))
        return _Response(_status_line(status), headers, body)

    def health_response(self, environ: WSGIEnvironment) -> _Response:
        """``GET health``: the caller's session health, never creating or touching a session."""
        sid, _ = self.client_id(environ)
        report: HealthReport | None = None
        if sid is not None:
            report = self.manager.check_health(sid)
            if report.status == "not_found":
                report = self.pending_health(sid) or report
        if report is None:
            report = HealthReport.build(None, None, self.manager.clock(), self.manager.policy)
        return _health_response(report, 200 if _health_status(report) != "fail" else 503)

    def reconnect_response(self, environ: WSGIEnvironment) -> _Response:
        """``POST reconnect``: a disconnected (or erroring) session back to active."""
        sid, via_header = self.client_id(environ)
        reconnected = False
        if sid is not None:
            try:
                reconnected = self.manager.reconnect(sid)
            except IllegalTransitionError:
                reconnected = False
        if not wants_json(environ, via_header) and environ.get("CONTENT_TYPE", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return _Response(
                "303 See Other",
                [
                    ("Location", _next_path(environ)),
                    ("Content-Type", "text/plain"),
                    ("Cache-Control", "no-store"),
                ],
                b"",
            )
        response = self.health_response(environ)
        if not reconnected and (sid is None or self.pending_health(sid) is None):
            response.status = "409 Conflict"
        return response

    def metrics_response(self) -> _Response:
        """The Prometheus exposition of ``prometheus_client``'s default registry."""
        try:
            from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
        except ImportError:  # pragma: no cover - exercised only without the extra
            body = b"metrics need prometheus_client: pip install 'sessionmw[prometheus]'\n"
            return _Response("501 Not Implemented", [("Content-Type", "text/plain")], body)
        headers = [("Content-Type", CONTENT_TYPE_LATEST), ("Cache-Control", "no-store")]
        return _Response("200 OK", headers, generate_latest(REGISTRY))

    def endpoint(self, environ: WSGIEnvironment, name: str) -> _Response:
        """Serve the endpoint ``name`` (the path after the prefix)."""
        method = environ.get("REQUEST_METHOD", "GET")
        if name == "health":
            if method not in ("GET", "HEAD"):
                return _method_not_allowed("GET, HEAD")
            return self.health_response(environ)
        if name == "reconnect":
            if method != "POST":
                return _method_not_allowed("POST")
            return self.reconnect_response(environ)
        body = json.dumps({"status": "not_found", "message": "No such sessionmw endpoint."}).encode()
        return _Response("404 Not Found", list(_JSON_HEADERS), body)


class _Response:
    """A status line, headers and a body, before they become a framework response."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def status_code(self) -> int:
        """The numeric status."""
        return int(self.status[:3])

    def send(
        self, start_response: StartResponse, extra: list[tuple[str, str]] | None = None, exc_info: Any = None
    ) -> list[bytes]:
        """Start the WSGI response and return its body."""
        headers = [*self.headers, *(extra or ()), ("Content-Length", str(len(self.body)))]
        if exc_info is None:
            start_response(self.status, headers)
        else:
            start_response(self.status, headers, exc_info)
        return [self.body]


class SessionMiddleware:
    """WSGI middleware that gives every request a session (PEP 3333).

    :param app: the WSGI application to wrap.
    :param manager: the session manager; by default the process default
        (:func:`sessionmw.get_session_manager`).
    :param debug: show exception details in error pages; None: the manager's ``debug`` setting.
    :param propagate_exceptions: re-raise the app's exceptions after recording them, for a
        debugger or a test suite; None (default): when debug is on, or when the wrapped app
        propagates its own (a Flask app under ``TESTING``, ``PROPAGATE_EXCEPTIONS`` or ``DEBUG``).
        A request whose environ sets ``x-wsgiorg.throw_errors`` or ``paste.throw_errors`` re-raises too.
    :param secret_key: signs pending session ids; default ``SESSIONMW_SECRET_KEY`` or a random key.
    :param options: the :class:`Options` fields (``cookie_name``, ``header_name``, ``prefix``,
        ``exclude``, ``secure``, ``cookie_domain``, ``cookie_max_age``, ``metrics_path``).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        manager: SessionManager | None = None,
        debug: bool | None = None,
        propagate_exceptions: bool | None = None,
        secret_key: str | bytes | None = None,
        **options: Any,
    ) -> None:
        #: The wrapped application.
        self.app = app
        #: The shared request logic (manager and options).
        self.gate = SessionGate(
            manager if manager is not None else get_session_manager(),
            Options.build(secret_key=secret_key, **options),
            debug=debug,
        )
        if propagate_exceptions is not None and not isinstance(propagate_exceptions, bool):
            raise ConfigurationError(
                f"propagate_exceptions={propagate_exceptions!r} must be True, False or None"
            )
        #: Re-raise the app's exceptions after recording them (None: see the class's docstring).
        self.propagate_exceptions = propagate_exceptions
        self._prefix = self.gate.options.prefix
        self._metrics_path = self.gate.options.metrics_path
        self._exclude = bool(self.gate.options.exclude)

    @property
    def manager(self) -> SessionManager:
        """The manager that keeps the sessions."""
        return self.gate.manager

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _APPLIED in environ:  # applied twice: the outer one did the work
            return self.app(environ, start_response)
        environ[_APPLIED] = self
        gate = self.gate
        path: str = environ.get("PATH_INFO", "")
        if (
            path.startswith(self._prefix)
            or path == self._metrics_path
            or (self._exclude and gate.excluded(path))
        ):
            return self._not_tracked(environ, start_response, path)
        try:
            session = gate.begin(environ)
        except Exception as exc:  # e.g. the store is full, or down with fail_closed
            err = gate.fail(None, exc)
            return _answer(gate.error_response(err, environ, False), environ, start_response)
        extra = gate.session_headers(session, environ) if session.issue_cookie or session.via_header else []
        if session.refusal is not None:
            refusal = gate.state_response(session, environ)
            if refusal is not None:
                return _answer(refusal, environ, start_response, _with_vary(extra))
        started: list[str] = []

        def session_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started.append(status)
            headers = _add_session_headers(headers, extra)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        token = enter_scope(gate.manager, session.id)  # as session_scope() does
        try:
            result = self.app(environ, session_start_response)
        except Exception as exc:
            is_response = callable(exc)  # a WSGI response, e.g. werkzeug's HTTPException: no error
            if self._propagates(environ):
                if not is_response:
                    gate.fail(session, exc, log=False)
                raise
            if not is_response or started:
                err = gate.fail(session, exc)
                response = gate.error_response(err, environ, session.via_header)
                exc_info = sys.exc_info() if started else None
                return _answer(response, environ, start_response, _with_vary(extra), exc_info)
            as_response: Any = exc
            result = as_response(environ, session_start_response)
        finally:
            leave_scope(token)
        if isinstance(result, (list, tuple)):  # a tuple of types: no union built per request
            if started:
                gate.finish(session, int(started[-1][:3]))
            return result
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            return result  # let the server send the file its own way
        return _Body(result, gate, session, started)

    def _propagates(self, environ: WSGIEnvironment) -> bool:
        """True when the app's exception must be re-raised (after recording), not answered."""
        if environ.get("x-wsgiorg.throw_errors") or environ.get("paste.throw_errors"):
            return True
        if self.propagate_exceptions is not None:
            return self.propagate_exceptions
        return self.gate.debug or _host_propagates(self.app)

    def _not_tracked(
        self, environ: WSGIEnvironment, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        """Serve the metrics path, an endpoint under the prefix, or an excluded path (no session)."""
        gate = self.gate
        if path == self._metrics_path:
            return _answer(gate.metrics_response(), environ, start_response)
        if path.startswith(self._prefix):
            try:
                response = gate.endpoint(environ, path[len(self._prefix) :])
            except Exception as exc:  # e.g. the store is down with fail_closed
                response = gate.error_response(gate.fail(None, exc), environ, True)
            return _answer(response, environ, start_response)
        return self.app(environ, start_response)


def _answer(
    response: _Response,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    extra: list[tuple[str, str]] | None = None,
    exc_info: Any = None,
) -> list[bytes]:
    """Send a response of ours; a HEAD request gets its headers only."""
    body = response.send(start_response, extra, exc_info)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else body


def _host_propagates(app: Any) -> bool:
    """True when the wrapped app re-raises its own exceptions (Flask's ``PROPAGATE_EXCEPTIONS`` rule).

    The Flask app is found through the wrappers around it: ``.app`` attributes (werkzeug's
    convention), bound methods (``app.wsgi_app``), ``__wrapped__`` and the callables a wrapper
    function closes over (e.g. OpenTelemetry's). Only on the error path.
    """
    pending = [app]
    seen: set[int] = set()
    while pending and len(seen) < 100:
        layer = pending.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        host = getattr(layer, "__self__", layer)
        config = getattr(host, "config", None)
        if isinstance(config, dict) and "PROPAGATE_EXCEPTIONS" in config:
            propagate = config["PROPAGATE_EXCEPTIONS"]
            if propagate is None:
                propagate = config.get("TESTING") or config.get("DEBUG")
            return bool(propagate)
        for inner in (getattr(layer, "app", None), getattr(layer, "__wrapped__", None)):
            if callable(inner):
                pending.append(inner)
        for cell in getattr(layer, "__closure__", None) or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(content):
                pending.append(content)
    return False


_END: Any = object()  # what next() returns at the end of the app's body


class _Body:
    """The app's response body, passed through chunk by chunk.

    The chunks are produced inside the session's scope; an exception while producing them is
    recorded on the session and logged, then propagates (the status line has already gone).
    """

    __slots__ = ("_gate", "_result", "_session", "_started")

    def __init__(
        self, result: Iterable[bytes], gate: SessionGate, session: RequestSession, started: list[str]
    ) -> None:
        self._result = result
        self._gate = gate
        self._session = session
        self._started = started

    def __iter__(self) -> Iterator[bytes]:
        manager, session_id = self._gate.manager, self._session.id
        iterator = iter(self._result)
        while True:
            token = enter_scope(manager, session_id)  # the session's scope, only while the app makes a chunk
            try:
                chunk = next(iterator, _END)
            except Exception as exc:
                self._gate.fail(self._session, exc)
                raise
            finally:
                leave_scope(token)
            if chunk is _END:
                return
            yield chunk

    def close(self) -> None:
        """Close the app's body (PEP 3333), then count a successful response as a success."""
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            if self._started:
                self._gate.finish(self._session, int(self._started[-1][:3]))


def _add_session_headers(
    headers: list[tuple[str, str]], extra: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``headers`` plus the session headers, ``Vary: Cookie``, and no shared caching of a new cookie."""
    headers = list(headers)
    vary_at = -1
    cache_at = -1
    for index, (name, _) in enumerate(headers):
        lowered = name.lower()
        if lowered == "vary":
            vary_at = index
        elif lowered == "cache-control":
            cache_at = index
    if vary_at < 0:
        headers.append(("Vary", "Cookie"))
    else:
        value = headers[vary_at][1]
        if value.strip() != "*" and "cookie" not in value.lower():
            headers[vary_at] = (headers[vary_at][0], f"{value}, Cookie")
    if extra:
        headers.extend(extra)
        if any(name == "Set-Cookie" for name, _ in extra):
            if cache_at < 0:
                headers.append(("Cache-Control", "private"))
            else:
                headers[cache_at] = (headers[cache_at][0], private_cache_control(headers[cache_at][1]))
    return headers


def _with_vary(extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [*extra, ("Vary", "Cookie")]


def private_cache_control(value: str) -> str:
    """``value`` made safe for a response that sets a cookie: never stored by shared caches."""
    directives = [part.strip() for part in value.split(",") if part.strip()]
    lowered = [part.lower() for part in directives]
    if "no-store" in lowered or "private" in lowered:
        return value
    kept = [
        part for part in directives if part.lower() != "public" and not part.lower().startswith("s-maxage")
    ]
    return ", ".join([*kept, "private"])


def wants_json(environ: WSGIEnvironment, via_header: bool = False) -> bool:
    """True when the client prefers JSON to HTML (``Accept``); on a tie, API clients get JSON."""
    accept = environ.get("HTTP_ACCEPT", "")
    if not accept:
        return via_header
    json_q = html_q = app_any = text_any = star = -1.0
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0 or math.isnan(quality):
                    quality = 0.0
        if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
            json_q = max(json_q, quality)
        elif media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, quality)
        elif media == "application/*":
            app_any = max(app_any, quality)
        elif media == "text/*":
            text_any = max(text_any, quality)
        elif media == "*/*":
            star = max(star, quality)
    for_json = json_q if json_q >= 0 else app_any if app_any >= 0 else star
    for_html = html_q if html_q >= 0 else text_any if text_any >= 0 else star
    if for_json == for_html:
        return via_header
    return for_json > for_html


#: HTTP status of an error about the session itself, by its health code.
_HTTP_STATUS = {"expired": 401, "not_found": 401, "disconnected": 503}

_HEALTH_STATUS = {"healthy": "pass", "idle": "pass", "error": "warn"}


def _health_status(report: HealthReport) -> str:
    status = _HEALTH_STATUS.get(report.status, "fail")
    if status == "pass" and not report.healthy:
        status = "warn"
    return status


def health_json(report: HealthReport) -> dict[str, Any]:
    """``report`` in the ``application/health+json`` shape; the full report is under ``session``.

    ``status`` is ``pass`` (healthy, idle), ``warn`` (errors, a failing custom check) or ``fail``
    (disconnected, expired, not found); each custom check is listed under ``checks``.
    """
    session = {key: value for key, value in report.items() if key != "session_id"}
    checks = {
        check["name"]: [{"status": "pass" if check["healthy"] else "fail", "output": check["message"]}]
        for check in report.checks
    }
    return {
        "status": _health_status(report),
        "description": report.message,
        "notes": report.recovery,
        "output": report.context,
        "checks": checks,
        "session": session,
    }


def _health_response(report: HealthReport, status: int) -> _Response:
    return _Response(_status_line(status), list(_HEALTH_HEADERS), json.dumps(health_json(report)).encode())


def _method_not_allowed(allow: str) -> _Response:
    body = json.dumps({"status": "method_not_allowed", "message": f"Use {allow}."}).encode()
    return _Response("405 Method Not Allowed", [*_JSON_HEADERS, ("Allow", allow)], body)


def _next_path(environ: WSGIEnvironment) -> str:
    """Where a form POST to ``reconnect`` goes back to: its ``next`` field if a local path, else ``/``."""
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), 4096)
    except ValueError:
        length = 0
    data = environ["wsgi.input"].read(length) if length > 0 else b""
    form = parse_qs(data.decode("utf-8", "replace"))  # a browser posts it encoded; curl may not
    return _local_path(form.get("next", ["/"])[0])


#: What a ``Location`` path may hold as it is: RFC 3986's unreserved and reserved characters, and ``%``.
_LOCATION_SAFE = "/?#[]@!$&'()*+,;=:~%-._"


def _local_path(target: str) -> str:
    r"""``target`` if it is a path on this origin, percent-encoded to printable ASCII; else ``/``.

    Refused: anything not starting with one ``/`` (scheme-relative ``//host`` and absolute URLs),
    and any control character, whitespace or backslash, since browsers drop tabs and line breaks
    and read ``\`` as ``/`` (WHATWG URL parsing), which can turn ``/\t/host`` into ``//host``.
    """
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(not char.isprintable() or char.isspace() for char in target)
    ):
        return "/"
    return quote(target, safe=_LOCATION_SAFE)


_REASONS = {
    200: "OK",
    303: "See Other",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _status_line(status: int) -> str:
    return f"{status} {_REASONS.get(status, 'Error')}"


def _page(title: str, content: str) -> bytes:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n{content}\n</body></html>\n"
    ).encode()


def banner_html(report: HealthReport | None, *, prefix: str = "/_sessionmw/", next_path: str = "/") -> str:
    """The status banner for ``report`` as escaped HTML; empty for a healthy session or None.

    A disconnected session's banner has a Reconnect button (a form POST to ``<prefix>reconnect``)
    that comes back to ``next_path`` (percent-encoded here; a path that is not local comes back to ``/``).
    """
    if report is None or report.healthy:
        return ""
    steps = "".join(f"<li>{html.escape(step)}</li>" for step in report.recovery)
    parts = [
        f'<div class="sessionmw-banner sessionmw-{html.escape(report.status)}" role="status">',
        f"<strong>{html.escape(report.title)}</strong> <span>{html.escape(report.message)}</span>",
        f"<ol>{steps}</ol>" if steps else "",
    ]
    if report.context:
        parts.append(f"<p>{html.escape(report.context)}</p>")
    if report.status == "disconnected":
        parts.append(
            f'<form method="post" action="{html.escape(prefix)}reconnect">'
            f'<input type="hidden" name="next" value="{html.escape(quote(next_path, safe=_LOCATION_SAFE))}">'
            '<button type="submit">Reconnect</button></form>'
        )
    parts.append("</div>")
    return "".join(parts)


def banner_for(environ: WSGIEnvironment) -> str:
    """The banner the current page should show (see :func:`banner_html`): a notice, else the health."""
    report = environ.get(ENVIRON_NOTICE) or environ.get(ENVIRON_HEALTH)
    middleware = environ.get(_APPLIED)
    prefix = middleware.gate.options.prefix if isinstance(middleware, SessionMiddleware) else "/_sessionmw/"
    mount = quote(environ.get("SCRIPT_NAME", "").encode("latin-1", "replace"), safe="/")
    return banner_html(report, prefix=mount + prefix, next_path=_page_path(environ))


def _page_path(environ: WSGIEnvironment) -> str:
    """The request's path from the root (``SCRIPT_NAME`` and ``PATH_INFO``), percent-encoded from
    its bytes (PEP 3333 hands them over as latin-1)."""
    path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "") or "/"
    try:
        return quote(path.encode("latin-1"), safe="/")
    except UnicodeEncodeError:  # a server that decoded the path itself
        return quote(path, safe="/", errors="backslashreplace")


def _chain(start: Any) -> Iterator[Any]:
    """``start`` and the apps it wraps through ``.app`` attributes (werkzeug's convention)."""
    seen: set[int] = set()
    current = start
    while current is not None and callable(current) and id(current) not in seen and len(seen) < 100:
        seen.add(id(current))
        yield current
        current = getattr(current, "app", None)


def install(app: Any, **options: Any) -> SessionMiddleware:
    """Wrap ``app.wsgi_app`` (e.g. a Flask app) in a :class:`SessionMiddleware`, once.

    Installing again returns the middleware already there (found through ``.app`` attributes).
    """
    for layer in _chain(app.wsgi_app):
        if isinstance(layer, SessionMiddleware):
            return layer
    middleware = SessionMiddleware(app.wsgi_app, **options)
    app.wsgi_app = middleware
    return middleware


def uninstall(app: Any) -> bool:
    """Remove every :class:`SessionMiddleware` from ``app.wsgi_app``'s chain; True if one was there."""
    removed = False
    while isinstance(app.wsgi_app, SessionMiddleware):
        app.wsgi_app = app.wsgi_app.app
        removed = True
    for layer in list(_chain(app.wsgi_app)):
        inner = getattr(layer, "app", None)
        while isinstance(inner, SessionMiddleware):
            layer.app = inner = inner.app
            removed = True
    return removed
