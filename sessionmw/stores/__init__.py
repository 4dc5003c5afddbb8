"""Session stores, chosen by URL: ``memory://`` (default), ``sqlite:///path``, ``redis://...``.

Persistent stores import their client libraries only when selected.
"""

from __future__ import annotations

from typing import Any

from sessionmw.errors import ConfigurationError
from sessionmw.stores.base import Outcome, SessionStore
from sessionmw.stores.memory import MemoryStore

__all__ = ["SUPPORTED_SCHEMES", "MemoryStore", "Outcome", "SessionStore", "store_from_url"]

#: The URL schemes :func:`store_from_url` understands.
SUPPORTED_SCHEMES: tuple[str, ...] = ("memory",)


def store_from_url(url: str, **options: Any) -> SessionStore:
    """The store a URL names; ``options`` (e.g. ``max_sessions``) go to its constructor.

    :raises ConfigurationError: naming the URL and the supported schemes if it is not usable.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise _bad_url(url, "it has no scheme")
    scheme = scheme.lower()
    if scheme == "memory":
        if rest.strip("/"):
            raise _bad_url(url, "memory:// takes no path")
        return MemoryStore(**options)
    raise _bad_url(url, f"unknown scheme {scheme!r}")


def _bad_url(url: str, why: str) -> ConfigurationError:
    schemes = ", ".join(f"{scheme}://" for scheme in SUPPORTED_SCHEMES)
    return ConfigurationError(f"store URL {url!r} is not usable: {why} (supported: {schemes})")
