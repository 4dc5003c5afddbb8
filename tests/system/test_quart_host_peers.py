"""sessionmw's Quart extension beside the real observers of a Quart app's errors: sentry-sdk's
QuartIntegration and OpenTelemetry's ASGI middleware (wrapping ``app.asgi_app``, as Quart advises
for middleware, on either side of the extension's own pass-through wrapper).

Each peer records every app exception with ``SessionMWQuart(app)`` exactly as without it (the
same sentry events, the same spans with an ``exception`` event), for an ``async def`` and a
``def`` view and the app's own ``abort(503)``: in production (the user gets the friendly page
where Quart would answer its plain 500) and under ``TESTING`` (Quart's traceback page).
Nothing leaves the machine: sentry's transport is an in-memory one, OpenTelemetry's exporter too.
Skipped where the Quart adapter is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from sessionmw import SessionManager

quart = pytest.importorskip("quart")
quart_adapter = pytest.importorskip("sessionmw.integrations.quart")
sentry_sdk = pytest.importorskip("sentry_sdk")
otel_trace = pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("opentelemetry.instrumentation.asgi")
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: E402
from support.peers import Observer  # noqa: E402

quart_integration = pytest.importorskip("sentry_sdk.integrations.quart")

#: The peers: sentry-sdk; OpenTelemetry wrapping ``app.asgi_app`` after the extension
#: ("outer") or before it ("inner").
PEERS = ["sentry", "otel-outer", "otel-inner"]
#: The failing views: their path and the exception type a peer records.
FAILURES = {
    "async": ("/async", ["ZeroDivisionError"]),
    "sync": ("/sync", ["ZeroDivisionError"]),
    "abort-503": ("/abort-503", []),  # the app's own answer: no exception of the app's
}


class Peer(Observer):
    """One observer; :meth:`wrap` puts OpenTelemetry on an app, :meth:`recorded` lists what it saw
    since the last call."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind, [quart_integration.QuartIntegration()])

    def wrap(self, app: Any, where: str) -> None:
        """OpenTelemetry around ``app.asgi_app``, if this peer goes ``where`` (outer, inner)."""
        if self.kind == f"otel-{where}":
            app.asgi_app = OpenTelemetryMiddleware(app.asgi_app, tracer_provider=self.provider)


@pytest.fixture(name="peer", params=PEERS)
def _peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """sentry-sdk's QuartIntegration, or OpenTelemetry's ASGI middleware."""
    peer = Peer(request.param)
    yield peer
    peer.close()


def _raise() -> None:
    raise ZeroDivisionError("secret detail")


async def fine() -> str:
    return "fine"


async def failing() -> str:
    _raise()
    return "never"


def failing_sync() -> str:
    _raise()
    return "never"


async def unavailable() -> str:
    quart.abort(503)
    return "never"


def make_app(peer: Peer, manager: SessionManager, *, attached: bool, testing: bool) -> Any:
    """A Quart app whose views fail (see :data:`FAILURES`), with ``peer`` and, if ``attached``,
    the extension."""
    app = quart.Quart("peers")
    app.config.update(SECRET_KEY="k", TESTING=testing)
    views = {"/": fine, "/async": failing, "/sync": failing_sync, "/abort-503": unavailable}
    for path, view in views.items():
        app.add_url_rule(path, view_func=view)
    peer.wrap(app, "inner")
    if attached:
        quart_adapter.SessionMWQuart(app, manager=manager)
    peer.wrap(app, "outer")
    return app


def outcome(app: Any, path: str, peer: Peer) -> tuple[int, str, list[str]]:
    """The status and body of ``path`` (asked after a first request, so in a stored session) and
    what the peer recorded for it."""

    async def ask() -> tuple[int, str]:
        client = app.test_client()
        await client.get("/")
        peer.recorded()
        response = await client.get(path, headers={"Accept": "text/html"})
        return response.status_code, await response.get_data(as_text=True)

    status, body = asyncio.run(ask())
    return status, body, peer.recorded()


def expected(peer: Peer, failure: str) -> list[str]:
    """What ``peer`` records of ``failure`` on the bare app: sentry the exception (from
    ``got_request_exception``), never the app's own abort; OpenTelemetry its server span in
    error, never the exception itself: Quart answers it inside ``asgi_app`` (a 500, or under
    TESTING its traceback page), so it never leaves the app through the middleware."""
    _, raised = FAILURES[failure]
    return raised if peer.kind == "sentry" else ["server span: ERROR"]


@pytest.mark.parametrize("testing", [False, True], ids=["production", "testing"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_the_peer_records_what_it_records_bare(
    manager: SessionManager, peer: Peer, failure: str, testing: bool
) -> None:
    """With the extension, the peer records each app exception exactly as on the bare app, and
    the user (or the test) gets what they get bare, the friendly page aside."""
    path, _ = FAILURES[failure]
    bare = outcome(make_app(peer, manager, attached=False, testing=testing), path, peer)
    attached = outcome(make_app(peer, manager, attached=True, testing=testing), path, peer)
    assert bare[2] == expected(peer, failure)  # not vacuous: the peer does see it bare
    assert attached[2] == bare[2]
    if failure == "abort-503":  # the app's own answer stays the app's
        assert attached[:2] == bare[:2] and bare[0] == 503
    elif testing:  # Quart's traceback page, with the extension too
        assert bare[0] == attached[0] == 500
        assert "ZeroDivisionError" in bare[1] and "ZeroDivisionError" in attached[1]
    else:  # the friendly page where Quart would answer its plain 500
        assert bare[0] == attached[0] == 500
        assert "sessionmw-" in attached[1] and "secret detail" not in attached[1]
