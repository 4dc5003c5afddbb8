"""A Flask API with a flaky backend, and sessionmw set up with one line.

Run it with ``python examples/flask_app.py`` (``--port 5000`` by default) and open
http://127.0.0.1:5000/. ``GET /api/quote`` asks a backend that fails every third call with a
connection error, and every call while you have switched it off on the page. A failure is
recorded on the session and answered without a stack trace: a client that asks for JSON
(``curl -H 'Accept: application/json' ...``, ``fetch`` with that header) gets an RFC 9457
problem document (``application/problem+json``, 503 with ``Retry-After``: see
docs/api-clients.md), a browser gets the friendly error page. Five failures in a row
disconnect the session: ``GET /`` then shows the status banner with Reconnect.
``/_sessionmw/health`` and ``POST /_sessionmw/reconnect`` are the session endpoints.
"""

from __future__ import annotations

import argparse
import itertools
import logging
from typing import Any

from flask import Flask, jsonify, redirect, render_template_string, request
from flask.typing import ResponseReturnValue

from sessionmw import SessionManager, current_session_id
from sessionmw.actions import log_failure
from sessionmw.integrations.flask import SessionMW, current_session
from sessionmw.integrations.style import stylesheet

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionmw Flask example</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ css|safe }}
body { font-family: system-ui, sans-serif; max-width: 720px; margin: 24px auto; padding: 0 16px; }
form { display: inline; }</style></head>
<body>{{ sessionmw_banner() }}<h1>Quotes</h1><p>Session: {{ state }}</p>
<p><a href="/api/quote">Get a quote</a> · backend {{ "off" if down else "on" }}:
<form method="post" action="/backend/{{ 'on' if down else 'off' }}">
<button type="submit">Switch the backend {{ "on" if down else "off" }}</button></form></p>
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


class QuietFlask(Flask):
    """Flask, logging a failed request as one line: the user already sees a friendly message, and
    the traceback is there at DEBUG (Flask's documented place to change this: ``log_exception``)."""

    def log_exception(self, exc_info: Any) -> None:
        exc = exc_info[1]
        if exc is None or self.logger.isEnabledFor(logging.DEBUG):
            super().log_exception(exc_info)
            return
        what = f"{request.method} {request.path}"
        log_failure(self.logger, exc, callback=what, session_id=current_session_id())


def create_app(manager: SessionManager | None = None, backend: FlakyBackend | None = None) -> Flask:
    """The example app; ``manager`` and ``backend`` can be replaced (tests do)."""
    app = QuietFlask(__name__)
    app.config["SECRET_KEY"] = "change-me"  # also signs sessionmw's new session ids
    app.config["SESSIONMW_EXCLUDE"] = ["/backend/"]  # the switch is the operator's, not session work
    quotes = backend or FlakyBackend()

    @app.get("/")
    def page() -> ResponseReturnValue:
        state = current_session.state.value
        return render_template_string(PAGE, css=stylesheet(), state=state, down=quotes.down)

    @app.post("/backend/<switch>")
    def backend_switch(switch: str) -> ResponseReturnValue:
        if switch not in ("on", "off"):
            return f"unknown switch {switch!r}: use /backend/on or /backend/off", 404
        quotes.down = switch == "off"
        return redirect("/", 303)

    @app.get("/api/quote")
    def quote() -> ResponseReturnValue:
        return jsonify(quotes.quote())

    SessionMW(app, manager=manager)
    return app


def port_number(text: str) -> int:
    """``--port``: a TCP port number (werkzeug would serve 99999 on 34463 and say 99999)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, not {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, not {port}")
    return port


def main(argv: list[str] | None = None) -> None:
    """Serve the example on 127.0.0.1 with Flask's development server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=port_number, default=5000, help="port on 127.0.0.1 (default 5000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    print(f"Serving on http://127.0.0.1:{args.port}/", flush=True)
    create_app().run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
