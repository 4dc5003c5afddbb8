"""Operating breakers: the ``sessionmw breakers`` command and the Prometheus families."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from sessionmw import Breaker, BreakerOpenError, BreakerState, SessionManager
from sessionmw.testing import FakeClock


def sessionmw(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sessionmw ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "sessionmw", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )


def test_an_operator_opens_and_closes_a_breaker_the_app_uses(tmp_path: Path) -> None:
    """`breakers open NAME` pauses the app's calls (another process), `breakers close NAME` resumes
    them; `breakers` lists the state and counts."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    clock = FakeClock()
    manager = SessionManager(store=url, clock=clock)
    market = Breaker("market-data", manager=manager, clock=clock)
    assert market.call(lambda: 1) == 1
    opened = sessionmw("breakers", "open", "market-data", "--store", url)
    assert opened.returncode == 0, opened.stderr
    clock.advance(1)  # past this process's state_ttl
    with pytest.raises(BreakerOpenError, match="maintenance"):
        market.call(lambda: 1)
    listed = sessionmw("breakers", "--store", url, "--json")
    (row,) = json.loads(listed.stdout)
    assert (row["name"], row["state"], row["opens"], row["rejected"]) == ("market-data", "forced_open", 1, 0)
    assert sessionmw("breakers", "close", "market-data", "--store", url).returncode == 0
    clock.advance(1)
    assert market.call(lambda: 2) == 2
    assert market.state is BreakerState.CLOSED
    assert "market-data" in sessionmw("breakers", "--store", url).stdout
    manager.close()


def test_a_command_without_a_name_is_a_usage_error() -> None:
    result = sessionmw("breakers", "disable")
    assert result.returncode == 2 and "needs a breaker NAME" in result.stderr


def test_prometheus_state_gauge_and_calls_by_outcome(manager: SessionManager, clock: FakeClock) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, generate_latest

    from sessionmw.metrics import SessionCollector

    breaker = Breaker("scanner", failure_threshold=2, manager=manager, clock=clock, state_ttl=0)
    breaker.call(lambda: None)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    with pytest.raises(BreakerOpenError):
        breaker.call(lambda: None)
    breaker.snapshot()  # the refusal's count rides along with the next round trip
    registry = CollectorRegistry()
    registry.register(SessionCollector(manager))
    text = generate_latest(registry).decode()
    assert 'sessionmw_breaker_state{breaker="scanner",state="open"} 1.0' in text
    assert 'sessionmw_breaker_state{breaker="scanner",state="closed"} 0.0' in text
    assert 'sessionmw_breaker_calls_total{breaker="scanner",outcome="successful"} 1.0' in text
    assert 'sessionmw_breaker_calls_total{breaker="scanner",outcome="failed"} 2.0' in text
    assert 'sessionmw_breaker_calls_total{breaker="scanner",outcome="rejected"} 1.0' in text


def _fail() -> None:
    raise ConnectionError("down")


def test_health_json_warns_for_a_paused_dependency(manager: SessionManager, clock: FakeClock) -> None:
    """application/health+json: a degraded session is `warn`; an open breaker's check `fail`, a
    half-open one's `warn`."""
    from sessionmw.integrations.http import health_json
    from sessionmw.testing import force_breaker

    breaker = Breaker("scanner", manager=manager, clock=clock, state_ttl=0)
    sid = manager.create_session().session_id
    force_breaker(breaker, "open")
    report = health_json(manager.check_health(sid))
    assert report["status"] == "warn"
    assert report["checks"]["breaker:scanner"][0]["status"] == "fail"
    force_breaker(breaker, "half_open")
    assert health_json(manager.check_health(sid))["checks"]["breaker:scanner"][0]["status"] == "warn"
    force_breaker(breaker, "closed")
    assert health_json(manager.check_health(sid))["status"] == "pass"


def _wsgi_get(app: Any, cookie: str | None = None) -> tuple[str, dict[str, str], bytes]:
    """One GET through ``app``: status, headers (last of each name) and body."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)
        return lambda data: None

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_through_the_wsgi_middleware_503_with_the_countdown_and_no_session_blamed(
    manager: SessionManager, clock: FakeClock
) -> None:
    """An app whose backend is down: the user gets 503 + Retry-After = the seconds left, and the
    session, which every adapter reports errors to, never counts the backend's failures."""
    from sessionmw import guarded
    from sessionmw.integrations.wsgi import SessionMiddleware

    market = Breaker("market-data", failure_threshold=3, open_for=30.0, manager=manager, clock=clock)

    up = [True]

    @guarded(breaker=market, retry=None)
    def fetch_prices() -> bytes:
        if not up[0]:
            raise ConnectionError("scanner down")
        return b"prices"

    def app(environ: Any, start_response: Any) -> list[bytes]:
        body = fetch_prices()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    wrapped = SessionMiddleware(app, manager=manager, secret_key="k")
    status, headers, _ = _wsgi_get(wrapped)
    cookie = "sessionmw=" + headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert _wsgi_get(wrapped, cookie)[0].startswith("200")  # the session is stored
    up[0] = False
    for _ in range(6):
        status, headers, body = _wsgi_get(wrapped, cookie)
    clock.advance(10)
    status, headers, body = _wsgi_get(wrapped, cookie)
    assert status.startswith("503") and headers["Retry-After"] == "20"
    assert b"The market data service is paused; we will try again in 20 seconds" in body
    (record,) = manager.store.records()
    assert (record.error_count, record.state.value) == (0, "active")


def test_health_reports_consult_breakers_only_once_a_process_has_one() -> None:
    """check_health pays nothing for breakers until one is made (it doubled check_health's cost)."""
    import subprocess
    import sys

    script = (
        "from sessionmw import Breaker, SessionManager\n"
        "m = SessionManager(store='memory://'); m.create_session('s')\n"
        "assert 'dependencies' not in m.check_health('s'), 'consulted with no breaker'\n"
        "Breaker('market-data')\n"
        "assert m.check_health('s')['dependencies'] == []\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
