"""What the gate reads of a request, whatever the protocol: :class:`RequestView`.

An adapter hands the gate a read-only view of its request (the WSGI environ, an ASGI scope) and
gets decisions and header lists back, so the request logic is written once for every protocol.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RequestView"]


class RequestView(Protocol):
    """One request as the gate reads it; nothing here changes the request.

    Text is as the protocol hands it over (WSGI and ASGI both give header values as latin-1).
    """

    @property
    def method(self) -> str:
        """The request method in capitals, e.g. ``"GET"``."""
        ...

    @property
    def path(self) -> str:
        """The path below the application's mount point (WSGI ``PATH_INFO``)."""
        ...

    @property
    def root_path(self) -> str:
        """Where the application is mounted (WSGI ``SCRIPT_NAME``, ASGI ``root_path``; ``""`` at
        the root): the prefix of the URLs the gate hands back to the client."""
        ...

    @property
    def query_string(self) -> str:
        """The query string without ``?`` (``""`` if none)."""
        ...

    @property
    def scheme(self) -> str:
        """``"http"`` or ``"https"``."""
        ...

    @property
    def remote_address(self) -> str | None:
        """The client's address as the server saw it, or None when unknown."""
        ...

    @property
    def cookies(self) -> str:
        """The ``Cookie`` header as sent (``""`` if none)."""
        ...

    def header(self, name: str) -> str | None:
        """The value of the header ``name`` (given in lower case), or None if absent."""
        ...

    def body(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the request body; only the gate's own endpoints read it."""
        ...
