"""The request logic every adapter shares, protocol-free: the session gate.

:class:`SessionGate` reads a :class:`~sessionmw.integrations.request.RequestView` (the adapter's
translation of a WSGI environ or an ASGI scope) and returns decisions: which session serves the
request (:class:`~sessionmw.integrations.request_session.RequestSession`), an answer of its own
instead of the app's (an endpoint, a refusal, an error page: a
:class:`~sessionmw.integrations.http.PlainResponse`), and the headers the app's response must
carry (cookie, id echo, ``Vary``, ``Cache-Control``). An adapter only translates its protocol
to and from these.

Admitting a request is one store operation (:meth:`~sessionmw.SessionManager.touch_or_report`);
pending ids are :mod:`sessionmw.integrations.pending_ids`; the settings are
:class:`~sessionmw.integrations.options.Options`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, cast
from urllib.parse import quote

from sessionmw import signals
from sessionmw._errors import IllegalTransitionError
from sessionmw._manager import STORE_UNAVAILABLE, SessionManager, get_session_manager
from sessionmw._session import SessionRecord
from sessionmw._states import SessionState
from sessionmw._steps import Steps, drive, run
from sessionmw.actions import log_failure
from sessionmw.health import HealthReport
from sessionmw.integrations.http import (
    FORM_LIMIT,
    PlainResponse,
    accepts_json,
    back_path,
    error_page_html,
    form_next_path,
    health_report_response,
    json_response,
    private_cache_control,
    user_error_response,
    with_reconnected,
)
from sessionmw.integrations.options import Options, check_propagate_exceptions
from sessionmw.integrations.pending_ids import PendingIds, Verdict
from sessionmw.integrations.request_session import RequestSession
from sessionmw.languages import Negotiator
from sessionmw.languages import current as _current_language
from sessionmw.texts import ASKED
from sessionmw.translation import plain

if TYPE_CHECKING:
    from sessionmw.integrations.request import RequestView
    from sessionmw.translation import UserFacingError

__all__ = ["Admission", "GateMiddleware", "SessionGate", "cache_control_with_cookie", "vary_with_cookie"]

App = TypeVar("App")

_log = logging.getLogger("sessionmw.wsgi")

_ID_SHAPE = re.compile(r"[A-Za-z0-9._:~-]{1,128}")
_is_id = _ID_SHAPE.fullmatch
# Read on every request: module constants are cheaper than attribute lookups.
_ERROR = SessionState.ERROR
_REQUEST_FINISHED = signals.request_finished
_PENDING = Verdict.PENDING
_GONE = Verdict.GONE
_VARY_COOKIE = ("Vary", "Cookie")
_ask = ASKED.set  # sessionmw.languages.ask, without the call layer
#: The keys of a health report that hold words (:meth:`SessionGate._reworded`).
_REPORT_WORDS = ("icon", "title", "message", "recovery", "context")
H = TypeVar("H", str, bytes)


def _same(value: str) -> str:
    return value


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


def _to_latin1(value: str) -> bytes:
    return value.encode("latin-1")


def _header_name(name: str) -> bytes:
    return name.lower().encode("latin-1")


class _Form(NamedTuple, Generic[H]):
    """How :meth:`SessionGate.response_headers` reads and writes one form of headers (text as
    WSGI's, or bytes as ASGI's): the names it looks for and adds, and the conversions."""

    vary: H  # the names as compared (lower case)
    cache_control: H
    vary_cookie: tuple[H, H]  # the headers added as they are
    cache_private: tuple[H, H]
    text: Callable[[H], str]  # a value as text
    raw: Callable[[str], H]  # a value of the gate's in this form
    name: Callable[[str], H]  # a name of the gate's in this form


_TEXT: _Form[str] = _Form(
    "vary", "cache-control", _VARY_COOKIE, ("Cache-Control", "private"), _same, _same, _same
)
_RAW_VARY_COOKIE = (b"vary", b"Cookie")
_RAW: _Form[bytes] = _Form(
    b"vary",
    b"cache-control",
    _RAW_VARY_COOKIE,
    (b"cache-control", b"private"),
    _latin1,
    _to_latin1,
    _header_name,
)


class Admission(NamedTuple):
    """What becomes of a request (:meth:`SessionGate.admit`).

    ``(None, None)``: the app serves it outside any session (an excluded path);
    ``(None, answer)``: the gate answers (an endpoint, the metrics, the store failing);
    ``(session, None)``: the app serves it in ``session``;
    ``(session, answer)``: ``session`` is refused (add its headers to the answer:
    :meth:`SessionGate.with_session_headers`).
    """

    #: The session serving the request, or None.
    session: RequestSession | None
    #: The gate's own response, sent instead of calling the app, or None.
    answer: PlainResponse | None


class _Fresh(NamedTuple):
    """Why a request gets a fresh pending id instead of the one it sent (none, a stranger's, one
    gone, expired or ended, or one that cannot be verified)."""

    #: The report of the expired or ended session the fresh one replaces (told to the user once).
    notice: HealthReport | None
    #: The report that refuses a JSON client (the notice, or an issued id's ``not_found``).
    refusal: HealthReport | None
    #: True with the store down (fail-open): the request runs under a throwaway id, no cookie set.
    unverified: bool


_NEW = _Fresh(None, None, False)
_UNVERIFIED = _Fresh(None, None, True)
_UNTRACKED = Admission(None, None)
_admitted = tuple.__new__


def vary_with_cookie(vary: str | None) -> str | None:
    """The ``Vary`` value a response of a session carries, given the app's (None: it sent none);
    None when the app's already covers ``Cookie`` (or is ``*``)."""
    if not vary:
        return "Cookie"
    if vary.strip() == "*" or "cookie" in vary.lower():
        return None
    return f"{vary}, Cookie"


def cache_control_with_cookie(value: str | None) -> str:
    """The ``Cache-Control`` of a response that sets a cookie: never stored by shared caches."""
    return "private" if not value else private_cache_control(value)


class SessionGate:
    """The request logic the WSGI middleware and the Flask extension share (and an ASGI one can).

    :param manager: the manager that keeps the sessions.
    :param options: cookie, header, endpoint and exclusion settings.
    :param debug: show exception details in error responses; None: the manager's ``debug`` setting.
    """

    def __init__(self, manager: SessionManager, options: Options, *, debug: bool | None = None) -> None:
        self.manager = manager
        self.options = options
        self.debug = manager.settings.debug if debug is None else debug
        #: The pending ids this gate issues and accepts.
        self.pending = PendingIds(
            manager.store, options.secret_key, options.cookie_name, manager.clock, manager.policy
        )

    @property
    def options(self) -> Options:
        """Cookie, header, endpoint and exclusion settings (replace them as a whole, e.g. with
        :func:`dataclasses.replace`; the cookie name and the secret stay those the gate was made with)."""
        return self._options

    @options.setter
    def options(self, options: Options) -> None:
        self._options = options
        # Read on every request: plain attributes are cheaper than the options' fields.
        self._cookie_prefix = options.cookie_name + "="
        self._header = options.header_name.lower()
        self._prefix = options.prefix
        self._reconnect_path = options.prefix + "reconnect"
        self._metrics_path = options.metrics_path
        self._excludes = bool(options.exclude)
        #: What chooses a request's language (the options' ``languages`` and ``language_selector``):
        #: an adapter opens a request's session scope with it and the request
        #: (:func:`sessionmw._context.enter_scope`), so that the words are in the request's language.
        self.languages: Negotiator = options.negotiator()
        self._languages = self.languages
        # What every routed path starts with (a superset: _route decides).
        metrics = () if options.metrics_path is None else (options.metrics_path,)
        self._routed = (options.prefix, *metrics, *options.exclude)

    # -- deciding -----------------------------------------------------------------------------

    def admit(self, request: RequestView, *, endpoints: bool = True) -> Admission:
        """Decide what becomes of ``request`` (see :class:`Admission`): the endpoints and the
        metrics are answered here (or, with ``endpoints=False``, passed to the app: a framework
        that routes them itself), an excluded path passes, and any other finds its session and
        is admitted with one store operation (:meth:`~sessionmw.SessionManager.touch_or_report`,
        the activity or the core's refusal). A JSON client whose session may not work is refused
        (:meth:`refusal`): the adapter adds the session's headers to that answer
        (:meth:`with_session_headers`), as to any response of the request. A store failure
        raises (e.g. the store down with ``fail_closed``): the adapter answers it
        (:meth:`failed_admission`) or leaves it to its framework's error handling.

        A session that may work is served; an expired or ended one is replaced by a fresh pending
        id, with its report as the :attr:`RequestSession.notice`; a disconnected one is kept, with
        its report as the :attr:`RequestSession.refusal` (a JSON client is refused).

        Whatever sessionmw writes for the request from here on (a refusal, an error page, the
        banner, the health endpoint) is in the request's language, chosen only when words are
        written: in the session's scope, which the adapter opens with the request and the gate's
        :attr:`languages` (no context variable set for the language on a request's way), and
        before or after it through :meth:`listen`, which the gate calls for what it answers
        itself (an endpoint, an excluded path, a refusal; the adapter ends it with
        :func:`sessionmw.languages.forget`).

        An unknown, malformed or forged id is never adopted: a new pending id is issued, stored
        only when the client sends it back (so clients that drop cookies store nothing). This is
        also what a client whose session vanished gets (deleted, or lost by the store): an id the
        store does not know is stored only as a pending id within its window (see
        :func:`~sessionmw.integrations.pending_ids.pending_window`), and an ended or expired record
        outlives that window, so an id that was ever stored never becomes a session again. An id
        this server issued that the store no longer knows, past its window or issued before the
        store lost its sessions (another incarnation: a restart), is refused to a JSON client like
        an expired one (its ``not_found`` report as the :attr:`RequestSession.refusal`); a page
        starts afresh.
        """
        path = request.path
        if path.startswith(self._routed):  # (a superset of the routed paths: one C call per request)
            self.listen(request)  # what the gate or the app writes for it (outside any session scope)
            routed = self._route(path, endpoints)
            if isinstance(routed, str):
                return Admission(None, self.endpoint(request, routed))
            if routed is not None:
                return routed
        sid, via_header = self.client_id(request)
        record = refusal = verdict = None
        if sid is not None:
            # One store operation: the activity, or the report that refuses it (the core's rule).
            record, refusal = self.manager.touch_or_report(sid)
            if record is None:  # unknown: only a pending id this server issued is stored
                verdict = self.pending.verdict(sid)
        placed = self._kept(request, sid, via_header, record, refusal, verdict)
        if isinstance(placed, _Fresh):
            return self._fresh(request, via_header, placed)
        if verdict is _PENDING:
            cast(RequestSession, placed.session).ensure_stored()
        return placed

    def admit_now(self, request: RequestView) -> RequestSession | None:
        """The admission :meth:`aadmit` would make, made at once for the common request: a path
        the gate does not route, naming a session (the header, or the only cookie) that the store
        answers without waiting and with nothing to write (a known session within its renewal
        window that may work: :meth:`~sessionmw.SessionManager.touch_now`); the session served.
        None for any other request, with nothing done: then await :meth:`aadmit`.

        An id of the wrong shape is left to :meth:`aadmit` (which never adopts it), even one a
        store holds. An async adapter calls this first, so that most requests cost no coroutine
        of the gate's or the manager's.
        """
        if request.path.startswith(self._routed):
            return None
        header = request.header(self._header)
        if header is not None:
            sid, via_header = header.strip(), True
        else:
            cookies = request.cookies
            if not cookies.startswith(self._cookie_prefix) or ";" in cookies:
                return None  # no cookie, or several: the full path reads them
            sid, via_header = cookies[len(self._cookie_prefix) :], False
        if not _is_id(sid):  # (a store may hold an id that was never checked: written by other code)
            return None
        manager = self.manager
        record = manager.touch_now(sid)
        if record is None:
            return None
        return RequestSession(sid, manager, record, True, False, via_header)

    def listen(self, request: RequestView) -> None:
        """Make ``request`` the one whose language sessionmw writes in, in this context, outside
        (or before) its session scope: whatever it writes from here on (a refusal, an error page,
        a problem document, the banner) is in the language the gate's options choose for it,
        chosen only when words are written (:func:`sessionmw.languages.ask`; the adapter ends it
        with :func:`sessionmw.languages.forget`). :meth:`admit` and :meth:`aadmit` call it for the
        requests the gate answers or passes outside a session (an endpoint, an excluded path) and
        for a refusal, :meth:`failed_admission` first, :meth:`aadmit_websocket` always."""
        _ask([self._languages, request])

    async def aadmit(self, request: RequestView, *, endpoints: bool = True) -> Admission:
        """:meth:`admit` for an async adapter: the same decisions, every store operation awaited
        (:meth:`~sessionmw.SessionManager.atouch_or_report`, the pending id's verdict and storing,
        the endpoints: :meth:`aendpoint`), so the event loop is never blocked. The same store
        operations as :meth:`admit`, and the same exceptions (:meth:`afailed_admission` answers them).

        The endpoints read the request body through the view: an adapter that must await the body
        reads it first, for the requests :meth:`reads_body` names only.

        What sessionmw writes for the request is in its language, as with :meth:`admit`.
        """
        path = request.path
        if path.startswith(self._routed):
            self.listen(request)
            routed = self._route(path, endpoints)
            if isinstance(routed, str):
                return Admission(None, await self.aendpoint(request, routed))
            if routed is not None:
                return routed
        sid, via_header = self.client_id(request)
        record = refusal = verdict = None
        if sid is not None:
            record, refusal = await self.manager.atouch_or_report(sid)
            if record is None:
                verdict = await self.pending.averdict(sid)
        placed = self._kept(request, sid, via_header, record, refusal, verdict)
        if isinstance(placed, _Fresh):
            if self.pending.unread:  # the first fresh id reads the store's incarnation: off the loop
                await self.pending.aincarnation()
            return self._fresh(request, via_header, placed)
        if verdict is _PENDING:
            await cast(RequestSession, placed.session).aensure_stored()
        return placed

    def _route(self, path: str, endpoints: bool) -> Admission | str | None:
        """Where ``path`` sends a request before any session is looked for: the metrics (their
        answer), an endpoint (its name, to serve with the store: :meth:`endpoint`), an excluded path
        (:data:`_UNTRACKED`); None for any other path. Called for the paths that start with one of
        :attr:`_routed` only (the app's requests are not)."""
        if path == self._metrics_path:
            return Admission(None, self.metrics_response()) if endpoints else _UNTRACKED
        prefix = self._prefix
        if path.startswith(prefix):
            return path[len(prefix) :] if endpoints else _UNTRACKED
        if self._excludes and self._options.excluded(path):
            return _UNTRACKED
        return None

    def _kept(
        self,
        request: RequestView,
        sid: str | None,
        via_header: bool,
        record: SessionRecord | None,
        refusal: HealthReport | None,
        verdict: Verdict | None,
    ) -> Admission | _Fresh:
        """The admission of the id the client sent (``sid``; None: none), given what the store
        answered (its record and refusal: :meth:`~sessionmw.SessionManager.touch_or_report`; for an
        id the store does not know, its :meth:`~PendingIds.verdict`), or, when the request gets a
        fresh id instead, why (:meth:`_fresh`). No store operation: a pending session (``verdict``
        pending) is the caller's to store."""
        if sid is None:
            return _NEW
        manager = self.manager
        if record is None:  # unknown: only a pending id this server issued is stored
            if verdict is _PENDING:
                return _admitted(Admission, (self._pending_session(sid, via_header), None))
            # Issued here, now gone (deleted, or lost in a restart): not the user's doing. A JSON
            # client is refused (not_found, like expired); a page starts afresh, silently.
            if verdict is not _GONE:
                return _NEW
            return _Fresh(None, self._reworded(request, sid, None, refusal), False)
        if refusal is None:  # it may work
            if record.reason != STORE_UNAVAILABLE:
                session = RequestSession(sid, manager, record, True, False, via_header)
                return _admitted(Admission, (session, None))  # (no Python-level __new__: every request)
            # Fail-open with the store down: the id cannot be verified, so it is not adopted.
            return _UNVERIFIED
        refusal = self._reworded(request, sid, record, refusal)
        if record.state.is_terminal:  # expired or ended: replaced, and the user is told once
            return _Fresh(refusal, refusal, False)
        # disconnected: kept (its page shows the banner), a JSON client is refused
        session = RequestSession(sid, manager, record, True, False, via_header, refusal=refusal)
        return Admission(session, self.refusal(session, request))

    def _reworded(
        self, request: RequestView, sid: str, record: SessionRecord | None, refusal: HealthReport | None
    ) -> HealthReport | None:
        """``refusal`` (the store's answer, made in English: no language is asked for on a
        request's way) in ``request``'s language, which the gate's answers and the app speak
        from here on (:meth:`listen`). Only on the refusal path, with no store operation: the
        words are made again from ``record`` (the checks and dependencies stay as reported)."""
        self.listen(request)
        if refusal is None or self._languages.speaker(request) is None:  # English as it is
            return refusal
        manager = self.manager
        again = HealthReport.build(sid, record, manager.clock(), manager.policy)
        report = HealthReport(refusal)
        for key in _REPORT_WORDS:
            report[key] = again[key]
        return report

    def _pending_session(self, sid: str, via_header: bool) -> RequestSession:
        """The session of a pending id that came back (the caller stores it)."""
        manager = self.manager
        return RequestSession(sid, manager, SessionRecord.new(sid, manager.clock()), False, False, via_header)

    def _fresh(self, request: RequestView, via_header: bool, fresh: _Fresh) -> Admission:
        """The admission of a request that gets a fresh pending id (see :class:`_Fresh`); no store
        operation but the first read of the store's incarnation (:meth:`PendingIds.issue`)."""
        manager = self.manager
        sid = self.pending.issue()
        record = SessionRecord.new(sid, manager.clock())
        if fresh.unverified:  # the request runs under a throwaway id; the cookie is left alone
            record.reason = STORE_UNAVAILABLE
            return Admission(RequestSession(sid, manager, record, True, False, via_header), None)
        session = RequestSession(
            sid, manager, record, False, True, via_header, fresh.notice, refusal=fresh.refusal
        )
        if session.refusal is not None:
            return Admission(session, self.refusal(session, request))
        return _admitted(Admission, (session, None))

    async def aadmit_websocket(
        self, request: RequestView, *, required: bool = False
    ) -> tuple[RequestSession | None, HealthReport | None]:
        """Decide a websocket before it is accepted: ``(session, None)``: served in ``session``;
        ``(None, None)``: served outside any session (it names none, its path is excluded, or the
        store is down and failing open); ``(None, report)``: refused, ``report`` says why.

        A websocket that names a session (the cookie or the header) is admitted only if that
        session may work (one store operation, as a request's admission); a pending id this
        server issued counts as the client's return and is stored. Anything else is refused,
        never adopted: an unknown or forged id (``not_found``), an expired, ended or disconnected
        session. One that names none is served outside any session and stores nothing, unless
        ``required`` (then refused as ``not_found``). A store failure raises, as :meth:`aadmit`'s.
        What sessionmw writes for the websocket is in its language (:meth:`listen`).
        """
        self.listen(request)
        if self._excludes and self._options.excluded(request.path):
            return None, None
        manager = self.manager
        sid, via_header = self.client_id(request)
        if sid is None:
            if not required:
                return None, None
            return None, HealthReport.build(None, None, manager.clock(), manager.policy)
        record, refusal = await manager.atouch_or_report(sid)
        if record is None:
            if await self.pending.averdict(sid) is not _PENDING:
                return None, refusal
            session = self._pending_session(sid, via_header)
            await session.aensure_stored()
            return session, None
        if refusal is not None:
            return None, refusal
        if record.reason == STORE_UNAVAILABLE:  # failing open: the id cannot be verified, not adopted
            return None, None
        return RequestSession(sid, manager, record, True, False, via_header), None

    def reads_body(self, request: RequestView) -> bool:
        """True for a request whose body the gate reads (a form post to its ``reconnect``
        endpoint): an async adapter awaits that body (up to
        :data:`~sessionmw.integrations.http.FORM_LIMIT` bytes) before :meth:`aadmit`, and never
        reads any other."""
        return request.path == self._reconnect_path and request.method == "POST"  # (the path first: cheaper)

    def failed_admission(self, request: RequestView, exc: Exception) -> PlainResponse:
        """The answer to a request that :meth:`admit` raised for (the store down with
        ``fail_closed``, or full): ``exc`` logged and translated; JSON for the endpoints' clients.
        No store operation. In the request's language (:meth:`listen`)."""
        self.listen(request)
        return self.error_response(self.fail(None, exc), request, request.path.startswith(self._prefix))

    async def afailed_admission(self, request: RequestView, exc: Exception) -> PlainResponse:
        """:meth:`failed_admission`, for what :meth:`aadmit` raised."""
        return self.failed_admission(request, exc)  # no session: no store operation to await

    # -- finding the session ------------------------------------------------------------------

    def client_id(self, request: RequestView) -> tuple[str | None, bool]:
        """The well-formed id the client sent (header first, then cookie), and whether it was the header."""
        header = request.header(self._header)
        if header is not None:
            header = header.strip()
            return (header if _is_id(header) else None), True
        cookies = request.cookies
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
            if sep and name == self._options.cookie_name:
                return value.strip().strip('"')
        return None

    def pending_health(self, sid: str) -> HealthReport | None:
        """The report of an issued, not yet stored id (healthy); None if ``sid`` is not one.

        One store operation (the incarnation) for an id signed here, none for any other text.
        """
        return self._pending_report(sid, self.pending.verdict(sid))

    def _pending_report(self, sid: str, verdict: Verdict | None) -> HealthReport | None:
        if verdict is not _PENDING:
            return None
        now = self.manager.clock()
        return HealthReport.build(sid, SessionRecord.new(sid, now), now, self.manager.policy)

    # -- the headers of a response ------------------------------------------------------------

    def session_headers(self, session: RequestSession, request: RequestView) -> list[tuple[str, str]]:
        """The headers the response must carry for ``session`` (cookie, id echo), ``Vary`` aside."""
        headers: list[tuple[str, str]] = []
        if session.issue_cookie:
            headers.append(("Set-Cookie", self.cookie_header(session.id, request)))
        if session.via_header:
            headers.append((self.options.header_name, session.id))
        return headers

    def cookie_header(self, sid: str, request: RequestView) -> str:
        """The ``Set-Cookie`` value for ``sid``: HttpOnly, SameSite=Lax, Path=/, Secure on HTTPS."""
        options = self.options
        parts = [f"{options.cookie_name}={sid}", "Path=/", "HttpOnly", "SameSite=Lax"]
        secure = options.secure
        if secure is None:
            secure = request.scheme == "https"
        if secure:
            parts.append("Secure")
        if options.cookie_domain:
            parts.append(f"Domain={options.cookie_domain}")
        if options.cookie_max_age is not None:
            parts.append(f"Max-Age={options.cookie_max_age}")
        return "; ".join(parts)

    def response_headers(
        self, session: RequestSession, request: RequestView, headers: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """The app's response ``headers`` as they must go out for ``session`` (a new list): the
        session's headers added, ``Vary`` covering ``Cookie``, and, when the response sets the
        cookie, no shared caching (``Cache-Control: private`` unless ``no-store`` or ``private``)."""
        return self._merged_headers(session, request, headers, _TEXT)

    def response_headers_raw(
        self, session: RequestSession, request: RequestView, headers: Iterable[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """:meth:`response_headers` for headers as ASGI sends them (latin-1 bytes, names in lower
        case, as the spec asks): the app's headers are kept as they are (only a ``Vary`` or
        ``Cache-Control`` value that changes is decoded and encoded again)."""
        if session.issue_cookie or session.via_header:
            return self._merged_headers(session, request, headers, _RAW)
        # Most responses: only Vary to cover Cookie (the same decision, written out for bytes).
        merged = [*headers]
        for name, _ in merged:
            if len(name) == 4 and name.lower() == b"vary":  # (the length first: no call for most)
                break
        else:  # the app sent no Vary: most responses
            merged.append(_RAW_VARY_COOKIE)
            return merged
        vary_at = max(at for at, (name, _) in enumerate(merged) if name.lower() == b"vary")  # the last
        name, value = merged[vary_at]
        vary = vary_with_cookie(value.decode("latin-1"))
        if vary is not None:
            merged[vary_at] = (name, vary.encode("latin-1"))
        return merged

    def _merged_headers(
        self, session: RequestSession, request: RequestView, headers: Iterable[tuple[H, H]], form: _Form[H]
    ) -> list[tuple[H, H]]:
        """The one decision of :meth:`response_headers`, over text or bytes (``form`` converts)."""
        headers = list(headers)
        vary_at = cache_at = -1
        vary_name, cache_name = form.vary, form.cache_control
        for index, (name, _) in enumerate(headers):
            lowered = name.lower()
            if lowered == vary_name:
                vary_at = index
            elif lowered == cache_name:
                cache_at = index
        if vary_at < 0:
            headers.append(form.vary_cookie)
        else:
            vary = vary_with_cookie(form.text(headers[vary_at][1]))
            if vary is not None:
                headers[vary_at] = (headers[vary_at][0], form.raw(vary))
        if session.issue_cookie or session.via_header:
            added = self.session_headers(session, request)
            headers += [(form.name(name), form.raw(value)) for name, value in added]
            if session.issue_cookie:
                if cache_at < 0:
                    headers.append(form.cache_private)
                else:
                    name, value = headers[cache_at]
                    headers[cache_at] = (name, form.raw(cache_control_with_cookie(form.text(value))))
        return headers

    def with_session_headers(
        self, response: PlainResponse, session: RequestSession, request: RequestView
    ) -> PlainResponse:
        """``response`` (the gate's own: a refusal, an error page) with ``session``'s headers and
        ``Vary: Cookie`` added."""
        response.headers = [*response.headers, *self.session_headers(session, request), _VARY_COOKIE]
        return response

    # -- answers ------------------------------------------------------------------------------

    def refusal(self, session: RequestSession, request: RequestView) -> PlainResponse | None:
        """For a JSON client whose session may not work (:attr:`RequestSession.refusal`): the
        response that says so (without the session's headers: see :meth:`with_session_headers`).

        Expired, or not found (an id this server issued, no longer stored): 401; disconnected: 503
        with the ``reconnect`` URL. HTML pages get None: they are served and can show the banner.
        """
        refusal = session.refusal
        if refusal is None or not accepts_json(request.header("accept"), session.via_header):
            return None
        from sessionmw.translation import UserFacingError

        err = UserFacingError.from_health(refusal)
        reconnect = None
        if session.notice is None and refusal.status != "not_found":  # replaced: nothing to reconnect
            mount = quote(request.root_path.encode("latin-1", "replace"), safe="/")
            reconnect = mount + self.options.prefix + "reconnect"
        return user_error_response(
            err,
            as_json=True,
            reconnect=reconnect,
            problem_json=self._options.problem_json,
            instance=_instance(request),
            session=refusal,
            language=self.language(request),
        )

    def language(self, request: RequestView) -> str:
        """The language the gate's answers to ``request`` speak (HTTP ``Content-Language``): the
        one chosen for the request its admission named (:meth:`listen`,
        :func:`sessionmw.languages.current`), English outside any request."""
        return _current_language()

    def finish(self, session: RequestSession, status: int) -> None:
        """After a response: a success (below 400) clears the error count of a session in the error
        state, unless the request recorded an error or counts no success
        (:attr:`RequestSession.counts_success`)."""
        if (session.record.state is _ERROR or _REQUEST_FINISHED.receivers) and self._clears_errors(
            session, status
        ):  # (the test before the call: no call on most requests)
            run(self._success(session, False))

    async def afinish(self, session: RequestSession, status: int) -> None:
        """:meth:`finish`, the success recorded without blocking the event loop."""
        if (session.record.state is _ERROR or _REQUEST_FINISHED.receivers) and self._clears_errors(
            session, status
        ):
            await drive(self._success(session, True))

    def _clears_errors(self, session: RequestSession, status: int) -> bool:
        """Send ``request_finished``; True if the response is a success to record (see :meth:`finish`)."""
        if _REQUEST_FINISHED.receivers:
            seconds = time.perf_counter() - session.started
            signals.send(
                _REQUEST_FINISHED, self.manager, session_id=session.id, status=status, seconds=seconds
            )
        if session.failed or not session.stored or not session.counts_success:
            return False
        return status < 400 and session.record.state is _ERROR

    def _success(self, session: RequestSession, awaiting: bool) -> Steps[None]:
        manager = self.manager
        try:
            if awaiting:
                yield manager.arecord_success(session.id)
            else:
                manager.record_success(session.id)
        except Exception:  # e.g. the store went down (fail_closed): the response stands
            _log.warning("could not record the success on the session", exc_info=True)

    def fail(
        self, session: RequestSession | None, exc: BaseException, *, log: bool = True, what: str = "request"
    ) -> UserFacingError:
        """Log and record ``exc`` on the session, and translate it for the user.

        A request records one error at most (an adapter and a middleware may both see it); the
        session as the error left it is :attr:`RequestSession.after_error`.

        :param log: log ``exc`` on the ``sessionmw.wsgi`` logger, as one WARNING line (the
            traceback only at DEBUG or in debug mode: the user sees a friendly message); False
            when the host logs it.
        :param what: what failed, for the log line (e.g. a Dash callback's output).
        """
        return run(self._fail(session, exc, log, what, False))

    async def afail(
        self, session: RequestSession | None, exc: BaseException, *, log: bool = True, what: str = "request"
    ) -> UserFacingError:
        """:meth:`fail`, the error recorded without blocking the event loop."""
        return await drive(self._fail(session, exc, log, what, True))

    def _fail(
        self, session: RequestSession | None, exc: BaseException, log: bool, what: str, awaiting: bool
    ) -> Steps[UserFacingError]:
        from sessionmw.translation import translate

        if log:
            session_id = session.id if session is not None else None
            log_failure(_log, exc, callback=what, session_id=session_id, debug=self.debug)
        if session is not None and not session.failed:
            try:
                if awaiting:
                    yield session.aensure_stored()
                    session.after_error = yield session.manager.arecord_error(session.id, exc)
                else:
                    session.ensure_stored()
                    session.after_error = session.manager.record_error(session.id, exc)
                session.failed = True
            except Exception:
                _log.exception("could not record the error on the session")
        return translate(exc, debug=self.debug)

    def error_response(
        self,
        err: UserFacingError,
        request: RequestView,
        via_header: bool,
        session: RequestSession | None = None,
    ) -> PlainResponse:
        """``err`` as JSON or HTML (by ``Accept``). JSON clients get a problem document
        (:mod:`~sessionmw.integrations.problem`) with the session's status, state and error count
        as the error left them (no store operation). The HTML page says what the banner says for
        ``session`` now (from the record its error left, else one read), with Reconnect when the
        failure disconnected it, and a way back to the page the request came from.

        The status is 401 for an expired or unknown session, 503 with ``Retry-After`` for a
        disconnected session or a transient error, else 500.
        """
        return run(self._error_response(err, request, via_header, session, False))

    async def aerror_response(
        self,
        err: UserFacingError,
        request: RequestView,
        via_header: bool,
        session: RequestSession | None = None,
    ) -> PlainResponse:
        """:meth:`error_response`, the session's health read without blocking the event loop."""
        return await drive(self._error_response(err, request, via_header, session, True))

    def _error_response(
        self,
        err: UserFacingError,
        request: RequestView,
        via_header: bool,
        session: RequestSession | None,
        awaiting: bool,
    ) -> Steps[PlainResponse]:
        language = self.language(request)
        if accepts_json(request.header("accept"), via_header):
            state = None
            if session is not None:  # as the error left it: no store operation
                record = session.after_error or session.record
                state = HealthReport.build(session.id, record, self.manager.clock(), self.manager.policy)
            return user_error_response(
                err,
                as_json=True,
                problem_json=self._options.problem_json,
                instance=_instance(request),
                session=state,
                language=language,
            )
        report = None
        if session is not None and session.stored:
            after, manager = session.after_error, self.manager
            sid = session.id
            if after is None:
                report = (yield manager.acheck_health(sid)) if awaiting else manager.check_health(sid)
            else:  # the record the error left: no second read
                report = (yield manager.ahealth_of(sid, after)) if awaiting else manager.health_of(sid, after)
        mount = quote(request.root_path.encode("latin-1", "replace"), safe="/")
        page = error_page_html(err, report, prefix=mount + self.options.prefix, back=back_path(request))
        return user_error_response(err, as_json=False, page=page, language=language)

    # -- the endpoints ------------------------------------------------------------------------

    def endpoint(self, request: RequestView, name: str) -> PlainResponse:
        """Serve the endpoint ``name`` (the path after the prefix)."""
        return run(self._endpoint(request, name, False))

    async def aendpoint(self, request: RequestView, name: str) -> PlainResponse:
        """:meth:`endpoint`, every store operation awaited (a form post's body is the view's:
        see :meth:`reads_body`)."""
        return await drive(self._endpoint(request, name, True))

    def _endpoint(self, request: RequestView, name: str, awaiting: bool) -> Steps[PlainResponse]:
        method = request.method
        if name == "health":
            if method not in ("GET", "HEAD"):
                return self._endpoint_problem(request, 405, "method-not-allowed", "GET, HEAD")
            return (yield from self._health(request, awaiting))
        if name == "reconnect":
            if method != "POST":
                return self._endpoint_problem(request, 405, "method-not-allowed", "POST")
            return (yield from self._reconnect(request, awaiting))
        return self._endpoint_problem(request, 404, "endpoint-not-found")

    def _endpoint_problem(
        self, request: RequestView, status: int, situation: str, allow: str = ""
    ) -> PlainResponse:
        """A request to the endpoints that none serves, as a problem document (``Allow`` for 405)."""
        from sessionmw.integrations.problem import endpoint_error

        err = endpoint_error(situation, allow=allow)
        if self._options.problem_json:
            response = user_error_response(
                err, as_json=True, status=status, instance=_instance(request), language=self.language(request)
            )
        else:  # the deprecated shape
            code = "not_found" if status == 404 else "method_not_allowed"
            message = err.recovery[0] if status == 405 else plain(err.message)
            response = json_response(status, {"status": code, "message": message})
        if allow:
            response.headers.append(("Allow", allow))
        return response

    def health_response(self, request: RequestView) -> PlainResponse:
        """``GET health``: the caller's session health, never creating or touching a session.

        One store operation (the read); an id the store does not know costs one more only if it
        was signed here (the incarnation: is it pending?). ``?page=1`` (a page's own poll) always
        answers 200: the state is in the body.
        """
        return run(self._health(request, False))

    def _health(self, request: RequestView, awaiting: bool) -> Steps[PlainResponse]:
        sid, _ = self.client_id(request)
        report: HealthReport | None = None
        if sid is not None:
            manager = self.manager
            report = (yield manager.acheck_health(sid)) if awaiting else manager.check_health(sid)
            if report.status == "not_found":
                report = (yield from self._pending_health(sid, awaiting)) or report
        return self._health_answer(report, request)

    def _pending_health(self, sid: str, awaiting: bool) -> Steps[HealthReport | None]:
        """:meth:`pending_health` as steps."""
        verdict = (yield self.pending.averdict(sid)) if awaiting else self.pending.verdict(sid)
        return self._pending_report(sid, verdict)

    def _health_answer(self, report: HealthReport | None, request: RequestView) -> PlainResponse:
        if report is None:
            report = HealthReport.build(None, None, self.manager.clock(), self.manager.policy)
        for_page = "page=1" in request.query_string.split("&")  # the banner's poll
        return health_report_response(report, for_page=for_page)

    def reconnect_response(self, request: RequestView) -> PlainResponse:
        """``POST reconnect``: a disconnected (or erroring) session back to active.

        A form post (a page without JavaScript) is sent back to its ``next`` path; anyone else
        gets the session's health as it is now, 409 if there was nothing to reconnect. One store
        operation (the reconnect, whose outcome is the health), plus the incarnation for an id
        the store does not know that was signed here, or the read of a session that may not
        reconnect (expired, ended).
        """
        return run(self._reconnect(request, False))

    def _reconnect(self, request: RequestView, awaiting: bool) -> Steps[PlainResponse]:
        sid, via_header = self.client_id(request)
        manager = self.manager
        record: SessionRecord | None = None
        refused = False
        if sid is not None:
            try:
                record = (yield manager.areconnect(sid)) if awaiting else manager.reconnect(sid)
            except IllegalTransitionError:  # expired or ended: nothing to reconnect
                refused = True
        content_type = request.header("content-type") or ""
        as_form = not accepts_json(request.header("accept"), via_header) and content_type.startswith(
            "application/x-www-form-urlencoded"
        )
        report: HealthReport | None = None
        if sid is None:
            reconnected = False
        elif record is not None:  # the reconnect's outcome is the health: no second read
            reconnected = True
            report = (yield manager.ahealth_of(sid, record)) if awaiting else manager.health_of(sid, record)
        elif refused:
            reconnected = False
            if not as_form:
                report = (yield manager.acheck_health(sid)) if awaiting else manager.check_health(sid)
        else:  # unknown: a pending id has nothing to reconnect, and is well
            report = yield from self._pending_health(sid, awaiting)
            reconnected = report is not None
            if report is None:
                report = manager.health_of(sid, None)  # not found: no custom check runs, no store read
        if as_form:  # back to the page, which says "Reconnected" when it worked
            back = form_next_path(request.body(FORM_LIMIT))
            location = with_reconnected(back) if reconnected else back
            headers = [("Location", location), ("Content-Type", "text/plain"), ("Cache-Control", "no-store")]
            return PlainResponse("303 See Other", headers, b"")
        response = self._health_answer(report, request)
        if not reconnected:
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


def _instance(request: RequestView) -> str:
    """A problem document's ``instance``: the request's path from the root, percent-encoded, without
    its query (which may hold what is not for a log)."""
    return quote((request.root_path + request.path).encode("latin-1", "replace"), safe="/") or "/"


class GateMiddleware(Generic[App]):
    """What a middleware of any protocol holds (the WSGI and the ASGI ``SessionMiddleware``): the
    app it wraps, its :class:`SessionGate`, and whether the app's exceptions are re-raised.

    :param app: the application to wrap.
    :param manager: the session manager; by default the process default
        (:func:`sessionmw.get_session_manager`).
    :param debug: show exception details in error pages; None: the manager's ``debug`` setting.
    :param propagate_exceptions: re-raise the app's exceptions after recording them (True, False,
        or None: the protocol's default).
    :param secret_key: signs pending session ids; default ``SESSIONMW_SECRET_KEY`` or a random key.
    :param options: the :class:`~sessionmw.integrations.options.Options` fields.
    """

    def __init__(
        self,
        app: App,
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
        #: Re-raise the app's exceptions after recording them (None: the protocol's default).
        self.propagate_exceptions = check_propagate_exceptions(propagate_exceptions)

    @property
    def manager(self) -> SessionManager:
        """The manager that keeps the sessions."""
        return self.gate.manager
