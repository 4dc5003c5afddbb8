"""A plain WSGI app (no framework) with sessionmw in front.

Run it with ``python examples/wsgi_app.py`` (``--port 8000`` by default) and open
http://127.0.0.1:8000/. ``/`` is a page with the session banner, ``/api/status`` answers JSON,
``/fail`` raises (each failure is recorded on your session: five in a row disconnect it, and the
page then offers Reconnect), and ``/_sessionmw/health`` is the health endpoint.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from sessionmw import SessionManager, current_session_id
from sessionmw.integrations.environ import ENVIRON_SESSION
from sessionmw.integrations.style import stylesheet
from sessionmw.integrations.wsgi import SessionMiddleware, banner_for

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionmw WSGI example</title>
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


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The application: a page, a JSON view and a view that always fails."""
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        state = html.escape(environ[ENVIRON_SESSION].state.value)
        body = PAGE.format(css=stylesheet(), banner=banner_for(environ), state=state)
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body.encode()]
    if path == "/api/status":
        data = {
            "session_state": environ[ENVIRON_SESSION].state.value,
            "same_session": current_session_id() is not None,
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(data).encode()]
    if path == "/fail":
        raise ConnectionError("backend at 10.0.0.7:5432 refused the connection")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def create_app(manager: SessionManager | None = None, *, secret_key: str | None = None) -> WSGIApplication:
    """The app wrapped in :class:`SessionMiddleware` (one line in your own code)."""
    wrapped: WSGIApplication = SessionMiddleware(
        app, manager=manager or SessionManager(), secret_key=secret_key
    )
    return wrapped


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without its line per request (a failure is logged once, by sessionmw)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    """Serve the example on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with make_server("127.0.0.1", args.port, create_app(), handler_class=_QuietHandler) as server:
        print(f"Serving on http://127.0.0.1:{args.port}/", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
