"""Operating breakers: the ``sessionmw breakers`` command and the Prometheus families."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from support.processes import sessionmw_command

from sessionmw import Breaker, BreakerOpenError, BreakerState, SessionManager
from sessionmw.testing import FakeClock


def test_an_operator_opens_and_closes_a_breaker_the_app_uses(tmp_path: Path) -> None:
    """`breakers open NAME` pauses the app's calls (another process), `breakers close NAME` resumes
    them; `breakers` lists the state and counts."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    clock = FakeClock()
    manager = SessionManager(store=url, clock=clock)
    market = Breaker("market-data", manager=manager, clock=clock)
    assert market.call(lambda: 1) == 1
    opened = sessionmw_command("breakers", "open", "market-data", "--store", url)
    assert opened.returncode == 0, opened.stderr
    clock.advance(1)  # past this process's state_ttl
    with pytest.raises(BreakerOpenError, match="maintenance"):
        market.call(lambda: 1)
    listed = sessionmw_command("breakers", "--store", url, "--json")
    (row,) = json.loads(listed.stdout)
    assert (row["name"], row["state"], row["opens"], row["rejected"]) == ("market-data", "forced_open", 1, 0)
    assert sessionmw_command("breakers", "close", "market-data", "--store", url).returncode == 0
    clock.advance(1)
    assert market.call(lambda: 2) == 2
    assert market.state is BreakerState.CLOSED
    assert "market-data" in sessionmw_command("breakers", "--store", url).stdout
    manager.close()


def test_a_command_without_a_name_is_a_usage_error() -> None:
    result = sessionmw_command("breakers", "disable")
    assert result.returncode == 2 and "needs a breaker NAME" in result.stderr


def test_prometheus_state_gauge_and_calls_by_outcome(manager: SessionManager, clock: FakeClock) -> None:
    pytest.importorskip("prometheus_client")
    breaker = Breaker("scanner", failure_threshold=2, manager=manager, clock=clock, state_ttl=0)
    breaker.call(lambda: None)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    with pytest.raises(BreakerOpenError):
        breaker.call(lambda: None)
    breaker.snapshot()  # the refusal's count rides along with the next round trip
    text = _prometheus_text(manager)
    assert 'sessionmw_breaker_state{breaker="scanner",state="open"} 1.0' in text
    assert 'sessionmw_breaker_state{breaker="scanner",state="closed"} 0.0' in text
    assert 'sessionmw_breaker_calls_total{breaker="scanner",outcome="successful"} 1.0' in text
    assert 'sessionmw_breaker_calls_total{breaker="scanner",outcome="failed"} 2.0' in text
    assert 'sessionmw_breaker_calls_total{breaker="scanner",outcome="rejected"} 1.0' in text


def _fail() -> None:
    raise ConnectionError("down")


def _prometheus_text(manager: SessionManager) -> str:
    """What a Prometheus scrape of the collector ``instrument`` registers would read."""
    from prometheus_client import CollectorRegistry, generate_latest

    from sessionmw.metrics import SessionCollector

    registry = CollectorRegistry()
    registry.register(SessionCollector(manager))
    return generate_latest(registry).decode()


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

    script = (
        "from sessionmw import Breaker, SessionManager\n"
        "m = SessionManager(store='memory://'); m.create_session('s')\n"
        "assert 'dependencies' not in m.check_health('s'), 'consulted with no breaker'\n"
        "Breaker('market-data')\n"
        "assert m.check_health('s')['dependencies'] == []\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_unknown_name_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    """`breakers open nope` (a typo) exits 1 with one line naming the known breakers, and makes no
    phantom forced-open breaker."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    manager = SessionManager(store=url)
    Breaker("market-data", manager=manager).force_open()
    manager.close()
    refused = sessionmw_command("breakers", "open", "nope", "--store", url)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "sessionmw: no breaker named 'nope' in this store (it has: market-data); a breaker is there once"
        " the app has used it"
    ]
    listed = sessionmw_command("breakers", "--store", url, "--json")
    assert [row["name"] for row in json.loads(listed.stdout)] == ["market-data"]


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_corrupt_breaker_is_named_the_others_listed_and_close_repairs_it(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """One unreadable breaker (a bogus state in SQLite, a Redis key that is not a hash): the listing
    shows the others, names it in one line on stderr (no traceback) and exits 1; `breakers close
    NAME` replaces it."""
    if kind == "sqlite":
        path = tmp_path / "s.db"
        url = f"sqlite:///{path}"
    else:
        prefix = request.getfixturevalue("redis_prefix")
        url = f"{request.getfixturevalue('redis_url')}?prefix={prefix}"
    manager = SessionManager(store=url)
    for name in ("market-data", "scanner"):
        Breaker(name, manager=manager).force_open()
    if kind == "sqlite":
        with sqlite3.connect(path) as connection:
            connection.execute("UPDATE sessionmw_breakers SET state = 'bogus' WHERE name = 'market-data'")
    else:
        client = manager.store._client  # type: ignore[attr-defined]
        client.delete(f"{{{prefix}:breaker:market-data}}")
        client.set(f"{{{prefix}:breaker:market-data}}", "a string")
    manager.close()
    listed = sessionmw_command("breakers", "--store", url)
    assert listed.returncode == 1
    assert "scanner" in listed.stdout and "market-data" not in listed.stdout
    (line,) = listed.stderr.strip().splitlines()[-1:]
    assert "market-data" in line and "unreadable" in line and "Traceback" not in listed.stderr
    repaired = sessionmw_command("breakers", "close", "market-data", "--store", url, "--json")
    assert repaired.returncode == 0, repaired.stderr
    assert [(row["name"], row["state"]) for row in json.loads(repaired.stdout)] == [("market-data", "closed")]
    assert sessionmw_command("breakers", "--store", url).returncode == 0


def test_failure_and_slow_call_rates_in_health_and_prometheus(
    manager: SessionManager, clock: FakeClock
) -> None:
    """A breaker with a window: its failure and slow-call rates over the window are in the health
    report's check and in two Prometheus gauges; slow calls are an outcome of the calls counter."""
    pytest.importorskip("prometheus_client")
    breaker = Breaker(
        "scanner",
        failure_rate=0.9,
        slow_call_duration=1.0,
        window=10,
        min_calls=10,
        manager=manager,
        clock=clock,
        state_ttl=0,
    )
    breaker.call(clock.advance, 0.0)
    breaker.call(clock.advance, 2.0)  # slow
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    sid = manager.create_session().session_id
    (check,) = [c for c in manager.check_health(sid).checks if c["name"] == "breaker:scanner"]
    assert (check["failure_rate"], check["slow_call_rate"]) == (0.5, 0.25)
    text = _prometheus_text(manager)
    assert 'sessionmw_breaker_failure_rate{breaker="scanner"} 0.5' in text
    assert 'sessionmw_breaker_slow_call_rate{breaker="scanner"} 0.25' in text
    assert 'sessionmw_breaker_calls_total{breaker="scanner",outcome="slow"} 1.0' in text
