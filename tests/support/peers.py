"""The real observers of an ASGI app's errors, kept in memory: sentry-sdk with a transport that
keeps its events, and OpenTelemetry with an in-memory span exporter (``tests/system/
test_asgi_host_peers.py``, ``test_quart_host_peers.py``). Nothing leaves the machine.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from opentelemetry.sdk import trace as otel_trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sentry_sdk.transport import Transport


class MemoryTransport(Transport):
    """A sentry transport that keeps the events instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


class Observer:
    """One observer, ``kind`` ``"sentry"`` (with the given sentry ``integrations``) or an
    ``"otel-..."`` placement the test module gives meaning to; :meth:`recorded` lists what it saw
    since the last call, :meth:`close` shuts it down."""

    def __init__(self, kind: str, integrations: list[Any]) -> None:
        self.kind = kind
        self.transport = MemoryTransport()
        self.exporter = InMemorySpanExporter()
        self.provider = otel_trace.TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        if kind == "sentry":
            sentry_sdk.init(
                dsn="http://public@127.0.0.1:9/1",  # never contacted: the transport keeps the events
                transport=self.transport,
                integrations=integrations,
                default_integrations=False,
                auto_enabling_integrations=False,
            )

    def recorded(self) -> list[str]:
        """What was recorded since the last call: the exception type of every sentry event; the
        status of every OpenTelemetry server span, and the type of every exception event."""
        if self.kind == "sentry":
            events, self.transport.events = self.transport.events, []
            return [
                value["type"] for event in events for value in event.get("exception", {}).get("values", [])
            ]
        spans = self.exporter.get_finished_spans()
        self.exporter.clear()
        seen = [
            f"server span: {span.status.status_code.name}" for span in spans if span.kind is SpanKind.SERVER
        ]
        return seen + [
            str((event.attributes or {}).get("exception.type", "")).rpartition(".")[2]
            for span in spans
            for event in span.events
            if event.name == "exception"
        ]

    def close(self) -> None:
        if self.kind == "sentry":
            sentry_sdk.get_client().close()
            sentry_sdk.get_global_scope().set_client(None)
        self.provider.shutdown()
