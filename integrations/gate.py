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
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

from sessionmw import signals
from sessionmw._errors import IllegalTransitionError
from sessionmw._manager import STORE_UNAVAILABLE, SessionManager
from sessionmw._session import SessionRecord
from sessionmw._states import SessionState
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
from sessionmw.integrations.options import Options
from sessionmw.integrations.pending_ids import PendingIds, Verdict
from sessionmw.integrations.request_session import RequestSession
from sessionmw.texts import ASKED

if TYPE_CHECKING:
    from sessionmw.integrations.request import RequestView
    from sessionmw.translation import UserFacingError

__all__ = ["Admission", "SessionGate", "cache_control_with_cookie", "vary_with_cookie"]

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
        self._metrics_path = options.metrics_path
        self._excludes = bool(options.exclude)
        self._languages = options.negotiator()

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
        written (:func:`sessionmw.languages.ask`).

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
        _ask([self._languages, request])
        path = request.path
        if path == self._metrics_path:
            return Admission(None, self.metrics_response()) if endpoints else _UNTRACKED
        prefix = self._prefix
        if path.startswith(prefix):
            return Admission(None, self.endpoint(request, path[len(prefix) :])) if endpoints else _UNTRACKED
        if self._excludes and self._options.excluded(path):
            return _UNTRACKED
        # (one method, no call layers: on every request)
        manager = self.manager
        sid, via_header = self.client_id(request)
        session: RequestSession | None = None
        notice: HealthReport | None = None
        gone: HealthReport | None = None
        if sid is not None:
            # One store operation: the activity, or the report that refuses it (the core's rule).
            record, refusal = manager.touch_or_report(sid)
            if record is None:  # unknown: only a pending id this server issued is stored
                verdict = self.pending.verdict(sid)
                if verdict is _PENDING:
                    pending = RequestSession(
                        sid, manager, SessionRecord.new(sid, manager.clock()), False, False, via_header
                    )
                    pending.ensure_stored()
                    session = pending
                elif verdict is _GONE:
                    # Issued here, now gone (deleted, or lost in a restart): not the user's
                    # doing. A JSON client is refused (not_found, like expired); a page starts
                    # afresh, silently.
                    gone = refusal
            elif refusal is None:  # it may work
                if record.reason == STORE_UNAVAILABLE:
                    # Fail-open with the store down: the id cannot be verified, so it is not
                    # adopted. The request runs under a throwaway id; the cookie is left alone.
                    fresh = self.pending.issue()
                    unverified = SessionRecord.new(fresh, manager.clock())
                    unverified.reason = STORE_UNAVAILABLE
                    session = RequestSession(fresh, manager, unverified, True, False, via_header)
                else:
                    session = RequestSession(sid, manager, record, True, False, via_header)
            elif record.state.is_terminal:  # expired or ended: replaced, and the user is told once
                notice = refusal
            else:  # disconnected: kept (its page shows the banner), a JSON client is refused
                session = RequestSession(
                    sid, manager, record, True, False, via_header, refusal=refusal
                )
        if session is None:
            fresh = self.pending.issue()
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
        if session.refusal is not None:
            return Admission(session, self.refusal(session, request))
        return _admitted(Admission, (session, None))  # (no Python-level __new__: every request)

    def failed_admission(self, request: RequestView, exc: Exception) -> PlainResponse:
        """The answer to a request that :meth:`admit` raised for (the store down with
        ``fail_closed``, or full): ``exc`` logged and translated; JSON for the endpoints' clients."""
        return self.error_response(self.fail(None, exc), request, request.path.startswith(self._prefix))

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
        if self.pending.verdict(sid) is not _PENDING:
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
        headers = list(headers)
        vary_at = cache_at = -1
        for index, (name, _) in enumerate(headers):
            lowered = name.lower()
            if lowered == "vary":
                vary_at = index
            elif lowered == "cache-control":
                cache_at = index
        if vary_at < 0:
            headers.append(_VARY_COOKIE)
        else:
            vary = vary_with_cookie(headers[vary_at][1])
            if vary is not None:
                headers[vary_at] = (headers[vary_at][0], vary)
        if session.issue_cookie or session.via_header:
            headers += self.session_headers(session, request)
            if session.issue_cookie:
                if cache_at < 0:
                    headers.append(("Cache-Control", "private"))
                else:
                    name, value = headers[cache_at]
                    headers[cache_at] = (name, cache_control_with_cookie(value))
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
            reconnect = self.options.prefix + "reconnect"
        return user_error_response(err, as_json=True, reconnect=reconnect)

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

        A request records one error at most (an adapter and a middleware may both see it); the
        session as the error left it is :attr:`RequestSession.after_error`.

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
        """``err`` as JSON or HTML (by ``Accept``). The HTML page says what the banner says for
        ``session`` now (from the record its error left, else one read), with Reconnect when the
        failure disconnected it, and a way back to the page the request came from.

        The status is 401 for an expired or unknown session, 503 with ``Retry-After`` for a
        disconnected session or a transient error, else 500.
        """
        as_json = accepts_json(request.header("accept"), via_header)
        page = None
        if not as_json:
            report = None
            if session is not None and session.stored:
                after, manager = session.after_error, self.manager
                if after is None:
                    report = manager.check_health(session.id)
                else:  # the record the error left: no second read
                    report = manager.health_of(session.id, after)
            mount = quote(request.root_path.encode("latin-1", "replace"), safe="/")
            page = error_page_html(err, report, prefix=mount + self.options.prefix, back=back_path(request))
        return user_error_response(err, as_json=as_json, page=page)

    # -- the endpoints ------------------------------------------------------------------------

    def endpoint(self, request: RequestView, name: str) -> PlainResponse:
        """Serve the endpoint ``name`` (the path after the prefix)."""
        method = request.method
        if name == "health":
            if method not in ("GET", "HEAD"):
                return _method_not_allowed("GET, HEAD")
            return self.health_response(request)
        if name == "reconnect":
            if method != "POST":
                return _method_not_allowed("POST")
            return self.reconnect_response(request)
        return json_response(404, {"status": "not_found", "message": "No such sessionmw endpoint."})

    def health_response(self, request: RequestView) -> PlainResponse:
        """``GET health``: the caller's session health, never creating or touching a session.

        One store operation (the read); an id the store does not know costs one more only if it
        was signed here (the incarnation: is it pending?). ``?page=1`` (a page's own poll) always
        answers 200: the state is in the body.
        """
        sid, _ = self.client_id(request)
        report: HealthReport | None = None
        if sid is not None:
            report = self.manager.check_health(sid)
            if report.status == "not_found":
                report = self.pending_health(sid) or report
        return self._health_answer(report, request)

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
        sid, via_header = self.client_id(request)
        manager = self.manager
        record: SessionRecord | None = None
        refused = False
        if sid is not None:
            try:
                record = manager.reconnect(sid)
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
            reconnected, report = True, manager.health_of(sid, record)
        elif refused:
            reconnected = False
            if not as_form:
                report = manager.check_health(sid)
        else:  # unknown: a pending id has nothing to reconnect, and is well
            report = self.pending_health(sid)
            reconnected = report is not None
            if report is None:
                report = manager.health_of(sid, None)
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


def _method_not_allowed(allow: str) -> PlainResponse:
    data = {"status": "method_not_allowed", "message": f"Use {allow}."}
    return json_response(405, data, [("Allow", allow)])
