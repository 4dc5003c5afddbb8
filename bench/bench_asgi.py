"""ASGI benchmark: a hello-world FastAPI app under uvicorn (2 workers) and wrk, bare and with sessions.

Run: .venv/bin/python bench/bench_asgi.py [--seconds S] [--rounds N] [--connections C] [--variant NAME ...]
     [--no-wrk] [--no-stall] [--profile VARIANT]

Needs the ``bench`` extra (FastAPI, ``uvicorn[standard]``, starsessions) and wrk
(``apt-get install -y wrk``). Nothing touches the shared Redis at 6379: the bench starts its own
``redis-server`` (no persistence) on a free loopback port and stops it by pid.

**Throughput.** Each variant is served by ``uvicorn --workers 2`` (uvloop and httptools when
installed, access log off) on a free 127.0.0.1 port; every server is started first, then each
round loads them one after the other with ``wrk -t2 -c8 -d S`` sending the variant's session
cookie (issued and stored by two visits first), so that drifts in machine load hit all alike
(each round starts one variant further on). Printed: the median requests/s of the rounds, each
variant's ratio to bare in every round (that round's rate over that round's bare rate), their
median and their spread (min to max). On a machine shared with other work the rates swing with
the others' load, so the same table is printed for the CPU time a request costs: uvicorn's
master and workers, wrk and the bench's redis-server together (from /proc and getrusage, around
each wrk run). With those processes alone on the cores, bare's cost over a variant's is the
throughput ratio; it does not depend on how much of the cores the others take.

- ``bare``: ``FastAPI()`` with ``GET /`` answering ``{"message": "Hello, World!"}``.
- ``memory``, ``sqlite``, ``redis``: the same app with ``sessionmw.integrations.asgi.install``
  on the memory store, a SQLite file in a temporary folder, or the bench's Redis (its read cache
  on, as by default); ``redis, cache=false`` reaches Redis on every request. Each uvicorn worker
  imports the app itself, so the memory variant gives its store one incarnation read from the
  environment (each worker keeps its own sessions and stores wrk's one cookie as a pending id,
  as the WSGI bench's ``--preload`` does); without it each worker would refuse the other's ids.
- ``starsessions``: starsessions 2 on the bench's Redis (``SessionAutoloadMiddleware`` and
  ``SessionMiddleware``, ``lifetime=1800, rolling=True``), the endpoint keeping one key in the
  session: starsessions loads it (GET) and saves it (SET) on every request, its way of keeping a
  session alive.
- Floors, not products: ``floor: pass-through ASGI middleware`` wraps ``send`` and does nothing
  else (what one pure ASGI layer costs); ``floor: cookie + lookup + scope + Vary`` is the least a
  cookie session tracker must do in pure ASGI with no store (parse the Cookie header, check the
  id's shape, look it up in a dict, put it in the scope, add ``Vary: Cookie``); ``floor: 1 Redis
  PING`` is that layer doing one ``redis.asyncio`` PING per request: the least any store with one
  round trip per request adds; ``floor: 1 worker-thread hop`` is that layer calling nothing in
  anyio's worker threads once per request: the least a store that runs in a thread (SQLite) adds;
``floor: 1 SQLite PRAGMA data_version`` is that layer asking a SQLite file's ``data_version`` once
per request, on a connection of its own (each worker has one): what the SQLite store's read cache
asks on every hit so that another process's commit is seen at once; ``floor: 1 poll(0) of a Redis
connection`` is that layer polling, without waiting, a connection subscribed to a channel nobody
publishes on: what the Redis store's read cache asks on every hit for invalidations.

**Loop health** (``--no-stall`` skips it). One uvicorn worker (so the excluded path and the
session path are served by the same event loop), sessionmw on the bench's Redis with
``cache=false`` (every session request needs the store), ``exclude=("/excluded", "/_bench")``,
and a loop-lag monitor: a task that sleeps 5 ms and records how late it wakes. The client runs
4 clients of session requests (each sends one, waits for its answer and 10 ms more) and requests
``/excluded`` in the same way, a new connection each; after 1 s the bench's redis-server is
stopped by SIGSTOP for 2 s, then resumed (SIGCONT, always, even on error). Printed: the
excluded path's latency before, during and after the stop, the session requests' statuses and
slowest answer, and the loop's longest stall during the run (read from the monitor at
``/_bench/stall``). The same run is made against the bare app (no sessionmw, the same monitor
and traffic): what the machine's own load does to the loop and to the client's measurements.

**In process** (``--no-in-process`` skips it): each variant's app called directly (no server, no
socket, on uvloop), in interleaved rounds of 1,000 requests, timed by the CPU time of the bench's
process (all its threads) and of its redis-server: what the variant costs a request, which other
work on the cores does not add to as it adds to wall time. Printed first (half a minute).

``--parts`` times the parts of sessionmw's request path on the memory store (CPU time, best of 7
rounds): around an app that only answers, and the whole middleware around FastAPI.

``--profile VARIANT`` calls that variant's ASGI app in process (no server, no socket) 20,000
times with its cookie and prints where the time goes (pyinstrument if installed, else cProfile).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.metadata
import importlib.util
import json
import os
import pstats
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import Request  # at module level: FastAPI resolves the endpoints' annotations here

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: One request of the loop health run: its start (perf_counter), latency in seconds, status.
Sample = tuple[float, float, int]

BENCH_DIR = Path(__file__).resolve().parent
#: The variants served under wrk, by row name: the BENCH_VARIANT each server is started with.
VARIANTS = {
    "bare FastAPI": "bare",
    "sessionmw, memory store": "memory",
    "sessionmw, SQLite store": "sqlite",
    "sessionmw, Redis store": "redis",
    "sessionmw, Redis store, cache=false": "redis-nocache",
    "starsessions, Redis (load + save/request)": "starsessions",
    "floor: pass-through ASGI middleware": "floor-pass",
    "floor: cookie + lookup + scope + Vary": "floor-cookie",
    "floor: 1 Redis PING (redis.asyncio)": "floor-ping",
    "floor: 1 worker-thread hop (anyio)": "floor-thread",
    "floor: 1 SQLite PRAGMA data_version": "floor-pragma",
    "floor: 1 poll(0) of a Redis connection": "floor-poll",
}
#: The targets of issue 24, by variant: the least ratio to bare.
TARGETS = {"memory": 0.9, "sqlite": 0.85, "redis": 0.85}
#: A cookie value shaped like a sessionmw id (random part, issue time, store incarnation, signature).
COOKIE_LIKE = "A" * 27 + ".6921ab07.CCCCCCCC." + "B" * 22
#: The paths sessionmw leaves alone in the loop health run.
STALL_EXCLUDE = ("/excluded", "/_bench")
#: The loop-lag monitor's sleep.
MONITOR_INTERVAL = 0.005


# -- the apps (built in each uvicorn worker by make_app, from the environment) --------------------


def hello_app(lifespan: Any = None) -> Any:
    """The hello-world FastAPI app: ``GET /`` and ``GET /excluded`` answer a small JSON object."""
    from fastapi import FastAPI

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def hello() -> dict[str, str]:
        return {"message": "Hello, World!"}

    @app.get("/excluded")
    async def excluded() -> dict[str, str]:
        return {"message": "Hello, World!"}

    return app


def starsessions_app(redis_url: str, prefix: str) -> Any:
    """The hello-world app with starsessions on Redis; the endpoint keeps one key in the session."""
    from fastapi import FastAPI
    from redis.asyncio import Redis
    from starsessions import SessionAutoloadMiddleware, SessionMiddleware
    from starsessions.stores.redis import RedisStore

    app = FastAPI()

    @app.get("/")
    async def hello(request: Request) -> dict[str, str]:
        if "seen" not in request.session:
            request.session["seen"] = 1
        return {"message": "Hello, World!"}

    store = RedisStore(connection=Redis.from_url(redis_url), prefix=prefix + "starsessions:")
    # add_middleware wraps outside in: the autoload layer runs inside the session layer.
    app.add_middleware(SessionAutoloadMiddleware)
    app.add_middleware(SessionMiddleware, store=store, lifetime=1800, rolling=True, cookie_https_only=False)
    return app


class PassFloor:
    """A pure ASGI middleware that wraps ``send`` and does nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            await send(message)

        await self.app(scope, receive, wrapped)


class CookieFloor:
    """The least a cookie session tracker does in pure ASGI, with no store: find its cookie in the
    headers, check the id's shape, look it up in a dict, put it in the scope, and add
    ``Vary: Cookie`` to the response; with ``ping_url``, one ``redis.asyncio`` PING per request;
    with ``thread``, one call of nothing in anyio's worker threads (what a store in a thread adds)."""

    def __init__(
        self,
        app: ASGIApp,
        ping_url: str | None = None,
        thread: bool = False,
        pragma_path: str | None = None,
        poll_url: str | None = None,
    ) -> None:
        self.app = app
        self.thread = thread
        self.pragma_path = pragma_path
        self.poll_url = poll_url
        self.probe: Any = None  # the SQLite connection or the poll object, made at the first request
        self.sessions = {COOKIE_LIKE: object()}
        self.id_shape = re.compile(r"[A-Za-z0-9._:~-]{1,128}").fullmatch
        self.ping_url = ping_url
        self.client: Any = None  # made on the worker's loop at the first request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = ""
        for name, raw in scope["headers"]:
            if name == b"cookie":
                for part in raw.decode("latin-1").split(";"):
                    key, _, rest = part.strip().partition("=")
                    if key == "sessionmw":
                        value = rest
        scope["floor.session"] = self.sessions.get(value) if self.id_shape(value) else None
        if self.ping_url is not None:
            if self.client is None:
                from redis.asyncio import Redis

                self.client = Redis.from_url(self.ping_url)
            await self.client.ping()
        if self.thread:
            from anyio import to_thread

            await to_thread.run_sync(int)
        if self.pragma_path is not None:  # what the SQLite store's read cache asks on every hit
            if self.probe is None:
                self.probe = sqlite3.connect(self.pragma_path, timeout=0, isolation_level=None).cursor()
            self.probe.execute("PRAGMA data_version").fetchone()
        if self.poll_url is not None:  # what the Redis store's read cache asks on every hit
            if self.probe is None:
                self.probe = subscribed_poll(self.poll_url)
            self.probe.poll(0)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"vary", b"Cookie")]
            await send(message)

        await self.app(scope, receive, wrapped)


def subscribed_poll(redis_url: str) -> Any:
    """A ``select.poll`` on a connection subscribed to the invalidation channel of a Redis store,
    as the store's read cache keeps one (nothing is published on it here: each poll finds nothing)."""
    import select

    from redis import Redis

    pubsub = Redis.from_url(redis_url).pubsub()
    pubsub.subscribe("bench:floor:invalidations")
    pubsub.get_message(timeout=1.0)  # the subscription's confirmation
    poll = select.poll()
    poll.register(pubsub.connection._sock, select.POLLIN)  # type: ignore[union-attr]
    return poll


class SharedIncarnation:
    """Makes a memory store report the incarnation in ``BENCH_INCARNATION``: every uvicorn worker
    builds its own store, and without one incarnation each would refuse the others' ids."""

    @staticmethod
    def memory_store() -> Any:
        from sessionmw.stores import MemoryStore

        class Store(MemoryStore):
            def incarnation(self) -> str:
                return os.environ["BENCH_INCARNATION"]

        return Store()


class LoopMonitor:
    """A task that sleeps :data:`MONITOR_INTERVAL` over and over and records how late it wakes:
    the longest time the event loop was kept from running it."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.wakes = 0
        self.task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(MONITOR_INTERVAL)
            late = loop.time() - start - MONITOR_INTERVAL
            self.wakes += 1
            self.longest = max(self.longest, late)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        self.task = asyncio.get_running_loop().create_task(self._watch())
        try:
            yield
        finally:
            self.task.cancel()

    def read(self, reset: bool) -> dict[str, Any]:
        figures = {"longest_stall_ms": self.longest * 1e3, "wakes": self.wakes, "pid": os.getpid()}
        if reset:
            self.longest, self.wakes = 0.0, 0
        return figures


def stall_app(with_sessionmw: bool) -> Any:
    """The hello-world app with a loop-lag monitor at ``/_bench/stall`` (``?reset=1`` starts over),
    and sessionmw on ``BENCH_STORE_URL`` excluding :data:`STALL_EXCLUDE` if ``with_sessionmw``."""
    monitor = LoopMonitor()
    app = hello_app(lifespan=monitor.lifespan)

    @app.get("/_bench/stall")
    async def stall(reset: int = 0) -> dict[str, Any]:
        return monitor.read(bool(reset))

    if with_sessionmw:
        from sessionmw import SessionManager
        from sessionmw.integrations.asgi import install

        install(app, manager=SessionManager(store=os.environ["BENCH_STORE_URL"]), exclude=STALL_EXCLUDE)
    return app


def build(variant: str, env: MutableMapping[str, str]) -> Any:
    """The ASGI app of ``variant``, configured from ``env`` (see :func:`server_env`)."""
    if variant == "bare":
        return hello_app()
    if variant in ("memory", "sqlite", "redis", "redis-nocache"):
        from sessionmw import SessionManager
        from sessionmw.integrations.asgi import install

        store: Any = {
            "memory": SharedIncarnation.memory_store,
            "sqlite": lambda: env["BENCH_SQLITE_URL"],
            "redis": lambda: env["BENCH_STORE_URL"],
            "redis-nocache": lambda: env["BENCH_STORE_URL"] + "&cache=false",
        }[variant]()
        app = hello_app()
        install(app, manager=SessionManager(store=store))
        return app
    if variant == "starsessions":
        return starsessions_app(env["BENCH_REDIS_URL"], env["BENCH_PREFIX"])
    if variant == "floor-pass":
        return PassFloor(hello_app())
    if variant == "floor-cookie":
        return CookieFloor(hello_app())
    if variant == "floor-ping":
        return CookieFloor(hello_app(), ping_url=env["BENCH_REDIS_URL"])
    if variant == "floor-thread":
        return CookieFloor(hello_app(), thread=True)
    if variant == "floor-pragma":
        sqlite_path = env["BENCH_SQLITE_URL"].removeprefix("sqlite:///")
        sqlite3.connect(sqlite_path).execute("PRAGMA journal_mode=WAL").close()  # as the store's file
        return CookieFloor(hello_app(), pragma_path=sqlite_path)
    if variant == "floor-poll":
        return CookieFloor(hello_app(), poll_url=env["BENCH_REDIS_URL"])
    if variant in ("stall-bare", "stall-sessionmw"):
        return stall_app(with_sessionmw=variant == "stall-sessionmw")
    raise SystemExit(f"unknown BENCH_VARIANT {variant!r}")


def make_app() -> Any:
    """uvicorn's factory (``--factory bench_asgi:make_app``): the app ``BENCH_VARIANT`` names."""
    return build(os.environ["BENCH_VARIANT"], os.environ)


# -- the bench's own servers ------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline: float, what: str) -> None:
    """Poll until ``port`` accepts a connection; fail if the process exits or ``deadline`` passes."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on port {port} within {deadline} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop a process this bench started, by its pid: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def start_redis(folder: str) -> tuple[subprocess.Popen[bytes], int]:
    """The bench's own redis-server, without persistence, on a free loopback port."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*command, "--dir", folder], stdout=subprocess.DEVNULL)
    wait_for_port(proc, port, 20.0, "redis-server")
    return proc, port


def server_env(variant: str, folder: str, redis_port: int, prefix: str) -> dict[str, str]:
    """The environment a uvicorn server of ``variant`` builds its app from."""
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    return {
        **os.environ,
        "BENCH_VARIANT": variant,
        "BENCH_REDIS_URL": redis_url,
        "BENCH_STORE_URL": f"{redis_url}?prefix={prefix}",
        "BENCH_SQLITE_URL": f"sqlite:///{os.path.join(folder, 'sessions.db')}",
        "BENCH_PREFIX": prefix,
        "BENCH_INCARNATION": secrets.token_urlsafe(6),
        "SESSIONMW_SECRET_KEY": "bench-secret",
    }


def start_uvicorn(
    env: dict[str, str], workers: int, port: int, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    """uvicorn serving ``make_app`` with ``workers`` processes on ``port``."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench_asgi:make_app",
        "--app-dir",
        str(BENCH_DIR),
    ]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--loop", args.loop, "--http", args.http, "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(command, env=env)
    wait_for_port(proc, port, 60.0, f"uvicorn ({env['BENCH_VARIANT']})")
    return proc


def cookie_header(base: str) -> str:
    """Visit twice, returning the cookies set, so that a session is issued and stored."""
    cookies: dict[str, str] = {}
    for _ in range(2):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
        with urllib.request.urlopen(urllib.request.Request(base + "/", headers=headers), timeout=10) as reply:
            for value in reply.headers.get_all("Set-Cookie") or []:
                key, _, rest = value.partition("=")
                cookies[key] = rest.split(";")[0]
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def load() -> str:
    """The load averages (1, 5, 15 minutes), as uptime prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def versions() -> str:
    names = ("uvicorn", "uvloop", "httptools", "fastapi", "starlette", "starsessions", "redis", "sessionmw")
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    if wrk:
        found.append(wrk[0].split(" [")[0])
    return f"Python {sys.version.split()[0]}, " + ", ".join(found)


# -- throughput -------------------------------------------------------------------------------------


def have_asgi() -> bool:
    """Whether this checkout has sessionmw's ASGI middleware (its variants are skipped otherwise)."""
    try:
        return importlib.util.find_spec("sessionmw.integrations.asgi") is not None
    except ImportError:
        return False


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time (user + system, seconds) the processes ``pids`` have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it (uvicorn's master and its workers)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                parents[int(entry)] = int(handle.read().rpartition(")")[2].split()[1])
    tree = [pid]
    for member in tree:
        tree += [child for child, parent in parents.items() if parent == member]
    return tree


def children_cpu() -> float:
    """The CPU time of this process's waited-for children (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def throughput(
    args: argparse.Namespace, folder: str, redis_pid: int, redis_port: int, prefix: str
) -> dict[str, list[float]]:
    """Requests/s of each variant under uvicorn (2 workers) and wrk on loopback, in interleaved
    rounds; and the CPU time a request costs the server, wrk and the bench's Redis together."""
    chosen = {"bare", *(args.variant or VARIANTS.values())}
    variants = {name: v for name, v in VARIANTS.items() if v in chosen}
    if not have_asgi():
        print("(sessionmw.integrations.asgi is not in this checkout: its rows are skipped)")
        variants = {name: v for name, v in variants.items() if not name.startswith("sessionmw")}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    costs: dict[str, list[float]] = {name: [] for name in variants}  # CPU µs a request, all parties
    servers: list[subprocess.Popen[bytes]] = []
    targets: dict[str, list[str]] = {}
    trees: dict[str, list[int]] = {}
    try:
        for name, variant in variants.items():
            port = free_port()
            servers.append(start_uvicorn(server_env(variant, folder, redis_port, prefix), 2, port, args))
            base = f"http://127.0.0.1:{port}"
            cookie = f"sessionmw={COOKIE_LIKE}" if variant.startswith("floor-") else cookie_header(base)
            wrk = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", base + "/"]
            if cookie:
                wrk[1:1] = ["-H", f"Cookie: {cookie}"]
            targets[name] = wrk
            print(f"{name}: port {port}, cookie {cookie[:40]}{'...' if len(cookie) > 40 else ''}", flush=True)
        for wrk in targets.values():  # warm up: every worker's first requests
            subprocess.run([*wrk[:-2], "-d1s", wrk[-1]], capture_output=True, check=True)
        for server, name in zip(servers, targets, strict=True):
            trees[name] = process_tree(server.pid)
        names = list(targets)
        for number in range(args.rounds):
            print(f"round {number + 1}/{args.rounds} (load average {load()})", flush=True)
            # Each round starts one variant further on, so that no variant always follows another.
            for name in names[number % len(names) :] + names[: number % len(names)]:
                pids = [*trees[name], redis_pid]
                before = cpu_seconds(pids) + children_cpu()
                output = subprocess.run(targets[name], capture_output=True, text=True, check=True).stdout
                spent = cpu_seconds(pids) + children_cpu() - before
                match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
                count = re.search(r"([0-9]+) requests in", output)
                rates[name].append(float(match.group(1)) if match else float("nan"))
                costs[name].append(spent / int(count.group(1)) * 1e6 if count else float("nan"))
                if "Non-2xx" in output or "Socket errors" in output:
                    print(f"warning: {name} had errors or non-2xx responses:\n{output}")
    finally:
        for proc in servers:
            stop(proc)
    print(
        f"\nuvicorn --workers 2 ({args.loop}/{args.http}) + wrk -t2 -c{args.connections}, {args.rounds}"
        f" interleaved rounds of {args.seconds} s on 127.0.0.1, cookie sent back"
        f" (load average at the end {load()})"
    )
    report("requests/s", rates, variants, lambda value, bare: value / bare)
    print(
        "\nCPU time a request costs uvicorn's processes, wrk and the bench's redis-server together"
        " (µs); 'vs bare' is bare's cost over the variant's: the throughput ratio on a machine"
        " with nothing else running, where those processes share the 2 cores"
    )
    report("CPU µs/req", costs, variants, lambda value, bare: bare / value)
    return costs


def estimate(added: dict[str, float], costs: dict[str, list[float]]) -> None:
    """The ratio each variant would have under uvicorn on cores of its own: bare's whole cost a
    request (server, wrk, Redis: the CPU table's median) over that cost plus what the variant
    adds in process (the in-process table's best round against bare's)."""
    whole = statistics.median(costs["bare FastAPI"])
    print(
        f"\nestimate on cores of their own: bare's whole CPU cost is {whole:.0f} µs a request;"
        f" vs bare = {whole:.0f} / ({whole:.0f} + added in process)"
    )
    for name, extra in added.items():
        target = TARGETS.get(VARIANTS.get(name, ""))
        verdict = "" if target is None else f"  (target ≥{target})"
        print(f"  {name:<42} +{extra:>7.1f} µs  {whole / (whole + extra):.3f}x{verdict}")


def report(
    unit: str,
    figures: dict[str, list[float]],
    variants: dict[str, str],
    ratio: Callable[[float, float], float],
) -> None:
    """A table of the median of ``figures`` per variant, the median of each round's ratio to that
    round's bare figure, the ratios' spread, and the target; then every round's figure."""
    bare = figures["bare FastAPI"]
    print(f"| {'variant':<42} | {unit:>10} | {'vs bare':>8} | {'per-round min..max':>18} | target |")
    print(f"|{'-' * 44}|{'-' * 11}:|{'-' * 9}:|{'-' * 19}:|:------:|")
    for name, values in figures.items():
        ratios = sorted(ratio(value, base) for value, base in zip(values, bare, strict=True))
        median = statistics.median(ratios)
        target = TARGETS.get(variants[name])
        verdict = "" if target is None else (f"≥{target}: " + ("met" if median >= target else "MISSED"))
        spread = f"{ratios[0]:.3f}..{ratios[-1]:.3f}"
        middle = statistics.median(values)
        print(f"| {name:<42} | {middle:>10.0f} | {median:>7.3f}x | {spread:>18} | {verdict} |")
    print(f"per round ({unit}):")
    for name, values in figures.items():
        print(f"  {name:<42} " + " ".join(f"{value:>6.0f}" for value in values))


# -- loop health ------------------------------------------------------------------------------------


async def get(port: int, path: str, cookie: str, timeout: float) -> Sample:
    """One GET on a new connection (``Connection: close``): its start (perf_counter), its
    latency in seconds, and its status (0 if it failed or took longer than ``timeout``)."""
    start = time.perf_counter()
    status = 0
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            if cookie:
                head += f"Cookie: {cookie}\r\n"
            writer.write((head + "\r\n").encode())
            data = await reader.read()
            writer.close()
            with contextlib.suppress(ValueError, IndexError):
                status = int(data.split(b" ", 2)[1])
    except (TimeoutError, OSError):
        pass
    return start, time.perf_counter() - start, status


async def stall_run(port: int, cookie: str, redis_pid: int, pause: float) -> dict[str, Any]:
    """Session requests on 4 connections and an excluded request every 10 ms; the bench's Redis
    stopped (SIGSTOP) from 1 s for ``pause`` seconds; 2 s more after it is resumed."""
    await get(port, "/_bench/stall?reset=1", "", 5.0)
    excluded: list[Sample] = []
    sessions: list[Sample] = []
    t0 = time.perf_counter()
    end = t0 + 1.0 + pause + 2.0

    async def prober() -> None:
        while time.perf_counter() < end:
            excluded.append(await get(port, "/excluded", cookie, 10.0))
            await asyncio.sleep(0.01)

    async def session_client() -> None:  # paced, so that the bare run does not load the machine
        while time.perf_counter() < end:
            sessions.append(await get(port, "/", cookie, 10.0))
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(prober())] + [asyncio.create_task(session_client()) for _ in range(4)]
    stopped = resumed = 0.0
    try:
        await asyncio.sleep(1.0)
        os.kill(redis_pid, signal.SIGSTOP)
        stopped = time.perf_counter()
        await asyncio.sleep(pause)
    finally:
        os.kill(redis_pid, signal.SIGCONT)
        resumed = time.perf_counter()
    await asyncio.gather(*tasks)
    monitor = await stall_figures(port)

    def phase(samples: list[Sample], low: float, high: float) -> list[Sample]:
        return [sample for sample in samples if low <= sample[0] < high]

    return {
        "before": phase(excluded, t0, stopped),
        "during": phase(excluded, stopped, resumed),
        "after": phase(excluded, resumed, end + 60),
        "sessions_during": phase(sessions, stopped, resumed),
        "sessions": sessions,
        "monitor": monitor,
    }


async def stall_figures(port: int) -> dict[str, Any]:
    """The monitor's figures (``/_bench/stall``), read on a plain connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /_bench/stall HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    figures: dict[str, Any] = json.loads(data.partition(b"\r\n\r\n")[2])
    return figures


def describe(samples: list[Sample]) -> str:
    """Count, median, 99th percentile and max latency in ms, and the statuses, of ``samples``."""
    if not samples:
        return "no requests"
    latencies = sorted(sample[1] * 1e3 for sample in samples)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    statuses: dict[int, int] = {}
    for sample in samples:
        statuses[sample[2]] = statuses.get(sample[2], 0) + 1
    shown = ", ".join(f"{status or 'failed'}: {count}" for status, count in sorted(statuses.items()))
    return (
        f"{len(samples)} requests, median {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms,"
        f" max {latencies[-1]:.1f} ms ({shown})"
    )


def loop_health(
    args: argparse.Namespace, folder: str, redis_proc: subprocess.Popen[bytes], redis_port: int, prefix: str
) -> None:
    """The loop health run, bare and with sessionmw (see the module's docstring)."""
    print(f"\nloop health: uvicorn --workers 1, Redis stopped by SIGSTOP for {args.pause} s")
    print(f"(load average {load()})")
    for variant in ("stall-bare", "stall-sessionmw") if have_asgi() else ("stall-bare",):
        port = free_port()
        env = server_env(variant, folder, redis_port, prefix + "stall:")
        env["BENCH_STORE_URL"] += "&cache=false"
        proc = start_uvicorn(env, 1, port, args)
        try:
            cookie = cookie_header(f"http://127.0.0.1:{port}")
            for _ in range(args.stall_runs):
                figures = asyncio.run(stall_run(port, cookie, redis_proc.pid, args.pause))
                print(f"{variant} (cookie {'sent' if cookie else 'none'}):")
                print(f"  /excluded before the stop: {describe(figures['before'])}")
                print(f"  /excluded while Redis is stopped: {describe(figures['during'])}")
                print(f"  /excluded after it resumed: {describe(figures['after'])}")
                print(f"  session path (GET /) started while stopped: {describe(figures['sessions_during'])}")
                print(f"  session path, whole run: {describe(figures['sessions'])}")
                monitor = figures["monitor"]
                print(
                    f"  the loop's longest stall during the run: {monitor['longest_stall_ms']:.1f} ms"
                    f" ({monitor['wakes']} wakes of the {MONITOR_INTERVAL * 1e3:.0f} ms monitor,"
                    f" pid {monitor['pid']})"
                )
                during = figures["during"]
                worst = max((sample[1] for sample in during), default=float("nan")) * 1e3
                verdict = "met" if during and worst <= 50 else "MISSED"
                print(f"  target: /excluded within 50 ms while Redis is stopped: {verdict} ({worst:.1f} ms)")
        finally:
            stop(proc)


# -- profile ----------------------------------------------------------------------------------------


class InProcessClient:
    """Calls an ASGI app in process (no server, no socket) with a GET of ``/``, keeping the
    cookies it sets (name=value only), as a browser returns them."""

    def __init__(self, app: ASGIApp, cookies: dict[str, str] | None = None) -> None:
        self.app = app
        self.cookies = dict(cookies or {})
        self.status = 0

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name.lower() == b"set-cookie":
                    key, _, rest = value.decode("latin-1").partition("=")
                    self.cookies[key] = rest.split(";")[0]

    async def request(self) -> None:
        headers = [(b"host", b"127.0.0.1")]
        if self.cookies:
            headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode()))
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }
        await self.app(scope, self.receive, self.send)


def client_of(variant: str, folder: str, redis_port: int, prefix: str) -> InProcessClient:
    """An in-process client of ``variant``'s app (the floors send a sessionmw-like cookie)."""
    env = server_env(variant, folder, redis_port, prefix)
    os.environ["BENCH_INCARNATION"] = env["BENCH_INCARNATION"]
    os.environ.setdefault("SESSIONMW_SECRET_KEY", "bench-secret")
    cookies = {"sessionmw": COOKIE_LIKE} if variant.startswith("floor-") else None
    return InProcessClient(build(variant, env), cookies)


def run_loop(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on uvloop when it is installed (as uvicorn does), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def in_process(
    args: argparse.Namespace, folder: str, redis_pid: int, redis_port: int, prefix: str
) -> dict[str, float]:
    """CPU µs a request of each variant's app called in process (this process's CPU time, every
    thread, and the bench's redis-server's), in interleaved short rounds."""
    chosen = {"bare", *(args.variant or VARIANTS.values())}
    variants = {name: v for name, v in VARIANTS.items() if v in chosen}
    if not have_asgi():
        variants = {name: v for name, v in variants.items() if not name.startswith("sessionmw")}
    clients = {name: client_of(variant, folder, redis_port, prefix) for name, variant in variants.items()}
    samples: dict[str, list[float]] = {name: [] for name in clients}

    async def main() -> None:
        for name, client in clients.items():  # warm up: sessions issued, returned and stored
            for _ in range(200):
                await client.request()
            if client.status != 200:
                raise SystemExit(f"{name} answered {client.status} in process")
        names = list(clients)
        for number in range(args.ip_rounds):
            for name in names[number % len(names) :] + names[: number % len(names)]:
                client = clients[name]
                start = time.process_time() + cpu_seconds([redis_pid])
                for _ in range(args.ip_requests):
                    await client.request()
                spent = time.process_time() + cpu_seconds([redis_pid]) - start
                samples[name].append(spent / args.ip_requests * 1e6)

    run_loop(main)
    bare = samples["bare FastAPI"]
    print(
        f"\nin process (no server), {args.ip_rounds} interleaved rounds of {args.ip_requests} requests,"
        f" CPU µs a request of this process and the bench's redis-server (load average at the end"
        f" {load()}); CPU time, unlike wall time, does not count the time other work held the cores"
    )
    print(f"| {'variant':<42} | {'best':>6} | {'median':>6} | {'added':>6} | {'best vs bare':>12} |")
    print(f"|{'-' * 44}|{'-' * 7}:|{'-' * 7}:|{'-' * 7}:|{'-' * 13}:|")
    for name, values in samples.items():
        best = min(values)
        added = best - min(bare)
        print(
            f"| {name:<42} | {best:>6.1f} | {statistics.median(values):>6.1f} | {added:>6.1f} |"
            f" {best / min(bare):>11.2f}x |"
        )
    return {name: min(values) - min(bare) for name, values in samples.items()}


def profile(variant: str, folder: str, redis_port: int, prefix: str, requests: int) -> None:
    """Call ``variant``'s app in process ``requests`` times with its cookie and show where the time goes."""
    client = client_of(variant, folder, redis_port, prefix)

    async def drive() -> None:
        for _ in range(200):
            await client.request()
        try:
            from pyinstrument import Profiler
        except ImportError:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(requests):
                await client.request()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            return
        started = time.perf_counter()
        with Profiler(interval=0.0002, async_mode="disabled") as pyprofiler:
            for _ in range(requests):
                await client.request()
        each = (time.perf_counter() - started) / requests * 1e6
        print(f"{variant}: {each:.1f} µs a request under the profiler (status {client.status})")
        print(pyprofiler.output_text(unicode=True, color=False, show_all=False))

    run_loop(drive)


def parts(rounds: int = 7, number: int = 20000) -> None:
    """CPU µs of each part of sessionmw's ASGI request path on the memory store, around an app
    that only answers (two response headers), best of ``rounds`` rounds of ``number`` calls; then
    the same middleware around the hello-world FastAPI app."""
    import timeit

    from sessionmw import SessionManager
    from sessionmw._context import enter_scope, leave_scope
    from sessionmw.integrations import asgi

    os.environ.setdefault("SESSIONMW_SECRET_KEY", "bench-secret")
    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"27"), (b"content-type", b"application/json")],
    }

    async def trivial(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start)
        await send({"type": "http.response.body", "body": b'{"message":"Hello, World!"}'})

    middleware = asgi.SessionMiddleware(trivial, manager=SessionManager(store="memory://"))
    gate = middleware.gate
    around = "the middleware around it"
    around_fastapi = "the middleware around FastAPI hello world"
    clients = {
        "the trivial app": InProcessClient(trivial),
        around: InProcessClient(middleware),
        "FastAPI hello world": InProcessClient(hello_app()),
        around_fastapi: InProcessClient(asgi.SessionMiddleware(hello_app(), manager=SessionManager())),
    }
    figures: dict[str, float] = {}

    def best(call: Callable[[], object]) -> float:
        return min(timeit.repeat(call, number=number, repeat=rounds, timer=time.process_time)) / number * 1e6

    async def timed(call: Callable[[], Awaitable[object]]) -> float:
        times = []
        for _ in range(rounds):
            begin = time.process_time()
            for _ in range(number // 4):
                await call()
            times.append((time.process_time() - begin) / (number // 4) * 1e6)
        return min(times)

    async def main() -> None:
        for client in clients.values():
            for _ in range(300):
                await client.request()
        for name, client in clients.items():
            figures[name] = await timed(client.request)
        cookie = f"sessionmw={clients[around].cookies['sessionmw']}".encode()
        scope: Scope = {"type": "http", "path": "/", "root_path": "", "method": "GET"}
        scope["headers"] = [(b"host", b"127.0.0.1"), (b"cookie", cookie)]
        request = asgi.ScopeRequest(scope)
        session, answer = await gate.aadmit(request)
        assert session is not None and answer is None
        figures["ScopeRequest + gate.aadmit"] = await timed(lambda: gate.aadmit(asgi.ScopeRequest(scope)))
        figures["  of which manager.atouch_or_report"] = await timed(
            lambda: gate.manager.atouch_or_report(session.id)
        )
        figures["gate.afinish"] = await timed(lambda: gate.afinish(session, 200))
        figures["ScopeRequest(scope)"] = best(lambda: asgi.ScopeRequest(scope))
        raw = start["headers"]
        figures["gate.response_headers_raw (response start)"] = best(
            lambda: gate.response_headers_raw(session, request, raw)
        )
        figures["enter_scope + leave_scope"] = best(
            lambda: leave_scope(enter_scope(gate.manager, session.id, session.store_pending))
        )

    run_loop(main)
    print(f"CPU µs a call, best of {rounds} rounds (load average {load()})")
    for name, value in figures.items():
        print(f"  {value:7.2f}  {name}")
    own = figures[around] - figures["the trivial app"]
    with_fastapi = figures[around_fastapi] - figures["FastAPI hello world"]
    print(f"the middleware adds {own:.2f} µs to the trivial app, {with_fastapi:.2f} µs to FastAPI's")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk's duration per variant and round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=8, help="wrk's connections (-c)")
    parser.add_argument(
        "--variant",
        action="append",
        choices=sorted(set(VARIANTS.values()) - {"bare"}),
        help="only these variants (and bare); repeat it",
    )
    parser.add_argument("--loop", default="auto", help="uvicorn's --loop (auto: uvloop when installed)")
    parser.add_argument("--http", default="auto", help="uvicorn's --http (auto: httptools when installed)")
    parser.add_argument("--no-wrk", action="store_true", help="skip the throughput rounds")
    parser.add_argument("--no-stall", action="store_true", help="skip the loop health run")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds Redis is stopped (SIGSTOP)")
    parser.add_argument("--stall-runs", type=int, default=1, help="loop health runs per variant")
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process rounds")
    parser.add_argument("--ip-rounds", type=int, default=30, help="in-process rounds")
    parser.add_argument("--ip-requests", type=int, default=1000, help="requests per in-process round")
    parser.add_argument("--profile", metavar="VARIANT", help="profile VARIANT's app in process and stop")
    parser.add_argument("--profile-requests", type=int, default=20000)
    parser.add_argument("--parts", action="store_true", help="time the parts of the memory store's path")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not (args.no_wrk or args.profile):
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    prefix = f"bench-asgi-{secrets.token_hex(4)}:"
    print(versions())
    if args.parts:
        parts()
        return
    print(f"{os.cpu_count()} cores; load average at the start {load()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        redis_proc, redis_port = start_redis(folder)
        try:
            if args.profile:
                profile(args.profile, folder, redis_port, prefix, args.profile_requests)
                return
            added = {} if args.no_in_process else in_process(args, folder, redis_proc.pid, redis_port, prefix)
            if not args.no_wrk:
                costs = throughput(args, folder, redis_proc.pid, redis_port, prefix)
                if added:
                    estimate(added, costs)
            if not args.no_stall:
                loop_health(args, folder, redis_proc, redis_port, prefix)
        finally:
            stop(redis_proc)


if __name__ == "__main__":
    main()
