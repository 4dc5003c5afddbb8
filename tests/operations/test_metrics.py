"""The adapters serve Prometheus metrics at a configurable path, without touching sessions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from sessionmw import ConfigurationError, SessionManager
from sessionmw.analytics import Analytics
from sessionmw.integrations.flask import SessionMW
from sessionmw.integrations.wsgi import SessionMiddleware
from sessionmw.metrics import SessionCollector
from sessionmw.testing import FakeClock


@pytest.fixture(name="instrumented")
def _instrumented(clock: FakeClock) -> Iterator[SessionManager]:
    """A manager counted by Analytics and collected in prometheus_client's default registry."""
    manager = SessionManager(store="memory://", clock=clock)
    analytics = Analytics(manager).connect()
    collector = SessionCollector(manager)
    REGISTRY.register(collector)
    yield manager
    REGISTRY.unregister(collector)
    analytics.disconnect()


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def created(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sessionmw_session_events_total" and sample.labels == {"event": "created"}:
                return sample.value
    raise AssertionError("no sessionmw_session_events_total{event=created} in the exposition")


def test_wsgi_serves_metrics_without_creating_sessions(instrumented: SessionManager) -> None:
    """GET /metrics answers the exposition; it sets no cookie and stores no session."""
    client = Client(SessionMiddleware(hello, manager=instrumented, secret_key="k", metrics_path="/metrics"))
    first = client.get("/")  # issues a pending id
    client.get(
        "/", headers={"Cookie": f"sessionmw={first.headers['Set-Cookie'].split(';')[0].split('=')[1]}"}
    )
    response = client.get("/metrics")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert response.headers["Content-Type"].startswith("text/plain")
    assert created(response.get_data(as_text=True)) == 1
    assert instrumented.session_count() == 1


def test_flask_serves_metrics(instrumented: SessionManager) -> None:
    """SESSIONMW_METRICS_PATH adds the route; scraping it creates no session."""
    app = Flask(__name__)
    app.config["SESSIONMW_METRICS_PATH"] = "/metrics"
    SessionMW(app, manager=instrumented, secret_key="k")
    instrumented.create_session("known")
    with app.test_client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert created(response.get_data(as_text=True)) == 1
    assert instrumented.session_count() == 1


def test_metrics_path_must_be_a_path(instrumented: SessionManager) -> None:
    """A metrics path that does not start with '/' is a configuration error naming it."""
    with pytest.raises(ConfigurationError, match="metrics_path"):
        SessionMiddleware(hello, manager=instrumented, secret_key="k", metrics_path="metrics")


def test_request_latency_reaches_the_histogram(instrumented: SessionManager) -> None:
    """Each request the middleware finishes is timed into the latency histogram."""
    client = Client(SessionMiddleware(hello, manager=instrumented, secret_key="k", metrics_path="/metrics"))
    for _ in range(3):
        client.get("/")
    text = client.get("/metrics").get_data(as_text=True)
    counts = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sessionmw_call_latency_seconds_count"
    ]
    assert counts == [3]
    assert instrumented.stats().mean_latency_seconds is not None
