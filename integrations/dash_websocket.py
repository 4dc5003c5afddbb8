"""Dash callbacks over a websocket (Dash 4.4 on Quart and FastAPI) in the session of the page.

The websocket is admitted when it connects by the server's extension or middleware, before
Dash's handler (closed before accept: 4401 expired, ended or unknown; 4503 disconnected).
Dash's own hooks then carry the rest (:func:`install_websocket_hooks`):

- ``websocket_connect``: an admitted websocket's session is kept for the connection.
- ``websocket_message``: each ``callback_request`` is one user action, admitted as an HTTP
  callback is (one store operation, :meth:`~sessionmw.SessionManager.atouch_or_report`). A session
  that may no longer work is refused with Dash's documented close (the hook's ``(code, reason)``:
  4401 or 4503), after the page's banner got the report that says why (a ``set_props`` of the
  banner's store). Any other message (the renderer's heartbeat, a ``get_props`` answer) reads the
  session's health: a session ended, expired or disconnected elsewhere closes the websocket the
  same way, so Dash tells the callbacks still running (``ctx.websocket.is_shutdown`` turns True,
  an async callback is cancelled). Ended in this process (sessionmw's signals), it closes at once.
- Each callback the websocket runs: a success is recorded as an HTTP callback's is (a session in
  the error state is cleared); an exception no ``on_error`` handled is recorded on the session and
  the user reads the friendly message in the banner instead of Dash's ``str(exception)`` (in debug
  mode, Dash's dev tools UI on, it is raised again: Dash sends its text, as without sessionmw).
  ``@guarded_callback`` and ``guard_all`` work as over HTTP: the callback's own admission and
  marks are a :class:`~sessionmw.integrations.dash_apps.DashRequest` of its own
  (:data:`~sessionmw.integrations.dash_apps.WEBSOCKET_ACTION`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import weakref
from collections.abc import Callable, MutableMapping
from typing import Any

try:
    import dash
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionmw.integrations.dash needs Dash: pip install 'sessionmw[dash]'") from exc

from sessionmw import signals
from sessionmw._manager import STORE_UNAVAILABLE, SessionManager
from sessionmw.health import HealthReport
from sessionmw.integrations.dash_apps import WEBSOCKET_ACTION, DashRequest, server_apps
from sessionmw.integrations.dash_banner import HEALTH_STORE_ID, with_statement
from sessionmw.integrations.dash_callbacks import _OUTPUT, ahandle_callback_error, handle_callback_error
from sessionmw.integrations.environ import ENVIRON_SESSION
from sessionmw.integrations.gate import SessionGate
from sessionmw.integrations.request_session import RequestSession
from sessionmw.integrations.websocket import CLOSE_SESSION_DISCONNECTED, CLOSE_SESSION_REFUSED

__all__ = ["CLOSE_STORE_FAILED", "install_websocket_hooks", "websocket_close"]

_log = logging.getLogger("sessionmw.dash")

#: The close code of a Dash websocket whose callback could not be admitted (the store failing
#: with ``fail_closed``), as the ASGI middleware's ``WEBSOCKET_STORE_FAILED``.
CLOSE_STORE_FAILED = 1011
_CONNECTION = "sessionmw.dash.websocket"  # scope key: the connection's _Connection
_TRACKED = "__sessionmw_websocket__"  # marks a callback function wrapped by _tracked
_REFUSING = frozenset({"expired", "not_found", "disconnected"})


class _Connection:
    """One admitted Dash websocket: its session, the gate in front, the renderers it serves, and
    the websocket (weakly) and event loop to close it from a signal."""

    __slots__ = (
        "__weakref__",
        "backend",
        "gate",
        "loop",
        "path",
        "renderers",
        "server",
        "session_id",
        "websocket",
    )

    def __init__(
        self, websocket: Any, backend: str, server: Any, path: str, gate: SessionGate, session_id: str
    ) -> None:
        self.websocket = weakref.ref(websocket)
        self.loop = asyncio.get_running_loop()
        self.backend = backend
        self.server = server
        self.path = path
        self.gate = gate
        self.session_id = session_id
        self.renderers: set[str] = set()  # the pages (Dash renderer ids) it carried callbacks for

    @property
    def manager(self) -> SessionManager:
        return self.gate.manager


#: The Dash websockets open in this process (gone with their connection).
_OPEN: weakref.WeakSet[_Connection] = weakref.WeakSet()
_CLOSING: set[asyncio.Task[None]] = set()  # the closes a signal started, kept until they end


def install_websocket_hooks() -> None:
    """Register sessionmw's ``websocket_connect`` and ``websocket_message`` hooks with
    ``dash.hooks``, unless they are registered (they serve only apps set up with
    :class:`~sessionmw.integrations.dash.SessionMWDash`; any other app's websocket passes)."""
    if not any(hook.func is _on_connect for hook in dash.hooks.get_hooks("websocket_connect")):
        dash.hooks.websocket_connect()(_on_connect)
    if not any(hook.func is _on_message for hook in dash.hooks.get_hooks("websocket_message")):
        dash.hooks.websocket_message()(_on_message)
    for signal in (signals.session_ended, signals.session_disconnected, signals.session_expired):
        signal.connect(_session_gone, weak=False)  # connected once (blinker keeps one per receiver)


def websocket_close(report: HealthReport | dict[str, Any]) -> tuple[int, str]:
    """The ``(code, reason)`` Dash closes a websocket with for a session ``report`` refuses:
    4503 disconnected, 4401 otherwise; the reason is the report's status."""
    status = str(report.get("status", "not_found"))
    return (CLOSE_SESSION_DISCONNECTED if status == "disconnected" else CLOSE_SESSION_REFUSED, status)


def _scope_of(websocket: Any) -> MutableMapping[str, Any]:
    scope: MutableMapping[str, Any] = websocket.scope  # Starlette's WebSocket or Quart's websocket
    return scope


def _server_of(websocket: Any, scope: MutableMapping[str, Any]) -> tuple[str, Any]:
    """The backend and the server of a Dash websocket (Quart's current app, or the ASGI app)."""
    if hasattr(websocket, "_get_current_object"):  # Quart's context-local proxy
        import quart

        server: Any = quart.current_app
        return "quart", server._get_current_object()
    return "fastapi", scope.get("app")


def _on_connect(websocket: Any) -> bool:
    """``websocket_connect``: keep an admitted websocket's session for its connection."""
    scope = _scope_of(websocket)
    backend, server = _server_of(websocket, scope)
    apps = server_apps(server)
    path = str(scope.get("path", ""))
    if apps is None or apps.for_path(path)[0] is None or not isinstance(apps.gate, SessionGate):
        return True  # not an app sessionmw serves
    session = scope.get(ENVIRON_SESSION)
    if isinstance(session, RequestSession):
        real = websocket._get_current_object() if backend == "quart" else websocket
        connection = _Connection(real, backend, server, path, apps.gate, session.id)
        scope[_CONNECTION] = connection
        _OPEN.add(connection)
    return True  # the server's extension or middleware refused what it refuses, before Dash


async def _on_message(websocket: Any, message: Any) -> bool | tuple[int, str]:
    """``websocket_message``: a callback request is one user action; any other message checks
    that the session still works. A refusal closes the websocket (Dash's ``(code, reason)``)."""
    scope = _scope_of(websocket)
    connection = scope.get(_CONNECTION)
    if not isinstance(connection, _Connection) or not isinstance(message, dict):
        return True
    manager = connection.manager
    if message.get("type") != "callback_request":
        try:
            report = await manager.acheck_health(connection.session_id)
        except Exception:  # the store failing: the message is delivered all the same
            _log.warning("could not check a Dash websocket's session", exc_info=True)
            return True
        if report.get("status") in _REFUSING:
            await _tell_pages(websocket, connection, connection.renderers, report)
            return websocket_close(report)
        return True
    renderer = str(message.get("rendererId", ""))
    connection.renderers.add(renderer)
    payload = message.get("payload")
    output = payload.get("output") if isinstance(payload, dict) else None
    try:
        record, refusal = await manager.atouch_or_report(connection.session_id)
    except Exception as exc:  # e.g. the store down with fail_closed
        await connection.gate.afail(None, exc, what="websocket callback")
        return (CLOSE_STORE_FAILED, "")
    if refusal is not None or record is None:
        report = refusal if refusal is not None else await manager.acheck_health(connection.session_id)
        await _tell_pages(websocket, connection, {renderer}, report)
        return websocket_close(report)
    if record.reason == STORE_UNAVAILABLE:  # failing open: runs untracked, as an HTTP callback
        WEBSOCKET_ACTION.set(None)
        return True
    session = RequestSession(connection.session_id, manager, record, True, False, False)
    marks: dict[str, Any] = {ENVIRON_SESSION: session}
    if isinstance(output, str):
        marks[_OUTPUT] = output
        _track(connection, output)
    # Dash starts the callback right after this hook, in a copy of this context: it sees its action.
    WEBSOCKET_ACTION.set(DashRequest(connection.backend, connection.server, connection.path, marks, {}))
    return True


def _session_gone(sender: Any, session_id: str | None = None, **_: Any) -> None:
    """``session_ended``, ``session_disconnected``, ``session_expired`` (in this process): close
    the session's open Dash websockets at once, as a heartbeat would find it, so that Dash tells
    their running callbacks. Called from any thread: the close runs on each websocket's loop."""
    for connection in list(_OPEN):
        if connection.session_id == session_id and not connection.loop.is_closed():
            connection.loop.call_soon_threadsafe(_start_closing, connection)


def _start_closing(connection: _Connection) -> None:
    _OPEN.discard(connection)
    task = connection.loop.create_task(_close(connection))
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


async def _close(connection: _Connection) -> None:
    """Tell the websocket's pages why, then close it (Dash's handler then shuts its callbacks down)."""
    websocket = connection.websocket()
    if websocket is None:
        return
    try:
        report = await connection.manager.acheck_health(connection.session_id)
        if report.get("status") not in _REFUSING:
            return  # e.g. recovered meanwhile
        await _tell_pages(websocket, connection, connection.renderers, report)
        code, reason = websocket_close(report)
        await websocket.close(code, reason)
    except Exception:  # closed already, or the store failing: the next message checks again
        _log.debug("could not close a Dash websocket whose session is gone", exc_info=True)


async def _tell_pages(
    websocket: Any, connection: _Connection, renderers: set[str], report: HealthReport | dict[str, Any]
) -> None:
    """Send the banner's report to the pages (renderers) the websocket serves, before it closes."""
    data = with_statement(report, sticky=report.get("status") != "disconnected")
    for renderer in renderers:
        text = json.dumps(
            {
                "type": "set_props",
                "rendererId": renderer,
                "payload": {"componentId": HEALTH_STORE_ID, "props": {"data": data}},
            }
        )
        try:
            if connection.backend == "quart":
                await websocket.send(text)
            else:
                await websocket.send_text(text)
        except Exception:  # gone already: the close says it
            _log.debug("could not send the banner's report over a Dash websocket", exc_info=True)
            return


def _track(connection: _Connection, output: str) -> None:
    """Wrap the callback of ``output`` (once) so that its outcome is recorded as an action's."""
    apps = server_apps(connection.server)
    app = apps.for_path(connection.path)[1] if apps is not None else None
    spec = app.callback_map.get(output) if app is not None else None
    func = spec.get("callback") if isinstance(spec, dict) else None
    if spec is None or func is None or getattr(func, _TRACKED, False):
        return
    spec["callback"] = _tracked(func)


def _tracked(func: Callable[..., Any]) -> Callable[..., Any]:
    """Dash's callback function ``func``, its outcome recorded when it runs over a websocket
    (over HTTP it runs untouched: the server's extension or middleware records that)."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_tracked(*args: Any, **kwargs: Any) -> Any:
            action = WEBSOCKET_ACTION.get()
            if action is None or action.session is None:
                return await func(*args, **kwargs)
            try:
                result = await func(*args, **kwargs)
            except (dash.exceptions.PreventUpdate, dash.exceptions.WebsocketDisconnected):
                await _afinish(action)
                raise
            except Exception as exc:
                await ahandle_callback_error(exc)
                return _failed(exc, kwargs)
            await _afinish(action)
            return result

        setattr(async_tracked, _TRACKED, True)
        return async_tracked

    @functools.wraps(func)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        action = WEBSOCKET_ACTION.get()
        if action is None or action.session is None:
            return func(*args, **kwargs)
        try:
            result = func(*args, **kwargs)
        except (dash.exceptions.PreventUpdate, dash.exceptions.WebsocketDisconnected):
            _finish(action)
            raise
        except Exception as exc:
            handle_callback_error(exc)  # on Dash's worker thread: the store may be called here
            return _failed(exc, kwargs)
        _finish(action)
        return result

    setattr(tracked, _TRACKED, True)
    return tracked


def _gate(action: DashRequest) -> SessionGate | None:
    apps = action.apps
    return apps.gate if apps is not None and isinstance(apps.gate, SessionGate) else None


async def _afinish(action: DashRequest) -> None:
    gate, session = _gate(action), action.session
    if gate is not None and session is not None:
        await gate.afinish(session, 200)


def _finish(action: DashRequest) -> None:
    gate, session = _gate(action), action.session
    if gate is not None and session is not None:
        gate.finish(session, 200)


def _failed(exc: Exception, kwargs: dict[str, Any]) -> Any:
    """What a websocket callback that failed (no ``on_error`` took it) answers: the banner's
    update only (Dash's ``sideUpdate``, outputs unchanged); in debug mode the exception again."""
    app = kwargs.get("app")
    tools = getattr(app, "_dev_tools", None)
    if tools is not None and tools.get("ui"):
        raise exc  # debug mode: Dash sends the exception's text, as without sessionmw
    # Over a websocket, Dash streams set_props (the banner's statement) at once: nothing else to add.
    return json.dumps({"multi": True, "response": {}})
