"""Session stores, chosen by URL: ``memory://`` (default), ``sqlite:///path``, ``redis://...``.

Persistent stores import their client libraries only when selected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sessionmw._errors import ConfigurationError
from sessionmw.stores._base import Outcome, SessionStore
from sessionmw.stores._memory import MemoryStore
from sessionmw.stores._urls import mask_url
from sessionmw.stores.options import MEMORY_OPTIONS, REDIS_OPTIONS, SQLITE_OPTIONS, flag

if TYPE_CHECKING:
    from sessionmw.stores._redis import RedisStore
    from sessionmw.stores._sqlite import SQLiteStore

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


def store_from_url(url: str, **options: Any) -> SessionStore:
    """The store a URL names; ``options`` (e.g. ``max_sessions``) go to its constructor.

    - ``memory://`` (options ``max_sessions``, and ``cache``, which changes nothing: the
      memory store keeps its records in the process)
    - ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``, options
      ``?busy_timeout=5&synchronous=NORMAL&cache=true``
    - ``redis://[:password@]host:port/db`` (``rediss://`` for TLS), options
      ``?prefix=myapp&timeout=1&connect_timeout=1&buckets=16&max_connections=50&cache=true``,
      and ``cluster=true`` for a Redis Cluster (the host is any node; database 0); other query
      options go to redis-py.

    Options in the URL win over ``options``. Yes/no options (``cache``, ``cluster``) take
    :data:`~sessionmw.stores.options.FLAG_WORDS`, in the URL and as arguments.

    :raises ConfigurationError: naming the URL (password masked) and the supported schemes if it
        is not usable, or an option the store does not take, or a value it cannot read.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise _bad_url(url, "it has no scheme")
    scheme = scheme.lower()
    if scheme == "memory":
        if rest.strip("/"):
            raise _bad_url(url, "memory:// takes no path")
        _check_keywords(url, options, MEMORY_OPTIONS)
        if "cache" in options:  # nothing to cache: the records are in the process already
            flag("cache", options["cache"])
        return MemoryStore(max_sessions=options.get("max_sessions"))
    if scheme == "sqlite":
        return _sqlite_store(url, options)
    if scheme in ("redis", "rediss"):
        return _redis_store(url, options)
    raise _bad_url(url, f"unknown scheme {scheme!r}")


def _check_keywords(url: str, options: dict[str, Any], known: dict[str, Any]) -> None:
    """Refuse a keyword option the URL's store does not take, naming those it does."""
    for name in options:
        if name not in known:
            raise _bad_url(url, f"the store takes no option {name!r} (its options: {', '.join(known)})")


def _split_options(
    url: str, query: str, known: dict[str, Any], *, keep_unknown: bool
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The options of ``known`` in a URL's ``query``, read (yes/no ones by :func:`flag`), and
    the others in their order; an unknown one is refused unless ``keep_unknown``."""
    ours: dict[str, Any] = {}
    others: list[tuple[str, str]] = []
    for name, raw in parse_qsl(query, keep_blank_values=True):
        kind = known.get(name)
        if kind is None:
            if not keep_unknown:
                raise _bad_url(url, f"unknown option {name!r} (known: {', '.join(known)})")
            others.append((name, raw))
            continue
        if kind is bool:
            try:
                ours[name] = flag(name, raw)
            except ConfigurationError as exc:
                raise _bad_url(url, f"option {exc}") from None
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
    _check_keywords(url, options, SQLITE_OPTIONS)
    ours, _ = _split_options(url, parts.query, SQLITE_OPTIONS, keep_unknown=False)
    from sessionmw.stores._sqlite import SQLiteStore

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
    _check_keywords(url, options, REDIS_OPTIONS)
    ours, others = _split_options(url, parts.query, REDIS_OPTIONS, keep_unknown=True)
    if ours.get("cluster") and (db not in ("", "0") or any(name == "db" for name, _ in others)):
        raise _bad_url(url, "a Redis Cluster has only database 0 (leave the path empty or /0, and no db=)")
    try:
        import redis  # noqa: F401 - checks the extra is installed
    except ImportError:
        raise _bad_url(url, "redis-py is not installed (pip install 'sessionmw[redis]')") from None
    from sessionmw.stores._redis import RedisStore

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
        from sessionmw.stores._sqlite import SQLiteStore

        return SQLiteStore
    if name == "RedisStore":
        from sessionmw.stores._redis import RedisStore

        return RedisStore
    raise AttributeError(f"module 'sessionmw.stores' has no attribute {name!r}")
