"""Two gunicorn workers with read caches: a disconnect made in one is refused by the other at once."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import free_port, wait_for_port

redis = pytest.importorskip("redis")

REDIS_URL = os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
THRESHOLD = 3

APP = textwrap.dedent(
    f"""
    import os

    import redis
    from flask import Flask, jsonify

    from sessionmw.integrations.flask import SessionMW, current_session

    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["GTEST_SECRET"]
    app.config["SESSIONMW_STORE_URL"] = os.environ["GTEST_STORE_URL"]
    app.config["SESSIONMW_MAX_ERROR_THRESHOLD"] = {THRESHOLD}
    control = redis.Redis.from_url(os.environ["GTEST_REDIS_URL"])
    prefix = os.environ["GTEST_PREFIX"]


    @app.get("/whoami")
    def whoami():
        return jsonify(pid=os.getpid(), session=current_session.id)


    @app.get("/hold")
    def hold():
        control.rpush(prefix + "held", os.getpid())
        control.blpop([prefix + "release"], timeout=30)
        return jsonify(pid=os.getpid())


    @app.get("/fail")
    def fail():
        raise RuntimeError("backend failed")


    SessionMW(app)
    """
)


@contextlib.contextmanager
def _gunicorn(tmp_path: Path, prefix: str, store_url: str) -> Iterator[str]:
    """gunicorn with 2 sync workers on a free loopback port; stopped by pid."""
    (tmp_path / "capp.py").write_text(APP, encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "GTEST_SECRET": secrets.token_hex(16),
        "GTEST_STORE_URL": store_url,
        "GTEST_REDIS_URL": REDIS_URL,
        "GTEST_PREFIX": prefix,
    }
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    command += ["--chdir", str(tmp_path), "--timeout", "60", "capp:app"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(proc, port, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def _get(url: str, cookie: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Accept": "application/json"}
    if cookie is not None:
        headers["Cookie"] = f"sessionmw={cookie}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=40) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture(name="control")
def _control() -> Iterator[Any]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI=true but {REDIS_URL} does not answer: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}")
    yield client
    client.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_disconnect_in_one_worker_is_refused_by_the_other(kind: str, tmp_path: Path, control: Any) -> None:
    prefix = f"ctest-{secrets.token_hex(6)}"
    store_url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"{REDIS_URL}?prefix={prefix}"
    try:
        with _gunicorn(tmp_path, prefix, store_url) as base:
            _, headers, _ = _get(base + "/whoami")
            sid = headers["Set-Cookie"].partition("=")[2].split(";")[0]

            def on_the_other(call: Callable[[], Any]) -> tuple[int, Any]:
                """Hold one worker busy (a request without the session) and run ``call`` on the
                other; return the held worker's pid and what ``call`` returned."""
                with ThreadPoolExecutor(max_workers=1) as pool:
                    held = pool.submit(_get, base + "/hold")
                    popped = control.blpop([prefix + "held"], timeout=30)
                    assert popped is not None, "no worker picked up /hold"
                    try:
                        return int(popped[1]), call()
                    finally:
                        control.rpush(prefix + "release", 1)
                        held.result(timeout=40)

            served: set[int] = set()
            for _ in range(40):  # until both workers have served (and cached) the healthy session
                _, (status, _, body) = on_the_other(lambda: _get(base + "/whoami", sid))
                assert (status, body["session"]) == (200, sid)
                served.add(body["pid"])
                if len(served) == 2:
                    break
            assert len(served) == 2, "the same worker answered every time"
            held, failures = on_the_other(lambda: [_get(base + "/fail", sid)[0] for _ in range(THRESHOLD)])
            assert failures == [500] * THRESHOLD
            (changer,) = served - {held}
            for _ in range(40):  # until the worker that did not see the errors answers
                held, (status, _, body) = on_the_other(lambda: _get(base + "/whoami", sid))
                assert (status, body["status"]) == (503, "disconnected")
                if held == changer:
                    break
            assert held == changer, "the worker that recorded the errors answered every time"
    finally:
        for key in control.scan_iter(match=f"*{prefix}*"):
            control.delete(key)
