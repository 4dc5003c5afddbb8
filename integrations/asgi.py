"""Session tracking for any ASGI application (Starlette, FastAPI, a raw ASGI app), in one line.

.. code-block:: python

    app.add_middleware(SessionMiddleware)  # Starlette, FastAPI; or app = SessionMiddleware(app)

Each HTTP request is matched to a session (a cookie, or the ``X-Session-ID`` header for API
clients), counts as activity, and runs inside :func:`sessionmw.session_scope`; the session is in
the scope (:data:`SCOPE_SESSION`, :func:`session_of`). An exception from the app is recorded on
the session and re-raised, so the host's error stack answers it (Starlette's
``ServerErrorMiddleware``, the app's handlers, Sentry, OpenTelemetry); :func:`install` adds a
friendly error page where a Starlette or FastAPI app has no handler of its own. Two endpoints serve
the session's health and reconnect it. See ``docs/asgi.md``.

The request logic is :class:`~sessionmw.integrations.gate.SessionGate`'s, awaited
(:meth:`~sessionmw.integrations.gate.SessionGate.aadmit`): this module only translates a scope to
its view (:class:`ScopeRequest`) and the gate's decisions to ASGI messages. No store call blocks the
event loop; the middleware runs under asyncio and trio alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

from sessionmw._context import enter_scope, leave_scope
from sessionmw._manager import SessionManager
from sessionmw._states import SessionState
from sessionmw.integrations.gate import GateMiddleware
from sessionmw.integrations.http import (
    FORM_LIMIT,
    RECONNECTED_QUERY,
    PlainResponse,
    accepts_json,
    banner_html,
    json_response,
    user_error_response,
)
from sessionmw.integrations.request_session import RequestSession
from sessionmw.languages import LanguageSelector, forget
from sessionmw.signals import request_finished
from sessionmw.texts import REQUEST_HEADERS_TOO_LARGE, REQUEST_UNREADABLE

_log = logging.getLogger("sessionmw.asgi")

__all__ = [
    "MAX_HEADER_BYTES",
    "SCOPE_MANAGER",
    "SCOPE_NOTICE",
    "SCOPE_SESSION",
    "SCOPE_SESSION_ID",
    "WEBSOCKET_DISCONNECTED",
    "WEBSOCKET_REFUSED",
    "WEBSOCKET_RENEWAL_FLOOR",
    "WEBSOCKET_STORE_FAILED",
    "WEBSOCKET_UNREADABLE",
    "ScopeRequest",
    "SessionMiddleware",
    "banner_for",
    "install",
    "session_of",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: scope key: the :class:`~sessionmw.SessionManager` serving the request.
SCOPE_MANAGER = "sessionmw.manager"
#: scope key: the session id of the request (a string).
SCOPE_SESSION_ID = "sessionmw.session_id"
#: scope key: the :class:`~sessionmw.integrations.request_session.RequestSession` of the request.
SCOPE_SESSION = "sessionmw.session"
#: scope key: a report to show the user once (the expired session a fresh one replaced), or None.
SCOPE_NOTICE = "sessionmw.notice"
#: The most header bytes (names and values) a request may carry: more is answered 431.
MAX_HEADER_BYTES = 64 * 1024

#: Close code of a websocket refused before it is accepted: the session it names is unknown (an
#: id the store does not know is never adopted), expired or ended, or it names none where
#: ``require_websocket_session`` asks for one. The close reason is the session's health status.
WEBSOCKET_REFUSED = 4401
#: Close code of a websocket whose session is disconnected: reconnect it first (``POST reconnect``).
WEBSOCKET_DISCONNECTED = 4503
#: Close code of a websocket whose scope cannot be read (headers missing, malformed or too large).
WEBSOCKET_UNREADABLE = 4400
#: Close code of a websocket the store could not admit (the store down with ``fail_closed``).
WEBSOCKET_STORE_FAILED = 1011
#: The shortest span, in seconds, between two store operations that a websocket's messages count
#: as activity (the renewal window, ``activity_resolution``, when longer).
WEBSOCKET_RENEWAL_FLOOR = 1.0

_APPLIED = "sessionmw.applied"  # scope key: the middleware that serves the request
_START = "http.response.start"
_COOKIE = b"cookie"
_ERROR = SessionState.ERROR
_REQUEST_FINISHED = request_finished


class _Unreadable(ValueError):
    """A scope whose headers cannot be read; ``answer`` is the 4xx to send."""

    def __init__(self, reason: str, answer: PlainResponse) -> None:
        super().__init__(reason)
        self.answer = answer
        #: What the answer says (a websocket's close reason).
        self.sentence = str(json.loads(answer.body)["message"])


class ScopeRequest:
    """An ASGI HTTP scope as the gate reads it (read-only: nothing is copied or changed).

    :param scope: the request's scope.
    :param body: the request body as the adapter read it (only for the gate's own endpoints:
        :meth:`SessionGate.reads_body <sessionmw.integrations.gate.SessionGate.reads_body>`).
    :raises ValueError: for a scope whose ``path`` or ``headers`` cannot be read (missing, not
        text, not pairs of bytes) or whose headers exceed :data:`MAX_HEADER_BYTES`.
    """

    __slots__ = ("_body", "_headers", "cookies", "path", "scope")

    def __init__(self, scope: Scope, body: bytes = b"") -> None:
        #: The scope read.
        self.scope = scope
        path = scope.get("path")
        headers = scope.get("headers")
        if not isinstance(path, str) or not isinstance(headers, (list, tuple)):
            raise _Unreadable("the scope has no path or no headers", _unreadable())
        root = scope.get("root_path") or ""
        #: The path below the mount point (the scope's ``path`` without its ``root_path``).
        self.path = path[len(root) :] if root and path.startswith(root) else path
        size = 0
        cookies: list[bytes] = []
        try:
            for name, value in headers:  # (every request, every header: the cheapest tests first)
                if type(name) is not bytes or type(value) is not bytes:
                    raise TypeError("not bytes")
                size += len(name) + len(value)
                if len(name) == 6 and (name == _COOKIE or name.lower() == _COOKIE):
                    cookies.append(value)
        except (TypeError, ValueError) as exc:  # not pairs, or not bytes
            raise _Unreadable(f"the scope's headers are not pairs of bytes ({exc})", _unreadable()) from None
        if size > MAX_HEADER_BYTES:
            answer = json_response(431, {"status": "headers_too_large", "message": REQUEST_HEADERS_TOO_LARGE})
            raise _Unreadable(f"{size} bytes of headers (at most {MAX_HEADER_BYTES})", answer)
        self._headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...] = headers
        #: The ``Cookie`` header (several joined with ``"; "``, as HTTP/2 may split it), ``""`` if none.
        self.cookies = (cookies[0] if len(cookies) == 1 else b"; ".join(cookies)).decode("latin-1")
        self._body = body

    @property
    def method(self) -> str:
        """The scope's ``method`` (``GET`` if missing)."""
        method: str = self.scope.get("method") or "GET"
        return method

    @property
    def root_path(self) -> str:
        """The scope's ``root_path`` (``""`` at the root)."""
        root: str = self.scope.get("root_path") or ""
        return root

    @property
    def query_string(self) -> str:
        """The scope's ``query_string``, as latin-1 text."""
        query = self.scope.get("query_string") or b""
        return query.decode("latin-1") if isinstance(query, bytes) else str(query)

    @property
    def scheme(self) -> str:
        """The scope's ``scheme`` (``http`` if missing)."""
        scheme: str = self.scope.get("scheme") or "http"
        return scheme

    @property
    def remote_address(self) -> str | None:
        """The host of the scope's ``client``, or None."""
        client = self.scope.get("client")
        return str(client[0]) if client else None

    def header(self, name: str) -> str | None:
        """The first header ``name`` (lower case), as latin-1 text, or None if absent."""
        wanted = name.encode("latin-1")
        length = len(wanted)
        for key, value in self._headers:  # (names as servers send them, in lower case: no call)
            if len(key) == length and (key == wanted or key.lower() == wanted):
                return value.decode("latin-1")
        return None

    def body(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the body the adapter read (``b""`` for any other request)."""
        return self._body[:limit]


def _unreadable() -> PlainResponse:
    return json_response(400, {"status": "bad_request", "message": REQUEST_UNREADABLE})


class SessionMiddleware(GateMiddleware[ASGIApp]):
    """Pure ASGI middleware that gives every HTTP request and websocket a session.

    A websocket that names a session (cookie or header) is admitted before it is accepted only if
    that session may work, else closed with :data:`WEBSOCKET_REFUSED` or
    :data:`WEBSOCKET_DISCONNECTED`; one that names none is served outside any session (or, with
    ``require_websocket_session``, refused). ``lifespan`` and any other scope pass through
    untouched; applied twice, the inner one does nothing. The response's headers are changed in
    ``http.response.start`` only (the cookie, ``Vary: Cookie``, ``Cache-Control: private`` when
    the cookie is set); the request body is read only for a form post to ``reconnect``.

    :param app: the ASGI application to wrap.
    :param manager: the session manager; by default the process default
        (:func:`sessionmw.get_session_manager`).
    :param debug: show exception details in error pages; None: the manager's ``debug`` setting.
    :param propagate_exceptions: re-raise the app's exceptions after recording them, so the host's
        error stack answers them (None, the default, and True); False: answer the friendly error
        page here when the response has not started yet (an app with no error handling of its own;
        once started, the exception is re-raised all the same).
    :param secret_key: signs pending session ids; default ``SESSIONMW_SECRET_KEY`` or a random key.
    :param require_websocket_session: refuse a websocket that names no session (default False).
    :param options: the :class:`~sessionmw.integrations.options.Options` fields (``cookie_name``,
        ``header_name``, ``prefix``, ``exclude``, ``secure``, ``cookie_domain``,
        ``cookie_max_age``, ``metrics_path``, ``languages`` and ``language_selector``: see
        ``docs/languages.md``, ``problem_json``: see ``docs/api-clients.md``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        manager: SessionManager | None = None,
        debug: bool | None = None,
        propagate_exceptions: bool | None = None,
        secret_key: str | bytes | None = None,
        require_websocket_session: bool = False,
        cookie_name: str = "sessionmw",  # (Options' defaults: tests/adapters/test_asgi.py checks them)
        header_name: str = "X-Session-ID",
        prefix: str = "/_sessionmw/",
        exclude: Iterable[str] = (),
        secure: bool | None = None,
        cookie_domain: str | None = None,
        cookie_max_age: int | None = None,
        metrics_path: str | None = None,
        languages: Iterable[str] | str | None = None,
        language_selector: LanguageSelector | None = None,
        problem_json: bool | str | None = None,
    ) -> None:
        # Every option spelled out (no **options): Starlette's typed add_middleware() checks them.
        super().__init__(
            app,
            manager=manager,
            debug=debug,
            propagate_exceptions=propagate_exceptions,
            secret_key=secret_key,
            cookie_name=cookie_name,
            header_name=header_name,
            prefix=prefix,
            exclude=exclude,
            secure=secure,
            cookie_domain=cookie_domain,
            cookie_max_age=cookie_max_age,
            metrics_path=metrics_path,
            languages=languages,
            language_selector=language_selector,
            problem_json=problem_json,
        )
        #: Refuse a websocket that names no session (by default it is served outside any session).
        self.require_websocket_session = bool(require_websocket_session)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or _APPLIED in scope:  # lifespan, websocket, ...; or applied twice
            if scope.get("type") == "websocket" and _APPLIED not in scope:
                try:
                    return await self._websocket(scope, receive, send)
                finally:  # its language (the gate's listen) ends with it
                    forget()
            return await self.app(scope, receive, send)
        scope[_APPLIED] = self
        gate = self.gate
        try:
            request = ScopeRequest(scope)
        except _Unreadable as bad:  # nothing stored, nothing raised into the server
            return await _answer(bad.answer, scope, send)
        try:
            session = gate.admit_now(request)  # most requests: a known session, answered at once
        except Exception as exc:  # a store's answer at once that failed: as any admission's failure
            return await _answer(await gate.afailed_admission(request, exc), scope, send)
        answer = None
        if session is None:  # anything else: the gate's whole admission, awaited
            if gate.reads_body(request):  # the gate's own form post: nobody else reads it
                request = ScopeRequest(scope, await _read_body(receive, FORM_LIMIT))
            try:
                session, answer = await gate.aadmit(request)
            except Exception as exc:  # e.g. the store is full, or down with fail_closed
                return await _answer(await gate.afailed_admission(request, exc), scope, send)
            if session is None:
                if answer is None:  # an excluded path
                    try:
                        return await self.app(scope, receive, send)
                    finally:  # the request's language, asked for outside a session scope, ends
                        forget()
                return await _answer(answer, scope, send)
        scope[SCOPE_MANAGER] = gate.manager
        scope[SCOPE_SESSION] = session
        scope[SCOPE_SESSION_ID] = session.id
        scope[SCOPE_NOTICE] = session.notice
        if answer is not None:  # refused
            return await _answer(gate.with_session_headers(answer, session, request), scope, send)
        # Run the app in the session (here, not in a method of its own: one coroutine less on
        # every request): its headers added at the start of its response, its exception recorded,
        # its success counted; a client that went away counts nothing.
        status: list[int] = []  # the status the app started its response with
        gone: list[bool] = []  # the client disconnected (a receive said so, or a send failed)

        async def session_receive() -> Message:
            message = await receive()
            if message.get("type") == "http.disconnect":
                gone.append(True)
            return message

        async def session_send(message: Message) -> None:
            if message.get("type") == _START and not status:
                status.append(int(message.get("status", 200)))
                message = {
                    **message,
                    "headers": gate.response_headers_raw(session, request, message.get("headers") or ()),
                }
            try:
                await send(message)
            except Exception:  # the server could not send it: the client is gone
                gone.append(True)
                raise

        # As session_scope() does, with the request's language (chosen when words are written).
        token = enter_scope(gate.manager, session.id, session.store_pending, gate.languages, request)
        try:
            await self.app(scope, session_receive, session_send)
        except Exception as exc:  # (CancelledError and trio's Cancelled are no Exception: untouched)
            if gone:  # a client disconnect is not the app's error
                raise
            if self.propagate_exceptions is not False or status:
                await gate.afail(session, exc, log=False)  # the host's error stack logs it
                raise
            err = await gate.afail(session, exc)
            response = await gate.aerror_response(err, request, session.via_header, session)
            await _answer(gate.with_session_headers(response, session, request), scope, send)
            return
        finally:
            leave_scope(token)
            forget()  # a refused page's language (the gate's listen), if any, ends with it
        if status and not gone and (session.record.state is _ERROR or _REQUEST_FINISHED.receivers):
            await gate.afinish(session, status[0])  # (the test first, as in afinish: most requests skip it)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit a websocket before it is accepted (or close it with a code saying why), then run
        the app in its session: the messages it receives count as activity, one store operation
        per renewal window at most; an exception is recorded and re-raised, a disconnect is not."""
        scope[_APPLIED] = self
        gate = self.gate
        try:
            request = ScopeRequest(scope)
        except _Unreadable as bad:
            return await _close(send, WEBSOCKET_UNREADABLE, bad.sentence)
        try:
            session, refusal = await gate.aadmit_websocket(request, required=self.require_websocket_session)
        except Exception as exc:  # e.g. the store down with fail_closed
            await gate.afail(None, exc, what="websocket admission")
            return await _close(send, WEBSOCKET_STORE_FAILED, "")
        if refusal is not None:
            status = str(refusal.get("status", "not_found"))
            code = WEBSOCKET_DISCONNECTED if status == "disconnected" else WEBSOCKET_REFUSED
            return await _close(send, code, status)
        if session is None:  # names none (or an excluded path): outside any session
            return await self.app(scope, receive, send)
        manager = gate.manager
        scope[SCOPE_MANAGER] = manager
        scope[SCOPE_SESSION] = session
        scope[SCOPE_SESSION_ID] = session.id
        scope[SCOPE_NOTICE] = None
        clock = manager.clock
        window = max(manager.policy.activity_resolution, WEBSOCKET_RENEWAL_FLOOR)
        renewed = clock()  # the admission counted as activity
        gone = False

        async def session_receive() -> Message:
            nonlocal renewed, gone
            message = await receive()
            kind = message.get("type")
            if kind == "websocket.receive" and clock() - renewed >= window:
                renewed = clock()
                try:
                    await manager.atouch_or_report(session.id)
                except Exception:  # the store failing: the message is delivered all the same
                    _log.warning("could not count a websocket message as activity", exc_info=True)
            elif kind == "websocket.disconnect":
                gone = True
            return message

        token = enter_scope(manager, session.id, session.store_pending, gate.languages, request)
        try:
            await self.app(scope, session_receive, send)
        except Exception as exc:
            if not gone:  # a disconnect is not the app's error
                await gate.afail(session, exc, log=False)
            raise
        finally:
            leave_scope(token)


async def _close(send: Send, code: int, reason: str) -> None:
    """Close a websocket before accepting it (the server answers the handshake with 403)."""
    await send(
        {"type": "websocket.close", "code": code, "reason": reason.encode()[:123].decode("utf-8", "ignore")}
    )


def _encoded(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """``headers`` as ASGI sends them: names in lower case (the spec's rule), latin-1 bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _answer(response: PlainResponse, scope: Scope, send: Send) -> None:
    """Send a response of the gate's; a HEAD request gets its headers only. The request's language,
    asked for outside a session scope (:meth:`SessionGate.listen`), ends after it (a middleware
    outside this one rewrites the answer as it is sent: in the same language)."""
    body = response.body
    headers = _encoded(response.headers)
    headers.append((b"content-length", str(len(body)).encode()))
    try:
        await send({"type": _START, "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})
    finally:
        forget()


async def _read_body(receive: Receive, limit: int) -> bytes:
    """Up to ``limit`` bytes of the request body (the rest is left unread: the gate answers)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        message = await receive()
        if message.get("type") != "http.request":  # http.disconnect
            break
        chunk = bytes(message.get("body") or b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)[:limit]


def session_of(scope: Scope) -> RequestSession | None:
    """The session of the request whose scope is ``scope``, or None (an excluded path, a gate's
    answer, no :class:`SessionMiddleware`)."""
    session = scope.get(SCOPE_SESSION)
    return session if isinstance(session, RequestSession) else None


def banner_for(scope: Scope) -> str:
    """The banner the current page should show (see :func:`~sessionmw.integrations.http.banner_html`):
    a notice, else the health; ``""`` when all is well or without a session."""
    session = session_of(scope)
    report = scope.get(SCOPE_NOTICE) or (session.health if session is not None else None)
    middleware = scope.get(_APPLIED)
    prefix = middleware.gate.options.prefix if isinstance(middleware, SessionMiddleware) else "/_sessionmw/"
    root = scope.get("root_path") or ""
    path = scope.get("path") or "/"
    if root and not path.startswith(root):
        path = root + path
    query = scope.get("query_string") or b""
    reconnected = RECONNECTED_QUERY in query.decode("latin-1").split("&")
    return banner_html(
        report, prefix=quote(root) + prefix, next_path=quote(path, safe="/"), reconnected=reconnected
    )


def install(app: Any, **options: Any) -> None:
    """Add a :class:`SessionMiddleware` to a Starlette or FastAPI ``app`` (``app.add_middleware``),
    once, and, only where the app has no handler of its own for ``Exception`` or 500, one that
    answers the app's exceptions with the friendly HTML or JSON error (a Starlette handler:
    ``ServerErrorMiddleware`` still re-raises the exception to the server and to observers such as
    Sentry; debug mode still shows Starlette's debug page). ``HTTPException`` stays the app's.

    :param options: the :class:`SessionMiddleware` keyword arguments.
    """
    if not any(getattr(layer, "cls", None) is SessionMiddleware for layer in app.user_middleware):
        app.add_middleware(SessionMiddleware, **options)
    handlers = app.exception_handlers
    if Exception not in handlers and 500 not in handlers:
        app.add_exception_handler(Exception, _friendly_error)


async def _friendly_error(request: Any, exc: Exception) -> Any:
    """The Starlette exception handler :func:`install` adds: the friendly error of ``exc`` for the
    request's session (found in the scope: this handler runs outside the user middleware)."""
    from starlette.responses import Response

    scope = request.scope
    middleware = scope.get(_APPLIED)
    session = session_of(scope)
    try:
        view = ScopeRequest(scope)
    except ValueError:
        view = None
    if not isinstance(middleware, SessionMiddleware) or view is None:  # no gate: the words alone
        from sessionmw.translation import translate

        accept = None if view is None else view.header("accept")
        answer = user_error_response(translate(exc), as_json=accepts_json(accept))
    else:
        gate = middleware.gate
        gate.listen(view)  # outside the middleware, so outside the session's scope: its language
        try:
            err = await gate.afail(session, exc, log=False)  # recorded already: the same words
            via_header = session.via_header if session is not None else False
            answer = await gate.aerror_response(err, view, via_header, session)
        finally:
            forget()
        if session is not None:
            answer = gate.with_session_headers(answer, session, view)
    return Response(answer.body, status_code=answer.status_code, headers=_header_map(answer.headers))


def _header_map(headers: list[tuple[str, str]]) -> Any:
    from starlette.datastructures import MutableHeaders

    mutable = MutableHeaders()
    for name, value in headers:
        mutable.append(name, value)
    return mutable
