"""Two gunicorn workers with read caches: a disconnect made in one is refused by the other at once."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.servers import flask_gunicorn, get_json

redis = pytest.importorskip("redis")

REDIS_URL = os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
THRESHOLD = 3


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_disconnect_in_one_worker_is_refused_by_the_other(
    kind: str, tmp_path: Path, key_prefix: str, redis_client: Any
) -> None:
    prefix, control = key_prefix, redis_client
    store_url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"{REDIS_URL}?prefix={prefix}"
    with flask_gunicorn(tmp_path, REDIS_URL, prefix, store_url, threshold=THRESHOLD) as base:
        _, headers, _ = get_json(base + "/whoami")
        sid = headers["Set-Cookie"].partition("=")[2].split(";")[0]

        def one_then_other(first: Callable[[], Any], then: Callable[[], Any]) -> tuple[Any, Any]:
            """``first`` on one worker while the other is held busy (a request without the
            session), then ``then`` on that other worker while the first one is held."""
            with ThreadPoolExecutor(max_workers=2) as pool:
                hold_a = pool.submit(get_json, base + "/hold?until=release-a")
                popped = control.blpop([prefix + "held"], timeout=30)
                assert popped is not None, "no worker picked up /hold"
                try:
                    first_result = first()
                    hold_b = pool.submit(get_json, base + "/hold?until=release-b")
                    other = control.blpop([prefix + "held"], timeout=30)
                    assert other is not None and other[1] != popped[1], "the busy worker took /hold"
                finally:
                    control.rpush(prefix + "release-a", 1)
                    hold_a.result(timeout=40)
                try:
                    then_result = then()
                finally:
                    control.rpush(prefix + "release-b", 1)
                    hold_b.result(timeout=40)
            return first_result, then_result

        def whoami() -> tuple[int, dict[str, str], Any]:
            return get_json(base + "/whoami", sid)

        # Both workers serve (and cache) the healthy session.
        (status_1, _, body_1), (status_2, _, body_2) = one_then_other(whoami, whoami)
        assert (status_1, body_1["session"]) == (status_2, body_2["session"]) == (200, sid)
        assert body_1["pid"] != body_2["pid"]
        # One worker records the errors that disconnect it; the other refuses it at once.
        failures, (status, _, body) = one_then_other(
            lambda: [get_json(base + "/fail", sid)[0] for _ in range(THRESHOLD)], whoami
        )
        assert failures == [500] * THRESHOLD
        assert (status, body["session"]["status"]) == (503, "disconnected")
