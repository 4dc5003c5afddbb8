"""A real server: gunicorn with 2 worker processes on 127.0.0.1, sessions in the Redis store.

One client's session is the same whichever worker answers, and its error count is exact after
concurrent failing requests. The app holds one worker on a Redis list (BLPOP) so that the other
worker must answer: no timing assumptions.
"""

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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import free_port, wait_for_port

from sessionmw import SessionManager

redis = pytest.importorskip("redis")

REDIS_URL = os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

APP = textwrap.dedent(
    """
    import os

    import redis
    from flask import Flask, jsonify

    from sessionmw.integrations.flask import SessionMW, current_session

    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["GTEST_SECRET"]
    app.config["SESSIONMW_STORE_URL"] = os.environ["GTEST_STORE_URL"]
    app.config["SESSIONMW_MAX_ERROR_THRESHOLD"] = 1000
    control = redis.Redis.from_url(os.environ["GTEST_REDIS_URL"])
    prefix = os.environ["GTEST_PREFIX"]


    @app.get("/whoami")
    def whoami():
        return jsonify(pid=os.getpid(), session=current_session.id)


    @app.get("/hold")
    def hold():
        control.rpush(prefix + "held", os.getpid())
        control.blpop([prefix + "release"], timeout=30)
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
)


@pytest.fixture(name="redis_client")
def _redis_client() -> Iterator[Any]:
    """A client of the test Redis (database 15); missing Redis fails under CI=true."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI=true but {REDIS_URL} does not answer: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}")
    yield client
    client.close()


@pytest.fixture(name="prefix")
def _prefix(redis_client: Any) -> Iterator[str]:
    """A unique key prefix; its keys are deleted afterwards."""
    prefix = f"gtest-{secrets.token_hex(6)}"
    yield prefix
    for key in redis_client.scan_iter(match=f"*{prefix}*"):
        redis_client.delete(key)


@contextlib.contextmanager
def gunicorn(tmp_path: Path, prefix: str, store_url: str, *, metrics: bool = False) -> Iterator[str]:
    """Run gunicorn (2 sync workers) on a free loopback port; yield its base URL; kill it by pid."""
    (tmp_path / "gapp.py").write_text(APP, encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "GTEST_SECRET": secrets.token_hex(16),
        "GTEST_STORE_URL": store_url,
        "GTEST_REDIS_URL": REDIS_URL,
        "GTEST_PREFIX": prefix,
        **({"GTEST_METRICS": "1"} if metrics else {}),
    }
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    command += ["--chdir", str(tmp_path), "--timeout", "60", "gapp:app"]
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


def get(url: str, cookie: str | None = None) -> tuple[int, dict[str, str], Any]:
    """GET ``url`` (JSON wanted) with the session cookie; return status, headers, decoded body."""
    headers = {"Accept": "application/json"}
    if cookie is not None:
        headers["Cookie"] = f"sessionmw={cookie}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


def issued_cookie(headers: dict[str, str]) -> str:
    value = headers["Set-Cookie"]
    assert value.startswith("sessionmw=")
    return value.partition("=")[2].split(";")[0]


def test_two_workers_share_sessions_and_count_errors_exactly(
    tmp_path: Path, prefix: str, redis_client: Any
) -> None:
    """Whichever of 2 workers answers, the session is the same; 40 concurrent errors count 40."""
    store_url = f"{REDIS_URL}?prefix={prefix}"
    with gunicorn(tmp_path, prefix, store_url) as base:
        _, headers, _ = get(base + "/whoami")
        sid = issued_cookie(headers)
        status, _, body = get(base + "/whoami", sid)
        assert (status, body["session"]) == (200, sid)

        with ThreadPoolExecutor(max_workers=1) as pool:
            held = pool.submit(get, base + "/hold", sid)
            popped = redis_client.blpop([prefix + "held"], timeout=30)
            assert popped is not None, "no worker picked up /hold"
            held_pid = int(popped[1])
            status, _, other = get(base + "/whoami", sid)  # the held worker is busy
            redis_client.rpush(prefix + "release", 1)
            _, _, held_body = held.result(timeout=40)
        assert status == 200
        assert other["pid"] != held_pid
        assert held_body["pid"] == held_pid
        assert other["session"] == held_body["session"] == sid

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: get(base + "/fail", sid)[0], range(40)))
        assert results == [500] * 40

        _, _, health = get(base + "/_sessionmw/health", sid)
    assert health["session"]["error_count"] == 40
    manager = SessionManager(store=store_url)
    try:
        record = manager.get_session(sid)
    finally:
        manager.close()
    assert record is not None and record.error_count == 40


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The Prometheus samples at ``url``, keyed by name and sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=40) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("sessionmw_")
    }


def test_two_workers_serve_the_same_metrics_totals(tmp_path: Path, prefix: str, redis_client: Any) -> None:
    """Events counted by either of 2 workers appear, summed, in the /metrics of each worker."""
    store_url = f"{REDIS_URL}?prefix={prefix}"
    with gunicorn(tmp_path, prefix, store_url, metrics=True) as base:
        _, headers, _ = get(base + "/whoami")
        sid = issued_cookie(headers)
        get(base + "/whoami", sid)  # the session is stored when the cookie comes back
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(lambda _: get(base + "/fail", sid)[0], range(20))) == [500] * 20
        scrapes: dict[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for _ in range(20):  # hold one worker, scrape the other; until each has answered once
            with ThreadPoolExecutor(max_workers=1) as pool:
                held = pool.submit(get, base + "/hold", sid)
                popped = redis_client.blpop([prefix + "held"], timeout=30)
                assert popped is not None, "no worker picked up /hold"
                held_pid = int(popped[1])
                other = get(base + "/whoami", sid)[2]["pid"]
                scrapes.setdefault(other, scrape(base + "/metrics"))
                redis_client.rpush(prefix + "release", 1)
                held.result(timeout=40)
            assert other != held_pid
            if len(scrapes) == 2:
                break
    assert len(scrapes) == 2, "the same worker answered every time"
    first, second = scrapes.values()
    created = ("sessionmw_session_events_total", (("event", "created"),))
    assert first[created] == second[created] == 1
    errors = sum(v for (name, _), v in first.items() if name == "sessionmw_errors_total")
    assert errors == 20

    def counted(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[Any, float]:
        # Requests between the two scrapes (/hold, /whoami) are timed, so latency may only grow.
        return {key: value for key, value in samples.items() if "latency" not in key[0]}

    assert counted(first) == counted(second)
    latency = ("sessionmw_call_latency_seconds_count", ())
    assert 20 <= first[latency] <= second[latency]
