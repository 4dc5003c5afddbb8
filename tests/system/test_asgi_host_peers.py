"""sessionmw beside the real observers of a Starlette or FastAPI app's errors: sentry-sdk
(StarletteIntegration, FastApiIntegration) and OpenTelemetry's ASGI instrumentation.

Each peer records every app exception with sessionmw attached exactly as it does without it: the
same events (sentry) and the same spans with an ``exception`` event (OpenTelemetry), for an
``async def`` and a ``def`` endpoint, a body that fails after the response started, and an
``HTTPException`` the app raises; in the default set-up (the middleware records and re-raises:
the host's error stack answers) and with ``install(app)`` (sessionmw's friendly page answers
where the app has no handler of its own). OpenTelemetry's middleware is tried around the whole
app and as a user middleware on either side of sessionmw's (FastAPIInstrumentor adds it so).
Quart's integration is not here yet (no Quart adapter on this branch).
Nothing leaves the machine: sentry's transport is an in-memory one, OpenTelemetry's exporter too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionmw import SessionManager, SessionState

sentry_sdk = pytest.importorskip("sentry_sdk")
otel_trace = pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("fastapi")
pytest.importorskip("opentelemetry.instrumentation.asgi")
from fastapi import FastAPI  # noqa: E402
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: E402
from sentry_sdk.integrations.fastapi import FastApiIntegration  # noqa: E402
from sentry_sdk.integrations.starlette import StarletteIntegration  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from support.peers import Observer  # noqa: E402

from sessionmw.integrations.asgi import SessionMiddleware, install  # noqa: E402

#: The peers: sentry-sdk; OpenTelemetry around the whole app ("outer"), or added as a user
#: middleware after sessionmw ("first": it runs first) or before it ("last").
PEERS = ["sentry", "otel-outer", "otel-first", "otel-last"]
#: How sessionmw is attached: not at all, the middleware alone (records, re-raises), install(app).
SETUPS = ["bare", "middleware", "install"]
#: The failing endpoints: their path and the exception type a peer records.
FAILURES = {
    "async": ("/async", ["ZeroDivisionError"]),
    "sync": ("/sync", ["ZeroDivisionError"]),
    "stream": ("/stream", ["ZeroDivisionError"]),
    "http-503": ("/http-503", []),  # the app's own answer: sentry records it, OTel sees a 503
}


class Peer(Observer):
    """One observer; :meth:`before` and :meth:`after` put it on an app, :meth:`recorded` lists what
    it saw since the last call."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind, [StarletteIntegration(), FastApiIntegration()])

    def before(self, app: Starlette) -> None:
        """Before sessionmw is attached: OpenTelemetry as the user middleware that runs last."""
        if self.kind == "otel-last":
            app.add_middleware(OpenTelemetryMiddleware, tracer_provider=self.provider)

    def after(self, app: Starlette) -> Any:
        """After sessionmw is attached: the ASGI app to serve."""
        if self.kind == "otel-first":
            app.add_middleware(OpenTelemetryMiddleware, tracer_provider=self.provider)
        if self.kind == "otel-outer":
            return OpenTelemetryMiddleware(app, tracer_provider=self.provider)
        return app  # sentry: its integrations patch Starlette itself


@pytest.fixture(name="peer", params=PEERS)
def _peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """sentry-sdk's Starlette and FastAPI integrations, or OpenTelemetry's ASGI middleware."""
    peer = Peer(request.param)
    yield peer
    peer.close()


def _raise() -> None:
    raise ZeroDivisionError("secret detail")


async def _failing_body() -> Any:
    yield b"first chunk\n"
    _raise()


def starlette_app() -> Starlette:
    """A Starlette app whose endpoints fail (see :data:`FAILURES`)."""

    async def failing(request: Request) -> Response:
        _raise()
        return PlainTextResponse("never")

    def failing_sync(request: Request) -> Response:
        _raise()
        return PlainTextResponse("never")

    async def stream(request: Request) -> Response:
        return StreamingResponse(_failing_body())

    async def unavailable(request: Request) -> Response:
        raise HTTPException(503, "the app's own 503")

    async def fine(request: Request) -> Response:
        return PlainTextResponse("fine")

    routes = [
        Route("/", fine),
        Route("/async", failing),
        Route("/sync", failing_sync),
        Route("/stream", stream),
        Route("/http-503", unavailable),
    ]
    return Starlette(routes=routes)


def fastapi_app() -> FastAPI:
    """A FastAPI app whose endpoints fail (see :data:`FAILURES`)."""
    app = FastAPI()

    @app.get("/")
    async def fine() -> str:
        return "fine"

    @app.get("/async")
    async def failing() -> str:
        _raise()
        return "never"

    @app.get("/sync")
    def failing_sync() -> str:
        _raise()
        return "never"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(_failing_body())

    @app.get("/http-503")
    async def unavailable() -> str:
        from fastapi import HTTPException as FastAPIHTTPException

        raise FastAPIHTTPException(503, "the app's own 503")

    return app


FRAMEWORKS: dict[str, Callable[[], Starlette]] = {"starlette": starlette_app, "fastapi": fastapi_app}


def serve(
    framework: str, setup: str, peer: Peer, manager: SessionManager, *, debug: bool = False
) -> TestClient:
    """The app of ``framework`` with ``peer`` and sessionmw attached as ``setup`` says, in a test
    client that returns what the user gets (the exception still reaches the server). ``setup``
    "answering" is the middleware with ``propagate_exceptions=False``."""
    app = FRAMEWORKS[framework]()
    app.debug = debug
    peer.before(app)
    if setup == "middleware":
        app.add_middleware(SessionMiddleware, manager=manager, secret_key="k")
    elif setup == "answering":
        app.add_middleware(
            SessionMiddleware,
            manager=manager,
            secret_key="k",
            propagate_exceptions=False,
        )
    elif setup == "install":
        install(app, manager=manager, secret_key="k")
    return TestClient(peer.after(app), raise_server_exceptions=False)


def outcome(client: TestClient, path: str, peer: Peer) -> tuple[int, str, list[str]]:
    """The status and body of ``path`` (asked twice: the second request is in a stored
    session), and what the peer recorded for the second."""
    with client:
        client.get("/", headers={"Accept": "text/html"})
        peer.recorded()
        response = client.get(path, headers={"Accept": "text/html"})
        return response.status_code, response.text, peer.recorded()


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("setup", ["middleware", "install"])
def test_the_peer_records_what_it_records_bare(
    manager: SessionManager, peer: Peer, framework: str, failure: str, setup: str
) -> None:
    """With sessionmw attached, the peer records each app exception exactly as on the bare app."""
    path, _ = FAILURES[failure]
    _, _, bare = outcome(serve(framework, "bare", peer, manager), path, peer)
    _, _, attached = outcome(serve(framework, setup, peer, manager), path, peer)
    assert bare == expected(peer, failure)  # what the peer sees bare (the comparison is not vacuous)
    assert attached == bare


def expected(peer: Peer, failure: str) -> list[str]:
    """What ``peer`` records of ``failure`` on the bare app.

    sentry: the exception (an ``HTTPException`` of 5xx too, as "handled"). OpenTelemetry: its
    server span in error, and the exception as an event on it while the span is open. Its
    middleware ends the server span with the response's last body message, so around the whole
    app ("outer") it never sees an exception that ``ServerErrorMiddleware`` answered with a
    complete 500 before re-raising: then the span's error status is all it records.
    """
    _, raised = FAILURES[failure]
    if peer.kind == "sentry":
        return raised or ["HTTPException"]
    if peer.kind == "otel-outer" and failure in ("async", "sync"):
        raised = []
    return ["server span: ERROR", *raised]


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("failure", ["async", "sync"])
def test_the_middleware_leaves_the_answer_to_the_host(
    manager: SessionManager, peer: Peer, framework: str, failure: str
) -> None:
    """The middleware alone: the user gets the host's own 500, the error is on the session."""
    path, _ = FAILURES[failure]
    bare_status, bare_body, _ = outcome(serve(framework, "bare", peer, manager), path, peer)
    client = serve(framework, "middleware", peer, manager)
    status, body, _ = outcome(client, path, peer)
    assert (status, body) == (bare_status, bare_body) == (500, "Internal Server Error")
    sid = client.cookies.get("sessionmw")
    record = manager.get_session(sid) if sid is not None else None
    assert record is not None and (record.state, record.error_count) == (SessionState.ERROR, 1)


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("failure", ["async", "sync"])
def test_install_answers_with_the_friendly_page(
    manager: SessionManager, peer: Peer, framework: str, failure: str
) -> None:
    """install(app): the user gets the friendly page instead of the host's plain 500, without the
    exception's text, and the error is on the session once."""
    path, _ = FAILURES[failure]
    client = serve(framework, "install", peer, manager)
    status, body, _ = outcome(client, path, peer)
    assert status == 500 and "sessionmw-" in body and "secret detail" not in body
    sid = client.cookies.get("sessionmw")
    record = manager.get_session(sid) if sid is not None else None
    assert record is not None and (record.state, record.error_count) == (SessionState.ERROR, 1)


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("setup", ["middleware", "install"])
def test_the_apps_http_exception_stays_the_apps(
    manager: SessionManager, peer: Peer, framework: str, setup: str
) -> None:
    """An HTTPException is the app's answer, with sessionmw as without: same status, same body."""
    bare = outcome(serve(framework, "bare", peer, manager), "/http-503", peer)[:2]
    attached = outcome(serve(framework, setup, peer, manager), "/http-503", peer)[:2]
    assert attached == bare and bare[0] == 503


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize("setup", ["middleware", "install"])
def test_debug_mode_keeps_the_hosts_debug_page(
    manager: SessionManager, peer: Peer, framework: str, setup: str
) -> None:
    """An app in debug mode shows Starlette's own debug page (with the traceback), sessionmw
    attached or not, and the peer records what it records bare."""
    bare = outcome(serve(framework, "bare", peer, manager, debug=True), "/async", peer)
    attached = outcome(serve(framework, setup, peer, manager, debug=True), "/async", peer)
    assert bare[0] == attached[0] == 500
    assert "secret detail" in bare[1] and "Traceback" in bare[1] and "sessionmw-" not in attached[1]
    assert attached[1].count("secret detail") == bare[1].count("secret detail")
    assert attached[2] == bare[2] == expected(peer, "async")


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_the_answering_middleware_is_the_one_set_up_the_peers_miss(
    manager: SessionManager, peer: Peer, framework: str
) -> None:
    """The documented difference: ``propagate_exceptions=False`` (for an app with no error
    handling of its own) answers the exception in the middleware, so it never reaches
    ``ServerErrorMiddleware``, the server or a peer outside the middleware: sentry records
    nothing and OpenTelemetry only the 500. ``install(app)`` is the set-up that keeps them."""
    status, body, seen = outcome(serve(framework, "answering", peer, manager), "/async", peer)
    assert status == 500 and "sessionmw-" in body and "secret detail" not in body
    if peer.kind == "otel-last":  # inside sessionmw's middleware: it saw the exception go by
        assert seen == expected(peer, "async")
    else:
        assert seen == ([] if peer.kind == "sentry" else ["server span: ERROR"])
