"""Shared fixtures: a fake clock and sleep, a manager on the memory store, global state reset, Redis."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests import their shared helpers from the ``support`` package (tests/support/), one module per kind.
sys.path.insert(0, os.path.dirname(__file__))

from support.chrome import chrome_options
from support.fakes import Sleeps
from support.stores import shared_store_url

from sessionmw import SessionManager, set_session_manager
from sessionmw.testing import FakeClock, set_testing


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    """A clock that only moves when the test advances it."""
    return FakeClock()


@pytest.fixture(name="manager")
def _manager(clock: FakeClock) -> Iterator[SessionManager]:
    """A manager on a fresh memory store with default settings and the fake clock."""
    manager = SessionManager(store="memory://", clock=clock)
    yield manager
    manager.close()


@pytest.fixture(name="sleeps")
def _sleeps() -> Sleeps:
    """A recording fake sleep."""
    return Sleeps()


@pytest.fixture(autouse=True)
def _reset_default_manager() -> Iterator[None]:
    """No test sees another test's process-default manager."""
    set_session_manager(None)
    yield
    set_session_manager(None)


@pytest.fixture(autouse=True)
def _no_testing_mode() -> Iterator[None]:
    """Every test starts and ends outside retry testing mode."""
    with set_testing(False):
        yield


#: The Redis the tests use (a database or key prefix of its own; never flushed).
REDIS_URL = os.environ.get("SESSIONMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(name="redis_url", scope="session")
def _redis_url() -> str:
    """The test Redis's URL; without a server the test fails in CI (CI=true) and is skipped elsewhere."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"no Redis at {REDIS_URL} ({exc}); set SESSIONMW_TEST_REDIS_URL or start redis-server"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(name="redis_prefix")
def _redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"sessionmw-test-{secrets.token_hex(6)}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{{{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


#: The repository root: spawned children import the test modules (``tests.test_...``) from it.
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(name="spawn_importable")
def _spawn_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned children find the test module's functions (they import it by name)."""
    monkeypatch.syspath_prepend(str(ROOT))


@pytest.fixture(name="url")
def _url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A store URL of the test module's ``kind`` fixture (see ``support.stores.shared_store_url``)."""
    return shared_store_url(kind, request, tmp_path)


@pytest.fixture(name="redis_client")
def _redis_client(redis_url: str) -> Iterator[Any]:
    """A client of the test Redis (for tests that steer or inspect it directly)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(name="key_prefix")
def _key_prefix(redis_client: Any) -> Iterator[str]:
    """A unique key prefix; every key that contains it is deleted afterwards."""
    prefix = f"gtest-{secrets.token_hex(6)}"
    yield prefix
    for key in redis_client.scan_iter(match=f"*{prefix}*"):
        redis_client.delete(key)


@pytest.fixture(name="redis_cluster_url", scope="session")
def _redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private three-node Redis Cluster on free loopback ports, for this test session.

    Without ``redis-server`` the test fails in CI (CI=true) and is skipped elsewhere.
    """
    import shutil

    from support.redis_servers import LocalRedisCluster

    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    cluster = LocalRedisCluster(str(tmp_path_factory.mktemp("redis-cluster")))
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


def pytest_setup_options() -> object:
    """dash.testing's hook: Chrome options for a headless chromium (``DASH_TEST_CHROMEPATH`` wins)."""
    return chrome_options()  # pluggy collects it into the list dash.testing reads
