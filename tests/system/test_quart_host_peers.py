"""sessionmw beside sentry-sdk's QuartIntegration, which observes a Quart app's errors through the
same signals (``got_request_exception``, ``got_websocket_exception``) and wraps ``Quart.__call__``.

sentry must record every view's and websocket's exception with the extension attached, exactly as
bare, while the user gets the friendly page (production) or the exception propagates
(``PROPAGATE_EXCEPTIONS``). Nothing leaves the machine: sentry's transport keeps the events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from quart import Quart, websocket

from sessionmw import SessionManager
from sessionmw.integrations.quart import SessionMWQuart

sentry_sdk = pytest.importorskip("sentry_sdk")
from sentry_sdk.integrations.quart import QuartIntegration  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class MemoryTransport(Transport):
    """A sentry transport that keeps the events instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)

    def recorded(self) -> list[str]:
        """The exception type of every captured event."""
        return [
            value["type"] for event in self.events for value in event.get("exception", {}).get("values", [])
        ]


@pytest.fixture(name="sentry")
def _sentry() -> Iterator[MemoryTransport]:
    """sentry-sdk with only its QuartIntegration, on an in-memory transport."""
    transport = MemoryTransport()
    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",  # never contacted: the transport keeps the events
        transport=transport,
        integrations=[QuartIntegration()],
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def make_app(app_class: type[Quart], manager: SessionManager | None, **config: Any) -> Quart:
    """A Quart app with a failing view and a failing websocket; sessionmw if ``manager``."""
    app = app_class("peers")
    app.config.update(SECRET_KEY="k", **config)

    @app.get("/boom")
    async def boom() -> str:
        raise ZeroDivisionError("secret detail")

    @app.websocket("/ws/boom")
    async def ws_boom() -> None:
        await websocket.accept()
        await websocket.receive()
        raise LookupError("websocket secret detail")

    if manager is not None:
        SessionMWQuart(app, manager=manager)
    return app


@pytest.fixture(name="app_class")
def _app_class(anyio_backend: str) -> type[Quart]:
    if anyio_backend == "trio":
        from quart_trio import QuartTrio

        return QuartTrio
    return Quart


async def run(app: Quart, websockets: bool) -> tuple[int | str, str]:
    """The failing view's status (or the exception it raised) and the failing websocket's outcome
    (not tried with ``PROPAGATE_EXCEPTIONS``: Quart's test client then waits forever, bare too)."""
    client = app.test_client()
    try:
        response = await client.get("/boom", headers={"Accept": "text/html"})
        status: int | str = response.status_code
        assert "secret detail" not in await response.get_data(as_text=True)
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        status = f"raised {type(exc).__name__}"
    if not websockets:
        return status, "not tried"
    try:
        async with client.websocket("/ws/boom") as ws:
            await ws.send("go")
            await ws.receive()
        closed = "open"
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        closed = type(exc).__name__
    return status, closed


@pytest.mark.parametrize("config", [{}, {"PROPAGATE_EXCEPTIONS": True}], ids=["production", "propagate"])
async def test_sentry_records_every_exception_as_bare(
    app_class: type[Quart], manager: SessionManager, sentry: MemoryTransport, config: dict[str, Any]
) -> None:
    """sentry records the view's and the websocket's exceptions with the extension as without it;
    the client sees the same outcome (production: our page where Quart's plain 500 was)."""
    websockets = not config
    bare = await run(make_app(app_class, None, **config), websockets)
    bare_events = sentry.recorded()
    sentry.events.clear()
    attached = await run(make_app(app_class, manager, **config), websockets)
    assert sentry.recorded() == bare_events
    # (under trio, sentry's ASGI middleware also records the server's exception group, bare too)
    assert {"ZeroDivisionError", *(["LookupError"] if websockets else [])} <= set(bare_events)
    assert attached == bare
