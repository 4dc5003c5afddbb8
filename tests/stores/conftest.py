"""Fixtures of the store tests: a redis-server of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.redis_servers import PrivateRedis


@pytest.fixture(name="private_redis")
def _private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own (to flush, stop or restart), stopped by pid afterwards."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
