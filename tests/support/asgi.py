"""ASGI helpers for the tests: :class:`MessageOrder`, werkzeug's lint in spirit for ASGI.

Wrapped around an app, it checks every HTTP response against the ASGI spec's message order: one
``http.response.start`` (an integer status, headers as pairs of bytes with lower-case names),
then ``http.response.body`` messages, the last one without ``more_body``, and nothing after it; an
app that returns normally has finished its response.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "Message", "MessageOrder", "MessageOrderError", "Receive", "Scope", "Send"]


class MessageOrderError(AssertionError):
    """A response broke the ASGI message order."""


class MessageOrder:
    """ASGI middleware that checks the message order of every HTTP response (see the module).

    :param app: the app whose responses are checked.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: How many HTTP responses were checked to their end.
        self.checked = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = ended = False

        async def checked_send(message: Message) -> None:
            nonlocal started, ended
            kind = message["type"]
            if ended:
                raise MessageOrderError(f"{kind} sent after the response's last body message")
            if kind == "http.response.start":
                if started:
                    raise MessageOrderError("a second http.response.start")
                _check_start(message)
                started = True
            elif kind == "http.response.body":
                if not started:
                    raise MessageOrderError("http.response.body before http.response.start")
                if not isinstance(message.get("body", b""), bytes):
                    raise MessageOrderError(f"a body of {type(message.get('body')).__name__}, not bytes")
                more = message.get("more_body", False)
                if not isinstance(more, bool):
                    raise MessageOrderError(f"more_body={more!r} is not a bool")
                ended = not more
            else:
                raise MessageOrderError(f"unexpected message {kind!r} in an HTTP response")
            await send(message)

        await self.app(scope, receive, checked_send)
        if started and not ended:
            raise MessageOrderError("the app returned before its response's last body message")
        self.checked += 1


def _check_start(message: Message) -> None:
    status = message.get("status")
    if type(status) is not int or not 100 <= status <= 599:
        raise MessageOrderError(f"status {status!r} is not an HTTP status code")
    for pair in message.get("headers", ()):
        name, value = pair
        if type(name) is not bytes or type(value) is not bytes:
            raise MessageOrderError(f"header {pair!r} is not a pair of bytes")
        if name != name.lower():
            raise MessageOrderError(f"header name {name!r} is not in lower case")
