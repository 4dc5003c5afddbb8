"""A Starlette app with sessionmw set up with one line.

Run it with ``python examples/starlette_app.py`` (``--port 8000`` by default; uvicorn serves it)
and open http://127.0.0.1:8000/. ``/`` is a page with the session banner, ``/api/status`` answers
JSON, ``/fail`` raises (each failure is recorded on your session and answered with the friendly
page or JSON: five in a row disconnect it, and the page then offers Reconnect), and
``/_sessionmw/health`` is the health endpoint.
"""

from __future__ import annotations

import argparse
import errno
import html
import logging
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sessionmw import SessionManager, current_session_id
from sessionmw.actions import log_failure
from sessionmw.integrations.asgi import SCOPE_SESSION_ID, banner_for, install, session_of
from sessionmw.integrations.style import stylesheet

_log = logging.getLogger("example")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionmw Starlette example</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}
body {{ font-family: system-ui, sans-serif; max-width: 720px; margin: 24px auto; padding: 0 16px; }}</style>
</head>
<body>
{banner}
<h1>Hello</h1>
<p>Your session is {state}.</p>
<p><a href="/fail">Trigger an error</a> · <a href="/api/status">JSON status</a></p>
</body></html>
"""


async def page(request: Request) -> Response:
    """The page, with the session's banner."""
    session = session_of(request.scope)
    state = html.escape(session.state.value if session is not None else "untracked")
    return HTMLResponse(PAGE.format(css=stylesheet(), banner=banner_for(request.scope), state=state))


async def status(request: Request) -> Response:
    """The session's state as JSON."""
    session = session_of(request.scope)
    return JSONResponse(
        {
            "session_state": session.state.value if session is not None else None,
            "same_session": current_session_id() is not None,
        }
    )


async def fail(request: Request) -> Response:
    """Always fails, as a backend that refuses connections would."""
    raise ConnectionError("backend at 10.0.0.7:5432 refused the connection")


def create_app(manager: SessionManager | None = None, *, secret_key: str | None = None) -> Starlette:
    """The app with sessionmw installed (one line in your own code)."""
    app = Starlette(
        routes=[Route("/", page), Route("/api/status", status), Route("/fail", fail)],
    )
    install(app, manager=manager or SessionManager(), secret_key=secret_key)
    return app


def port_number(text: str) -> int:
    """``--port``: a TCP port number."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, not {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, not {port}")
    return port


def listen(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:``port``; exits with one line if it cannot be had."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            sys.exit(
                f"Port {port} is in use by another program. Either identify and stop that program, "
                "or start the server with a different port."
            )
        sys.exit(f"Cannot listen on 127.0.0.1:{port}: {exc.strerror}")
    return sock


class OneLineFailures:
    """The app, each failure logged as one line (``GET /api/quote failed: ConnectionError
    (session abc123…)``): the user already sees a friendly message. The exception goes on to the
    server, whose own record of it (a traceback) :class:`QuietServerLog` leaves out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            what = f"{scope.get('method')} {scope.get('path')}"
            log_failure(_log, exc, callback=what, session_id=scope.get(SCOPE_SESSION_ID))
            raise


class QuietServerLog(logging.Filter):
    """uvicorn's record of an app exception ("Exception in ASGI application", with its
    traceback) left out: :class:`OneLineFailures` logged it (with the traceback at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Exception in ASGI application")


def main(argv: list[str] | None = None) -> None:
    """Serve the example on 127.0.0.1 with uvicorn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=port_number, default=8000, help="port on 127.0.0.1 (default 8000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.error").addFilter(QuietServerLog())
    app = create_app()
    sock = listen(args.port)
    # uvicorn's own logging setup left out (log_config=None): the lines above, no line per request.
    server = uvicorn.Server(uvicorn.Config(OneLineFailures(app), log_config=None, access_log=False))
    print(f"Serving on http://127.0.0.1:{args.port}/", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
