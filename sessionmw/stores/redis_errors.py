"""Which redis-py errors mean that Redis cannot be reached, for the Redis store and its counters.

redis-py is imported only when this is first asked.
"""

from __future__ import annotations

__all__ = ["unreachable_errors"]


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """The redis-py errors that mean the store cannot be reached (on a cluster: also a slot map
    that cannot be refreshed, every node being down, or redirections that never end)."""
    import redis as redis_module

    exceptions = redis_module.exceptions
    return (
        redis_module.ConnectionError,
        redis_module.TimeoutError,
        exceptions.RedisClusterException,
        exceptions.ClusterError,
    )
