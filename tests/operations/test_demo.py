"""The demo app without a browser: its knobs, its slow and failing work, its command."""

from __future__ import annotations

import json
import logging
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dash
import pytest
from flask.testing import FlaskClient
from support.dash import (
    fire,
    loaded_client,
    texts_of,
)
from support.processes import sessionmw_command
from support.servers import callback_payload, demo_server, fire_callback, free_port, session_cookie

from sessionmw import DataLoadError, SessionManager, SessionState, TransientError
from sessionmw.__main__ import main
from sessionmw._breaker import get_breaker
from sessionmw.demo import DemoUnavailableError, load_demo
from sessionmw.integrations.dash_banner import HEALTH_STORE_ID
from sessionmw.testing import FakeClock

THRESHOLD = 3


@pytest.fixture(name="demo_module", scope="module")
def _demo_module() -> ModuleType:
    """The demo app's module, loaded from examples/."""
    return load_demo()


@pytest.fixture(name="sessions")
def _sessions(clock: FakeClock) -> Iterator[SessionManager]:
    """A manager that disconnects after three errors."""
    manager = SessionManager(store="memory://", clock=clock, max_error_threshold=THRESHOLD)
    yield manager
    manager.close()


@pytest.fixture(name="backend")
def _backend(demo_module: ModuleType) -> Any:
    """The simulated market backend, with no real waiting."""
    return demo_module.MarketBackend(sleep=lambda seconds: None)


@pytest.fixture(name="app")
def _app(demo_module: ModuleType, sessions: SessionManager, backend: Any) -> dash.Dash:
    """The demo app over ``backend`` and ``sessions``."""
    app: dash.Dash = demo_module.create_app(manager=sessions, backend=backend, retry_sleep=lambda s: None)
    return app


@pytest.fixture(name="client")
def _client(app: dash.Dash) -> FlaskClient:
    """A browser that has loaded the page twice: its session is stored."""
    client: FlaskClient = app.server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200
    return client


_sid = session_cookie
_fire = fire_callback


def _knob(client: FlaskClient, change: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    if change is None:
        response = client.get("/demo/faults", headers={"Accept": "application/json"})
    else:
        response = client.post("/demo/faults", json=change, headers={"Accept": "application/json"})
    return response.status_code, response.get_json()


def _texts(component: Any) -> str:
    """Every string inside a serialised Dash component tree."""
    if isinstance(component, str):
        return component
    if isinstance(component, dict):
        return " ".join(_texts(value) for value in component.values())
    if isinstance(component, list):
        return " ".join(_texts(value) for value in component)
    return ""


# -- the knobs ----------------------------------------------------------------------------------


def test_knobs_show_the_backends_state(client: FlaskClient, backend: Any) -> None:
    """A fresh page asks the backend: the boxes and the summary show the faults that are on."""
    backend.faults.bad_data = True
    status, state = _knob(client)
    assert status == 200
    assert state == {"flags": ["bad-data"], "transient": 0, "summary": "Active faults: bad data"}


def test_knobs_change_the_backend(client: FlaskClient, backend: Any) -> None:
    """Ticking and unticking boxes turns the faults on and off; the answer is the new state."""
    _, state = _knob(client, {"flags": ["down", "slow"]})
    assert backend.faults.backend_down and backend.faults.latency_seconds == 2.0
    assert state["flags"] == ["down", "slow"]
    _, state = _knob(client, {"flags": []})
    assert not backend.faults.backend_down and state["summary"] == "Active faults: none"


def test_next_calls_fail_counts_down(client: FlaskClient, backend: Any) -> None:
    """ "Fail the next 2 calls" shows 2, then 1 after one call, then disappears."""
    _, state = _knob(client, {"transient": 2})
    assert "next 2 calls fail" in state["summary"]
    with pytest.raises(Exception, match="busy"):
        backend.prices("ACME")
    assert _knob(client)[1]["summary"] == "Active faults: next call fails"
    with pytest.raises(Exception, match="busy"):
        backend.prices("ACME")
    assert _knob(client)[1]["summary"] == "Active faults: none"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param({"flags": ["meteor"]}, "'meteor'", id="unknown-flag"),
        pytest.param({"flags": "down"}, "list", id="flags-not-a-list"),
        pytest.param({"transient": 0}, "0", id="zero-calls"),
        pytest.param({"transient": True}, "True", id="bool-calls"),
        pytest.param(["down"], "JSON object", id="not-an-object"),
    ],
)
def test_bad_knob_requests_are_named(client: FlaskClient, change: Any, named: str) -> None:
    """A malformed knob request is a 400 naming what was wrong; the faults stay as they were."""
    status, body = _knob(client, change)
    assert status == 400 and named in body["error"]
    assert _knob(client)[1]["summary"] == "Active faults: none"


@pytest.mark.parametrize("state", ["disconnected", "expired"])
def test_knobs_work_whatever_the_session_state(
    client: FlaskClient, sessions: SessionManager, clock: FakeClock, backend: Any, state: str
) -> None:
    """Disconnected or expired, the operator's knobs still change the backend (issue 11, seen 7)."""
    sid = _sid(client)
    backend.faults.backend_down = True
    if state == "disconnected":
        for _ in range(THRESHOLD):
            sessions.record_error(sid, "down")
    else:
        clock.advance(31 * 60)
    before = sessions.get_session(sid)
    status, body = _knob(client, {"flags": []})
    assert status == 200 and body["flags"] == [] and not backend.faults.backend_down
    after = sessions.get_session(sid)
    assert after == before  # the knob neither touched nor changed the session


# -- slow and failing work ----------------------------------------------------------------------


def test_failed_scan_replaces_the_old_table(app: dash.Dash, client: FlaskClient, backend: Any) -> None:
    """A scan that fails does not leave the previous results looking current."""
    scan = (["scan-output.children"], [("scan-run", "n_clicks", 1)], [("scan-symbols", "value", "ACME")])
    status, body = _fire(app, client, *scan)
    assert status == 200 and "ACME" in _texts(body["response"])
    backend.faults.bad_data = True
    status, body = _fire(app, client, *scan)
    text = _texts(body["response"]["scan-output"]["children"])
    assert status == 200 and "this scan failed" in text and "ACME" not in text


def test_one_backtest_job_counts_one_error(
    app: dash.Dash, client: FlaskClient, sessions: SessionManager, backend: Any
) -> None:
    """Bad data fails the progress poll: it stops, and polls of the same job count once (seen 4)."""
    start_outputs = [
        "bt-job.data",
        "bt-tick.disabled",
        "bt-output.children",
        "bt-progress.value",
        "bt-progress-label.children",
    ]
    state = [("bt-symbols", "value", "ACME, WAYNE"), ("bt-fast", "value", 5), ("bt-slow", "value", 20)]
    _, body = _fire(app, client, start_outputs, [("bt-run", "n_clicks", 1)], state)
    job_id = body["response"]["bt-job"]["data"]
    backend.faults.bad_data = True
    tick_outputs = [
        "bt-progress.value",
        "bt-progress-label.children",
        "bt-output.children",
        "bt-tick.disabled",
    ]
    for ticks in (1, 2, 3):
        status, body = _fire(
            app, client, tick_outputs, [("bt-tick", "n_intervals", ticks)], [("bt-job", "data", job_id)]
        )
        assert status == 200
        assert body["response"]["bt-tick"]["disabled"] is True
        assert "Stopped after 0 of 2" in _texts(body["response"]["bt-output"])
    record = sessions.get_session(_sid(client))
    assert record is not None and record.error_count == 1 and record.state is SessionState.ERROR


# -- the command --------------------------------------------------------------------------------


def test_busy_port_is_one_line_naming_port(
    demo_module: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a port in use the demo prints one line naming --port and exits 1 (no server traceback)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert demo_module.main(["--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"port {port} is in use" in err and "--port" in err


def test_a_port_a_stopped_demo_just_used_is_free(demo_module: ModuleType) -> None:
    """A restart on the same port right away works: the stopped server's connections, left in
    TIME_WAIT (it closed them first), are no listener; a listener still is."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's server
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert demo_module.port_in_use(port)
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server closes first: its side waits in TIME_WAIT
            client.recv(1)
    assert not demo_module.port_in_use(port)


def test_demo_configures_its_secret(
    demo_module: ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The demo signs session ids with a secret of its own: no secret-key warning for a newcomer."""
    monkeypatch.delenv("SESSIONMW_SECRET_KEY", raising=False)
    with caplog.at_level(logging.WARNING):
        demo_module.create_app(manager=SessionManager(store="memory://"))
    assert not [r for r in caplog.records if "secret key" in r.getMessage()]


def test_the_demo_keeps_its_secret_in_the_state_folder(
    demo_module: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without SESSIONMW_SECRET_KEY the secret is made once in $XDG_STATE_HOME/sessionmw/demo-secret
    (mode 0600) and read back by the next start; the variable, when set, wins."""
    monkeypatch.delenv("SESSIONMW_SECRET_KEY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    secret = demo_module.demo_secret()
    path = tmp_path / "sessionmw" / "demo-secret"
    assert path.read_text(encoding="ascii").strip() == secret and len(secret) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert demo_module.demo_secret() == secret  # a restart reads the same one
    assert [entry.name for entry in path.parent.iterdir()] == ["demo-secret"]  # no draft left
    monkeypatch.setenv("SESSIONMW_SECRET_KEY", "from-the-environment")
    assert demo_module.demo_secret() == "from-the-environment"


def http(
    url: str, *, cookie: str | None = None, accept: str = "text/html", body: Any = None
) -> tuple[int, str | None, bytes]:
    """One request to a real server: the status, the ``sessionmw`` cookie it sets (or None), the body."""
    headers = {"Accept": accept}
    if cookie is not None:
        headers["Cookie"] = f"sessionmw={cookie}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, received, content = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, received, content = error.code, error.headers, error.read()
    issued = None
    for value in received.get_all("Set-Cookie") or []:
        if value.startswith("sessionmw="):
            issued = value.split(";")[0].partition("=")[2]
    return status, issued, content


def test_a_click_after_a_real_restart_is_refused_as_not_found(
    demo_module: ModuleType, tmp_path: Path
) -> None:
    """The demo really restarted (stopped by its pid, started again on the same port, the same
    state folder): the old cookie's click is refused ("Session not found", nothing runs), a JSON
    request gets 401 not_found, and a page load starts a working session (issue 11)."""
    app = demo_module.create_app(manager=SessionManager(store="memory://"))
    scan = callback_payload(app, *_SCAN)
    port, log = free_port(), tmp_path / "demo.log"
    base = f"http://127.0.0.1:{port}"
    with demo_server(port, tmp_path / "state", log):
        status, sid, _ = http(base + "/")
        assert status == 200 and sid is not None
        status, _, content = http(
            base + "/_dash-update-component", cookie=sid, accept="application/json", body=scan
        )
        assert status == 200 and "scan-output" in json.loads(content)["response"]  # stored, and it ran
    with demo_server(port, tmp_path / "state", log):
        for _ in range(2):  # every click, not only the first
            status, issued, content = http(
                base + "/_dash-update-component", cookie=sid, accept="application/json", body=scan
            )
            answer = json.loads(content)
            assert status == 200 and issued is None and not answer.get("response")  # nothing ran
            health = answer["sideUpdate"][HEALTH_STORE_ID]["data"]
            assert health["status"] == "not_found" and health["statement"]["title"] == "Session not found"
        status, _, content = http(base + "/", cookie=sid, accept="application/json")
        assert status == 401 and json.loads(content)["session"]["status"] == "not_found"
        status, fresh, _ = http(base + "/", cookie=sid)
        assert status == 200 and fresh not in (None, sid)
        status, _, content = http(
            base + "/_dash-update-component", cookie=fresh, accept="application/json", body=scan
        )
        assert status == 200 and "scan-output" in json.loads(content)["response"]
    secret = (tmp_path / "state" / "sessionmw" / "demo-secret").read_text(encoding="ascii").strip()
    output = log.read_text(encoding="utf-8", errors="replace")
    assert secret not in output and "Traceback" not in output and "secret key" not in output


def test_a_failed_scan_logs_one_line(
    app: dash.Dash, client: FlaskClient, backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """One failed click: one WARNING line naming what failed, no traceback (issue 11, seen 8)."""
    backend.faults.backend_down = True
    with caplog.at_level(logging.INFO):
        _fire(
            app,
            client,
            ["scan-output.children"],
            [("scan-run", "n_clicks", 1)],
            [("scan-symbols", "value", "X")],
        )
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1 and failures[0].exc_info is None
    assert "failed" in failures[0].getMessage()


# -- the backend dies: the circuit breaker (issue 12) -------------------------------------------

_SCAN = (["scan-output.children"], [("scan-run", "n_clicks", 1)], [("scan-symbols", "value", "ACME")])


def _banner_data(body: dict[str, Any]) -> dict[str, Any]:
    """The health store's data a callback response put in the banner."""
    data: dict[str, Any] = body["sideUpdate"]["sessionmw-health"]["data"]
    return data


def _poll(client: FlaskClient) -> dict[str, Any]:
    """The page's health poll: the session's report."""
    response = client.get("/_sessionmw/health?page=1", headers={"Accept": "application/health+json"})
    report: dict[str, Any] = response.get_json()["session"]
    return report


def test_a_success_elsewhere_keeps_the_paused_banner(
    app: dash.Dash, client: FlaskClient, sessions: SessionManager, clock: FakeClock
) -> None:
    """While the market data service is paused, a callback that succeeds without calling it (a
    scan of malformed symbols, answered by the page itself) leaves the banner and its countdown
    up: a success clears the session's own trouble, not a paused dependency's."""
    _knob(client, {"flags": ["dies"]})
    for _ in range(2):  # the second failed scan opens the breaker
        _fire(app, client, *_SCAN)
    assert _poll(client)["status"] == "degraded"
    clock.advance(5)
    malformed = (_SCAN[0], _SCAN[1], [("scan-symbols", "value", "not a symbol!")])
    status, body = _fire(app, client, *malformed)
    data = _banner_data(body)
    assert status == 200 and data["status"] == "degraded"
    assert data["statement"]["message"].endswith("we will try again in 25 seconds")
    _knob(client, {"flags": []})
    clock.advance(25)
    assert _poll(client)["status"] == "healthy"  # the probe closes the breaker
    status, body = _fire(app, client, *malformed)
    assert status == 200 and _banner_data(body) == {"status": "healthy", "healthy": True, "statement": None}


def test_backend_dies_pauses_without_blaming_the_session(
    demo_module: ModuleType,
    app: dash.Dash,
    client: FlaskClient,
    sessions: SessionManager,
    clock: FakeClock,
    backend: Any,
) -> None:
    """First failures, then "paused" with the seconds left, no error counted; after the pause the
    page's poll probes the service, which is back: the session is healthy again by itself."""
    sid = _sid(client)
    _, state = _knob(client, {"flags": ["dies"]})
    assert state["flags"] == ["dies"] and "backend dead" in state["summary"]
    # First failed scan (3 attempts): the failure is said, and not counted against the session.
    status, body = _fire(app, client, *_SCAN)
    said = _banner_data(body)["statement"]
    assert status == 200 and said["status"] == "error" and said["title"] == "Background service failed"
    assert "more error" not in said["context"]  # the session is not on its way to a disconnect
    assert sessions.get_session(sid).error_count == 0  # type: ignore[union-attr]
    # The second scan opens the breaker: paused for everyone, with the seconds left.
    status, body = _fire(app, client, *_SCAN)
    data = _banner_data(body)
    assert data["status"] == "degraded" and data["statement"]["title"] == "Service paused"
    assert (
        data["statement"]["message"] == "The market data service is paused; we will try again in 30 seconds"
    )
    assert data["dependencies"][0]["retry_in"] == 30 and "reconnect" not in data["statement"]["actions"]
    calls = backend.calls
    for _ in range(THRESHOLD + 1):  # refused at once: the backend is left alone, nobody disconnects
        _fire(app, client, *_SCAN)
    assert backend.calls == calls
    record = sessions.get_session(sid)
    assert record is not None and record.state is SessionState.ACTIVE and record.error_count == 0
    # The pause is over, the service still dead: the poll's probe fails, paused again.
    clock.advance(30)
    report = _poll(client)
    assert report["status"] == "degraded" and report["dependencies"][0]["retry_in"] == 30
    # The service is back: after the pause the poll's probe closes the breaker, the banner clears.
    _knob(client, {"flags": []})
    clock.advance(15)
    assert _poll(client)["statement"]["message"].endswith("we will try again in 15 seconds")
    clock.advance(15)
    report = _poll(client)
    assert report["status"] == "healthy" and report["statement"] is None
    status, body = _fire(app, client, *_SCAN)
    assert status == 200 and "ACME" in _texts(body["response"])


def test_backend_down_still_disconnects(
    app: dash.Dash, client: FlaskClient, sessions: SessionManager
) -> None:
    """ "Backend down" is the session's process, not the shared service: its failures count against
    the session, which disconnects after three (the breaker does not count them)."""
    _knob(client, {"flags": ["down"]})
    for _ in range(THRESHOLD):
        _fire(app, client, *_SCAN)
    record = sessions.get_session(_sid(client))
    assert record is not None and record.state is SessionState.DISCONNECTED
    assert _poll(client)["status"] == "disconnected"


def test_forced_open_is_maintenance_without_countdown(app: dash.Dash, client: FlaskClient) -> None:
    """An operator's `sessionmw breakers open market-data`: paused for maintenance, no countdown
    (no seconds to count), nothing to reconnect."""
    breaker = get_breaker("market-data")
    assert breaker is not None
    breaker.force_open()
    status, body = _fire(app, client, *_SCAN)
    assert status == 200
    data = _banner_data(body)
    assert data["status"] == "degraded" and data["dependencies"][0]["retry_in"] is None
    assert "paused for maintenance" in data["statement"]["message"]
    assert data["statement"]["actions"] == []
    breaker.close()
    assert _poll(client)["status"] == "healthy"


def test_the_pause_is_set_by_create_app(
    demo_module: ModuleType, sessions: SessionManager, backend: Any
) -> None:
    """`create_app(open_for=...)`: the breaker pauses that long (here 5 s)."""
    app = demo_module.create_app(manager=sessions, backend=backend, retry_sleep=lambda s: None, open_for=5.0)
    client = app.server.test_client()
    client.get("/")
    backend.faults.backend_dies = True
    _fire(app, client, *_SCAN)
    _status, body = _fire(app, client, *_SCAN)
    assert _banner_data(body)["dependencies"][0]["retry_in"] == 5


# -- its terminal and its options (issue 27) ----------------------------------------------------


def test_the_demo_logs_one_warning_per_failure_and_nothing_per_request(
    demo_module: ModuleType, tmp_path: Path
) -> None:
    """The real demo's output: its address once; no line per request (pages, knob syncs, health
    polls); one WARNING per failed click, named as the developer wrote it (no Dash-internal ids);
    a click the paused service refused is not logged as a failure."""
    app = demo_module.create_app(manager=SessionManager(store="memory://"))
    scan = callback_payload(app, *_SCAN)
    port, log = free_port(), tmp_path / "demo.log"
    base = f"http://127.0.0.1:{port}"
    store = f"sqlite:///{tmp_path / 'sessions.db'}"
    with demo_server(port, tmp_path / "state", log, "--fault", "down", "--store", store):
        _, sid, _ = http(base + "/")
        http(base + "/", cookie=sid)
        for _ in range(3):
            http(base + "/demo/faults", accept="application/json")
            http(base + "/_sessionmw/health?page=1", cookie=sid, accept="application/health+json")
        for _ in range(2):  # "Backend down": two failed clicks
            http(base + "/_dash-update-component", cookie=sid, accept="application/json", body=scan)
        status, _, _ = http(base + "/demo/faults", accept="application/json", body={"flags": ["dies"]})
        assert status == 200
        click = base + "/_dash-update-component"
        answers = [  # the service dies: a failure, the breaker opens, then a refusal
            json.loads(http(click, cookie=sid, accept="application/json", body=scan)[2]) for _ in range(3)
        ]
        titles = [_banner_data(answer)["statement"]["title"] for answer in answers]
        assert titles[0] == "Background service failed" and titles[-1] == "Service paused", titles
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert sum("sessionmw demo: http://127.0.0.1:" in line for line in lines) == 1
    assert not [line for line in lines if "GET /" in line or "POST /" in line or "Dash is running" in line]
    warnings = [line for line in lines if line.startswith("WARNING")]
    # Two "Backend down" clicks, the first click on the dead service; the second one's last try
    # was refused by the breaker it opened, and the third was refused outright: not failures.
    assert [line.rpartition(" failed: ")[2] for line in warnings] == [
        "Session not running",
        "Session not running",
        "Background service failed",
    ], lines
    assert not [line for line in lines if "@" in line or "\x1b[" in line or "Traceback" in line]
    assert not [line for line in warnings if "Service paused" in line], lines
    # The demo counts for `sessionmw stats` on the store it was given.
    stats = subprocess.run(
        [sys.executable, "-m", "sessionmw", "stats", "--json", "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    figures = json.loads(stats.stdout)
    assert figures["counting"] is True and figures["counts"]["sessions.created"] == 1


def test_the_operators_commands_say_what_the_page_says(tmp_path: Path) -> None:
    """The demo started with ``SESSIONMW_SESSION_TIMEOUT_MINUTES=1`` (as in issue 27) on a SQLite
    store: ``sessionmw sessions list`` and ``health``, run without that setting, find the same
    1-minute timeout as the page's health poll (idle + left = 60 s, not 30 minutes), and ``config``
    shows it as the store's; and a session
    made with a 2-minute timeout and left alone is expired with the page's own words."""
    port, log = free_port(), tmp_path / "demo.log"
    base = f"http://127.0.0.1:{port}"
    store = f"sqlite:///{tmp_path / 'sessions.db'}"
    settings = {"SESSIONMW_SESSION_TIMEOUT_MINUTES": "1", "SESSIONMW_STORE_URL": store}
    with demo_server(port, tmp_path / "state", log, settings=settings):
        _, sid, _ = http(base + "/")
        assert sid is not None
        http(base + "/", cookie=sid)  # the id comes back: the session is stored
        status, _, body = http(
            base + "/_sessionmw/health?page=1", cookie=sid, accept="application/health+json"
        )
        page = json.loads(body)["session"]
    assert status == 200 and page["status"] == "healthy", page
    # What the page's banner counts with: the time idle and the time left make the timeout.
    assert page["seconds_idle"] + page["seconds_until_expiry"] == pytest.approx(60, abs=0.5)
    listing = sessionmw_command("sessions", "list", "--json", "--store", store)
    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)
    assert row["id"] == sid and row["state"] == "active"
    assert row["idle_seconds"] + row["expires_in_seconds"] == pytest.approx(60, abs=0.5)
    table = sessionmw_command("sessions", "list", "--store", store)
    [line] = [line for line in table.stdout.splitlines() if line.startswith(sid)]
    assert re.fullmatch(r"\d{1,2}s", line.split()[-1]), line  # under a minute left, not "29m56s"
    health = sessionmw_command("health", sid, "--json", "--store", store)
    assert health.returncode == 0, health.stderr
    report = json.loads(health.stdout)
    assert report["status"] == page["status"]
    assert report["seconds_idle"] + report["seconds_until_expiry"] == pytest.approx(60, abs=0.5)
    config = json.loads(sessionmw_command("config", "--json", "--store", store).stdout)
    assert config["session_timeout_minutes"]["value"] == 1  # the store's, named as such
    assert config["session_timeout_minutes"]["source"].startswith("the store")

    # Expired: the commands give the page's reason, with the app's timeout in it.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    clock = FakeClock(time.time() - 150)
    app = SessionManager(store=other, clock=clock, session_timeout_minutes=2, idle_after_seconds=40)
    try:
        app.create_session("left-alone")
        clock.advance(150)
        shown = app.check_health("left-alone")  # what the page's banner renders
    finally:
        app.close()
    assert shown.status == "expired"
    assert shown.context == "Sessions expire after 2 minutes without activity."
    said = sessionmw_command("health", "left-alone", "--json", "--store", other)
    assert said.returncode == 1 and json.loads(said.stdout)["context"] == shown.context
    text = sessionmw_command("health", "left-alone", "--store", other)
    assert shown.context in text.stdout and "30 minutes" not in text.stdout
    listed = json.loads(sessionmw_command("sessions", "list", "--json", "--store", other).stdout)
    assert [(row["id"], row["state"]) for row in listed] == [("left-alone", "expired")]


def test_the_demos_options_are_the_documented_ones() -> None:
    """`sessionmw demo --help`, the README and docs/dash.md name the same options, and every
    `--fault` value the docs show is one the command takes (each has its row in docs/dash.md)."""
    import argparse
    import re

    from sessionmw.demo import FAULT_CHOICES, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
    options.discard("--help")
    ignored = {"--help"}
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    dash_doc = (root / "docs" / "dash.md").read_text(encoding="utf-8")
    for name, text in (("README.md", readme), ("docs/dash.md", dash_doc)):
        shown = set(re.findall(r"sessionmw demo((?: --?[\w-]+(?: [^\s`-][^\s`]*)?)+)", text))
        used = {flag for line in shown for flag in re.findall(r"--[\w-]+", line)} - ignored
        assert options <= used, f"{name} never shows {sorted(options - used)}"
        assert used <= options, f"{name} shows options the demo does not take: {sorted(used - options)}"
        faults = set(re.findall(r"--fault ([a-z][\w-]*)", text))
        assert faults <= set(FAULT_CHOICES), f"{name}: {sorted(faults - set(FAULT_CHOICES))}"
        assert "SESSIONMW_STORE_URL" in text, f"{name} does not say the demo takes SESSIONMW_STORE_URL"
    rows = set(re.findall(r"^\| `([\w-]+)`", dash_doc, re.MULTILINE))
    assert set(FAULT_CHOICES) <= rows, f"docs/dash.md has no row for {sorted(set(FAULT_CHOICES) - rows)}"
    assert load_demo().FAULT_CHOICES == FAULT_CHOICES


# -- the demo app through the Dash test client, its simulated backend, the command ---------------


def test_demo_scan_names_a_bad_symbol(demo_module: ModuleType, sessions: SessionManager) -> None:
    """Bad input gets a clear message naming it, not an error."""
    app = demo_module.create_app(manager=sessions)
    client = loaded_client(app)
    _, body = fire(
        client,
        [("scan-output", "children")],
        [("scan-run", "n_clicks", 1)],
        [("scan-symbols", "value", "ACME, $$$")],
    )
    assert "'$$$' is not a ticker symbol" in texts_of(body["response"]["scan-output"]["children"])
    record = sessions.get_session(session_cookie(client))
    assert record is not None and record.error_count == 0


def test_demo_backtests_progress_to_done(demo_module: ModuleType, sessions: SessionManager) -> None:
    """Starting a batch and ticking it shows progress until every symbol has a result."""
    app = demo_module.create_app(manager=sessions)
    client = loaded_client(app)
    start_outputs = [
        ("bt-job", "data"),
        ("bt-tick", "disabled"),
        ("bt-output", "children"),
        ("bt-progress", "value"),
        ("bt-progress-label", "children"),
    ]
    state = [("bt-symbols", "value", "ACME, WAYNE"), ("bt-fast", "value", 5), ("bt-slow", "value", 20)]
    _, body = fire(client, start_outputs, [("bt-run", "n_clicks", 1)], state)
    job_id = body["response"]["bt-job"]["data"]
    assert body["response"]["bt-tick"]["disabled"] is False
    tick_outputs = [
        ("bt-progress", "value"),
        ("bt-progress-label", "children"),
        ("bt-output", "children"),
        ("bt-tick", "disabled"),
    ]
    labels = []
    for ticks in (1, 2):
        _, body = fire(
            client, tick_outputs, [("bt-tick", "n_intervals", ticks)], [("bt-job", "data", job_id)]
        )
        labels.append(body["response"]["bt-progress-label"]["children"])
    assert labels == ["1 of 2 done", "2 of 2 done"]
    assert body["response"]["bt-progress"]["value"] == "100"
    assert body["response"]["bt-tick"]["disabled"] is True


def test_prices_are_deterministic_per_symbol(demo_module: ModuleType) -> None:
    """The same symbol always gives the same prices; different symbols differ."""
    backend = demo_module.MarketBackend()
    assert backend.prices("ACME") == demo_module.MarketBackend().prices("ACME")
    assert backend.prices("ACME") != backend.prices("WAYNE")
    assert all(price > 0 for price in backend.prices("ACME"))


def test_fault_transient_fails_the_next_calls_only(demo_module: ModuleType) -> None:
    """The transient knob fails exactly that many calls, then the backend answers."""
    backend = demo_module.MarketBackend()
    backend.faults.transient_failures = 2
    for _ in range(2):
        with pytest.raises(TransientError):
            backend.prices("ACME")
    assert backend.prices("ACME")


def test_fault_backend_down_is_the_seed_symptom(demo_module: ModuleType) -> None:
    """A dead backend raises the seed's 'This session is not running'."""
    backend = demo_module.MarketBackend(demo_module.Faults(backend_down=True))
    with pytest.raises(RuntimeError, match="This session is not running"):
        backend.scan(["ACME"])


def test_fault_bad_data_is_a_data_error(demo_module: ModuleType) -> None:
    """Gaps in a price series are rejected as a DataLoadError naming the symbol."""
    backend = demo_module.MarketBackend(demo_module.Faults(bad_data=True))
    with pytest.raises(DataLoadError, match="ACME"):
        backend.prices("ACME")


def test_fault_latency_uses_the_injected_sleep(demo_module: ModuleType) -> None:
    """Slow responses wait through the injected sleep function."""
    waits: list[float] = []
    backend = demo_module.MarketBackend(demo_module.Faults(latency_seconds=2.0), sleep=waits.append)
    backend.prices("ACME")
    assert waits == [2.0]


@pytest.mark.parametrize(
    ("text", "expected"), [("acme, wayne acme", ["ACME", "WAYNE"]), ("BRK.B;X", ["BRK.B", "X"])]
)
def test_parse_symbols(demo_module: ModuleType, text: str, expected: list[str]) -> None:
    """Symbols are split on commas, spaces and semicolons, upper-cased and de-duplicated."""
    assert demo_module.parse_symbols(text) == expected


@pytest.mark.parametrize(("text", "message"), [("", "at least one"), ("ACME, 12345678901", "12345678901")])
def test_parse_symbols_rejects_bad_input(demo_module: ModuleType, text: str, message: str) -> None:
    """Empty input or a malformed symbol is refused with a message naming it."""
    with pytest.raises(ValueError, match=message):
        demo_module.parse_symbols(text)


def test_backtest_windows_are_checked(demo_module: ModuleType) -> None:
    """A fast window not below the slow one is refused with the values named."""
    with pytest.raises(ValueError, match="30/10"):
        demo_module.MarketBackend().start_backtests(["ACME"], 30, 10)


def test_apply_fault_names_unknown_faults(demo_module: ModuleType) -> None:
    """An unknown fault name is refused with the choices listed."""
    with pytest.raises(ValueError, match="choose from transient"):
        demo_module.apply_fault(demo_module.Faults(), "meteor")


def test_load_demo_without_checkout_fails_in_one_line(tmp_path: Path) -> None:
    """Outside a repository checkout the demo explains where the app should be."""
    with pytest.raises(DemoUnavailableError, match="clone of the repository"):
        load_demo(tmp_path / "missing.py")


def test_demo_command_without_checkout_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sessionmw demo` without the app prints one friendly line and exits 1."""
    import sessionmw.demo

    monkeypatch.setattr(sessionmw.demo, "DEMO_FILE", tmp_path / "missing.py")
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sessionmw demo: the demo app is not here") and err.count("\n") == 1


def test_demo_command_serves_on_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sessionmw demo --port N` runs the app on 127.0.0.1:N with debug off and prints the URL."""
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(dash.Dash, "run", lambda self, **kwargs: runs.append(kwargs))
    assert main(["demo", "--port", "18123", "--fault", "down"]) == 0
    assert runs == [{"host": "127.0.0.1", "port": 18123, "debug": False}]
    assert "http://127.0.0.1:18123/" in capsys.readouterr().out


def test_demo_command_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    """A port outside 1-65535 is a usage error naming the value."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "70000" in capsys.readouterr().err
