"""The Flask extension: ``SessionMW(app)`` gives every request a session.

.. code-block:: python

    app = Flask(__name__)
    SessionMW(app)  # or: ext = SessionMW(); ext.init_app(app)

It uses Flask's own hooks (``before_request``, ``after_request``, ``teardown_request``, the
``got_request_exception`` signal, a last-resort handler for 500) and the request logic of
:class:`~sessionmw.integrations.gate.SessionGate`; Flask's error pipeline (the app's handlers,
``TESTING``, ``PROPAGATE_EXCEPTIONS``, ``DEBUG``, teardown, logging) is observed, never replaced.
``current_session`` is the request's
:class:`~sessionmw.integrations.request_session.RequestSession`; ``sessionmw_banner()`` in
templates renders the status banner; a blueprint serves the ``health`` and ``reconnect`` endpoints.
See ``docs/flask.md`` for every configuration key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, cast

try:
    from flask import (
        Blueprint,
        Flask,
        Request,
        Response,
        current_app,
        got_request_exception,
        has_request_context,
        request,
    )
    from markupsafe import Markup
    from werkzeug.exceptions import HTTPException, InternalServerError
    from werkzeug.local import LocalProxy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.flask needs Flask: pip install 'sessionmw[flask]'") from exc

from sessionmw._context import enter_scope, leave_scope
from sessionmw._manager import SessionManager
from sessionmw._settings import Settings
from sessionmw.integrations.environ import (
    ENVIRON_MANAGER,
    ENVIRON_NOTICE,
    ENVIRON_SESSION,
    ENVIRON_SESSION_ID,
    EnvironRequest,
)
from sessionmw.integrations.gate import SessionGate, cache_control_with_cookie, vary_with_cookie
from sessionmw.integrations.http import PlainResponse, banner_html, just_reconnected
from sessionmw.integrations.options import Options
from sessionmw.integrations.request_session import RequestSession
from sessionmw.languages import LanguageSelector
from sessionmw.texts import ASKED

__all__ = ["EXTENSION_KEY", "SessionMW", "SessionMWState", "current_session", "flask_babel_locale"]

#: The key of the extension's state in ``app.extensions``.
EXTENSION_KEY = "sessionmw"

#: ``app.config`` key -> :class:`~sessionmw.integrations.options.Options` field.
_OPTION_KEYS = {
    "SESSIONMW_COOKIE_NAME": "cookie_name",
    "SESSIONMW_HEADER_NAME": "header_name",
    "SESSIONMW_PREFIX": "prefix",
    "SESSIONMW_EXCLUDE": "exclude",
    "SESSIONMW_COOKIE_SECURE": "secure",
    "SESSIONMW_COOKIE_DOMAIN": "cookie_domain",
    "SESSIONMW_COOKIE_MAX_AGE": "cookie_max_age",
    "SESSIONMW_METRICS_PATH": "metrics_path",
    "SESSIONMW_LANGUAGES": "languages",
    "SESSIONMW_LANGUAGE_SELECTOR": "language_selector",
    "SESSIONMW_PROBLEM_JSON": "problem_json",
}
#: ``app.config`` key -> :class:`~sessionmw.Settings` field (used when the extension builds the manager).
_SETTING_KEYS = {
    "SESSIONMW_STORE_URL": "store_url",
    "SESSIONMW_SESSION_TIMEOUT_MINUTES": "session_timeout_minutes",
    "SESSIONMW_IDLE_AFTER_SECONDS": "idle_after_seconds",
    "SESSIONMW_SESSION_ABSOLUTE_TIMEOUT_HOURS": "absolute_timeout_hours",  # the environment name
    "SESSIONMW_MAX_ERROR_THRESHOLD": "max_error_threshold",
    "SESSIONMW_HEALTH_CHECK_INTERVAL_SECONDS": "health_check_interval_seconds",
    "SESSIONMW_MAX_SESSIONS": "max_sessions",
    "SESSIONMW_ON_STORE_ERROR": "on_store_error",
    "SESSIONMW_DEBUG": "debug",
    "SESSIONMW_ACTIVITY_RESOLUTION_SECONDS": "activity_resolution_seconds",
}
_SESSION = "sessionmw.flask.session"  # the RequestSession this extension opened
_SCOPE = "sessionmw.flask.scope"
_ERROR = "sessionmw.flask.error"  # the UserFacingError of the request's recorded exception
_asked = ASKED.get


@dataclasses.dataclass(frozen=True)
class SessionMWState:
    """What ``app.extensions["sessionmw"]`` holds for one app."""

    #: The extension object that was initialised on the app.
    extension: SessionMW
    #: The manager that keeps this app's sessions.
    manager: SessionManager
    #: The shared request logic (options included).
    gate: SessionGate
    #: The name of the blueprint serving the endpoints.
    blueprint: str


class SessionMW:
    """Session tracking, friendly errors and the session endpoints for a Flask app.

    :param app: the app to set up now; or call :meth:`init_app` later (factory pattern).
    :param manager: the manager for every app set up by this object; by default each app gets its
        own, built from its ``SESSIONMW_*`` settings keys and the environment.
    :param options: defaults for the options keys (``cookie_name``, ``header_name``, ``prefix``,
        ``exclude``, ``secure``, ``cookie_domain``, ``cookie_max_age``, ``secret_key``,
        ``problem_json``: deprecated when False); the app's ``SESSIONMW_*`` config keys win.
    """

    def __init__(
        self, app: Flask | None = None, *, manager: SessionManager | None = None, **options: Any
    ) -> None:
        self._manager = manager
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set up ``app``: read its ``SESSIONMW_*`` config once, register the hooks and the blueprint.

        :raises RuntimeError: if sessionmw is already set up on ``app``.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "sessionmw is already set up on this Flask app (SessionMW or init_app ran twice)"
            )
        gate = _gate_from_config(
            app.config, self._options, self._manager, app.secret_key, selector=flask_babel_locale
        )
        manager = gate.manager
        # A 500 handler the app registered before us keeps its place (see _Hooks.last_resort).
        previous = app.error_handler_spec.get(None, {}).get(500, {}).get(InternalServerError)
        hooks = _Hooks(gate, previous)
        blueprint = Blueprint("sessionmw", __name__, url_prefix=gate.options.prefix.rstrip("/"))
        blueprint.add_url_rule("/health", "health", hooks.health, methods=["GET"])
        blueprint.add_url_rule("/reconnect", "reconnect", hooks.reconnect, methods=["POST"])
        app.register_blueprint(blueprint)
        if gate.options.metrics_path is not None:
            app.add_url_rule(gate.options.metrics_path, "sessionmw_metrics", hooks.metrics, methods=["GET"])
        app.extensions[EXTENSION_KEY] = SessionMWState(self, manager, gate, blueprint.name)
        app.before_request(hooks.before_request)
        app.after_request(hooks.after_request)
        app.teardown_request(hooks.teardown_request)
        app.register_error_handler(500, hooks.last_resort)
        app.context_processor(hooks.template_context)  # not add_template_global: no jinja_env yet
        got_request_exception.connect(_record_exception)  # one receiver for every app


def flask_babel_locale(request: object = None) -> str | None:
    """The app's Flask-Babel locale (``flask_babel.get_locale()``), when Flask-Babel is installed
    and set up on the current app; else None (``Accept-Language`` decides). The extension's
    language selector unless the app configures its own (``SESSIONMW_LANGUAGE_SELECTOR``)."""
    if not has_request_context() or "babel" not in current_app.extensions:
        return None
    try:
        from flask_babel import get_locale
    except ImportError:  # pragma: no cover - an extension named "babel" that is not Flask-Babel's
        return None
    locale = get_locale()
    return None if locale is None else str(locale)


def _gate_from_config(
    config: Mapping[str, Any],
    defaults: Mapping[str, Any],
    manager: SessionManager | None,
    app_secret: str | bytes | None,
    *,
    selector: LanguageSelector | None = None,
) -> SessionGate:
    """The gate of an app (Flask's, or Quart's: the same keys), from its ``SESSIONMW_*`` config
    keys over the extension's ``defaults``; a manager built from them (and the environment)
    unless one is given. The secret: ``SESSIONMW_SECRET_KEY``, else ``secret_key=``, else the
    app's ``SECRET_KEY``, else the environment's. ``selector`` chooses a request's language
    unless the app configures its own (``SESSIONMW_LANGUAGE_SELECTOR``, ``language_selector=``)."""
    options = dict(defaults)
    for key, field in _OPTION_KEYS.items():
        if key in config:
            options[field] = config[key]
    secret = config.get("SESSIONMW_SECRET_KEY") or options.pop("secret_key", None) or app_secret
    options.pop("secret_key", None)
    if options.get("language_selector") is None and selector is not None:
        options["language_selector"] = selector
    if manager is None:
        overrides = {field: config[key] for key, field in _SETTING_KEYS.items() if key in config}
        manager = SessionManager(Settings.from_env(**overrides))
    debug = config.get("SESSIONMW_DEBUG")
    return SessionGate(
        manager, Options.build(secret_key=secret, **options), debug=None if debug is None else bool(debug)
    )


def _to_flask(response: PlainResponse) -> Response:
    return Response(response.body, status=response.status, headers=response.headers)


def _record_exception(sender: Any, exception: BaseException | None = None, **_: Any) -> None:
    """``got_request_exception``: record the exception on the session of an app we are set up on.

    Flask sends it before it propagates, logs or handles the exception; HTTP errors are not
    recorded (as when Flask handles them).
    """
    extensions = getattr(sender, "extensions", None)
    state = extensions.get(EXTENSION_KEY) if isinstance(extensions, dict) else None
    if not isinstance(state, SessionMWState) or exception is None or isinstance(exception, HTTPException):
        return
    if not has_request_context():  # Flask sends it inside the request; cheap to make sure
        return
    environ = request.environ
    session: RequestSession | None = environ.get(_SESSION) or environ.get(ENVIRON_SESSION)
    if session is None:  # no session scope (the admission raised): the request's language
        state.gate.listen(EnvironRequest(environ))  # (ended by teardown_request)
    environ[_ERROR] = state.gate.fail(session, exception, log=False)


def _host_handler(
    spec: Any,
    error_class: type[Exception],
    blueprints: list[str],
    hooks: object,
    previous: Callable[..., Any] | None,
) -> Callable[..., Any] | None:
    """The handler Flask (or Quart: the same lookup) would pick for a 500 without us (its
    ``_find_error_handler``, by code then by class, blueprints before the app), with ``previous``
    (the app's own 500 handler that ours replaced) in the place of ours (a method of ``hooks``)."""
    names = (*blueprints, None)
    for code in (500, None):
        for name in names:
            handler_map = spec.get(name, {}).get(code)
            if not handler_map:
                continue
            for cls in error_class.__mro__:
                handler = handler_map.get(cls)
                if handler is not None and getattr(handler, "__self__", None) is hooks:
                    handler = previous
                if handler is not None:
                    return handler  # type: ignore[no-any-return]
    return None


class _Hooks:
    """The request hooks, error handler, views and template context of one app, bound to its gate."""

    def __init__(self, gate: SessionGate, previous: Callable[..., Any] | None = None) -> None:
        self.gate = gate
        self.prefix = gate.options.prefix
        #: The app's own 500 handler that ours replaced in ``error_handler_spec``, if any.
        self.previous = previous
        # Flask calls these on every request: plain functions (cheaper for Flask to call than
        # bound methods), with the options they need read once.
        self.before_request, self.after_request, self.teardown_request = _request_hooks(gate)

    def last_resort(self, error: InternalServerError) -> Any:
        """The 500 handler: the app's own handler if it has one, else our page where Flask's would be.

        Flask finds ours first (by code) when the app also handles ``HTTPException`` or
        ``Exception``; those, and a 500 handler registered before ours, are called as Flask would.
        """
        app = current_app
        handler = _host_handler(app.error_handler_spec, type(error), request.blueprints, self, self.previous)
        if handler is not None:
            return app.ensure_sync(handler)(error)
        original = error.original_exception
        if original is None or isinstance(original, HTTPException):
            return error  # abort(500), or a trapped HTTP error: Flask's own page
        environ = request.environ
        view = EnvironRequest(environ)
        session: RequestSession | None = environ.get(_SESSION) or environ.get(ENVIRON_SESSION)
        if session is None:  # no session scope (the admission raised): the request's language
            self.gate.listen(view)  # (ended by teardown_request)
        err = environ.pop(_ERROR, None)
        if err is None:  # not recorded (the signal muted): translate only
            from sessionmw.translation import translate

            err = translate(original, debug=self.gate.debug)
        via_header = session.via_header if session is not None else False
        return _to_flask(self.gate.error_response(err, view, via_header, session))

    def template_context(self) -> dict[str, Any]:
        """The context processor: ``sessionmw_banner`` in every template."""
        return {"sessionmw_banner": self.banner}

    def health(self) -> Response:
        """``GET <prefix>health``."""
        return _to_flask(self.gate.health_response(EnvironRequest(request.environ)))

    def reconnect(self) -> Response:
        """``POST <prefix>reconnect``."""
        return _to_flask(self.gate.reconnect_response(EnvironRequest(request.environ)))

    def metrics(self) -> Response:
        """``GET <metrics_path>``: the Prometheus exposition."""
        return _to_flask(self.gate.metrics_response())

    def banner(self) -> Markup:
        """The status banner of the current request's session (empty when all is well)."""
        environ = request.environ
        session = environ.get(ENVIRON_SESSION)
        report = environ.get(ENVIRON_NOTICE)
        if report is None and isinstance(session, RequestSession):
            report = session.health
        done = just_reconnected(environ)
        return Markup(banner_html(report, prefix=self.prefix, next_path=request.path, reconnected=done))


def _request_hooks(
    gate: SessionGate,
) -> tuple[
    Callable[[], Response | None], Callable[[Response], Response], Callable[[BaseException | None], None]
]:
    """The ``before_request``, ``after_request`` and ``teardown_request`` functions for ``gate``."""
    admit = gate.admit
    manager = gate.manager
    languages = gate.languages
    # The request object itself, found once per hook: each attribute read through the ``request``
    # proxy looks the request up again (about 0.5 µs apiece).
    current_request: Callable[[], Request] = cast(Any, request)._get_current_object

    def before_request() -> Response | None:
        """Find the request's session, count the request as activity and open its scope."""
        environ = current_request().environ
        if ENVIRON_SESSION in environ:
            return None  # a SessionMiddleware in front of the app did it already
        # The blueprint serves the endpoints; a store failure raises into Flask's error handling.
        view = EnvironRequest(environ)
        session, refusal = admit(view, endpoints=False)
        if session is None:  # an endpoint, the metrics or an excluded path: no session
            return None
        environ[ENVIRON_MANAGER] = manager
        environ[ENVIRON_SESSION] = session
        environ[ENVIRON_SESSION_ID] = session.id
        environ[ENVIRON_NOTICE] = session.notice
        environ[_SESSION] = session
        store_pending = None if session.stored else session.ensure_stored  # (RequestSession.store_pending)
        # As session_scope() does, with the request's language (chosen when words are written).
        environ[_SCOPE] = enter_scope(manager, session.id, store_pending, languages, view)
        # A refusal: after_request adds the session's headers, as to any response of the request.
        return None if refusal is None else _to_flask(refusal)

    def after_request(response: Response) -> Response:
        """Add the session's headers (the gate's decision: cookie, ``Vary``, ``Cache-Control``);
        a success clears an error session's count."""
        environ = current_request().environ
        session: RequestSession | None = environ.get(_SESSION)
        if session is None:
            return response
        headers = response.headers
        # The first Vary header, by a plain loop: cheaper than getlist, and ``get`` raises inside.
        vary = None
        for name, value in headers:
            if name.lower() == "vary":
                vary = value
                break
        if vary is None:  # the common case, without a call
            headers.add("Vary", "Cookie")
        else:
            merged = vary_with_cookie(vary)
            if merged is not None:
                headers["Vary"] = merged
        if session.issue_cookie or session.via_header:
            for name, value in gate.session_headers(session, EnvironRequest(environ)):
                headers.add(name, value)
            if session.issue_cookie:
                headers["Cache-Control"] = cache_control_with_cookie(headers.get("Cache-Control"))
        gate.finish(session, response.status_code)
        return response

    def teardown_request(exc: BaseException | None) -> None:
        """Close the request's session scope; what sessionmw writes after it is English again."""
        environ = current_request().environ
        # The request's language asked outside its scope (the gate's listen: an endpoint, an
        # excluded path, a refusal, an error before the scope) is over (languages.forget, inline),
        # unless a SessionMiddleware in front admitted the request: it ends it after its own page.
        asked = _asked()
        if asked is not None and (_SESSION in environ or ENVIRON_SESSION not in environ):
            asked[1] = None
        token = environ.pop(_SCOPE, None)
        if token is not None:
            try:  # noqa: SIM105 - on every request: cheaper than contextlib.suppress
                leave_scope(token)
            except ValueError:  # a token made in another context (e.g. copied)
                pass

    return before_request, after_request, teardown_request


def _current() -> RequestSession:
    session = request.environ.get(ENVIRON_SESSION)
    if not isinstance(session, RequestSession):
        raise RuntimeError("no sessionmw session for this request (excluded path, or SessionMW not set up)")
    return session


#: The current request's :class:`~sessionmw.integrations.request_session.RequestSession` (``.id``,
#: ``.health``, ``.state``, ``.notice``).
current_session: RequestSession = cast(RequestSession, LocalProxy(_current))
