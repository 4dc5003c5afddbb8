"""sessionmw beside the real observers of a Flask app's errors: sentry-sdk and OpenTelemetry.

Each peer must record the view's exception, with the extension and with the middleware, while
the user gets the page they get anyway (production) or the test sees the exception (TESTING).
Nothing leaves the machine: sentry's transport is an in-memory one, OpenTelemetry's exporter too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from werkzeug.test import Client

from sessionmw import SessionManager
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.wsgi import SessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

sentry_sdk = pytest.importorskip("sentry_sdk")
otel_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: E402
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: E402
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402


class MemoryTransport(Transport):
    """A sentry transport that keeps the events instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


def exception_types(events: list[dict[str, Any]]) -> list[str]:
    """The exception type of every captured sentry event."""
    return [value["type"] for event in events for value in event.get("exception", {}).get("values", [])]


class Peer:
    """One observer set up on an app; ``recorded()`` lists the exception types it saw."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.transport = MemoryTransport()
        self.exporter = InMemorySpanExporter()
        self.provider = otel_trace.TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self._instrumented: list[Flask] = []
        if kind == "sentry":
            sentry_sdk.init(
                dsn="http://public@127.0.0.1:9/1",  # never contacted: the transport keeps the events
                transport=self.transport,
                integrations=[FlaskIntegration()],
                default_integrations=False,
                auto_enabling_integrations=False,
            )

    def flask(self, app: Flask) -> None:
        """Instrument a Flask app (sentry's integration patches Flask itself)."""
        if self.kind == "otel":
            FlaskInstrumentor().instrument_app(app, tracer_provider=self.provider)  # type: ignore[no-untyped-call]
            self._instrumented.append(app)

    def wsgi(self, app: WSGIApplication) -> WSGIApplication:
        """Wrap a plain WSGI app in the peer's own WSGI middleware."""
        if self.kind == "otel":
            return OpenTelemetryMiddleware(app, tracer_provider=self.provider)
        return SentryWsgiMiddleware(app)

    def recorded(self) -> list[str]:
        if self.kind == "sentry":
            return exception_types(self.transport.events)
        return [
            str((event.attributes or {}).get("exception.type", "")).rpartition(".")[2]
            for span in self.exporter.get_finished_spans()
            for event in span.events
            if event.name == "exception"
        ]

    def close(self) -> None:
        for app in self._instrumented:
            FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]
        if self.kind == "sentry":
            sentry_sdk.get_client().close()
            sentry_sdk.get_global_scope().set_client(None)
        self.provider.shutdown()


@pytest.fixture(name="peer", params=["sentry", "otel"])
def _peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """sentry-sdk's FlaskIntegration, or OpenTelemetry's Flask instrumentation."""
    peer = Peer(request.param)
    yield peer
    peer.close()


def make_app(manager: SessionManager, peer: Peer, attach: str, testing: bool) -> Flask:
    """A Flask app with a failing view, the peer and sessionmw (``extension`` or ``middleware``)."""
    app = Flask("peers")
    app.config.update(SECRET_KEY="k", TESTING=testing)

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("secret detail")

    if attach == "extension":
        SessionMW(app, manager=manager)
        peer.flask(app)
    else:
        peer.flask(app)
        app.wsgi_app = SessionMiddleware(app.wsgi_app, manager=manager, secret_key="k")  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize("attach", ["extension", "middleware"])
def test_the_peer_records_and_the_user_gets_the_page(
    manager: SessionManager, peer: Peer, attach: str
) -> None:
    """Production: the peer records the exception; the user gets a 500 page without its text."""
    app = make_app(manager, peer, attach, testing=False)
    response = app.test_client().get("/boom", headers={"Accept": "text/html"})
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and "secret detail" not in page
    # The extension's page where Flask would show its own; the middleware leaves Flask's answer.
    assert ("sessionmw-error" in page) is (attach == "extension")
    assert "ZeroDivisionError" in peer.recorded()


@pytest.mark.parametrize("attach", ["extension", "middleware"])
def test_the_peer_records_and_the_exception_propagates_under_testing(
    manager: SessionManager, peer: Peer, attach: str
) -> None:
    """TESTING: the test sees the view's exception and the peer still records it."""
    app = make_app(manager, peer, attach, testing=True)
    with pytest.raises(ZeroDivisionError):
        app.test_client().get("/boom")
    assert "ZeroDivisionError" in peer.recorded()


def failing(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A plain WSGI app that fails."""
    raise ZeroDivisionError("secret detail")


@pytest.mark.parametrize("throw_errors", [False, True], ids=["production", "throw_errors"])
def test_the_middleware_answers_around_the_peers_wsgi_middleware(
    manager: SessionManager, peer: Peer, throw_errors: bool
) -> None:
    """A plain WSGI app under the peer's middleware: the peer records, we answer or re-raise."""
    app = SessionMiddleware(peer.wsgi(failing), manager=manager, secret_key="k")
    client = Client(app)
    environ: dict[str, Any] = {"x-wsgiorg.throw_errors": True} if throw_errors else {}

    def call() -> Any:
        return client.get("/", headers={"Accept": "text/html"}, environ_base=environ)

    if throw_errors:
        with pytest.raises(ZeroDivisionError):
            call()
    else:
        response = call()
        page = response.get_data(as_text=True)
        assert response.status_code == 500 and "sessionmw-error" in page and "secret detail" not in page
    assert "ZeroDivisionError" in peer.recorded()
