"""Helpers the tests share (imported as ``support``): fake sleeps, a store that counts its
operations (``CountedStore``) and sessions in each state, servers on loopback."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sessionmw import SessionManager
from sessionmw._session import Policy, SessionRecord
from sessionmw._states import Event, SessionState
from sessionmw._transitions import Change
from sessionmw.stores._base import Outcome, SessionStore
from sessionmw.testing import FakeClock

if TYPE_CHECKING:  # (bench/bench_wsgi.py imports this module without pytest)
    import pytest


class Sleeps:
    """A fake sleep that records each wait and moves a FakeClock forward by it (if given one)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self(seconds)


class CountedStore:
    """A store that counts every operation made on the store it wraps: its sessions (``create``,
    ``update:<event>``, ``get``, ...), its ``incarnation`` reads, and the operations of the breaker
    (``breaker:<op>``) and counter (``counters:<method>``) backends kept beside them.

    Not to be confused with :class:`sessionmw.stores.counters.CountingStore`, the protocol of a
    store that keeps analytics counters.
    """

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.max_sessions = inner.max_sessions
        self.calls: Counter[str] = Counter()

    def create(self, record: SessionRecord, now: float, policy: Policy) -> None:
        self.calls["create"] += 1
        self.inner.create(record, now, policy)

    def update(
        self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
    ) -> Outcome | None:
        self.calls[f"update:{event}"] += 1
        return self.inner.update(session_id, event, now, policy, error)

    def get(self, session_id: str) -> SessionRecord | None:
        self.calls["get"] += 1
        return self.inner.get(session_id)

    def delete(self, session_id: str) -> bool:
        self.calls["delete"] += 1
        return self.inner.delete(session_id)

    def sweep(self, now: float, policy: Policy, limit: int = 1000) -> list[Change]:
        self.calls["sweep"] += 1
        return self.inner.sweep(now, policy, limit)

    def count(self, state: SessionState | None = None) -> int:
        self.calls["count"] += 1
        return self.inner.count(state)

    def records(self, state: SessionState | None = None) -> Iterator[SessionRecord]:
        self.calls["records"] += 1
        return self.inner.records(state)

    @property
    def namespace(self) -> str:
        """The wrapped store's namespace (no operation: a name)."""
        namespace = getattr(self.inner, "namespace", None)
        if not isinstance(namespace, str):
            raise AttributeError("namespace")
        return namespace

    @property
    def incarnation(self) -> Callable[[], str]:
        """The wrapped store's ``incarnation``, counted (missing if the wrapped store has none)."""
        read = getattr(self.inner, "incarnation", None)
        if read is None:
            raise AttributeError("incarnation")

        def incarnation() -> str:
            self.calls["incarnation"] += 1
            return str(read())

        return incarnation

    def breakers(self) -> Any:
        """The wrapped store's breaker backend (a memory one if it keeps none), counted."""
        from sessionmw.stores.breakers import MemoryBreakers

        make = getattr(self.inner, "breakers", None)
        return _CountedBackend(make() if make is not None else MemoryBreakers(), self.calls, "breaker")

    def counters(self) -> Any:
        """The wrapped store's counter backend (a memory one if it keeps none), counted."""
        from sessionmw.stores.counters import MemoryCounters

        make = getattr(self.inner, "counters", None)
        return _CountedBackend(make() if make is not None else MemoryCounters(), self.calls, "counters")

    def close(self) -> None:
        self.inner.close()


class _CountedBackend:
    """A breaker or counter backend whose operations are counted as ``<kind>:<what>`` (a breaker's
    ``apply`` by its operation, e.g. ``breaker:read``)."""

    def __init__(self, inner: Any, calls: Counter[str], kind: str) -> None:
        self._inner = inner
        self._calls = calls
        self._kind = kind

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            what = name
            if name == "apply" and len(args) > 1:  # apply(name, op, ...): by the operation
                what = getattr(args[1], "value", name)
            self._calls[f"{self._kind}:{what}"] += 1
            return method(*args, **kwargs)

        return counted


def created(store: SessionStore, session_id: str, now: float, policy: Policy) -> str:
    """Create a new session ``session_id`` in ``store``: ``"created"``, or ``"exists"`` if it did."""
    from sessionmw import SessionExistsError

    try:
        store.create(SessionRecord.new(session_id, now), now, policy)
    except SessionExistsError:
        return "exists"
    return "created"


def walk(operations: list[tuple[object, ...]], run: str, now: float) -> Iterator[tuple[str, str, Any, float]]:
    """A differential test's operations, from the clock time ``now``: ``("advance", seconds)`` moves
    the clock on; every other one is yielded as ``(kind, session id, event, now)``, the session
    id ``f"{run}-{name}"`` for ``(kind, name[, event])`` (``""`` without a name), the event None
    when there is none."""
    for operation in operations:
        kind = str(operation[0])
        if kind == "advance":
            now += float(operation[1])  # type: ignore[arg-type]
            continue
        session_id = f"{run}-{operation[1]}" if kind != "sweep" else ""
        event = operation[2] if len(operation) > 2 else None
        assert event is None or isinstance(event, Event)
        yield kind, session_id, event, now


def assert_same_outcome(got: Outcome | None, expected: Outcome | None) -> None:
    """A store's update outcome is the model's: the same record, changes and refusal."""
    if expected is None or got is None:
        assert expected is got
    else:
        assert got.record == expected.record
        assert got.changes == expected.changes
        assert repr(got.refused) == repr(expected.refused)


def healthy_session(manager: SessionManager, clock: FakeClock) -> str:
    """A new, active session."""
    return manager.create_session().session_id


def idle_session(manager: SessionManager, clock: FakeClock) -> str:
    """A session left alone past ``idle_after``."""
    session_id = manager.create_session().session_id
    clock.advance(manager.policy.idle_after + 1)
    return session_id


def error_session(manager: SessionManager, clock: FakeClock) -> str:
    """A session with one error recorded (under the threshold)."""
    session_id = manager.create_session().session_id
    manager.record_error(session_id, ConnectionError("flaky"))
    return session_id


def disconnected_session(manager: SessionManager, clock: FakeClock) -> str:
    """A session that reached the error threshold."""
    session_id = manager.create_session().session_id
    for _ in range(manager.policy.error_threshold):
        manager.record_error(session_id, ConnectionError("down"))
    return session_id


def expired_session(manager: SessionManager, clock: FakeClock) -> str:
    """A session left alone past the inactivity timeout (expired on its next read)."""
    session_id = manager.create_session().session_id
    clock.advance(manager.policy.timeout + 1)
    return session_id


def unknown_session(manager: SessionManager, clock: FakeClock) -> str:
    """An id the store has never seen (well-formed)."""
    return "no-such-session"


#: Each kind of session a request can come with, by name: ``make(manager, clock) -> session id``.
SESSION_KINDS: dict[str, Callable[[SessionManager, FakeClock], str]] = {
    "healthy": healthy_session,
    "idle": idle_session,
    "error": error_session,
    "disconnected": disconnected_session,
    "expired": expired_session,
    "unknown": unknown_session,
}


#: Processes for the multi-process tests: spawned (a fresh interpreter, as under gunicorn).
SPAWN = multiprocessing.get_context("spawn")


def collect(results: Any, count: int, processes: list[Any]) -> list[Any]:
    """``count`` results from the children; fails fast if one of them dies."""
    collected: list[Any] = []
    waited = 0.0
    while len(collected) < count:
        try:
            collected.append(results.get(timeout=1.0))
        except queue.Empty:
            waited += 1.0
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead or waited > 120:
                import pytest

                pytest.fail(f"worker processes failed (exit codes {dead}) or hung")
    return collected


def run_processes(target: Callable[..., None], url: str, count: int) -> list[Any]:
    """Run ``target(url, worker, barrier, results)`` in ``count`` spawned processes (``worker``
    from 0; a barrier of ``count``); return what each put on ``results``, in arrival order."""
    barrier = SPAWN.Barrier(count)
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(url, w, barrier, results)) for w in range(count)]
    for process in processes:
        process.start()
    try:
        collected = collect(results, count, processes)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * count
    return collected


def shared_store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a store of ``kind`` for one test: ``memory``, ``sqlite`` (a file in
    ``tmp_path``), ``redis`` (the test Redis, under the test's own key prefix, deleted afterwards)
    or ``redis-cluster`` (or ``cluster``: the private cluster, under a fresh prefix, nothing to
    clean up)."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    if kind == "redis":
        return f"{request.getfixturevalue('redis_url')}?prefix={request.getfixturevalue('redis_prefix')}"
    if kind in ("redis-cluster", "cluster"):
        return f"{request.getfixturevalue('redis_cluster_url')}?prefix=t{secrets.token_hex(6)}&cluster=true"
    raise ValueError(f"no store kind {kind!r}")


#: Chrome flags for dash.testing's browser tests: headless Debian chromium, as root in CI.
CHROME_ARGUMENTS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1100,900",
)


def chrome_options() -> Any:
    """Chrome options for dash.testing: a headless chromium (``DASH_TEST_CHROMEPATH`` wins); for the
    ``pytest_setup_options`` hook of tests/conftest.py and of scripts/dash_suite_plugin.py."""
    import shutil

    from selenium.webdriver.chrome.options import Options

    options = Options()
    add_argument: Any = options.add_argument  # untyped in selenium
    for argument in CHROME_ARGUMENTS:
        add_argument(argument)
    binary = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium")
    if binary:
        options.binary_location = binary
    return options


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[Any], timeout: float) -> None:
    """Stop a server this test started, by its pid: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def run_wsgi(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call a WSGI app once, drain and close its body: the status line, headers and body."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen["status"], seen["headers"], body


def wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline: float) -> None:
    """Poll until ``port`` accepts a connection; fail if the process exits or time runs out."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):  # the pause between polls
            proc.wait(timeout=0.05)
        if proc.returncode is not None:
            stream = proc.stderr if proc.stderr is not None else proc.stdout
            err = stream.read().decode() if stream is not None else ""
            raise AssertionError(f"server exited with {proc.returncode}: {err}")
    raise AssertionError(f"server did not listen on port {port} within {deadline} s")


@contextlib.contextmanager
def demo_server(port: int, state: Path, log: Path, *options: str) -> Iterator[None]:
    """``python -m sessionmw demo --port <port> OPTIONS`` with its state folder in ``state`` and no
    SESSIONMW_* settings, its output in ``log``; stopped by its pid."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIONMW_")}
    env["XDG_STATE_HOME"] = str(state)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sessionmw", "demo", "--port", str(port), *options],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(proc, port, 60.0)
        yield
    finally:
        stop(proc, 30)


@contextlib.contextmanager
def gunicorn_app(tmp_path: Path, source: str, env: dict[str, str]) -> Iterator[str]:
    """gunicorn (2 sync workers) serving ``app`` of the module ``source`` on a free loopback port,
    with ``env`` added to the environment; yields its base URL; stopped by its pid."""
    (tmp_path / "gunicorn_app.py").write_text(source, encoding="utf-8")
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    command += ["--chdir", str(tmp_path), "--timeout", "60", "gunicorn_app:app"]
    proc = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(proc, port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc, 15)
        if proc.stderr is not None:
            proc.stderr.close()


#: A Flask app with SessionMW for gunicorn tests (see :func:`flask_gunicorn`): ``/whoami``,
#: ``/hold`` (blocks its worker on a Redis list until ``?until=`` (default ``release``) is pushed,
#: after pushing its pid to ``held``), ``/fail``; with ``GTEST_METRICS`` set, the metrics endpoint.
FLASK_GUNICORN_APP = """
import os

import redis
from flask import Flask, jsonify, request

from sessionmw.integrations.flask import SessionMW, current_session

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["GTEST_SECRET"]
app.config["SESSIONMW_STORE_URL"] = os.environ["GTEST_STORE_URL"]
app.config["SESSIONMW_MAX_ERROR_THRESHOLD"] = int(os.environ["GTEST_THRESHOLD"])
control = redis.Redis.from_url(os.environ["GTEST_REDIS_URL"])
prefix = os.environ["GTEST_PREFIX"]


@app.get("/whoami")
def whoami():
    return jsonify(pid=os.getpid(), session=current_session.id)


@app.get("/hold")
def hold():
    control.rpush(prefix + "held", os.getpid())
    control.blpop([prefix + request.args.get("until", "release")], timeout=30)
    return jsonify(pid=os.getpid(), session=current_session.id)


@app.get("/fail")
def fail():
    raise RuntimeError("backend failed")


if os.environ.get("GTEST_METRICS"):
    from sessionmw.metrics import instrument

    app.config["SESSIONMW_METRICS_PATH"] = "/metrics"
    SessionMW(app)
    instrument(app.extensions["sessionmw"].manager)  # counts into the store, serves its totals
else:
    SessionMW(app)
"""


def flask_gunicorn(
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    store_url: str,
    *,
    threshold: int = 1000,
    metrics: bool = False,
) -> contextlib.AbstractContextManager[str]:
    """:data:`FLASK_GUNICORN_APP` in gunicorn (2 sync workers, see :func:`gunicorn_app`), its
    control list keys under ``prefix`` in ``redis_url``, the sessions in ``store_url``."""
    env = {
        "GTEST_SECRET": secrets.token_hex(16),
        "GTEST_STORE_URL": store_url,
        "GTEST_THRESHOLD": str(threshold),
        "GTEST_REDIS_URL": redis_url,
        "GTEST_PREFIX": prefix,
        **({"GTEST_METRICS": "1"} if metrics else {}),
    }
    return gunicorn_app(tmp_path, FLASK_GUNICORN_APP, env)


def session_cookie(client: Any) -> str:
    """The ``sessionmw`` cookie a Flask test client holds (there must be one)."""
    cookie = client.get_cookie("sessionmw")
    assert cookie is not None
    return str(cookie.value)


def _parts(key: str) -> list[str]:
    """A Dash callback key's outputs (``id.prop``, ``@hash`` suffixes kept)."""
    return key.strip(".").split("...")


def callback_payload(
    app: Any,
    outputs: list[str],
    inputs: list[tuple[str, str, Any]],
    state: list[tuple[str, str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body Dash's renderer POSTs for one callback of the Dash ``app`` (outputs as
    ``id.prop``)."""
    key = next(key for key in app.callback_map if [p.split("@")[0] for p in _parts(key)] == outputs)
    specs = [part.rsplit(".", 1) for part in _parts(key)]
    listed = [{"id": oid, "property": prop} for oid, prop in specs]
    return {
        "output": key,
        "outputs": listed if len(listed) > 1 else listed[0],
        "inputs": [{"id": iid, "property": prop, "value": value} for iid, prop, value in inputs],
        "state": [{"id": sid, "property": prop, "value": value} for sid, prop, value in state or []],
        "changedPropIds": [f"{iid}.{prop}" for iid, prop, _ in inputs],
    }


def fire_callback(
    app: Any,
    client: Any,
    outputs: list[str],
    inputs: list[tuple[str, str, Any]],
    state: list[tuple[str, str, Any]] | None = None,
    *,
    accept: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    """POST one callback request of the Dash ``app`` the way Dash's renderer does, through the Flask
    test ``client`` (outputs as ``id.prop``); return the status and the JSON body."""
    response = client.post(
        "/_dash-update-component",
        data=json.dumps(callback_payload(app, outputs, inputs, state)),
        headers={"Content-Type": "application/json", "Accept": accept},
    )
    return response.status_code, (json.loads(response.data) if response.data else {})


def get_json(url: str, cookie: str | None = None) -> tuple[int, dict[str, str], Any]:
    """GET ``url`` (JSON wanted) with the session cookie; return status, headers, decoded body."""
    headers = {"Accept": "application/json"}
    if cookie is not None:
        headers["Cookie"] = f"sessionmw={cookie}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=40) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, without persistence; stopped by pid."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import shutil

        import pytest

        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed")
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.process, self.port, 20)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None


class LocalRedisCluster:
    """A Redis Cluster of ``nodes`` primaries on free loopback ports, in ``folder``; stopped by pid.

    The slots are split evenly with ``CLUSTER ADDSLOTSRANGE`` and the nodes joined with
    ``CLUSTER MEET``; :meth:`start` returns once every node reports ``cluster_state:ok``.
    """

    def __init__(self, folder: str, nodes: int = 3) -> None:
        self.folder = folder
        ports: set[int] = set()
        while len(ports) < 2 * nodes:  # free_port may hand out the same port twice in a row
            ports.add(free_port())
        # Each node's client port, and its cluster bus port (Redis 7's cluster-port; by default
        # the bus is the client port + 10000, which may be out of range or taken).
        self.ports = sorted(ports)[:nodes]
        self.bus_ports = sorted(ports)[nodes:]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The URL of the first node (a cluster client finds the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, deadline: float = 20.0) -> None:
        import os
        import shutil

        import redis

        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is not installed"
        for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
            node_dir = os.path.join(self.folder, str(port))
            os.makedirs(node_dir, exist_ok=True)
            command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
            command += ["no", "--cluster-enabled", "yes", "--cluster-port", str(bus_port), "--dir", node_dir]
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.processes.append(proc)
            wait_for_port(proc, port, deadline)
        clients: list[Any] = [redis.Redis(port=port, socket_timeout=5) for port in self.ports]
        try:
            share = 16384 // len(self.ports)
            for index, client in enumerate(clients):
                last = 16383 if index == len(clients) - 1 else (index + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", index * share, last)
            for port, bus_port in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus_port)
            end = time.monotonic() + deadline
            while not all(_cluster_ok(client) for client in clients):
                if time.monotonic() > end:
                    raise AssertionError(f"the cluster on {self.ports} did not become ready in {deadline} s")
                with contextlib.suppress(subprocess.TimeoutExpired):  # the pause between polls
                    self.processes[0].wait(timeout=0.05)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        """Stop every node by its pid."""
        for proc in self.processes:
            proc.kill()
        for proc in self.processes:
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        self.processes = []


def _cluster_ok(client: Any) -> bool:
    """True once ``CLUSTER INFO`` says ``cluster_state:ok`` (redis-py parses it into a dict)."""
    info = client.execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return bool(info.get("cluster_state") == "ok")
    return b"cluster_state:ok" in info


@pytest.fixture(autouse=True)
def fresh_breaker_registry() -> Iterator[None]:
    """The process's registry of breakers emptied around each test of a module that imports this
    (a session's health lists the process's breakers: only that test's)."""
    from sessionmw import _breaker as breaker_module

    breaker_module._REGISTRY.clear()
    yield
    breaker_module._REGISTRY.clear()
