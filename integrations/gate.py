"""The request logic the WSGI middleware and the Flask extension share: the session gate.

:class:`SessionGate` finds a request's session (cookie or header), admits the request with one
store operation (:meth:`~sessionmw.SessionManager.touch_or_report`), issues signed pending ids to
new clients, and turns core results into responses: the refusal of a session that may not work,
error pages, the ``health`` and ``reconnect`` endpoints. :class:`Options` are the settings both
adapters read; :class:`RequestSession` is the session serving one request, and the ``ENVIRON_*``
keys say where the gate leaves it in the WSGI environ.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sessionmw import signals
from sessionmw.actions import log_failure
from sessionmw.errors import ConfigurationError, IllegalTransitionError, SessionExistsError, StoreError
from sessionmw.health import HealthReport
from sessionmw.integrations.http import (
    PlainResponse,
    back_path,
    error_page_html,
    health_report_response,
    json_response,
    next_path,
    user_error_response,
    wants_json,
    with_reconnected,
)
from sessionmw.manager import STORE_UNAVAILABLE, SessionManager, new_session_id
from sessionmw.session import Policy, SessionRecord
from sessionmw.states import SessionState
from sessionmw.stores import SessionStore

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from sessionmw.translation import UserFacingError

__all__ = [
    "ENVIRON_MANAGER",
    "ENVIRON_NOTICE",
    "ENVIRON_SESSION",
    "ENVIRON_SESSION_ID",
    "Options",
    "RequestSession",
    "SessionGate",
]

_log = logging.getLogger("sessionmw.wsgi")

#: environ key: the :class:`~sessionmw.SessionManager` serving the request.
ENVIRON_MANAGER = "sessionmw.manager"
#: environ key: the session id of the request (a string).
ENVIRON_SESSION_ID = "sessionmw.session_id"
#: environ key: the :class:`RequestSession` of the request.
ENVIRON_SESSION = "sessionmw.session"
#: environ key: a report to show the user once (the expired session a fresh one replaced), or None.
ENVIRON_NOTICE = "sessionmw.notice"

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ID_SHAPE = re.compile(r"[A-Za-z0-9._:~-]{1,128}")
_is_id = _ID_SHAPE.fullmatch
_MAC_LENGTH = 22  # base64 characters of the pending id's MAC (132 bits)
_INCARNATION_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,22}")
#: What :meth:`SessionGate._unknown_id` says of an id the store does not know.
_PENDING = "pending"
_GONE = "gone"
_SECRET_ENV = "SESSIONMW_SECRET_KEY"
# Read on every request: module constants are cheaper than attribute lookups.
_ERROR = SessionState.ERROR
_REQUEST_FINISHED = signals.request_finished


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

    The store's :attr:`~sessionmw.stores.base.NamespacedStore.namespace` (every built-in store has
    one); another store, its class. Pending ids are signed with it, so they are valid only where
    they were issued.
    """
    namespace = getattr(store, "namespace", None)  # not isinstance: a store may lack incarnation()
    if isinstance(namespace, str):
        return namespace
    kind = type(store)
    return f"{kind.__module__}.{kind.__qualname__}"


def _store_incarnation(store: SessionStore) -> str | None:
    """``store``'s :meth:`~sessionmw.stores.base.NamespacedStore.incarnation` (every built-in
    store has one), or None for a store without one (it counts as one that never changes)."""
    read = getattr(store, "incarnation", None)
    if not callable(read):
        return None
    incarnation = read()
    if not (isinstance(incarnation, str) and _INCARNATION_SHAPE.fullmatch(incarnation)):
        raise ConfigurationError(
            f"{type(store).__name__}.incarnation() gave {incarnation!r}: use 1 to 22 of [A-Za-z0-9_-]"
        )
    return incarnation


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
    #: False for a request that only reports an operation made elsewhere (a Dash background
    #: callback's poll: its job counts its own outcome): its response is no success.
    counts_success: bool = True

    @property
    def health(self) -> HealthReport:
        """The session's health: its record as of the start of the request, reported when first
        read (no store operation; made on demand, so a request that never asks pays nothing)."""
        if self._health is None:
            manager = self.manager
            self._health = HealthReport.build(self.id, self.record, manager.clock(), manager.policy)
        return self._health

    @property
    def state(self) -> SessionState:
        """The session's state at the start of the request."""
        return self.record.state

    @property
    def store_pending(self) -> Callable[[], None] | None:
        """For the session's scope: :meth:`ensure_stored` while the session is pending, else None."""
        return None if self.stored else self.ensure_stored

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
        # The store's incarnation as last read (see _incarnation): read on first use, and again
        # on the unknown-id path only.
        self._incarnation_value: str | None = None
        self._incarnation_read = False

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
        cookies: str = environ.get("HTTP_COOKIE", "")
        if cookies.startswith(self._cookie_prefix) and ";" not in cookies:  # the only cookie
            value = cookies[len(self._cookie_prefix) :]
            if _is_id(value):  # the common case: a well-formed id, with nothing to strip
                return value, False
        cookie = self._cookie(cookies)
        return (cookie if cookie is not None and _is_id(cookie) else None), False

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
        """Find the request's session and admit the request: one store operation
        (:meth:`~sessionmw.SessionManager.touch_or_report`, the activity or the core's refusal);
        fill the environ.

        A session that may work is served; an expired or ended one is replaced by a fresh pending
        id, with its report as the :attr:`RequestSession.notice`; a disconnected one is kept, with
        its report as the :attr:`RequestSession.refusal` (a JSON client is refused).

        An unknown, malformed or forged id is never adopted: a new pending id is issued, stored
        only when the client sends it back (so clients that drop cookies store nothing). This is
        also what a client whose session vanished gets (deleted, or lost by the store): an id the
        store does not know is stored only as a pending id within its window (see
        ``_pending_window``), and an ended or expired record outlives that window, so an id that
        was ever stored never becomes a session again. An id this server issued that the store
        no longer knows, past its window or issued before the store lost its sessions (another
        incarnation: a restart), is refused to a JSON client like an expired one (its
        ``not_found`` report as the :attr:`RequestSession.refusal`); a page starts afresh.
        """
        manager = self.manager
        sid, via_header = self.client_id(environ)
        session: RequestSession | None = None
        notice: HealthReport | None = None
        gone: HealthReport | None = None
        if sid is not None:
            # One store operation: the activity, or the report that refuses it (the core's rule).
            record, refusal = manager.touch_or_report(sid)
            if record is None:  # unknown: only a pending id this server issued is stored
                verdict = self._unknown_id(sid)
                if verdict == _PENDING:
                    pending = RequestSession(
                        sid, manager, SessionRecord.new(sid, manager.clock()), False, False, via_header
                    )
                    pending.ensure_stored()
                    session = pending
                elif verdict == _GONE:
                    # Issued here, now gone (deleted, or lost in a restart): not the user's doing. A
                    # JSON client is refused (not_found, like expired); a page starts afresh, silently.
                    gone = refusal
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
                refusal=notice if gone is None else gone,
            )
        environ[ENVIRON_MANAGER] = manager
        environ[ENVIRON_SESSION] = session
        environ[ENVIRON_SESSION_ID] = session.id
        environ[ENVIRON_NOTICE] = notice
        return session

    def _pending_id(self) -> str:
        """A fresh id (random bits from :mod:`secrets`) signed with the issue time and the store's
        incarnation (as last read; none if the store has none or was never reachable)."""
        body = f"{new_session_id()}.{int(self.manager.clock()):x}"
        incarnation = self._incarnation()
        if incarnation is not None:
            body = f"{body}.{incarnation}"
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

    def _incarnation(self, *, refresh: bool = False) -> str | None:
        """The store's incarnation as last read (read now if ``refresh``, or never read yet).

        None for a store without one. A store that cannot be reached keeps the last value read
        (None if none was ever read: ids issued meanwhile carry none until the next refresh).
        """
        if refresh or not self._incarnation_read:
            # Read once even if it fails: a store that is down is not asked on every new client.
            self._incarnation_read = True
            try:
                self._incarnation_value = _store_incarnation(self.manager.store)
            except StoreError as exc:
                _log.warning("could not read the session store's incarnation: %s", exc)
        return self._incarnation_value

    def _signed(self, sid: str) -> tuple[int, str | None] | None:
        """For an id this server signed: when it was issued and the store incarnation it was
        issued for (None in an id without one). None for any other text."""
        if not _ID_SHAPE.fullmatch(sid):
            return None
        body, _, mac = sid.rpartition(".")
        if len(mac) != _MAC_LENGTH or not hmac.compare_digest(mac, self._mac(body)):
            return None
        parts = body.split(".")
        if len(parts) not in (2, 3):
            return None
        try:
            issued = int(parts[1], 16)
        except ValueError:
            return None
        return issued, (parts[2] if len(parts) == 3 else None)

    def _unknown_id(self, sid: str) -> str | None:
        """What an id the store does not know is: :data:`_PENDING` (issued here, to be stored
        now), :data:`_GONE` (issued here, no longer stored), or None (not issued here).

        Pending: signed here for the store's current incarnation (re-read now: one round trip on
        Redis, only on this path) and within its pending window. Gone: past its window, or
        issued before the store lost its sessions (another incarnation: a restart). An id
        without an incarnation (issued for a store without one, or one never reached) is judged
        by its window alone.
        """
        signed = self._signed(sid)
        if signed is None:
            return None
        issued, incarnation = signed
        current = self._incarnation(refresh=True)  # also heals ids issued without one
        if incarnation is not None and incarnation != current:
            return _GONE
        age = self.manager.clock() - issued
        return _PENDING if -_CLOCK_SLACK <= age <= _pending_window(self.manager.policy) else _GONE

    def _pending_is_valid(self, sid: str) -> bool:
        """True for an id this server issued for the store as it is, within the pending window."""
        return self._unknown_id(sid) == _PENDING

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

    def state_response(self, session: RequestSession, environ: WSGIEnvironment) -> PlainResponse | None:
        """For a JSON client whose session may not work (:attr:`RequestSession.refusal`): the
        response that says so.

        Expired, or not found (an id this server issued, no longer stored): 401; disconnected: 503
        with the ``reconnect`` URL. HTML pages get None: they are served and can show the banner.
        """
        refusal = session.refusal
        if refusal is None or not wants_json(environ, session.via_header):
            return None
        from sessionmw.translation import UserFacingError

        err = UserFacingError.from_health(refusal)
        if session.notice is not None or refusal.status == "not_found":  # replaced: nothing to reconnect
            return self.error_response(err, environ, True)
        return self.error_response(err, environ, True, reconnect=self.options.prefix + "reconnect")

    def finish(self, session: RequestSession, status: int) -> None:
        """After a response: a success (below 400) clears the error count of a session in the error
        state, unless the request recorded an error or counts no success
        (:attr:`RequestSession.counts_success`)."""
        if _REQUEST_FINISHED.receivers:
            seconds = time.perf_counter() - session.started
            signals.send(
                _REQUEST_FINISHED, self.manager, session_id=session.id, status=status, seconds=seconds
            )
        if session.failed or not session.stored or not session.counts_success:
            return
        if status < 400 and session.record.state is _ERROR:
            try:
                self.manager.record_success(session.id)
            except Exception:  # e.g. the store went down (fail_closed): the response stands
                _log.warning("could not record the success on the session", exc_info=True)

    def fail(
        self,
        session: RequestSession | None,
        exc: BaseException,
        *,
        log: bool = True,
        what: str = "request",
    ) -> UserFacingError:
        """Log and record ``exc`` on the session, and translate it for the user.

        A request records one error at most (an adapter and a middleware may both see it).

        :param log: log ``exc`` on the ``sessionmw.wsgi`` logger, as one WARNING line (the
            traceback only at DEBUG or in debug mode: the user sees a friendly message); False
            when the host logs it.
        :param what: what failed, for the log line (e.g. a Dash callback's output).
        """
        from sessionmw.translation import translate

        if log:
            session_id = session.id if session is not None else None
            log_failure(_log, exc, callback=what, session_id=session_id, debug=self.debug)
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
    ) -> PlainResponse:
        """``err`` as JSON or HTML (by ``Accept``).

        The status is 401 for an expired or unknown session, 503 with ``Retry-After`` for a
        disconnected session or a transient error, else 500.
        """
        as_json = wants_json(environ, via_header)
        page = None
        if not as_json:  # the banner's words for the session now, Reconnect if due, a way back
            session = environ.get(ENVIRON_SESSION)
            report = None
            if isinstance(session, RequestSession) and session.stored:
                report = self.manager.check_health(session.id)
            mount = quote(environ.get("SCRIPT_NAME", "").encode("latin-1", "replace"), safe="/")
            page = error_page_html(err, report, prefix=mount + self.options.prefix, back=back_path(environ))
        return user_error_response(err, as_json=as_json, reconnect=reconnect, page=page)

    def health_response(self, environ: WSGIEnvironment) -> PlainResponse:
        """``GET health``: the caller's session health, never creating or touching a session.

        ``?page=1`` (a page's own poll) always answers 200: the state is in the body.
        """
        sid, _ = self.client_id(environ)
        report: HealthReport | None = None
        if sid is not None:
            report = self.manager.check_health(sid)
            if report.status == "not_found":
                report = self.pending_health(sid) or report
        if report is None:
            report = HealthReport.build(None, None, self.manager.clock(), self.manager.policy)
        for_page = "page=1" in environ.get("QUERY_STRING", "").split("&")  # the banner's poll
        return health_report_response(report, for_page=for_page)

    def reconnect_response(self, environ: WSGIEnvironment) -> PlainResponse:
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
            back = next_path(environ)  # the page comes back with "Reconnected" when it worked
            return PlainResponse(
                "303 See Other",
                [
                    ("Location", with_reconnected(back) if reconnected else back),
                    ("Content-Type", "text/plain"),
                    ("Cache-Control", "no-store"),
                ],
                b"",
            )
        response = self.health_response(environ)
        if not reconnected and (sid is None or self.pending_health(sid) is None):
            response.status = "409 Conflict"
        return response

    def metrics_response(self) -> PlainResponse:
        """The Prometheus exposition of ``prometheus_client``'s default registry."""
        try:
            from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
        except ImportError:  # pragma: no cover - exercised only without the extra
            body = b"metrics need prometheus_client: pip install 'sessionmw[prometheus]'\n"
            return PlainResponse("501 Not Implemented", [("Content-Type", "text/plain")], body)
        headers = [("Content-Type", CONTENT_TYPE_LATEST), ("Cache-Control", "no-store")]
        return PlainResponse("200 OK", headers, generate_latest(REGISTRY))

    def endpoint(self, environ: WSGIEnvironment, name: str) -> PlainResponse:
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
        return json_response(404, {"status": "not_found", "message": "No such sessionmw endpoint."})


def _method_not_allowed(allow: str) -> PlainResponse:
    data = {"status": "method_not_allowed", "message": f"Use {allow}."}
    return json_response(405, data, [("Allow", allow)])
