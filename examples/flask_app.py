"""A Flask API with a flaky backend, and sessionmw set up with one line.

Run it with ``python examples/flask_app.py`` (``--port 5000`` by default). ``GET /api/quote``
asks a backend that fails every third call with a connection error: the client then gets a
friendly JSON error (503 with ``Retry-After``) instead of a stack trace, and the error is
recorded on its session. ``GET /`` renders the status banner; ``/_sessionmw/health`` and
``POST /_sessionmw/reconnect`` are the session endpoints.
"""

from __future__ import annotations

import argparse
import itertools

from flask import Flask, jsonify, render_template_string
from flask.typing import ResponseReturnValue

from sessionmw import SessionManager
from sessionmw.integrations.flask import SessionMW, current_session

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionmw Flask example</title></head>
<body>{{ sessionmw_banner() }}<h1>Quotes</h1><p>Session: {{ state }}</p></body></html>
"""


class FlakyBackend:
    """A stand-in for a remote service: every ``fail_every``-th call fails."""

    def __init__(self, fail_every: int = 3) -> None:
        self._calls = itertools.count(1)
        self.fail_every = fail_every

    def quote(self) -> dict[str, object]:
        """A quote, or a ConnectionError on every ``fail_every``-th call."""
        number = next(self._calls)
        if number % self.fail_every == 0:
            raise ConnectionError("quote service at 10.0.0.9:7000 timed out")
        return {"symbol": "ACME", "price": 100 + number}


def create_app(manager: SessionManager | None = None, backend: FlakyBackend | None = None) -> Flask:
    """The example app; ``manager`` and ``backend`` can be replaced (tests do)."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "change-me"  # also signs sessionmw's new session ids
    quotes = backend or FlakyBackend()

    @app.get("/")
    def page() -> ResponseReturnValue:
        return render_template_string(PAGE, state=current_session.state.value)

    @app.get("/api/quote")
    def quote() -> ResponseReturnValue:
        return jsonify(quotes.quote())

    SessionMW(app, manager=manager)
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the example on 127.0.0.1 with Flask's development server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    create_app().run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
