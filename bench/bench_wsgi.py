"""WSGI benchmark: a hello-world Flask app called in process, bare and with session tracking.

Run: .venv/bin/python bench/bench_wsgi.py [--requests N] [--repeats R] [--gunicorn SECONDS]

Side by side, in one run and interleaved round by round (so machine load hits all alike):
bare Flask; SessionMW on the memory store; SessionMiddleware (plain WSGI) on the memory store;
SessionMW on a SQLite store (a file in a temporary folder); SessionMW on the Redis store;
Flask-Session on Redis writing the session on every request.
Each client returns its cookie, as a browser does. Prints microseconds per request (median of
the rounds) and each variant's ratio to bare. Redis is 127.0.0.1:6379 database 15 (or
SESSIONMW_TEST_REDIS_URL), under a unique key prefix that is deleted afterwards.

With ``--gunicorn SECONDS`` it then serves each variant with gunicorn (2 sync workers) on a
free 127.0.0.1 port and loads it with ``wrk -t2 -c8 -d SECONDS`` sending the session cookie,
``--gunicorn-rounds`` times in turn, printing the median requests per second and the ratio to bare
(the two hooks floors below are served and loaded the same way, with a sessionmw-like cookie).
The memory store variant runs with ``--preload``: both workers start from one store object, so
they share its incarnation and store the one cookie wrk sends as a pending id each (each still
keeps its own sessions, and the store logs that once per worker). Without it each worker would
build its own store, with its own incarnation, and refuse the other's ids, as after a restart.

Three rows are floors, not products. "floor: bare Flask + cookie + 3 empty hooks" is the bare app
with three hooks that do nothing and a client sending a cookie shaped like a sessionmw id: what
Flask charges before a session extension does any work. "floor: hooks + id lookup, scope, Vary"
is those hooks doing the least any cookie session tracker must on every request, with none of
sessionmw's rules: find the cookie, check the id's shape, look it up in a dict, make it the
current session (a context variable) until the teardown, add ``Vary: Cookie``. "floor: bare
Flask + 1 Redis PING" is
the bare app doing one redis-py PING per request: the least that any store with one round trip
per request can add.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, session

from sessionmw import SessionManager
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.wsgi import SessionMiddleware

REDIS_URL = os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: The least any store can add with one round trip per request: a redis-py PING from the view.
FLOOR = "floor: bare Flask + 1 Redis PING"
#: The least a cookie session through Flask's hooks can add: the cookie and three empty hooks.
HOOKS_FLOOR = "floor: bare Flask + cookie + 3 empty hooks"
#: The hooks floor doing the least any session tracker must: find, check and look up the id, scope, Vary.
SESSION_FLOOR = "floor: hooks + id lookup, scope, Vary"
#: The row of SessionMW on a SQLite file (one host, every worker sharing it).
SQLITE_ROW = "SessionMW, SQLite store"
#: A cookie value shaped like a sessionmw id (random part, issue time, store incarnation, signature).
COOKIE_LIKE = "A" * 27 + ".6921ab07.CCCCCCCC." + "B" * 22
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for the gunicorn round)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline: float) -> None:
    """Poll until gunicorn listens on ``port``; fail if it exits or ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"gunicorn did not listen on port {port} within {deadline} s")


def hello_app(write_flask_session: bool = False, ping: Any = None) -> Flask:
    """The hello-world app; optionally writing Flask's session, or pinging Redis, on every request."""
    app = Flask("bench")
    app.config["SECRET_KEY"] = "bench-secret"

    @app.get("/")
    def hello() -> str:
        if write_flask_session:
            session["n"] = session.get("n", 0) + 1
        if ping is not None:
            ping.ping()
        return "Hello, World!"

    return app


def hooks_floor_app() -> WSGIApp:
    """The bare app with three hooks that do nothing: what Flask charges before any session work."""
    app = hello_app()

    def before() -> None:
        return None

    def after(response: Any) -> Any:
        return response

    def teardown(exc: BaseException | None) -> None:
        return None

    app.before_request(before)
    app.after_request(after)
    app.teardown_request(teardown)
    return app.wsgi_app


def session_floor_app() -> WSGIApp:
    """The hooks floor plus the least a session tracker must do on every request, with none of
    sessionmw's logic: find its cookie, check the id's shape, look it up in a dict, make it the
    current session (a context variable) until the teardown, and add ``Vary: Cookie``."""
    import contextvars
    import re

    from flask import request

    app = hello_app()
    sessions = {COOKIE_LIKE: object()}
    current: contextvars.ContextVar[object] = contextvars.ContextVar("floor_session", default=None)
    id_shape = re.compile(r"[A-Za-z0-9._:~-]{1,128}").fullmatch
    tokens: dict[int, contextvars.Token[object]] = {}

    def before() -> None:
        environ = request._get_current_object().environ  # type: ignore[attr-defined]
        cookie = environ.get("HTTP_COOKIE", "")
        value = cookie[len("sessionmw=") :] if cookie.startswith("sessionmw=") else ""
        record = sessions.get(value) if id_shape(value) else None
        tokens[id(environ)] = current.set(record)

    def after(response: Any) -> Any:
        response.headers.add("Vary", "Cookie")
        return response

    def teardown(exc: BaseException | None) -> None:
        current.reset(tokens.pop(id(request._get_current_object().environ)))  # type: ignore[attr-defined]

    app.before_request(before)
    app.after_request(after)
    app.teardown_request(teardown)
    return app.wsgi_app


def _environ(cookie: str | None) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_ACCEPT": "text/html",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    return environ


class Client:
    """Calls a WSGI app in process and keeps the cookies it sets (name=value only)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}
        self.status = ""

    def _start(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = status
        for name, value in headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";")[0]
        return None

    def request(self) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        result = self.app(_environ(cookie), self._start)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def time_round(client: Client, requests: int) -> float:
    """Seconds per request over one timed loop."""
    start = time.perf_counter()
    for _ in range(requests):
        client.request()
    return (time.perf_counter() - start) / requests


def redis_store_url(prefix: str) -> str | None:
    """The Redis store URL with a unique key prefix, or None if the Redis store is not available."""
    try:
        from sessionmw.stores import SUPPORTED_SCHEMES
    except ImportError:
        return None
    if "redis" not in SUPPORTED_SCHEMES:
        return None
    separator = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{separator}prefix={prefix}"


GUNICORN_APP = """
import os

from flask import Flask, session

from sessionmw import SessionManager
from sessionmw.integrations.flask import SessionMW

variant = os.environ["BENCH_VARIANT"]
app = Flask(__name__)
app.config["SECRET_KEY"] = "bench-secret"


@app.get("/")
def hello():
    if variant == "flask-session":
        session["n"] = session.get("n", 0) + 1
    elif variant == "ping":
        PING_CLIENT.ping()
    return "Hello, World!"


if variant == "ping":
    import redis

    PING_CLIENT = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
elif variant == "memory":
    SessionMW(app, manager=SessionManager(store="memory://"))
elif variant == "redis":
    SessionMW(app, manager=SessionManager(store=os.environ["BENCH_STORE_URL"]))
elif variant == "sqlite":
    SessionMW(app, manager=SessionManager(store=os.environ["BENCH_SQLITE_URL"]))
elif variant in ("hooks-floor", "session-floor"):
    import sys

    sys.path.insert(0, os.environ["BENCH_DIR"])
    import bench_wsgi

    app = bench_wsgi.hooks_floor_app() if variant == "hooks-floor" else bench_wsgi.session_floor_app()
elif variant == "flask-session":
    import redis
    from flask_session import Session  # type: ignore[import-untyped]

    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]),
        SESSION_KEY_PREFIX=os.environ["BENCH_PREFIX"] + "fs:",
    )
    Session(app)
"""


def _cookie_header(base: str, names: tuple[str, ...]) -> str:
    """Visit twice, returning the cookies so that the session is issued and stored."""
    import urllib.request

    cookies: dict[str, str] = {}
    for _ in range(2):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
        with urllib.request.urlopen(urllib.request.Request(base + "/", headers=headers), timeout=10) as reply:
            for value in reply.headers.get_all("Set-Cookie") or []:
                key, _, rest = value.partition("=")
                if key in names:
                    cookies[key] = rest.split(";")[0]
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def gunicorn_wrk(seconds: int, rounds: int, prefix: str, store_url: str | None) -> None:
    """Requests/s of each variant under gunicorn (2 sync workers) and wrk on loopback.

    Every variant's server is started first; then each round loads them one after the other, so
    that drifts in machine speed hit all of them alike. The median of the rounds is printed.
    """
    import re
    import shutil
    import subprocess
    import tempfile

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    variants = {"bare Flask": "bare", "SessionMW, memory store": "memory", SQLITE_ROW: "sqlite"}
    if store_url is not None:
        variants["SessionMW, Redis store"] = "redis"
    variants["Flask-Session, Redis (1 write/request)"] = "flask-session"
    variants[FLOOR] = "ping"
    variants[HOOKS_FLOOR] = "hooks-floor"
    variants[SESSION_FLOOR] = "session-floor"
    rates: dict[str, list[float]] = {name: [] for name in variants}
    servers: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "benchapp.py"), "w", encoding="utf-8") as handle:
            handle.write(GUNICORN_APP)
        try:
            targets: dict[str, list[str]] = {}
            for name, variant in variants.items():
                port = free_port()
                env = {
                    **os.environ,
                    "BENCH_VARIANT": variant,
                    "BENCH_STORE_URL": store_url or "",
                    "BENCH_REDIS_URL": REDIS_URL,
                    "BENCH_PREFIX": prefix,
                    "BENCH_SQLITE_URL": f"sqlite:///{os.path.join(folder, 'sessions.db')}",
                    "SESSIONMW_SECRET_KEY": "bench-secret",
                    "BENCH_DIR": str(Path(__file__).resolve().parent),
                }
                command = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}"]
                if variant == "memory":  # one store object, one incarnation (see the docstring)
                    command.append("--preload")
                command += ["--chdir", folder, "--log-level", "warning", "benchapp:app"]
                proc = subprocess.Popen(command, env=env)
                servers.append(proc)
                wait_for_port(proc, port, 30.0)
                base = f"http://127.0.0.1:{port}"
                if variant.endswith("-floor"):  # the floors issue no cookie: a sessionmw-like one
                    cookie = f"sessionmw={COOKIE_LIKE}"
                else:
                    cookie = _cookie_header(base, ("sessionmw", "session"))
                wrk = ["wrk", "-t2", "-c8", f"-d{seconds}s", base + "/"]
                if cookie:
                    wrk[1:1] = ["-H", f"Cookie: {cookie}"]
                targets[name] = wrk
            for _ in range(rounds):
                for name, wrk in targets.items():
                    output = subprocess.run(wrk, capture_output=True, text=True, check=True).stdout
                    match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
                    rates[name].append(float(match.group(1)) if match else float("nan"))
                    if re.search(r"Non-2xx", output):
                        print(f"warning: {name} had non-2xx responses:\n{output}")
        finally:
            for proc in servers:
                proc.terminate()
            for proc in servers:
                proc.wait(timeout=30)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    bare = medians["bare Flask"]
    print(
        f"gunicorn -w 2 (sync) + wrk -t2 -c8, {rounds} rounds of {seconds} s on 127.0.0.1,"
        " cookie sent back; median of the rounds"
    )
    print(f"| {'variant':<40} | {'requests/s':>10} | {'vs bare':>8} |")
    print(f"|{'-' * 42}|{'-' * 11}:|{'-' * 9}:|")
    for name, rate in medians.items():
        print(f"| {name:<40} | {rate:>10.0f} | {rate / bare:>7.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gunicorn", type=int, default=0, metavar="SECONDS", help="also run gunicorn + wrk")
    parser.add_argument("--gunicorn-rounds", type=int, default=3, metavar="N", help="wrk rounds per variant")
    args = parser.parse_args()
    prefix = f"bench-wsgi-{secrets.token_hex(4)}:"
    variants: dict[str, WSGIApp] = {"bare Flask": hello_app().wsgi_app}

    app = hello_app()
    SessionMW(app, manager=SessionManager(store="memory://"))
    variants["SessionMW, memory store"] = app.wsgi_app
    variants["SessionMiddleware, memory store"] = SessionMiddleware(
        hello_app().wsgi_app, manager=SessionManager(store="memory://"), secret_key="bench"
    )
    import tempfile

    sqlite_folder = tempfile.TemporaryDirectory()
    sqlite_manager = SessionManager(store=f"sqlite:///{os.path.join(sqlite_folder.name, 'sessions.db')}")
    app = hello_app()
    SessionMW(app, manager=sqlite_manager)
    variants[SQLITE_ROW] = app.wsgi_app
    redis_manager: SessionManager | None = None
    url = redis_store_url(prefix)
    if url is not None:
        redis_manager = SessionManager(store=url)
        app = hello_app()
        SessionMW(app, manager=redis_manager)
        variants["SessionMW, Redis store"] = app.wsgi_app
    else:
        print("(the Redis store is not available in this checkout: its row is skipped)")

    import redis
    from flask_session import Session  # type: ignore[import-untyped]

    redis_client = redis.Redis.from_url(REDIS_URL)
    app = hello_app(write_flask_session=True)
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis_client, SESSION_KEY_PREFIX=prefix + "fs:")
    Session(app)
    variants["Flask-Session, Redis (1 write/request)"] = app.wsgi_app
    variants[FLOOR] = hello_app(ping=redis_client).wsgi_app
    # (the hooks floor is added with its client below: its client sends a sessionmw-like cookie)

    clients = {name: Client(wsgi) for name, wsgi in variants.items()}
    clients[HOOKS_FLOOR] = Client(hooks_floor_app())
    clients[HOOKS_FLOOR].cookies["sessionmw"] = COOKIE_LIKE
    clients[SESSION_FLOOR] = Client(session_floor_app())
    clients[SESSION_FLOOR].cookies["sessionmw"] = COOKIE_LIKE
    for client in clients.values():  # warm up: sessions issued, returned and stored
        for _ in range(200):
            client.request()
        assert client.status.startswith("200"), client.status
    samples: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for _ in range(args.repeats):
            for name, client in clients.items():
                samples[name].append(time_round(client, args.requests))
    finally:
        for key in redis_client.scan_iter(match=f"*{prefix}*"):
            redis_client.delete(key)
        if redis_manager is not None:
            redis_manager.close()
        redis_client.close()
        sqlite_manager.close()
        sqlite_folder.cleanup()

    medians = {name: statistics.median(values) for name, values in samples.items()}
    bare = medians["bare Flask"]
    print(
        f"{args.requests} requests x {args.repeats} rounds, median per request"
        f" (Python {sys.version.split()[0]})"
    )
    print(f"| {'variant':<40} | {'µs/request':>10} | {'vs bare':>8} |")
    print(f"|{'-' * 42}|{'-' * 12}:|{'-' * 9}:|")
    for name, seconds in medians.items():
        print(f"| {name:<40} | {seconds * 1e6:>10.1f} | {seconds / bare:>7.2f}x |")
    fs = medians["Flask-Session, Redis (1 write/request)"]
    if "SessionMW, Redis store" in medians:
        extra_ours = medians["SessionMW, Redis store"] - bare
        extra_theirs = fs - bare
        print(f"SessionMW Redis added cost / Flask-Session added cost: {extra_ours / extra_theirs:.2f}")
    floor = (medians[FLOOR] - bare) / (fs - bare)
    print(f"floor (one PING) added cost / Flask-Session added cost: {floor:.2f}")
    if args.gunicorn:
        gunicorn_wrk(args.gunicorn, args.gunicorn_rounds, prefix, url)
        cleanup = redis.Redis.from_url(REDIS_URL)
        for key in cleanup.scan_iter(match=f"*{prefix}*"):
            cleanup.delete(key)
        cleanup.close()


if __name__ == "__main__":
    main()
