"""Session stores, chosen by URL: ``memory://`` (default), ``sqlite:///path``, ``redis://...``.

Persistent stores import their client libraries only when selected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sessionmw.errors import ConfigurationError
from sessionmw.stores.base import Outcome, SessionStore
from sessionmw.stores.memory import MemoryStore
from sessionmw.stores.urls import mask_url

if TYPE_CHECKING:
    from sessionmw.stores.redis import RedisStore
    from sessionmw.stores.sqlite import SQLiteStore

__all__ = [
    "SUPPORTED_SCHEMES",
    "MemoryStore",
    "Outcome",
    "RedisStore",
    "SQLiteStore",
    "SessionStore",
    "mask_url",
    "store_from_url",
]

#: The URL schemes :func:`store_from_url` understands.
SUPPORTED_SCHEMES: tuple[str, ...] = ("memory", "sqlite", "redis", "rediss")

#: Query options of ``sqlite://`` URLs and how to read them.
_SQLITE_OPTIONS = {"busy_timeout": float, "synchronous": str, "max_sessions": int}


def _flag(text: str) -> bool:
    """A yes/no URL option: 1, true, yes, on or 0, false, no, off."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


_flag.__name__ = "yes/no value (1, true, yes, on or 0, false, no, off)"

#: Query options of ``redis://`` URLs that sessionmw reads (the rest go to redis-py).
_REDIS_OPTIONS: dict[str, Any] = {
    "prefix": str,
    "buckets": int,
    "timeout": float,
    "connect_timeout": float,
    "max_connections": int,
    "max_sessions": int,
    "cluster": _flag,
}


def store_from_url(url: str, **options: Any) -> SessionStore:
    """The store a URL names; ``options`` (e.g. ``max_sessions``) go to its constructor.

    - ``memory://``
    - ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``, options
      ``?busy_timeout=5&synchronous=NORMAL``
    - ``redis://[:password@]host:port/db`` (``rediss://`` for TLS), options
      ``?prefix=myapp&timeout=1&connect_timeout=1&buckets=16&max_connections=50``, and
      ``cluster=true`` for a Redis Cluster (the host is any node; database 0); other query
      options go to redis-py.

    Options in the URL win over ``options``.

    :raises ConfigurationError: naming the URL (password masked) and the supported schemes if it
        is not usable.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise _bad_url(url, "it has no scheme")
    scheme = scheme.lower()
    if scheme == "memory":
        if rest.strip("/"):
            raise _bad_url(url, "memory:// takes no path")
        return MemoryStore(**options)
    if scheme == "sqlite":
        return _sqlite_store(url, options)
    if scheme in ("redis", "rediss"):
        return _redis_store(url, options)
    raise _bad_url(url, f"unknown scheme {scheme!r}")


def _split_options(
    url: str, query: str, known: dict[str, Any], *, keep_unknown: bool
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    ours: dict[str, Any] = {}
    others: list[tuple[str, str]] = []
    for name, raw in parse_qsl(query, keep_blank_values=True):
        kind = known.get(name)
        if kind is None:
            if not keep_unknown:
                raise _bad_url(url, f"unknown option {name!r} (known: {', '.join(known)})")
            others.append((name, raw))
            continue
        try:
            ours[name] = kind(raw)
        except ValueError:
            raise _bad_url(url, f"option {name}={raw!r} is not a valid {kind.__name__}") from None
    return ours, others


def _sqlite_store(url: str, options: dict[str, Any]) -> SessionStore:
    parts = urlsplit(url)
    if parts.netloc:
        raise _bad_url(url, "sqlite URLs have no host: write sqlite:///relative.db or sqlite:////abs/path.db")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise _bad_url(url, "it names no database file (for a store in memory use memory://)")
    ours, _ = _split_options(url, parts.query, _SQLITE_OPTIONS, keep_unknown=False)
    from sessionmw.stores.sqlite import SQLiteStore

    try:
        return SQLiteStore(path, **{**options, **ours})
    except ConfigurationError as exc:
        raise _bad_url(url, str(exc)) from None


def _redis_store(url: str, options: dict[str, Any]) -> SessionStore:
    parts = urlsplit(url)
    if not parts.hostname:
        raise _bad_url(url, "it names no host")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise _bad_url(url, "its port is not a number") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise _bad_url(url, f"the database {db!r} is not a number")
    ours, others = _split_options(url, parts.query, _REDIS_OPTIONS, keep_unknown=True)
    if ours.get("cluster") and (db not in ("", "0") or any(name == "db" for name, _ in others)):
        raise _bad_url(url, "a Redis Cluster has only database 0 (leave the path empty or /0, and no db=)")
    try:
        import redis  # noqa: F401 - checks the extra is installed
    except ImportError:
        raise _bad_url(url, "redis-py is not installed (pip install 'sessionmw[redis]')") from None
    from sessionmw.stores.redis import RedisStore

    client_url = urlunsplit(parts._replace(query=urlencode(others)))
    try:
        return RedisStore.from_url(client_url, **{**options, **ours})
    except ConfigurationError as exc:
        raise _bad_url(url, str(exc)) from None
    except ValueError as exc:  # redis-py rejected an option
        raise _bad_url(url, str(exc)) from None


def _bad_url(url: str, why: str) -> ConfigurationError:
    schemes = ", ".join(f"{scheme}://" for scheme in SUPPORTED_SCHEMES)
    return ConfigurationError(f"store URL {mask_url(url)!r} is not usable: {why} (supported: {schemes})")


def __getattr__(name: str) -> Any:
    """``SQLiteStore`` and ``RedisStore`` are imported on first use (with their client libraries)."""
    if name == "SQLiteStore":
        from sessionmw.stores.sqlite import SQLiteStore

        return SQLiteStore
    if name == "RedisStore":
        from sessionmw.stores.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module 'sessionmw.stores' has no attribute {name!r}")
