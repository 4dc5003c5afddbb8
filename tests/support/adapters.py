"""One host app served by each adapter, for the tests of what the adapters do alike: the WSGI
middleware around a plain WSGI app, and the Flask extension on a Flask app with the same pages.

Each has ``/`` (a page), ``/boom`` (fails with a secret in its message), ``/busy`` (a transient
failure) and ``/fail`` (fails with ``ValueError``); both are driven through a werkzeug test client
that keeps cookies. Add an adapter to :data:`ADAPTERS` and :func:`served` to run the shared tests
on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.test import Client, TestResponse

from sessionmw import SessionManager, TransientError
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.wsgi import SessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The adapters the shared tests run on.
ADAPTERS = ("wsgi", "flask")
SECRET = "test-secret"
#: What the failing page's exception says (never shown to the user).
SECRET_DETAIL = "database password is hunter2"
FAILURES: dict[str, BaseException] = {
    "/boom": RuntimeError(SECRET_DETAIL),
    "/busy": TransientError("backend busy"),
    "/fail": ValueError("internal detail"),
}


def _plain_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The host app as plain WSGI."""
    failure = FAILURES.get(environ.get("PATH_INFO", ""))
    if failure is not None:
        raise failure
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"page"]


def _flask_app(manager: SessionManager) -> Flask:
    """The host app as a Flask app with the extension."""
    app = Flask("host")
    app.config.update(SECRET_KEY=SECRET)

    @app.get("/")
    def page() -> str:
        return "page"

    for path, failure in FAILURES.items():

        def fail(failure: BaseException = failure) -> str:
            raise failure

        app.add_url_rule(path, path, fail)
    SessionMW(app, manager=manager)
    return app


def served(adapter: str, manager: SessionManager) -> Client:
    """A test client (keeping cookies) of the host app served by ``adapter``."""
    if adapter == "wsgi":
        return Client(SessionMiddleware(_plain_app, manager=manager, secret_key=SECRET))
    if adapter == "flask":
        return _flask_app(manager).test_client()
    raise ValueError(f"no adapter {adapter!r}")


def session_cookie(response: TestResponse) -> str | None:
    """The session id the response's ``Set-Cookie`` carries, if any."""
    for value in response.headers.getlist("Set-Cookie"):
        name, _, rest = value.partition("=")
        if name == "sessionmw":
            return rest.split(";")[0]
    return None


def established(client: Client) -> str:
    """A session id the store knows: issued, then sent back once."""
    sid = session_cookie(client.get("/"))
    assert sid is not None
    client.get("/")
    return sid
