"""A real server: gunicorn with 2 worker processes on 127.0.0.1, sessions in the Redis store.

One client's session is the same whichever worker answers, and its error count is exact after
concurrent failing requests. The app holds one worker on a Redis list (BLPOP) so that the other
worker must answer: no timing assumptions.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.servers import flask_gunicorn, get_json

from sessionmw import SessionManager

redis = pytest.importorskip("redis")

REDIS_URL = os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def gunicorn(
    tmp_path: Path, prefix: str, store_url: str, *, metrics: bool = False
) -> contextlib.AbstractContextManager[str]:
    """The test app in gunicorn (2 sync workers) on a free loopback port; yields its base URL."""
    return flask_gunicorn(tmp_path, REDIS_URL, prefix, store_url, metrics=metrics)


def issued_cookie(headers: dict[str, str]) -> str:
    value = headers["Set-Cookie"]
    assert value.startswith("sessionmw=")
    return value.partition("=")[2].split(";")[0]


def test_two_workers_share_sessions_and_count_errors_exactly(
    tmp_path: Path, key_prefix: str, redis_client: Any
) -> None:
    """Whichever of 2 workers answers, the session is the same; 40 concurrent errors count 40."""
    store_url = f"{REDIS_URL}?prefix={key_prefix}"
    with gunicorn(tmp_path, key_prefix, store_url) as base:
        _, headers, _ = get_json(base + "/whoami")
        sid = issued_cookie(headers)
        status, _, body = get_json(base + "/whoami", sid)
        assert (status, body["session"]) == (200, sid)

        with ThreadPoolExecutor(max_workers=1) as pool:
            held = pool.submit(get_json, base + "/hold", sid)
            popped = redis_client.blpop([key_prefix + "held"], timeout=30)
            assert popped is not None, "no worker picked up /hold"
            held_pid = int(popped[1])
            status, _, other = get_json(base + "/whoami", sid)  # the held worker is busy
            redis_client.rpush(key_prefix + "release", 1)
            _, _, held_body = held.result(timeout=40)
        assert status == 200
        assert other["pid"] != held_pid
        assert held_body["pid"] == held_pid
        assert other["session"] == held_body["session"] == sid

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: get_json(base + "/fail", sid)[0], range(40)))
        assert results == [500] * 40

        _, _, health = get_json(base + "/_sessionmw/health", sid)
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


def test_two_workers_serve_the_same_metrics_totals(
    tmp_path: Path, key_prefix: str, redis_client: Any
) -> None:
    """Events counted by either of 2 workers appear, summed, in the /metrics of each worker."""
    store_url = f"{REDIS_URL}?prefix={key_prefix}"
    with gunicorn(tmp_path, key_prefix, store_url, metrics=True) as base:
        _, headers, _ = get_json(base + "/whoami")
        sid = issued_cookie(headers)
        get_json(base + "/whoami", sid)  # the session is stored when the cookie comes back
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(lambda _: get_json(base + "/fail", sid)[0], range(20))) == [500] * 20
        scrapes: dict[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        # Each worker is scraped while the other is held: hold one (a), scrape the other (b); hold
        # b too (a is busy, so b takes it), release a, scrape a; release b.
        with ThreadPoolExecutor(max_workers=2) as pool:
            first_hold = pool.submit(get_json, base + "/hold?until=release-a", sid)
            popped = redis_client.blpop([key_prefix + "held"], timeout=30)
            assert popped is not None, "no worker picked up /hold"
            a = int(popped[1])
            b = get_json(base + "/whoami", sid)[2]["pid"]
            assert b != a
            scrapes[b] = scrape(base + "/metrics")
            second_hold = pool.submit(get_json, base + "/hold?until=release-b", sid)
            popped = redis_client.blpop([key_prefix + "held"], timeout=30)
            assert popped is not None and int(popped[1]) == b, "the busy worker took a request"
            redis_client.rpush(key_prefix + "release-a", 1)
            first_hold.result(timeout=40)
            assert get_json(base + "/whoami", sid)[2]["pid"] == a
            scrapes[a] = scrape(base + "/metrics")
            redis_client.rpush(key_prefix + "release-b", 1)
            second_hold.result(timeout=40)
    assert len(scrapes) == 2
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
