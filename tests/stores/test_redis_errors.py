"""Which redis-py errors mean Redis cannot be reached: a refused connection and a timeout do; an
error Redis answered with (it was reached) does not."""

from __future__ import annotations

import pytest
import redis
from support.servers import free_port

from sessionmw.stores.redis_errors import unreachable_errors


def test_a_refused_connection_is_unreachable() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=2)
    with pytest.raises(unreachable_errors()):
        client.ping()
    client.close()


def test_timeouts_and_cluster_failures_are_unreachable() -> None:
    errors = unreachable_errors()
    for error in (
        redis.TimeoutError("timed out"),
        redis.exceptions.ClusterDownError("CLUSTERDOWN"),
        redis.exceptions.RedisClusterException("no slot map"),
    ):
        assert isinstance(error, errors), error


def test_an_error_redis_answered_with_is_not_unreachable(redis_client: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError) as raised:
        redis_client.execute_command("NO-SUCH-COMMAND")  # type: ignore[no-untyped-call]
    assert not isinstance(raised.value, unreachable_errors())
