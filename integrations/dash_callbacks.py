"""Guarded Dash callbacks: a failure becomes a friendly alert and is recorded on the session.

:func:`guarded_callback` guards one callback; :func:`guard_all_callbacks` guards every callback
of an app through Dash's app-level ``on_error``; :func:`handle_callback_error` is the handler
both use. A callback whose session may not work (the core's rule) does not run: the alert says
why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast, overload

try:
    import dash
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.dash needs Dash: pip install 'sessionmw[dash]'") from exc

from sessionmw import signals
from sessionmw._context import current_manager, current_session_id
from sessionmw._manager import SessionManager
from sessionmw._session import SessionRecord
from sessionmw._steps import Steps, drive, run
from sessionmw.actions import log_failure, was_logged
from sessionmw.health import HealthReport
from sessionmw.integrations.dash_apps import DashRequest, current_request, request_dash_app
from sessionmw.integrations.dash_banner import hide_alert, show_alert
from sessionmw.integrations.gate import SessionGate
from sessionmw.integrations.request_session import RequestSession
from sessionmw.translation import UserFacingError, translate

__all__ = [
    "CallbackErrors",
    "ahandle_callback_error",
    "amark_background_requests",
    "guard_all_callbacks",
    "guarded_callback",
    "handle_callback_error",
    "mark_background_requests",
]

_log = logging.getLogger("sessionmw.dash")

_RECORDED = "sessionmw.dash.recorded"  # environ/scope key: an error was recorded on the request's session
_OUTPUT = "sessionmw.dash.output"  # scope key (Quart): the callback the request runs (its output id)
_PENDING: set[asyncio.Task[Any]] = set()  # errors recorded after an async callback's sync on_error

F = TypeVar("F", bound=Callable[..., Any])


def _gate_session() -> tuple[DashRequest | None, SessionGate | None, RequestSession | None]:
    """The current request, the gate of the extension or middleware in front and the request's
    session (each None when there is none)."""
    current = current_request()
    if current is None:
        return None, None, None
    return current, _gate_of(current), current.session


def _gate_of(current: DashRequest) -> SessionGate | None:
    """The gate of the server's sessionmw extension (Flask, Quart) or of the middleware
    SessionMWDash installed (FastAPI); None behind a middleware the app installed itself."""
    extensions = getattr(current.server, "extensions", None)
    state = extensions.get("sessionmw") if isinstance(extensions, dict) else None
    gate = getattr(state, "gate", None)
    if isinstance(gate, SessionGate):
        return gate
    apps = current.apps
    return apps.gate if apps is not None and isinstance(apps.gate, SessionGate) else None


def mark_background_requests() -> None:
    """Flask ``before_request`` (and Dash's on FastAPI): a background callback's requests (the one
    that starts its job, and the polls that bring its result) are no operation of their own: their
    responses count as no success
    (:attr:`~sessionmw.integrations.request_session.RequestSession.counts_success`).

    The job counts its outcome: a guarded job records its failure, or its success, where it
    runs, and the requests around it neither clear that failure nor stand in for that success.
    A job's exception that only the poll handles (the app's ``on_error``) is recorded by the poll.
    """
    current = current_request()
    if current is None or not current.path.endswith("_dash-update-component"):
        return
    session = current.session
    if isinstance(session, RequestSession) and ("cacheKey" in current.args or _starts_a_job(current, None)):
        session.counts_success = False


async def amark_background_requests() -> None:
    """:func:`mark_background_requests` for Quart's ``before_request`` (the body read awaited)."""
    current = current_request()
    if current is None or not current.path.endswith("_dash-update-component"):
        return
    import quart

    body = await quart.request.get_json(silent=True)  # cached: Dash reads the same parsed body
    if isinstance(body, dict) and isinstance(body.get("output"), str):
        current.marks[_OUTPUT] = body["output"]  # which callback runs: read by sync code later
    session = current.session
    if session is not None and ("cacheKey" in current.args or _starts_a_job(current, body)):
        session.counts_success = False


def _has_background(app: dash.Dash) -> bool:
    return any(callback.get("background") for callback in app.callback_map.values())


def _starts_a_job(current: DashRequest, body: Any) -> bool:
    """True when the current Dash update request is for a background callback (it starts a job).

    ``body``: the parsed request body, or None to read it here (Flask; FastAPI, where Dash's
    middleware parsed it already).
    """
    _state, app = request_dash_app()
    if app is None or not _has_background(app):
        return False  # no body to read
    if body is None:  # (Quart's is read by its hook)
        if current.backend == "flask":
            from flask import request

            body = request.get_json(silent=True)  # parsed once: Dash reads the same parsed body
        elif current.backend == "fastapi":
            adapter: Any = app.backend.request_adapter()  # untyped in Dash
            body = adapter.get_json()  # parsed by Dash's middleware
    output = body.get("output") if isinstance(body, dict) else None
    callback = app.callback_map.get(output) if isinstance(output, str) else None
    return bool(callback and callback.get("background"))


def _job_succeeded(awaiting: bool) -> Steps[None]:
    """In a background callback's job: count the success on the session (its polls do not)."""
    manager, session_id = current_manager(), current_session_id()
    if manager is None or session_id is None:
        return
    try:
        if awaiting:
            yield manager.arecord_success(session_id)
        else:
            manager.record_success(session_id)
    except Exception:  # e.g. the store went down (fail_closed): the result stands
        _log.warning("could not record the success on the session", exc_info=True)


def _show(err: UserFacingError, report: HealthReport | None) -> None:
    """Fill the alert (and the banner's report) of the page that made the request, in its app's theme."""
    state, _app = request_dash_app()
    with _last_set_props_only(report is not None):
        show_alert(err, report, bootstrap=state is not None and state.theme == "bootstrap")


def _job_context() -> Any:
    """Dash's callback context inside a background callback's job, else None.

    A job's ``set_props`` go through Dash's ``ProxySetProps`` to the manager's cache.
    """
    try:
        from dash._callback_context import context_value
        from dash.background_callback._proxy_set_props import ProxySetProps
    except ImportError:  # pragma: no cover - another Dash layout: no special case
        return None
    ctx = context_value.get(None)
    return ctx if isinstance(getattr(ctx, "updated_props", None), ProxySetProps) else None


@contextlib.contextmanager
def _last_set_props_only(applies: bool = True) -> Iterator[None]:
    """In a background callback's job, let only the last component the block sets reach the page.

    Dash's ``DiskcacheManager`` keeps one ``set_props`` per job between two polls: each replaces
    the one before, and one written while a poll reads and clears them is lost. The banner's
    report, always set last, must then be the only one, or the page may hear nothing.
    """
    ctx = _job_context() if applies else None
    if ctx is None:
        yield
        return
    proxy = ctx.updated_props
    made: dict[str, Any] = {}
    ctx.updated_props = made
    try:
        yield
    finally:
        ctx.updated_props = proxy
        if made:
            last = next(reversed(made))
            proxy[last] = made[last]


def _health_now(
    manager: SessionManager | None, session_id: str | None, awaiting: bool
) -> Steps[HealthReport | None]:
    if manager is None or session_id is None:
        return None
    try:
        if awaiting:
            report: HealthReport = yield manager.acheck_health(session_id)
            return report
        return manager.check_health(session_id)
    except Exception:
        _log.exception("could not check the session's health")
        return None


def _refusal(awaiting: bool) -> Steps[tuple[UserFacingError, HealthReport | None] | None]:
    """Why the current request's session may not run a callback now, and the report the banner
    shows; None when it may.

    The core decides (:meth:`~sessionmw.SessionManager.touch_or_report`): the gate did for the
    request (its :attr:`~sessionmw.integrations.request_session.RequestSession.refusal`); in a session scope
    without the gate, the callback is admitted here, as ``@guarded`` admits a call.
    """
    _current, _gate, session = _gate_session()
    if session is not None:
        refusal = session.refusal
        return None if refusal is None else (UserFacingError.from_health(refusal), refusal)
    manager, session_id = current_manager(), current_session_id()
    if manager is None or session_id is None:
        return None
    try:
        if awaiting:
            _record, refusal = yield manager.atouch_or_report(session_id)
        else:
            _record, refusal = manager.touch_or_report(session_id)
    except Exception:
        _log.exception("could not check the session's health")
        return None
    return None if refusal is None else (UserFacingError.from_health(refusal), None)


def handle_callback_error(exc: Exception) -> None:
    """Record ``exc`` on the current session and show the user a friendly alert instead of it.

    Usable as Dash's ``on_error`` handler (the callback's outputs are then left unchanged). An
    error that ``@guarded`` code inside the callback already recorded is not recorded twice.
    Called on a running event loop (an async callback's ``on_error`` on Quart or FastAPI, which
    Dash calls without awaiting), the store is not called there: the banner shows the failure
    with the session as the request found it, and the error is recorded by a task on the loop
    (:func:`ahandle_callback_error` is the awaited form).
    """
    if _on_event_loop():
        _handle_on_loop(exc)
        return
    run(_handle(exc, False))


async def ahandle_callback_error(exc: Exception) -> None:
    """:func:`handle_callback_error` for async callbacks: every store call awaited."""
    await drive(_handle(exc, True))


def _on_event_loop() -> bool:
    """True in an async callback on the server's event loop (Quart, FastAPI), where the store may
    not be called synchronously. Dash runs a sync callback on that loop itself, blocking it for the
    callback's time: its error is recorded there, as the callback's own work; Flask's async views
    run on a loop of their own, per request, where the sync path is the host's."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    current = current_request()
    if current is None or current.backend == "flask":
        return False
    _state, app = request_dash_app()
    output = current.marks.get(_OUTPUT)
    if output is None and current.backend == "fastapi" and app is not None:
        adapter: Any = app.backend.request_adapter()  # untyped in Dash
        body = adapter.get_json()  # parsed by Dash's middleware
        output = body.get("output") if isinstance(body, dict) else None
    callback = app.callback_map.get(output) if app is not None and isinstance(output, str) else None
    return callback is None or inspect.iscoroutinefunction(callback.get("callback"))


def _handle(exc: Exception, awaiting: bool) -> Steps[None]:
    current, gate, session = _gate_session()
    manager = gate.manager if gate is not None else current_manager()
    session_id = session.id if session is not None else current_session_id()
    recorded = session is not None and current is not None and _RECORDED in current.marks
    logged = was_logged(exc)  # by @guarded code inside the callback: one line per failure
    what = _callback_name()
    after: SessionRecord | None = None  # the session as the error left it: no read to show it
    if gate is not None and not recorded:
        if awaiting:  # logs, records, translates
            err = yield gate.afail(session, exc, what=what, log=not logged)
        else:
            err = gate.fail(session, exc, what=what, log=not logged)
        after = session.after_error if session is not None else None
    else:
        if not recorded and not logged:  # @guarded code that recorded it logged it already
            debug = manager.settings.debug if manager is not None else False
            log_failure(_log, exc, callback=what, session_id=session_id, debug=debug)
        if not recorded and manager is not None and session_id is not None:
            try:
                if awaiting:
                    after = yield manager.arecord_error(session_id, exc)
                else:
                    after = manager.record_error(session_id, exc)
            except Exception:
                _log.exception("could not record the error on the session")
        if session is not None:
            session.failed = True  # the response must not count as a success
        debug = manager.settings.debug if manager is not None else False
        err = translate(exc, debug=debug)
    if after is not None and manager is not None and session_id is not None:
        report = (
            (yield manager.ahealth_of(session_id, after))
            if awaiting
            else manager.health_of(session_id, after)
        )
        _show(err, report)
    else:
        _show(err, (yield from _health_now(manager, session_id, awaiting)))


def _handle_on_loop(exc: Exception) -> None:
    """:func:`handle_callback_error` from sync code on a running event loop: no store call here.

    The response counts as no success at once; the error is recorded by a task (kept until it
    ends); the banner shows the failure with the session's health as the request found it.
    """
    current, gate, session = _gate_session()
    if session is None or current is None:
        _show(translate(exc, debug=gate.debug if gate is not None else False), None)
        return
    if _RECORDED not in current.marks:
        current.marks[_RECORDED] = True
        task = asyncio.get_running_loop().create_task(drive(_record_later(session, exc)))
        _PENDING.add(task)
        task.add_done_callback(_PENDING.discard)
    session.failed = True
    manager = session.manager
    debug = gate.debug if gate is not None else manager.settings.debug
    _show(translate(exc, debug=debug), session.health)


def _record_later(session: RequestSession, exc: Exception) -> Steps[None]:
    """The recording :func:`_handle_on_loop` leaves to a task: logged once, recorded once (the
    response was already marked as no success, so the gate's own ``fail`` would skip it)."""
    manager = session.manager
    if not was_logged(exc):
        log_failure(_log, exc, callback=_callback_name(), session_id=session.id, debug=manager.settings.debug)
    try:
        yield session.aensure_stored()
        session.after_error = yield manager.arecord_error(session.id, exc)
    except Exception:
        _log.exception("could not record the error on the session")


def _callback_name() -> str:
    """The failing Dash callback, named by its first output (``"callback"`` outside a callback).

    Read from Dash's callback context, never from the request body (a background callback's
    process has no body to read).
    """
    try:
        outputs = dash.callback_context.outputs_list
    except Exception:  # outside a Dash callback
        return "callback"
    first = outputs[0] if isinstance(outputs, list) and outputs else outputs
    if isinstance(first, list) and first:
        first = first[0]
    if isinstance(first, dict) and "id" in first:
        # Without Dash's "@<hash>" of an output it allows to be duplicated: the names a developer wrote.
        prop = str(first.get("property", "")).partition("@")[0]
        return f"callback {first['id']}.{prop}"[:90]
    return "callback"


def _note_recorded_error(sender: Any, session_id: str | None = None, **_: Any) -> None:
    """``signals.error_recorded``: mark the request whose session got an error (e.g. from ``@guarded``
    code in a callback), so that its callback's failure is not recorded a second time."""
    if session_id is None:
        return
    current = current_request()
    session = current.session if current is not None else None
    if current is not None and session is not None and session.id == session_id:
        current.marks[_RECORDED] = True


# Connected once, for every app (and for handle_callback_error used as a plain on_error handler).
signals.error_recorded.connect(_note_recorded_error)


class CallbackErrors:
    """Pure ASGI middleware for Dash on FastAPI, innermost (between Dash's ``DashMiddleware`` and
    the routes): an exception of an unguarded callback is recorded on the request's session
    (:meth:`~sessionmw.integrations.gate.SessionGate.afail`: logged and recorded once) and raised
    again, so Dash's middleware answers it as it does without sessionmw.

    Dash's ``DashMiddleware`` catches every callback exception itself and answers 500: the
    sessionmw middleware outside it sees a status, never the exception. ``PreventUpdate`` is no
    error; cancellation (no ``Exception``) passes untouched; every other scope passes through.
    """

    def __init__(self, app: Any, *, gate: SessionGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except dash.exceptions.PreventUpdate:
            raise
        except Exception as exc:
            session = scope.get("sessionmw.session")
            if isinstance(session, RequestSession) and _RECORDED not in scope:
                await self.gate.afail(session, exc, what=_scope_callback(scope), log=not was_logged(exc))
            raise


def _scope_callback(scope: Any) -> str:
    """The failing callback named by its output, from the body Dash's middleware parsed."""
    state = scope.get("state")
    body = state.get("json_body") if isinstance(state, dict) else None
    output = body.get("output") if isinstance(body, dict) else None
    return f"callback {str(output).strip('.')}"[:90] if isinstance(output, str) else "callback"


@overload
def guarded_callback(func: F, /) -> F: ...


@overload
def guarded_callback(
    *args: Any,
    app: dash.Dash | None = None,
    retry: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    clears_alert: bool = True,
    on_error: Callable[[Exception], Any] | None = None,
    **kwargs: Any,
) -> Callable[[F], F]: ...


def guarded_callback(
    *args: Any,
    app: dash.Dash | None = None,
    retry: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    clears_alert: bool = True,
    on_error: Callable[[Exception], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """A Dash callback that fails gracefully: bare beneath ``@app.callback(...)``, or registering it.

    Two forms. Bare (or with only the options below), beneath an existing ``@app.callback(...)``
    or ``@dash.callback(...)`` line, it guards the function and registers nothing. Given the
    callback's arguments (those of ``dash.callback``), it registers the callback: on ``app`` when
    given, else with ``dash.callback`` (every app picks it up).

    - It does not run when the session is expired or disconnected: the alert says why.
    - An exception is recorded on the session and shown as a friendly alert; outputs keep
      their values. ``PreventUpdate`` passes through. The guard is the callback's error handler,
      so, as with Dash's per-callback ``on_error``, the app-level ``on_error`` does not run.
    - ``on_error``: your own handler, called after the alert with the exception; what it returns
      becomes the callback's outputs, as with Dash's ``on_error`` (None: outputs unchanged).
    - In debug mode (Dash's dev tools UI on) an exception no handler of yours takes is recorded
      and raised again, so the dev tools show it with its traceback.
    - ``retry``: opt-in, a :class:`~sessionmw._retry.RetryStrategy` (or any decorator) applied to
      the whole callback. A callback is a POST and may have side effects, so none by default;
      prefer ``@guarded(retry=...)`` on the backend calls that only read.
    - ``clears_alert``: hide a previous alert when this callback succeeds.

    :raises ValueError: if ``app`` is given without the callback's arguments (nothing to register).
    """
    if len(args) == 1 and not kwargs and _is_callback_function(args[0]):
        if app is not None:
            raise ValueError("guarded_callback(app=...) registers a callback: give its Output and Input too")
        return _guard(args[0], retry=retry, clears_alert=clears_alert, on_error=on_error)
    registers = bool(args or kwargs)
    if app is not None and not registers:
        raise ValueError("guarded_callback(app=...) registers a callback: give its Output and Input too")

    def decorate(func: F) -> F:
        wrapper = _guard(func, retry=retry, clears_alert=clears_alert, on_error=on_error)
        if registers:
            register = app.callback if app is not None else dash.callback
            register(*args, **kwargs)(wrapper)
        return wrapper

    return decorate


def _is_callback_function(candidate: Any) -> bool:
    """True for the function of a bare ``@guarded_callback`` (not a Dash dependency or a list of them)."""
    return callable(candidate) and not isinstance(candidate, dash.dependencies.DashDependency)


def _guard(
    func: F,
    *,
    retry: Callable[[Callable[..., Any]], Callable[..., Any]] | None,
    clears_alert: bool,
    on_error: Callable[[Exception], Any] | None,
) -> F:
    """``func`` with the session check, the friendly alert and ``on_error`` chained after it."""
    target: Callable[..., Any] = retry(func) if retry is not None else func

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*call_args: Any, **call_kwargs: Any) -> Any:
            refused = await drive(_refusal(True))
            if refused is not None:
                _show(*refused)
                return _unchanged()
            try:
                result = await target(*call_args, **call_kwargs)
            except dash.exceptions.PreventUpdate:
                raise
            except Exception as exc:
                await ahandle_callback_error(exc)
                return _after_failure(exc, on_error)
            if _job_context() is not None:
                await drive(_job_succeeded(True))
            _succeeded(clears_alert)
            return result

        return cast(F, async_wrapper)

    @functools.wraps(func)
    def wrapper(*call_args: Any, **call_kwargs: Any) -> Any:
        refused = run(_refusal(False))
        if refused is not None:
            _show(*refused)
            return _unchanged()
        try:
            result = target(*call_args, **call_kwargs)
        except dash.exceptions.PreventUpdate:
            raise
        except Exception as exc:
            handle_callback_error(exc)
            return _after_failure(exc, on_error)
        if _job_context() is not None:
            run(_job_succeeded(False))
        _succeeded(clears_alert)
        return result

    return cast(F, wrapper)


def _after_failure(exc: Exception, on_error: Callable[[Exception], Any] | None) -> Any:
    """What a guarded callback returns after its failure was handled: the handler's value, or
    outputs unchanged; in debug mode without a handler, the exception raised again for the dev tools."""
    if on_error is not None:
        value = on_error(exc)
        return _unchanged() if value is None else value
    if _devtools_on(request_dash_app()[1]):
        raise exc  # debug mode: Dash's dev tools show the exception and its traceback
    return _unchanged()


def _succeeded(clears_alert: bool) -> None:
    if clears_alert:
        with _last_set_props_only():
            hide_alert()


def _unchanged() -> Any:
    """What a callback returns to leave its outputs alone: ``no_update``, or None without outputs."""
    context = dash.callback_context
    try:
        if context.using_outputs_grouping:
            return dash.no_update
        return dash.no_update if context.outputs_list else None
    except dash.exceptions.MissingCallbackContextException:  # called outside a Dash request
        return dash.no_update


def _devtools_on(app: dash.Dash | None) -> bool:
    """True when ``app`` shows callback errors in Dash's dev tools (``debug=True``, ``dev_tools_ui``)."""
    tools = getattr(app, "_dev_tools", None)
    return bool(tools is not None and tools.get("ui"))


def guard_all_callbacks(app: dash.Dash) -> None:
    """Guard every callback of ``app`` through Dash's app-level ``on_error``: the friendly alert
    first (see :func:`handle_callback_error`), then the app's own ``on_error``, if any."""
    app._on_error = _chain_on_error(app, app._on_error)


def _chain_on_error(
    app: dash.Dash, previous: Callable[[Exception], Any] | None
) -> Callable[[Exception], Any]:
    """Dash's app-level ``on_error``: our alert first, then the app's own handler, if any.

    In debug mode (dev tools UI on), an exception the app has no handler for is raised again,
    so that the dev tools count and show it as they would without sessionmw.
    """
    app_ref = weakref.ref(app)

    def on_error(exc: Exception) -> Any:
        handle_callback_error(exc)
        if previous is not None:
            return previous(exc)
        if _devtools_on(app_ref()):
            raise exc
        return None

    return on_error
