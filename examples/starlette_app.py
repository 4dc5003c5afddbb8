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

from sessionmw import SessionManager, current_session_id
from sessionmw.integrations.asgi import SCOPE_NOTICE, install, session_of
from sessionmw.integrations.http import RECONNECTED_QUERY, banner_html
from sessionmw.integrations.style import stylesheet

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


def banner(request: Request) -> str:
    """The banner this page shows (escaped HTML): a notice (e.g. the session just expired), else
    the session's health; the Reconnect form comes back to this page."""
    session = session_of(request.scope)
    report = request.scope.get(SCOPE_NOTICE) or (session.health if session is not None else None)
    root = request.scope.get("root_path", "")
    return banner_html(
        report,
        prefix=f"{root}/_sessionmw/",
        next_path=root + request.url.path,
        reconnected=RECONNECTED_QUERY in request.url.query.split("&"),
    )


async def page(request: Request) -> Response:
    """The page, with the session's banner."""
    session = session_of(request.scope)
    state = html.escape(session.state.value if session is not None else "untracked")
    return HTMLResponse(PAGE.format(css=stylesheet(), banner=banner(request), state=state))


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


class QuietServerLog(logging.Filter):
    """uvicorn's record of an app exception ("Exception in ASGI application", with its traceback),
    left out: sessionmw logs each failure as one line. The traceback is there at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None or logging.getLogger().isEnabledFor(logging.DEBUG)


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
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    print(f"Serving on http://127.0.0.1:{args.port}/", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
