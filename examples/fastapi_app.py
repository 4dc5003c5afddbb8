"""A FastAPI API with a flaky backend, and sessionmw set up with one line.

Run it with ``python examples/fastapi_app.py`` (``--port 8000`` by default; uvicorn serves it)
and open http://127.0.0.1:8000/. ``GET /api/quote`` asks a backend that fails every third call
with a connection error, and every call while you have switched it off on the page. A failure is
recorded on the session and answered without a stack trace: a client that asks for JSON
(``curl -H 'Accept: application/json' ...``) gets a friendly JSON error (503 with
``Retry-After``), a browser gets the friendly error page. Five failures in a row disconnect the
session: ``GET /`` then shows the status banner with Reconnect. ``/_sessionmw/health`` and
``POST /_sessionmw/reconnect`` are the session endpoints.

A walk through idle and expiry without waiting: ``--idle-after 20 --timeout 0.5`` (a session is
idle after 20 seconds without activity, and expires after half a minute).
"""

from __future__ import annotations

import argparse
import errno
import html
import itertools
import logging
import socket
import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sessionmw import ConfigurationError, SessionManager
from sessionmw.actions import log_failure
from sessionmw.integrations.asgi import SCOPE_SESSION_ID, banner_for, install
from sessionmw.integrations.fastapi import CurrentSession
from sessionmw.integrations.style import stylesheet

_log = logging.getLogger("example")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionmw FastAPI example</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}
body {{ font-family: system-ui, sans-serif; max-width: 720px; margin: 24px auto; padding: 0 16px; }}
form {{ display: inline; }}</style></head>
<body>{banner}<h1>Quotes</h1><p>Session: {state}</p>
<p><a href="/api/quote">Get a quote</a> · backend {now}:
<form method="post" action="/backend/{switch}">
<button type="submit">Switch the backend {switch}</button></form></p>
</body></html>
"""


class FlakyBackend:
    """A stand-in for a remote service: every ``fail_every``-th call fails, every call while ``down``."""

    def __init__(self, fail_every: int = 3) -> None:
        self._calls = itertools.count(1)
        self.fail_every = fail_every
        #: Every call fails while True (the page's switch).
        self.down = False

    def quote(self) -> dict[str, object]:
        """A quote, or a ConnectionError on every ``fail_every``-th call (every call while down)."""
        number = next(self._calls)
        if self.down or number % self.fail_every == 0:
            raise ConnectionError("quote service at 10.0.0.9:7000 timed out")
        return {"symbol": "ACME", "price": 100 + number}


def create_app(manager: SessionManager | None = None, backend: FlakyBackend | None = None) -> FastAPI:
    """The example app; ``manager`` and ``backend`` can be replaced (tests do)."""
    app = FastAPI(title="sessionmw FastAPI example")
    quotes = backend or FlakyBackend()

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request, session: CurrentSession) -> str:
        switch = "on" if quotes.down else "off"
        now = "off" if quotes.down else "on"
        return PAGE.format(
            css=stylesheet(),
            banner=banner_for(request.scope),
            state=html.escape(session.state.value),
            now=now,
            switch=switch,
        )

    @app.post("/backend/{switch}")
    async def backend_switch(switch: str) -> Response:
        if switch not in ("on", "off"):
            return PlainTextResponse(f"unknown switch {switch!r}: use /backend/on or /backend/off", 404)
        quotes.down = switch == "off"
        return RedirectResponse("/", 303)

    @app.get("/api/quote")
    async def quote() -> dict[str, object]:
        return quotes.quote()

    # The one line: sessions, their endpoints, and the friendly page or JSON for a failure. The
    # secret key signs sessionmw's new session ids; the switch is the operator's, not session work.
    install(app, manager=manager, secret_key="change-me", exclude=["/backend/"])
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


def positive(option: str) -> Callable[[str], float]:
    """``option``'s parser: a positive number."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a number, not {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{option} must be a positive number, not {text!r}")
        return value

    return parse


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
    parser.add_argument(
        "--idle-after",
        type=positive("--idle-after"),
        metavar="SECONDS",
        help="seconds without activity before a session is idle (default 300)",
    )
    parser.add_argument(
        "--timeout",
        type=positive("--timeout"),
        metavar="MINUTES",
        help="minutes without activity before a session expires (default 30)",
    )
    parser.add_argument("--debug", action="store_true", help="log each failure with its traceback")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("uvicorn.error").addFilter(QuietServerLog())
    settings: dict[str, float] = {}
    if args.idle_after is not None:
        settings["idle_after_seconds"] = args.idle_after
    if args.timeout is not None:
        settings["session_timeout_minutes"] = args.timeout
    try:
        manager = SessionManager(**settings)
    except ConfigurationError as exc:  # e.g. an --idle-after the timeout cannot hold
        parser.error(str(exc).replace("idle_after_seconds", "--idle-after"))
    app = create_app(manager)
    sock = listen(args.port)
    # uvicorn's own logging setup left out (log_config=None): the lines above, no line per request.
    server = uvicorn.Server(uvicorn.Config(OneLineFailures(app), log_config=None, access_log=False))
    print(f"Serving on http://127.0.0.1:{args.port}/", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
