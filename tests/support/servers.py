"""Servers on loopback for the tests: a free port, waiting for one to listen, stopping it by pid,
the demo and gunicorn apps, and the clients that call them (WSGI, HTTP JSON, Dash callbacks)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
def demo_server(
    port: int, state: Path, log: Path, *options: str, settings: dict[str, str] | None = None
) -> Iterator[None]:
    """``python -m sessionmw demo --port <port> OPTIONS`` with its state folder in ``state`` and no
    SESSIONMW_* settings but ``settings`` (environment variables), its output in ``log``; stopped
    by its pid."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIONMW_")}
    env.update(settings or {})
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


# -- a Dash app's server on any backend, driven in process ---------------------------------------


class Reply:
    """A response read in full, the same on every backend's test client."""

    def __init__(self, status: int, headers: Any, data: bytes) -> None:
        self.status_code = status
        self.headers = headers  # case-insensitive, as each client gives them
        self.data = data

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        return None if value is None else str(value)

    def get_json(self) -> Any:
        return json.loads(self.data)

    def get_data(self, as_text: bool = False) -> Any:
        return self.data.decode("utf-8") if as_text else self.data


class _Cookie:
    def __init__(self, value: str) -> None:
        self.value = value


class BackendClient:
    """A sync test client of a Dash app's server, whatever its backend: Flask's test client,
    Quart's (on an event loop of its own) or Starlette's TestClient (FastAPI, with its lifespan:
    Dash adds its catch-all route at startup). Cookies are kept between requests."""

    def __init__(self, app: Any) -> None:
        self.application = app.server
        self.backend = getattr(app.backend, "server_type", "flask")
        self._runner: Any = None
        if self.backend == "flask":
            self._client: Any = app.server.test_client()
        elif self.backend == "quart":
            import asyncio

            self._runner = asyncio.Runner()
            self._client = app.server.test_client()
        else:
            from starlette.testclient import TestClient

            self._client = TestClient(app.server)
            self._client.__enter__()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
        elif self.backend == "fastapi":
            self._client.__exit__(None, None, None)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.open("GET", path, headers=headers)

    def post(self, path: str, data: str | bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        return self.open("POST", path, data=data, headers=headers)

    def open(
        self, method: str, path: str, *, data: str | bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        headers = dict(headers or {})
        if self.backend == "flask":
            response = self._client.open(path, method=method, data=data, headers=headers)
            return Reply(response.status_code, response.headers, response.get_data())
        if self.backend == "quart":

            async def call() -> Reply:
                body = data.encode("utf-8") if isinstance(data, str) else data
                response = await self._client.open(path, method=method, data=body, headers=headers)
                return Reply(response.status_code, response.headers, await response.get_data())

            reply: Reply = self._runner.run(call())
            return reply
        response = self._client.request(method, path, content=data or None, headers=headers)
        return Reply(response.status_code, response.headers, response.content)

    def get_cookie(self, name: str) -> _Cookie | None:
        """The client's cookie ``name`` (None when it holds none)."""
        if self.backend == "flask":
            cookie = self._client.get_cookie(name)
            return None if cookie is None else _Cookie(cookie.value)
        if self.backend == "quart":
            jar = self._client.cookie_jar
            value = next((cookie.value for cookie in jar if cookie.name == name), None) if jar else None
            return None if value is None else _Cookie(value)
        value = self._client.cookies.get(name)
        return None if value is None else _Cookie(value)
