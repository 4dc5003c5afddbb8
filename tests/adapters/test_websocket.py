"""Websocket admission and message activity without any framework: a plain request view in,
an admission (session or close code) out, and the store operations counted."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from support.fakes import SESSION_KINDS, CountedStore

from sessionmw import SessionManager
from sessionmw._errors import StoreUnavailableError
from sessionmw._session import Policy
from sessionmw._states import Event
from sessionmw.integrations.gate import SessionGate
from sessionmw.integrations.options import Options
from sessionmw.integrations.websocket import (
    CLOSE_SESSION_DISCONNECTED,
    CLOSE_SESSION_REFUSED,
    MessageActivity,
    admit_websocket,
    message_window,
    names_a_session,
)
from sessionmw.stores._base import Outcome
from sessionmw.stores._memory import MemoryStore
from sessionmw.testing import FakeClock

pytestmark = pytest.mark.anyio

ACTIVITY = f"update:{Event.ACTIVITY}"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclasses.dataclass(frozen=True)
class Upgrade:
    """A websocket's opening request as any protocol could hand it over."""

    path: str = "/ws"
    cookies: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    root_path: str = ""
    query_string: str = ""
    scheme: str = "ws"
    remote_address: str | None = "127.0.0.1"

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def body(self, limit: int) -> bytes:
        return b""


@pytest.fixture(name="store")
def _store() -> CountedStore:
    return CountedStore(MemoryStore())


@pytest.fixture(name="counted")
def _counted(store: CountedStore, clock: FakeClock) -> SessionManager:
    """A manager on a counted memory store."""
    return SessionManager(store=store, clock=clock)


@pytest.fixture(name="gate")
def _gate(counted: SessionManager) -> SessionGate:
    return SessionGate(counted, Options.build(secret_key="k", exclude=["/public/"]))


@pytest.mark.parametrize(
    ("upgrade", "named"),
    [
        pytest.param(Upgrade(), False, id="nothing"),
        pytest.param(Upgrade(cookies="theme=dark; other=1"), False, id="other-cookies"),
        pytest.param(Upgrade(cookies="theme=dark; sessionmw=abc"), True, id="cookie"),
        pytest.param(Upgrade(cookies="sessionmw="), True, id="empty-cookie"),
        pytest.param(Upgrade(headers=(("x-session-id", "abc"),)), True, id="header"),
        pytest.param(Upgrade(cookies="xsessionmw=abc"), False, id="longer-name"),
    ],
)
def test_names_a_session(gate: SessionGate, upgrade: Upgrade, named: bool) -> None:
    """A websocket names a session with the header or a cookie of the session cookie's name,
    whatever its value."""
    assert names_a_session(gate, upgrade) is named


async def test_naming_none_is_served_outside_any_session(gate: SessionGate, store: CountedStore) -> None:
    """No id: served outside any session, no store operation; refused with require_session."""
    assert await admit_websocket(gate, Upgrade()) == (None, None)
    assert await admit_websocket(gate, Upgrade(), require_session=True) == (None, CLOSE_SESSION_REFUSED)
    assert dict(store.calls) == {}


@pytest.mark.parametrize("path", ["/public/feed", "/_sessionmw/anything"])
async def test_excluded_paths_are_served_outside_any_session(
    gate: SessionGate, store: CountedStore, path: str
) -> None:
    """An excluded path (or the gate's prefix) neither checks nor refuses, even with an unknown id
    or required sessions."""
    upgrade = Upgrade(path=path, cookies="sessionmw=no-such-session")
    assert await admit_websocket(gate, upgrade, require_session=True) == (None, None)
    assert dict(store.calls) == {}


ADMISSION = {
    "healthy": None,
    "idle": None,
    "error": None,
    "disconnected": CLOSE_SESSION_DISCONNECTED,
    "expired": CLOSE_SESSION_REFUSED,
    "unknown": CLOSE_SESSION_REFUSED,
}


@pytest.mark.parametrize("kind", list(SESSION_KINDS))
@pytest.mark.parametrize("via", ["cookie", "header"])
async def test_a_named_session_is_admitted_only_if_it_may_work(
    gate: SessionGate, counted: SessionManager, store: CountedStore, clock: FakeClock, kind: str, via: str
) -> None:
    """The named session is admitted (one store operation: the activity) if it may work, else the
    websocket is refused with the code of its state; nothing is created."""
    sid = SESSION_KINDS[kind](counted, clock)
    upgrade = (
        Upgrade(cookies=f"sessionmw={sid}") if via == "cookie" else Upgrade(headers=(("x-session-id", sid),))
    )
    count = counted.session_count()
    gate.pending.issue()  # the incarnation read once, as after the first client
    store.calls.clear()
    session, code = await admit_websocket(gate, upgrade)
    assert code == ADMISSION[kind]
    assert (session is not None and session.id == sid) is (code is None)
    assert store.calls[ACTIVITY] == 1 and store.calls["create"] == 0
    assert counted.session_count() <= count


async def test_a_malformed_id_is_refused(gate: SessionGate, counted: SessionManager) -> None:
    """An id of the wrong shape is refused, never stored."""
    assert await admit_websocket(gate, Upgrade(cookies="sessionmw=not an id!")) == (
        None,
        CLOSE_SESSION_REFUSED,
    )
    assert counted.session_count() == 0


async def test_a_pending_id_coming_back_is_stored_and_admitted(
    gate: SessionGate, counted: SessionManager
) -> None:
    """An id this server issued (a page's first websocket) is stored now, as when a request brings it back."""
    sid = gate.pending.issue()
    session, code = await admit_websocket(gate, Upgrade(cookies=f"sessionmw={sid}"))
    assert code is None and session is not None and session.id == sid
    assert counted.get_session(sid) is not None


async def test_a_store_failure_raises_as_for_a_request(clock: FakeClock) -> None:
    """With the store down and fail_closed, admission raises (the adapter's framework answers it)."""

    class DownStore(MemoryStore):
        def update(
            self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
        ) -> Outcome | None:
            raise StoreUnavailableError("down")

    manager = SessionManager(store=DownStore(), clock=clock, on_store_error="fail_closed")
    gate = SessionGate(manager, Options.build(secret_key="k"))
    with pytest.raises(StoreUnavailableError):
        await admit_websocket(gate, Upgrade(cookies="sessionmw=some-session"))


@pytest.mark.parametrize(
    ("policy", "window"),
    [
        pytest.param(Policy(activity_resolution=7.0), 7.0, id="the-renewal-window"),
        pytest.param(
            Policy(idle_after=300.0, timeout=1800.0, activity_resolution=0.0), 15.0, id="zero-uses-the-share"
        ),
        pytest.param(
            Policy(idle_after=4000.0, timeout=1200.0, activity_resolution=0.0), 60.0, id="shorter-timeout"
        ),
    ],
)
def test_message_window(policy: Policy, window: float) -> None:
    """Messages reach the store once per renewal window; a window of 0 still never writes per message."""
    assert message_window(policy) == window


async def test_messages_touch_the_store_once_per_window(
    counted: SessionManager, store: CountedStore, clock: FakeClock
) -> None:
    """Within the window no message costs a store operation; the first past it costs one: the activity."""
    sid = counted.create_session().session_id
    activity = MessageActivity(counted, sid)
    store.calls.clear()
    for _ in range(50):
        await activity.message()
        clock.advance(activity.window / 100)
    assert dict(store.calls) == {}
    clock.advance(activity.window)
    for _ in range(50):
        await activity.message()
    assert dict(store.calls) == {ACTIVITY: 1}
    record = counted.get_session(sid)
    assert record is not None and record.last_activity == clock()


async def test_a_store_failure_on_a_message_is_logged_not_raised(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The store down while a websocket is open: the message goes through, the failure is logged."""

    class FlakyStore(MemoryStore):
        down = False

        def update(
            self, session_id: str, event: Event | None, now: float, policy: Policy, error: str | None = None
        ) -> Outcome | None:
            if self.down:
                raise StoreUnavailableError("down")
            return super().update(session_id, event, now, policy, error)

    store = FlakyStore()
    manager = SessionManager(store=store, clock=clock, on_store_error="fail_closed")
    activity = MessageActivity(manager, manager.create_session().session_id)
    store.down = True
    clock.advance(activity.window)
    with caplog.at_level(logging.WARNING, logger="sessionmw.wsgi"):
        await activity.message()
    assert any("websocket message" in record.getMessage() for record in caplog.records)
