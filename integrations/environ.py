"""The WSGI side of the gate: the environ keys where a request's session is left, and
:class:`EnvironRequest`, the :class:`~sessionmw.integrations.request.RequestView` of an environ.

The WSGI middleware and the Flask extension both translate their requests here (PEP 3333).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["ENVIRON_MANAGER", "ENVIRON_NOTICE", "ENVIRON_SESSION", "ENVIRON_SESSION_ID", "EnvironRequest"]

#: environ key: the :class:`~sessionmw.SessionManager` serving the request.
ENVIRON_MANAGER = "sessionmw.manager"
#: environ key: the session id of the request (a string).
ENVIRON_SESSION_ID = "sessionmw.session_id"
#: environ key: the :class:`~sessionmw.integrations.request_session.RequestSession` of the request.
ENVIRON_SESSION = "sessionmw.session"
#: environ key: a report to show the user once (the expired session a fresh one replaced), or None.
ENVIRON_NOTICE = "sessionmw.notice"

# Header name (lower case) -> environ key, filled as names are asked for.
_KEYS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def _key(name: str) -> str:
    key = _KEYS.get(name)
    if key is None:
        key = _KEYS[name] = "HTTP_" + name.upper().replace("-", "_")
    return key


class EnvironRequest:
    """A WSGI environ as the gate reads it (read-only: nothing is copied or changed).

    :param environ: the request's environ.
    """

    __slots__ = ("cookies", "environ", "path")

    def __init__(self, environ: WSGIEnvironment) -> None:
        #: The environ read.
        self.environ = environ
        #: ``PATH_INFO`` (read at once: every request needs it).
        self.path: str = environ.get("PATH_INFO", "")
        #: ``HTTP_COOKIE`` (read at once: every request needs it).
        self.cookies: str = environ.get("HTTP_COOKIE", "")

    @property
    def method(self) -> str:
        """``REQUEST_METHOD`` (``GET`` if missing)."""
        method: str = self.environ.get("REQUEST_METHOD", "GET")
        return method

    @property
    def root_path(self) -> str:
        """``SCRIPT_NAME``."""
        root: str = self.environ.get("SCRIPT_NAME", "")
        return root

    @property
    def query_string(self) -> str:
        """``QUERY_STRING``."""
        query: str = self.environ.get("QUERY_STRING", "")
        return query

    @property
    def scheme(self) -> str:
        """``wsgi.url_scheme``."""
        scheme: str = self.environ.get("wsgi.url_scheme", "http")
        return scheme

    @property
    def remote_address(self) -> str | None:
        """``REMOTE_ADDR``, or None."""
        address: str | None = self.environ.get("REMOTE_ADDR") or None
        return address

    def header(self, name: str) -> str | None:
        """The header ``name`` (lower case) from its ``HTTP_*`` key (``CONTENT_TYPE`` and
        ``CONTENT_LENGTH`` as PEP 3333 names them)."""
        value: str | None = self.environ.get(_KEYS.get(name) or _key(name))
        return value

    def body(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of ``wsgi.input``, as ``CONTENT_LENGTH`` announces them."""
        try:
            length = min(int(self.environ.get("CONTENT_LENGTH") or 0), limit)
        except ValueError:
            length = 0
        if length <= 0:
            return b""
        data: bytes = self.environ["wsgi.input"].read(length)
        return data
