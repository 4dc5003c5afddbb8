"""Session tracking for any WSGI application, in one line.

.. code-block:: python

    app.wsgi_app = SessionMiddleware(app.wsgi_app)

Each request is matched to a session (a cookie, or the ``X-Session-ID`` header for API clients),
counts as activity, and runs inside :func:`sessionmw.session_scope`. An exception from the app
becomes a friendly HTML or JSON error page and is recorded on the session. Two endpoints serve
the session's health and reconnect it. See ``docs/wsgi.md`` for every option.

The request logic is :class:`~sessionmw.integrations.gate.SessionGate`'s, protocol-free: this
module only translates an environ to its view (:class:`~sessionmw.integrations.environ.EnvironRequest`)
and the gate's decisions to ``start_response``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sessionmw._context import enter_scope, leave_scope
from sessionmw.integrations.environ import (
    ENVIRON_MANAGER,
    ENVIRON_NOTICE,
    ENVIRON_SESSION,
    ENVIRON_SESSION_ID,
    EnvironRequest,
)
from sessionmw.integrations.gate import GateMiddleware, SessionGate
from sessionmw.integrations.http import PlainResponse, banner_html, just_reconnected, page_path
from sessionmw.integrations.request_session import RequestSession
from sessionmw.texts import ASKED

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment  # noqa: F401 (the base's)

__all__ = ["SessionMiddleware", "banner_for", "install", "uninstall"]

_APPLIED = "sessionmw.applied"  # environ key: the middleware that serves the request
_asked = ASKED.get


def _forget() -> None:
    """The request is over: what sessionmw writes after it is English (languages.forget)."""
    asked = _asked()
    if asked is not None:
        asked[1] = None


class SessionMiddleware(GateMiddleware["WSGIApplication"]):
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
        ``exclude``, ``secure``, ``cookie_domain``, ``cookie_max_age``, ``metrics_path``,
        ``problem_json``: deprecated when False).
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _APPLIED in environ:  # applied twice: the outer one did the work
            return self.app(environ, start_response)
        environ[_APPLIED] = self
        gate = self.gate
        request = EnvironRequest(environ)
        try:
            session, answer = gate.admit(request)
        except Exception as exc:  # e.g. the store is full, or down with fail_closed
            return _answer(gate.failed_admission(request, exc), environ, start_response)
        if session is None:
            if answer is None:  # an excluded path
                _forget()
                return self.app(environ, start_response)
            return _answer(answer, environ, start_response)
        environ[ENVIRON_MANAGER] = gate.manager
        environ[ENVIRON_SESSION] = session
        environ[ENVIRON_SESSION_ID] = session.id
        environ[ENVIRON_NOTICE] = session.notice
        if answer is not None:  # refused
            return _answer(gate.with_session_headers(answer, session, request), environ, start_response)
        started: list[str] = []

        def session_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started.append(status)
            headers = gate.response_headers(session, request, headers)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        store_pending = None if session.stored else session.ensure_stored  # (RequestSession.store_pending)
        # As session_scope() does, with the request's language (chosen when words are written).
        token = enter_scope(gate.manager, session.id, store_pending, gate.languages, request)
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
                response = gate.with_session_headers(
                    gate.error_response(err, request, session.via_header, session), session, request
                )
                exc_info = sys.exc_info() if started else None
                return _answer(response, environ, start_response, exc_info)
            as_response: Any = exc
            result = as_response(environ, session_start_response)
        finally:
            leave_scope(token)
            asked = _asked()  # the request is over (_forget, inline: on every request)
            if asked is not None:
                asked[1] = None
        if isinstance(result, (list, tuple)):  # a tuple of types: no union built per request
            if started:
                gate.finish(session, int(started[-1][:3]))
            return result
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            return result  # let the server send the file its own way
        return _Body(result, gate, session, started, request)

    def _propagates(self, environ: WSGIEnvironment) -> bool:
        """True when the app's exception must be re-raised (after recording), not answered."""
        if environ.get("x-wsgiorg.throw_errors") or environ.get("paste.throw_errors"):
            return True
        if self.propagate_exceptions is not None:
            return self.propagate_exceptions
        return self.gate.debug or _host_propagates(self.app)


def _answer(
    response: PlainResponse, environ: WSGIEnvironment, start_response: StartResponse, exc_info: Any = None
) -> list[bytes]:
    """Send a response of the gate's; a HEAD request gets its headers only."""
    _forget()
    body = response.send(start_response, None, exc_info)
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

    __slots__ = ("_gate", "_request", "_result", "_session", "_started")

    def __init__(
        self,
        result: Iterable[bytes],
        gate: SessionGate,
        session: RequestSession,
        started: list[str],
        request: EnvironRequest,
    ) -> None:
        self._result = result
        self._gate = gate
        self._session = session
        self._started = started
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        manager, session_id = self._gate.manager, self._session.id
        languages, request = self._gate.languages, self._request
        session = self._session
        store_pending = None if session.stored else session.ensure_stored  # (RequestSession.store_pending)
        iterator = iter(self._result)
        while True:
            # Only while the app makes a chunk (in the request's language, as the app's call).
            token = enter_scope(manager, session_id, store_pending, languages, request)
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


def banner_for(environ: WSGIEnvironment) -> str:
    """The banner the current page should show (see :func:`banner_html`): a notice, else the health."""
    session = environ.get(ENVIRON_SESSION)
    report = environ.get(ENVIRON_NOTICE) or (session.health if isinstance(session, RequestSession) else None)
    middleware = environ.get(_APPLIED)
    prefix = middleware.gate.options.prefix if isinstance(middleware, SessionMiddleware) else "/_sessionmw/"
    mount = quote(environ.get("SCRIPT_NAME", "").encode("latin-1", "replace"), safe="/")
    return banner_html(
        report, prefix=mount + prefix, next_path=page_path(environ), reconnected=just_reconnected(environ)
    )


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
