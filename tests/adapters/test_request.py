"""The request view the gate reads: an object with the view's attributes is all the gate needs,
whatever protocol it came from (the WSGI environ's view is one; an ASGI scope's will be another)."""

from __future__ import annotations

import json

from sessionmw import SessionManager
from sessionmw.integrations.environ import EnvironRequest
from sessionmw.integrations.gate import SessionGate
from sessionmw.integrations.options import Options
from sessionmw.integrations.request import RequestView
from sessionmw.testing import FakeClock
from sessionmw.translation import translate


class HeaderTable:
    """A view over a plain header table, as a protocol other than WSGI could hand one over: the
    view's attributes and nothing else (no environ, no dataclass)."""

    def __init__(self, path: str, *headers: tuple[str, str], method: str = "GET") -> None:
        self.method, self.path, self.root_path, self.query_string = method, path, "/app", ""
        self.scheme, self.remote_address = "https", None
        self._headers = {name.lower(): value for name, value in headers}
        self.cookies = self._headers.get("cookie", "")

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    def body(self, limit: int) -> bytes:
        return b""


def test_the_gate_serves_any_request_view(clock: FakeClock) -> None:
    """A new client through the plain view gets a pending session and a Secure cookie, an error page
    leads back to its mount point; its id sent back is its session; the health endpoint answers in JSON."""
    manager = SessionManager(store="memory://", clock=clock)
    gate = SessionGate(manager, Options.build(secret_key="k"))
    first: RequestView = HeaderTable("/page")
    session, answer = gate.admit(first)
    assert answer is None and session is not None and not session.stored
    assert "Secure" in gate.cookie_header(session.id, first)  # (the view's scheme is https)
    page = gate.error_response(translate(RuntimeError("boom")), first, via_header=False).body.decode()
    assert 'href="/app/"' in page  # the way back leads to the view's mount point
    gate.finish(session, 200)
    again, _ = gate.admit(HeaderTable("/page", ("Cookie", f"sessionmw={session.id}")))
    assert again is not None and again.id == session.id
    _, health = gate.admit(HeaderTable("/_sessionmw/health", ("Accept", "application/json")))
    assert health is not None and json.loads(health.body)["session"]["status"] == "not_found"
    manager.close()


def test_the_wsgi_view_is_a_request_view() -> None:
    """The WSGI adapter's view has every attribute of the protocol (mypy checks the assignment)."""
    view: RequestView = EnvironRequest({"PATH_INFO": "/x"})
    assert view.path == "/x" and view.header("cookie") is None
