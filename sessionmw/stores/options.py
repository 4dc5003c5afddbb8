"""The stores' options, and yes/no options read one way whether they come as arguments or in a URL.

``SQLiteStore(path, cache="off")``, ``RedisStore.from_url(url, cluster="true")`` and
``redis://...?cache=no`` all go through :func:`flag`: a word that means no turns the option off,
and anything else that is not a yes or a no is refused by name.
"""

from __future__ import annotations

from typing import Any

from sessionmw._errors import ConfigurationError

__all__ = ["FLAG_WORDS", "MEMORY_OPTIONS", "REDIS_OPTIONS", "SQLITE_OPTIONS", "flag"]

#: The options of each store, as keyword arguments of :func:`~sessionmw.stores.store_from_url`
#: and (but for ``memory://``, which takes none in its URL) query options, and how a URL's text
#: is read (``bool``: by :func:`flag`).
MEMORY_OPTIONS: dict[str, Any] = {"max_sessions": int, "cache": bool}
SQLITE_OPTIONS: dict[str, Any] = {
    "busy_timeout": float,
    "synchronous": str,
    "max_sessions": int,
    "cache": bool,
}
#: The ``redis://`` options sessionmw reads itself (other query options go to redis-py).
REDIS_OPTIONS: dict[str, Any] = {
    "prefix": str,
    "buckets": int,
    "timeout": float,
    "connect_timeout": float,
    "max_connections": int,
    "max_sessions": int,
    "cluster": bool,
    "cache": bool,
}

_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")

#: The values a yes/no option accepts, as shown in its error message.
FLAG_WORDS = "True or False, or one of " + ", ".join(_YES + _NO)


def flag(name: str, value: object) -> bool:
    """The yes/no option ``name`` given as ``value``: a bool, 0 or 1, or a word (any case, spaces
    around it ignored) among ``1 true yes on`` and ``0 false no off``.

    :raises ConfigurationError: naming the option, the value and the accepted values.
    """
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _YES:
            return True
        if word in _NO:
            return False
    raise ConfigurationError(f"{name}={value!r} is not a valid yes/no value: use {FLAG_WORDS}")
