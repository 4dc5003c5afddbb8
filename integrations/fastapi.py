"""The session of a FastAPI request as a dependency.

.. code-block:: python

    from sessionmw.integrations.asgi import install
    from sessionmw.integrations.fastapi import CurrentSession

    install(app)

    @app.get("/me")
    def me(session: CurrentSession) -> dict[str, str]:
        return {"session": session.id, "state": session.state.value}

The session is the one :class:`~sessionmw.integrations.asgi.SessionMiddleware` left in the
request's scope (:func:`~sessionmw.integrations.asgi.session_of`); a route without one (no
middleware, or an excluded path) raises :class:`~sessionmw.ConfigurationError`, naming the fix.
"""

from __future__ import annotations

from typing import Annotated

try:
    from fastapi import Depends, Request
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sessionmw.integrations.fastapi needs FastAPI: pip install 'sessionmw[fastapi]'"
    ) from exc

from sessionmw._errors import ConfigurationError
from sessionmw.integrations.asgi import session_of
from sessionmw.integrations.request_session import RequestSession

__all__ = ["CurrentSession", "MaybeSession", "current_session", "maybe_session"]


def current_session(request: Request) -> RequestSession:
    """The session of ``request`` (a FastAPI dependency: see :data:`CurrentSession`).

    :raises ConfigurationError: when the request has none: no ``SessionMiddleware`` serves the app,
        or the path is excluded (use :data:`MaybeSession` there).
    """
    session = session_of(request.scope)
    if session is None:
        raise ConfigurationError(
            f"no sessionmw session for {request.url.path!r}: add the middleware "
            "(sessionmw.integrations.asgi.install(app)), or use MaybeSession on an excluded path"
        )
    return session


def maybe_session(request: Request) -> RequestSession | None:
    """The session of ``request``, or None (an excluded path, no middleware): see :data:`MaybeSession`."""
    return session_of(request.scope)


#: A route parameter annotated with it receives the request's session
#: (:class:`~sessionmw.integrations.request_session.RequestSession`).
CurrentSession = Annotated[RequestSession, Depends(current_session)]
#: A route parameter annotated with it receives the request's session, or None.
MaybeSession = Annotated[RequestSession | None, Depends(maybe_session)]
