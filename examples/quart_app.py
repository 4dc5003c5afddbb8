"""A Quart API with a flaky backend and a live quote websocket, and sessionmw set up with one line.

Run it with ``python examples/quart_app.py`` (``--port 5000`` by default; served by Hypercorn)
and open http://127.0.0.1:5000/. ``GET /api/quote`` asks a backend that fails every third call
with a connection error, and every call while you have switched it off on the page. A failure is
recorded on the session and answered without a stack trace: a client that asks for JSON gets a
friendly JSON error (503 with ``Retry-After``), a browser gets the friendly error page. Five
failures in a row disconnect the session: ``GET /`` then shows the status banner with Reconnect.
The page's websocket ``/ws/quotes`` sends a quote for every message; it opens in the page's
session (refused with close code 4401 or 4503 when that session is expired or disconnected), and
its messages count as activity. ``/_sessionmw/health`` and ``POST /_sessionmw/reconnect`` are the
session endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import itertools
import logging
import socket
import sys

from quart import Quart, jsonify, redirect, render_template_string, websocket
from quart.typing import ResponseReturnValue

from sessionmw import SessionManager
from sessionmw.integrations.quart import SessionMWQuart, current_session
from sessionmw.integrations.style import stylesheet
from sessionmw.translation import translate

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sessionmw Quart example</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ css|safe }}
body { font-family: system-ui, sans-serif; max-width: 720px; margin: 24px auto; padding: 0 16px; }
form { display: inline; }</style></head>
<body>{{ sessionmw_banner() }}<h1>Quotes</h1><p>Session: {{ state }}</p>
<p><a href="/api/quote">Get a quote</a> · backend {{ "off" if down else "on" }}:
<form method="post" action="/backend/{{ 'on' if down else 'off' }}">
<button type="submit">Switch the backend {{ "on" if down else "off" }}</button></form></p>
<p><button id="live" type="button">Live quote</button> <output id="quote"></output></p>
<script>
const out = document.getElementById("quote");
const socket = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws/quotes");
socket.onmessage = (event) => {
  const data = JSON.parse(event.data);
  out.textContent = data.price ?? data.message;
};
socket.onclose = () => { out.textContent = "(live quotes closed: reload the page)"; };
document.getElementById("live").onclick = () => socket.send("quote");
</script>
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


def create_app(manager: SessionManager | None = None, backend: FlakyBackend | None = None) -> Quart:
    """The example app; ``manager`` and ``backend`` can be replaced (tests do)."""
    app = Quart(__name__)
    app.config["SECRET_KEY"] = "change-me"  # also signs sessionmw's new session ids
    app.config["SESSIONMW_EXCLUDE"] = ["/backend/"]  # the switch is the operator's, not session work
    quotes = backend or FlakyBackend()

    @app.get("/")
    async def page() -> ResponseReturnValue:
        state = current_session.state.value
        return await render_template_string(PAGE, css=stylesheet(), state=state, down=quotes.down)

    @app.post("/backend/<switch>")
    async def backend_switch(switch: str) -> ResponseReturnValue:
        if switch not in ("on", "off"):
            return f"unknown switch {switch!r}: use /backend/on or /backend/off", 404
        quotes.down = switch == "off"
        return redirect("/", 303)

    @app.get("/api/quote")
    async def quote() -> ResponseReturnValue:
        return jsonify(quotes.quote())

    @app.websocket("/ws/quotes")
    async def live_quotes() -> None:
        await websocket.accept()
        while True:
            await websocket.receive()  # each message asks for a quote (and counts as activity)
            try:
                await websocket.send_json(quotes.quote())
            except ConnectionError as exc:  # said to the user; the websocket stays open
                await websocket.send_json({"message": translate(exc).message})

    SessionMWQuart(app, manager=manager)
    return app


def port_number(text: str) -> int:
    """``--port``: a TCP port number (1 to 65535), or a one-line error naming what was given."""
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


def main(argv: list[str] | None = None) -> None:
    """Serve the example on 127.0.0.1 with Hypercorn."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=port_number, default=5000, help="port on 127.0.0.1 (default 5000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = Config()
    sock = listen(args.port)  # bound here: a port in use is one line, not Hypercorn's traceback
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None  # no line per request
    print(f"Serving on http://127.0.0.1:{args.port}/", flush=True)
    asyncio.run(serve(create_app(), config))


if __name__ == "__main__":
    main()
