"""The WSGI, Flask, Starlette, FastAPI and Quart examples: their behaviour in-process, and each
one served by its own command (with a one-line error for a port it cannot have)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from http.cookiejar import CookieJar
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.servers import free_port, wait_for_port

from sessionmw import SessionManager, SessionState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serving(script: str, port: int, deadline: float = 20.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python examples/<script> --port PORT``; yield once the port accepts connections."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        wait_for_port(proc, port, deadline)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


class Browser:
    """A tiny HTTP client with a cookie jar, for loopback servers only."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        #: The cookies the server set.
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str, accept: str = "text/html", method: str = "GET") -> tuple[int, Message, str]:
        """The status, the headers (looked up in any case: ASGI servers send them in lower case)
        and the body of a request to ``path``."""
        request = urllib.request.Request(self.base + path, headers={"Accept": accept}, method=method)
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read().decode()


# -- in process ----------------------------------------------------------------------------------


def test_wsgi_example_tracks_errors_and_disconnects(manager: SessionManager) -> None:
    """The WSGI example records each /fail on the session; at the threshold the page offers Reconnect."""
    from werkzeug.test import Client

    client = Client(load("wsgi_app").create_app(manager, secret_key="k"))
    assert client.get("/").status_code == 200
    client.get("/")
    sid = client.get_cookie("sessionmw")
    assert sid is not None
    for _ in range(manager.policy.error_threshold):
        failed = client.get("/fail", headers={"Accept": "application/json"})
        assert failed.status_code == 503
        assert "10.0.0.7" not in failed.get_data(as_text=True)
    record = manager.get_session(sid.value)
    assert record is not None and record.state is SessionState.DISCONNECTED
    assert "Reconnect" in client.get("/").get_data(as_text=True)


def test_flask_example_flaky_backend_gives_friendly_json(manager: SessionManager) -> None:
    """Every third quote fails as a friendly 503 JSON error recorded on the session; the next succeeds."""
    module = load("flask_app")
    app = module.create_app(manager, module.FlakyBackend(fail_every=3))
    with app.test_client() as client:
        responses = [client.get("/api/quote", headers={"Accept": "application/json"}) for _ in range(6)]
        cookie = client.get_cookie("sessionmw")
    assert [r.status_code for r in responses] == [200, 200, 503, 200, 200, 503]
    body: Any = responses[2].get_json()
    assert body["transient"] is True and body["recovery"]
    assert "10.0.0.9" not in json.dumps(body)
    assert cookie is not None
    record = manager.get_session(cookie.value)
    assert record is not None and (record.state, record.error_count) == (SessionState.ERROR, 1)


def asgi_client(app: Any) -> Any:
    """Starlette's test client for an ASGI example: the friendly answer to an app exception is
    what it returns (the exception still reaches the server, as it does under uvicorn)."""
    from starlette.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


def test_starlette_example_tracks_errors_and_disconnects(manager: SessionManager) -> None:
    """The Starlette example records each /fail on the session; at the threshold the page offers Reconnect."""
    with asgi_client(load("starlette_app").create_app(manager, secret_key="k")) as client:
        assert client.get("/").status_code == 200
        client.get("/")
        sid = client.cookies.get("sessionmw")
        assert sid is not None
        assert client.get("/api/status").json() == {"session_state": "active", "same_session": True}
        for _ in range(manager.policy.error_threshold):
            failed = client.get("/fail", headers={"Accept": "application/json"})
            assert failed.status_code == 503 and failed.headers["Retry-After"].isdigit()
            assert "10.0.0.7" not in failed.text and failed.json()["recovery"]
        record = manager.get_session(sid)
        assert record is not None and record.state is SessionState.DISCONNECTED
        page = client.get("/").text
    assert "Reconnect" in page and ".sessionmw-banner" in page and 'name="viewport"' in page


def test_fastapi_example_flaky_backend_gives_friendly_json(manager: SessionManager) -> None:
    """Every third quote fails as a friendly 503 JSON error recorded on the session; the next succeeds."""
    module = load("fastapi_app")
    with asgi_client(module.create_app(manager, module.FlakyBackend(fail_every=3))) as client:
        responses = [client.get("/api/quote", headers={"Accept": "application/json"}) for _ in range(6)]
        cookie = client.cookies.get("sessionmw")
    assert [r.status_code for r in responses] == [200, 200, 503, 200, 200, 503]
    body: Any = responses[2].json()
    assert body["transient"] is True and body["recovery"]
    assert "10.0.0.9" not in json.dumps(body)
    assert cookie is not None
    record = manager.get_session(cookie)
    assert record is not None and (record.state, record.error_count) == (SessionState.ERROR, 1)


def test_fastapi_example_backend_switch_reaches_the_banner(manager: SessionManager) -> None:
    """Switched off on the page, the backend fails every call: JSON clients get 503 with
    Retry-After, and after five failures the page shows the styled banner with Reconnect, which
    reconnects the session."""
    with asgi_client(load("fastapi_app").create_app(manager)) as client:
        assert client.get("/").status_code == 200
        assert client.post("/backend/off", follow_redirects=False).status_code == 303
        for _ in range(manager.policy.error_threshold):
            failed = client.get("/api/quote", headers={"Accept": "application/json"})
            assert failed.status_code == 503 and failed.headers["Retry-After"].isdigit()
            assert failed.json()["recovery"]
        page = client.get("/").text
        assert "Session disconnected" in page and "Reconnect" in page
        assert ".sessionmw-banner" in page and "&#39;Segoe UI&#39;" not in page  # the CSS, unescaped
        browser = client.get("/api/quote", headers={"Accept": "text/html,*/*;q=0.8"})
        assert browser.status_code == 503 and "text/html" in browser.headers["Content-Type"]
        assert "Session disconnected" in browser.text and "10.0.0.9" not in browser.text
        switched = client.post("/backend/on", follow_redirects=False)  # works while disconnected
        assert switched.status_code == 303
        assert "backend on" in client.get("/").text
        back = client.post("/_sessionmw/reconnect", data={"next": "/"})
    assert back.status_code == 200 and "Reconnected" in back.text and "Session: active" in back.text


def test_fastapi_example_unknown_switch_is_named(manager: SessionManager) -> None:
    """A switch other than on/off is a 404 naming it."""
    with asgi_client(load("fastapi_app").create_app(manager)) as client:
        response = client.post("/backend/sideways")
    assert response.status_code == 404 and "'sideways'" in response.text


def test_fastapi_example_page_says_the_session_expired(manager: SessionManager, clock: Any) -> None:
    """Back after the timeout, the page says the session expired, once, and goes on with a new one."""
    with asgi_client(load("fastapi_app").create_app(manager)) as client:
        client.get("/")
        assert "Session: active" in client.get("/").text
        clock.advance(manager.policy.timeout + 1)
        expired = client.get("/").text
        again = client.get("/").text
    assert "Session expired" in expired
    assert "Session expired" not in again and "Session: active" in again


def test_quart_example_flaky_backend_gives_friendly_json(manager: SessionManager) -> None:
    """The Quart example: every third quote fails as a friendly 503 JSON error recorded on the
    session; the page's websocket runs in the page's session and answers a failure in words."""
    module = load("quart_app")
    app = module.create_app(manager, module.FlakyBackend(fail_every=3))

    async def walk() -> tuple[list[Any], Any, list[Any]]:
        client = app.test_client()
        responses = [await client.get("/api/quote", headers={"Accept": "application/json"}) for _ in range(6)]
        body = await responses[2].get_json()
        live = []
        async with client.websocket("/ws/quotes") as ws:
            for _ in range(3):
                await ws.send("quote")
                live.append(await ws.receive_json())
        return [r.status_code for r in responses], body, live

    statuses, body, live = asyncio.run(walk())
    assert statuses == [200, 200, 503, 200, 200, 503]
    assert body["transient"] is True and body["recovery"] and "10.0.0.9" not in json.dumps(body)
    assert [sorted(quote) for quote in live] == [["price", "symbol"], ["price", "symbol"], ["message"]]
    assert "10.0.0.9" not in live[2]["message"]
    (record,) = manager.store.records()  # the 4th and 5th quotes cleared the 3rd's error
    assert (record.state, record.error_count) == (SessionState.ERROR, 1)


# -- served by their own command -----------------------------------------------------------------


#: Each example's failing endpoint.
FAILING = {
    "wsgi_app.py": "/fail",
    "flask_app.py": "/api/quote",
    "starlette_app.py": "/fail",
    "fastapi_app.py": "/api/quote",
    "quart_app.py": "/api/quote",
}


@pytest.mark.parametrize("script", list(FAILING))
def test_example_serves_with_one_command(script: str) -> None:
    """``python examples/<script> --port N`` serves the page, the health endpoint and a friendly error."""
    port = free_port()
    with serving(script, port):
        browser = Browser(port)
        status, headers, page = browser.get("/")
        assert status == 200 and "<h1>" in page
        status, headers, _ = browser.get("/_sessionmw/health", accept="application/json")
        assert status == 200 and headers["Content-Type"] == "application/health+json"
        failing = FAILING[script]
        results = [browser.get(failing, accept="application/json") for _ in range(3)]
        errors = [body for code, _, body in results if code == 503]
        assert errors, results
        assert "Traceback" not in errors[0] and json.loads(errors[0])["recovery"]


def handshake(port: int, path: str, cookie: str | None) -> str:
    """The status line a served app answers a websocket's opening request with (101: accepted)."""
    import socket

    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if cookie is not None:
        lines.append(f"Cookie: {cookie}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return conn.recv(4096).decode("latin-1").split("\r\n")[0]


def test_quart_example_refuses_a_websocket_before_accept_when_served() -> None:
    """Served by Hypercorn: the page's websocket opens in the page's session (101); one naming an
    unknown session is closed before accept, which the server answers with 403; one naming none
    opens outside any session."""
    port = free_port()
    with serving("quart_app.py", port):
        browser = Browser(port)
        browser.get("/")
        browser.get("/")
        (cookie,) = [c for c in browser.jar if c.name == "sessionmw"]
        assert handshake(port, "/ws/quotes", f"sessionmw={cookie.value}").startswith("HTTP/1.1 101")
        assert handshake(port, "/ws/quotes", "sessionmw=made-up-id").startswith("HTTP/1.1 403")
        assert handshake(port, "/ws/quotes", None).startswith("HTTP/1.1 101")


@pytest.mark.parametrize("script", ["flask_app.py", "starlette_app.py", "fastapi_app.py", "quart_app.py"])
def test_example_names_a_port_in_use_in_one_line(script: str) -> None:
    """A port another program holds: the example exits with one line saying so, no traceback."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / script), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    said = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1
    assert said[-1] == (
        f"Port {port} is in use by another program. Either identify and stop that program, "
        "or start the server with a different port."
    ), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("script", ["flask_app.py", "starlette_app.py", "fastapi_app.py", "quart_app.py"])
@pytest.mark.parametrize(
    ("port", "said"),
    [
        pytest.param("0", "port must be between 1 and 65535, not 0", id="zero"),
        pytest.param("99999", "port must be between 1 and 65535, not 99999", id="too-big"),
        pytest.param("http", "port must be a number, not 'http'", id="not-a-number"),
    ],
)
def test_example_names_a_bad_port_in_one_line(script: str, port: str, said: str) -> None:
    """A port that is no port: argparse's usage and one line naming it (exit status 2), no server
    (werkzeug would have served 99999 on 34463, the port modulo 65536, and said 99999)."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == f"{script}: error: argument --port: {said}"


# -- first contact (issue 11) --------------------------------------------------------------------


def test_flask_example_backend_switch_reaches_the_banner(manager: SessionManager) -> None:
    """Switched off on the page, the backend fails every call: JSON clients get 503 with
    Retry-After, and after five failures the page shows the styled banner with Reconnect."""
    app = load("flask_app").create_app(manager)
    with app.test_client() as client:
        assert client.get("/").status_code == 200
        assert client.post("/backend/off").status_code == 303
        for _ in range(manager.policy.error_threshold):
            failed = client.get("/api/quote", headers={"Accept": "application/json"})
            assert failed.status_code == 503 and failed.headers["Retry-After"].isdigit()
            assert failed.get_json()["recovery"]
        page = client.get("/").get_data(as_text=True)
        assert "Session disconnected" in page and "Reconnect" in page
        assert ".sessionmw-banner" in page and "&#39;Segoe UI&#39;" not in page  # the CSS, unescaped
        assert client.post("/backend/on").status_code == 303  # the switch works while disconnected
        assert "backend on" in client.get("/").get_data(as_text=True)
        browser = client.get("/api/quote", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 503 and "text/html" in browser.headers["Content-Type"]


def test_flask_example_unknown_switch_is_named(manager: SessionManager) -> None:
    """A switch other than on/off is a 404 naming it."""
    app = load("flask_app").create_app(manager)
    response = app.test_client().post("/backend/sideways")
    assert response.status_code == 404 and "'sideways'" in response.get_data(as_text=True)


def test_wsgi_example_page_is_styled(manager: SessionManager) -> None:
    """The WSGI example's page carries the banner stylesheet and a phone viewport."""
    from werkzeug.test import Client

    client = Client(load("wsgi_app").create_app(manager, secret_key="k"))
    page = client.get("/").get_data(as_text=True)
    assert ".sessionmw-banner" in page and 'name="viewport"' in page


# -- the operator's commands agree with the page (issue 27) ---------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_operator_commands_read_the_apps_policy(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """An app made with a 1-minute timeout: `sessionmw sessions list` and `sessionmw health`, run
    with no such setting, judge its session by that minute, as the page's health report does."""
    from support.stores import shared_store_url

    url = shared_store_url(kind, request, tmp_path)
    manager = SessionManager(store=url, session_timeout_minutes=1, idle_after_seconds=20)
    try:
        app = load("flask_app").create_app(manager)
        with app.test_client() as client:
            for _ in range(2):  # the first issues a pending id, the second comes back with it: stored
                assert client.get("/api/quote", headers={"Accept": "application/json"}).status_code == 200
            page = client.get("/_sessionmw/health?page=1").get_json()["session"]
            cookie = client.get_cookie("sessionmw")
        assert cookie is not None
        session_id = cookie.value
    finally:
        manager.close()
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIONMW_")}

    def command(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "sessionmw", *args, "--json", "--store", url],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    (row,) = command("sessions", "list")
    health = command("health", session_id)
    assert row["id"] == session_id
    # The page's numbers and the commands': under the minute, never the default half hour.
    for seconds in (page["seconds_until_expiry"], row["expires_in_seconds"], health["seconds_until_expiry"]):
        assert 0 < seconds <= 60
    assert health["seconds_until_expiry"] <= page["seconds_until_expiry"]
    config = subprocess.run(
        [sys.executable, "-m", "sessionmw", "config", "--json"],
        capture_output=True,
        text=True,
        env={**env, "SESSIONMW_STORE_URL": url},
        timeout=60,
        check=False,
    )
    settings = json.loads(config.stdout)
    assert settings["session_timeout_minutes"]["value"] == 1
    assert settings["idle_after_seconds"]["value"] == 20
