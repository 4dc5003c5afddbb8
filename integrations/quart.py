"""The Quart extension: ``SessionMWQuart(app)`` gives every request and websocket a session.

.. code-block:: python

    app = Quart(__name__)
    SessionMWQuart(app)  # or: ext = SessionMWQuart(); ext.init_app(app)

The counterpart of the Flask extension (:mod:`sessionmw.integrations.flask`), with Quart's async
hooks (``before_request``, ``after_request``, ``teardown_request`` and their websocket
namesakes), the ``got_request_exception`` and ``got_websocket_exception`` signals, a last-resort
handler for 500, and the async methods of :class:`~sessionmw.integrations.gate.SessionGate`: no
store call blocks the event loop. Quart's error pipeline (the app's handlers, ``TESTING``,
``PROPAGATE_EXCEPTIONS``, ``DEBUG``, teardown, logging) is observed, never replaced; a handler
cancelled because its client went away counts nothing. Websockets are admitted by
:func:`~sessionmw.integrations.websocket.admit_websocket` and refused before ``accept`` with its
close codes; their messages count as activity through a pass-through wrapper of ``app.asgi_app``.
``current_session`` is the request's (or websocket's)
:class:`~sessionmw.integrations.request_session.RequestSession`; ``sessionmw_banner()`` in
templates renders the status banner; a blueprint serves the ``health`` and ``reconnect``
endpoints. See ``docs/quart.md`` for every configuration key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, cast

try:
    from markupsafe import Markup
    from quart import (
        Blueprint,
        Quart,
        Response,
        current_app,
        got_request_exception,
        got_websocket_exception,
        has_request_context,
        has_websocket_context,
        request,
        websocket,
    )
    from werkzeug.datastructures import Headers
    from werkzeug.exceptions import HTTPException, InternalServerError
    from werkzeug.local import LocalProxy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.quart needs Quart: pip install 'sessionmw[quart]'") from exc

from sessionmw._context import enter_scope, leave_scope
from sessionmw._errors import ConfigurationError
from sessionmw._manager import SessionManager
from sessionmw.integrations.asgi import (
    SCOPE_MANAGER,
    SCOPE_NOTICE,
    SCOPE_SESSION,
    SCOPE_SESSION_ID,
    ScopeRequest,
    _Unreadable,
)
from sessionmw.integrations.flask import EXTENSION_KEY, _gate_from_config, _host_handler
from sessionmw.integrations.gate import SessionGate
from sessionmw.integrations.http import FORM_LIMIT, RECONNECTED_QUERY, PlainResponse, banner_html
from sessionmw.integrations.request_session import RequestSession
from sessionmw.integrations.websocket import (
    CLOSE_REQUEST_UNREADABLE,
    MessageActivity,
    WebsocketAdmission,
    admit_websocket,
)
from sessionmw.languages import forget

if TYPE_CHECKING:
    from quart.typing import ResponseTypes
    from quart.wrappers import BaseRequestWebsocket, Request, Websocket

__all__ = ["SessionMWQuart", "SessionMWQuartState", "current_session"]

# The request's (or websocket's) session is in its ASGI scope under the ASGI middleware's keys
# (SCOPE_SESSION, ...): an extension behind a SessionMiddleware steps aside, and code reads one
# place either way. The extension's own keys:
_SESSION = "sessionmw.quart.session"  # the RequestSession this extension opened
_SCOPE = "sessionmw.quart.scope"  # the token of its session scope
_ERROR = "sessionmw.quart.error"  # the UserFacingError of the request's recorded exception
_VIEW = "sessionmw.quart.view"  # the request as the gate reads it (a ScopeRequest), made once
_REFUSED = "sessionmw.quart.refused"  # a websocket closed before accept: Quart sends nothing more
_MESSAGES = "sessionmw.quart.messages"  # the _Messages slot of a websocket (see _CountMessages)
_FORM = "application/x-www-form-urlencoded"


@dataclasses.dataclass(frozen=True)
class SessionMWQuartState:
    """What ``app.extensions["sessionmw"]`` holds for one Quart app."""

    #: The extension object that was initialised on the app.
    extension: SessionMWQuart
    #: The manager that keeps this app's sessions.
    manager: SessionManager
    #: The shared request logic (options included).
    gate: SessionGate
    #: The name of the blueprint serving the endpoints.
    blueprint: str
    #: True when a websocket that names no session is refused (``SESSIONMW_WEBSOCKET_REQUIRE_SESSION``).
    websocket_require_session: bool


class SessionMWQuart:
    """Session tracking, friendly errors and the session endpoints for a Quart app.

    :param app: the app to set up now; or call :meth:`init_app` later (factory pattern).
    :param manager: the manager for every app set up by this object; by default each app gets its
        own, built from its ``SESSIONMW_*`` settings keys and the environment.
    :param options: defaults for the options keys (``cookie_name``, ``header_name``, ``prefix``,
        ``exclude``, ``secure``, ``cookie_domain``, ``cookie_max_age``, ``metrics_path``,
        ``secret_key``, ``websocket_require_session``); the app's ``SESSIONMW_*`` config keys win.
    """

    def __init__(
        self, app: Quart | None = None, *, manager: SessionManager | None = None, **options: Any
    ) -> None:
        self._manager = manager
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        """Set up ``app``: read its ``SESSIONMW_*`` config once, register the hooks and the blueprint.

        :raises RuntimeError: if sessionmw is already set up on ``app``.
        :raises ConfigurationError: for a bad option (naming it).
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "sessionmw is already set up on this Quart app (SessionMWQuart or init_app ran twice)"
            )
        config = app.config
        options = dict(self._options)
        require = config.get(
            "SESSIONMW_WEBSOCKET_REQUIRE_SESSION", options.pop("websocket_require_session", False)
        )
        options.pop("websocket_require_session", None)
        if not isinstance(require, bool):
            raise ConfigurationError(f"websocket_require_session={require!r} must be True or False")
        gate = _gate_from_config(config, options, self._manager, app.secret_key)
        # A 500 handler the app registered before us keeps its place (see _Hooks.last_resort).
        previous = app.error_handler_spec.get(None, {}).get(500, {}).get(InternalServerError)
        hooks = _Hooks(gate, previous, require)
        blueprint = Blueprint("sessionmw", __name__, url_prefix=gate.options.prefix.rstrip("/"))
        blueprint.add_url_rule("/health", "health", hooks.health, methods=["GET"])
        blueprint.add_url_rule("/reconnect", "reconnect", hooks.reconnect, methods=["POST"])
        app.register_blueprint(blueprint)
        if gate.options.metrics_path is not None:
            app.add_url_rule(gate.options.metrics_path, "sessionmw_metrics", hooks.metrics, methods=["GET"])
        app.extensions[EXTENSION_KEY] = SessionMWQuartState(self, gate.manager, gate, blueprint.name, require)
        app.before_request(hooks.before_request)
        app.after_request(hooks.after_request)
        app.teardown_request(hooks.teardown_request)
        app.before_websocket(hooks.before_websocket)
        app.after_websocket(hooks.after_websocket)
        app.teardown_websocket(hooks.teardown_websocket)
        app.register_error_handler(500, hooks.last_resort)
        app.context_processor(hooks.template_context)  # not add_template_global: no jinja_env yet
        app.asgi_app = _CountMessages(app.asgi_app)  # type: ignore[method-assign]
        got_request_exception.connect(_record_exception)  # one receiver for every app
        got_websocket_exception.connect(_record_exception)


def _to_quart(response: PlainResponse) -> Response:
    return Response(response.body, status=response.status_code, headers=Headers(response.headers))


def _scope_of() -> MutableMapping[str, Any] | None:
    """The ASGI scope of the current request or websocket, or None outside both."""
    if has_request_context():
        return _scope(request)
    if has_websocket_context():
        return _scope(websocket)
    return None


def _scope(current: BaseRequestWebsocket) -> MutableMapping[str, Any]:
    """The ASGI scope of ``current`` (a plain dict: the session's keys are namespaced in it)."""
    return cast("MutableMapping[str, Any]", current.scope)


async def _record_exception(sender: Any, exception: BaseException | None = None, **_: Any) -> None:
    """``got_request_exception`` / ``got_websocket_exception``: record the exception on the
    session of an app we are set up on.

    Quart sends them before it propagates, logs or handles the exception; HTTP errors are not
    recorded (as when Quart handles them).
    """
    extensions = getattr(sender, "extensions", None)
    state = extensions.get(EXTENSION_KEY) if isinstance(extensions, dict) else None
    if (
        not isinstance(state, SessionMWQuartState)
        or exception is None
        or isinstance(exception, HTTPException)
    ):
        return
    scope = _scope_of()
    if scope is None:
        return
    session: RequestSession | None = scope.get(_SESSION) or scope.get(SCOPE_SESSION)
    view = scope.get(_VIEW)
    if session is None and view is not None:  # no session scope (the admission raised)
        state.gate.listen(view)  # the request's language (ended by the teardown)
    scope[_ERROR] = await state.gate.afail(session, exception, log=False)


class _Messages:
    """One websocket's slot for the :class:`MessageActivity` its admission sets."""

    __slots__ = ("activity",)

    def __init__(self) -> None:
        self.activity: MessageActivity | None = None


class _CountMessages:
    """``app.asgi_app``, with an admitted websocket's messages from the client counted as activity.

    Everything passes through unchanged: other scopes untouched, every message delivered as it came.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        slot = scope[_MESSAGES] = _Messages()  # kept by a copied scope too: the same object

        async def counted() -> Any:
            message = await receive()
            activity = slot.activity
            if activity is not None and message.get("type") == "websocket.receive":
                await activity.message()
            return message

        return await self.app(scope, counted, send)


class _Hooks:
    """The hooks, error handler, views and template context of one app, bound to its gate."""

    def __init__(self, gate: SessionGate, previous: Callable[..., Any] | None, require_session: bool) -> None:
        self.gate = gate
        self.prefix = gate.options.prefix
        #: The app's own 500 handler that ours replaced in ``error_handler_spec``, if any.
        self.previous = previous
        self.require_session = require_session

    # -- requests --------------------------------------------------------------------------------

    async def before_request(self) -> Response | None:
        """Find the request's session, count the request as activity and open its scope."""
        current = cast("Request", request._get_current_object())  # type: ignore[attr-defined]
        scope = _scope(current)
        if SCOPE_SESSION in scope:
            return None  # a SessionMiddleware in front of the app did it already
        try:
            view = ScopeRequest(scope)
        except _Unreadable as bad:  # headers too large to read: a 4xx, nothing stored
            return _to_quart(bad.answer)
        scope[_VIEW] = view
        # Most requests: a known session, answered at once. Else the whole admission, awaited:
        # the blueprint serves the endpoints; a store failure raises into Quart's error handling.
        session, refusal = self.gate.admit_now(view), None
        if session is None:
            session, refusal = await self.gate.aadmit(view, endpoints=False)
        if session is None:  # an endpoint, the metrics or an excluded path: no session
            return None
        self._open(scope, session, view)
        # A refusal: after_request adds the session's headers, as to any response of the request.
        return None if refusal is None else _to_quart(refusal)

    def _open(self, scope: MutableMapping[str, Any], session: RequestSession, view: ScopeRequest) -> None:
        manager = self.gate.manager
        scope[SCOPE_MANAGER] = manager
        scope[SCOPE_SESSION] = session
        scope[SCOPE_SESSION_ID] = session.id
        scope[SCOPE_NOTICE] = session.notice
        scope[_SESSION] = session
        # As session_scope() does, with the request's language (chosen when words are written).
        scope[_SCOPE] = enter_scope(manager, session.id, session.store_pending, self.gate.languages, view)

    async def after_request(self, response: Response) -> Response:
        """Add the session's headers (the gate's decision: cookie, ``Vary``, ``Cache-Control``);
        a success clears an error session's count."""
        scope = _scope(request)
        session: RequestSession | None = scope.get(_SESSION)
        if session is None:
            return response
        headers = response.headers
        merged = self.gate.response_headers(session, scope[_VIEW], list(headers.items()))
        headers.clear()
        headers.extend(merged)
        await self.gate.afinish(session, response.status_code)
        return response

    async def teardown_request(self, exc: BaseException | None) -> None:
        """Close the request's session scope (also after a cancellation: nothing is counted)."""
        _close_scope(_scope(request))

    # -- websockets ------------------------------------------------------------------------------

    async def before_websocket(self) -> Response | None:
        """Admit the websocket in its session, outside any, or refuse it before ``accept``."""
        current = cast("Websocket", websocket._get_current_object())  # type: ignore[attr-defined]
        scope = _scope(current)
        if SCOPE_SESSION in scope:
            return None  # a SessionMiddleware in front of the app did it already
        try:
            view = ScopeRequest(scope)
            admission = await admit_websocket(self.gate, view, require_session=self.require_session)
        except _Unreadable:  # headers too large to read: refused, nothing stored
            admission = WebsocketAdmission(None, CLOSE_REQUEST_UNREADABLE)
        session, code = admission
        if code is not None:
            scope[_REFUSED] = True
            await current.close(code)
            return Response(b"", status=403)  # not sent: the dispatch stops; after_websocket drops it
        if session is None:
            return None
        self._open(scope, session, view)
        slot = scope.get(_MESSAGES)
        if isinstance(slot, _Messages):
            slot.activity = MessageActivity(self.gate.manager, session.id)
        return None

    async def after_websocket(self, response: ResponseTypes | None) -> ResponseTypes | None:
        """A websocket refused before ``accept`` is closed already: Quart sends nothing more."""
        if _scope(websocket).get(_REFUSED):
            return None
        return response

    async def teardown_websocket(self, exc: BaseException | None) -> None:
        """Close the websocket's session scope."""
        scope = _scope(websocket)
        slot = scope.get(_MESSAGES)
        if isinstance(slot, _Messages):
            slot.activity = None
        _close_scope(scope)

    # -- errors, views, templates ----------------------------------------------------------------

    async def last_resort(self, error: InternalServerError) -> Any:
        """The 500 handler: the app's own handler if it has one, else our page where Quart's would be.

        Quart finds ours first (by code) when the app also handles ``HTTPException`` or
        ``Exception``; those, and a 500 handler registered before ours, are called as Quart would.
        A websocket's error keeps Quart's own answer.
        """
        app = current_app
        in_request = has_request_context()
        blueprints = request.blueprints if in_request else websocket.blueprints
        handler = _host_handler(app.error_handler_spec, type(error), blueprints, self, self.previous)
        if handler is not None:
            return await app.ensure_async(handler)(error)
        original = error.original_exception
        if not in_request or original is None or isinstance(original, HTTPException):
            return error  # abort(500), a trapped HTTP error or a websocket: Quart's own answer
        current = cast("Request", request._get_current_object())  # type: ignore[attr-defined]
        scope = _scope(current)
        session: RequestSession | None = scope.get(_SESSION) or scope.get(SCOPE_SESSION)
        view = scope.get(_VIEW) or ScopeRequest(scope)
        if session is None:  # no session scope (the admission raised): the request's language
            self.gate.listen(view)  # (ended by the teardown)
        err = scope.pop(_ERROR, None)
        if err is None:  # not recorded (the signal muted): translate only
            from sessionmw.translation import translate

            err = translate(original, debug=self.gate.debug)
        via_header = session.via_header if session is not None else False
        return _to_quart(await self.gate.aerror_response(err, view, via_header, session))

    async def template_context(self) -> dict[str, Any]:
        """The context processor: ``sessionmw_banner`` in every template (async: Quart would run
        a sync one in a worker thread)."""
        return {"sessionmw_banner": self.banner}

    async def health(self) -> Response:
        """``GET <prefix>health``."""
        return _to_quart(await self.gate.aendpoint(ScopeRequest(_scope(request)), "health"))

    async def reconnect(self) -> Response:
        """``POST <prefix>reconnect`` (a form's body read up to ``FORM_LIMIT`` bytes, no more)."""
        current = cast("Request", request._get_current_object())  # type: ignore[attr-defined]
        body = b""
        if (current.headers.get("Content-Type") or "").startswith(_FORM):
            body = await _read_body(current, FORM_LIMIT)
        return _to_quart(await self.gate.aendpoint(ScopeRequest(_scope(current), body), "reconnect"))

    async def metrics(self) -> Response:
        """``GET <metrics_path>``: the Prometheus exposition."""
        return _to_quart(self.gate.metrics_response())

    def banner(self) -> Markup:
        """The status banner of the current request's session (empty when all is well, and
        outside a request)."""
        if not has_request_context():
            return Markup("")
        scope = _scope(request)
        session = scope.get(SCOPE_SESSION)
        report = scope.get(SCOPE_NOTICE)
        if report is None and isinstance(session, RequestSession):
            report = session.health
        done = RECONNECTED_QUERY in request.query_string.decode("latin-1").split("&")
        return Markup(banner_html(report, prefix=self.prefix, next_path=request.path, reconnected=done))


async def _read_body(current: Request, limit: int) -> bytes:
    """Up to ``limit`` bytes of the request's body."""
    data = bytearray()
    async for chunk in current.body:
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def _close_scope(scope: MutableMapping[str, Any]) -> None:
    # A language the gate asked for outside the scope (an endpoint, a refusal, an error before the
    # scope) ends too, unless a SessionMiddleware in front admitted the request (it ends it).
    if _SESSION in scope or SCOPE_SESSION not in scope:
        forget()
    token = scope.pop(_SCOPE, None)
    if token is not None:
        try:  # noqa: SIM105 - on every request: cheaper than contextlib.suppress
            leave_scope(token)
        except ValueError:  # a token made in another context (e.g. copied)
            pass


def _current() -> RequestSession:
    scope = _scope_of()
    session = scope.get(SCOPE_SESSION) if scope is not None else None
    if not isinstance(session, RequestSession):
        raise RuntimeError(
            "no sessionmw session for this request (excluded path, or SessionMWQuart not set up)"
        )
    return session


#: The current request's (or websocket's)
#: :class:`~sessionmw.integrations.request_session.RequestSession` (``.id``, ``.health``,
#: ``.state``, ``.notice``).
current_session: RequestSession = cast(RequestSession, LocalProxy(_current))
